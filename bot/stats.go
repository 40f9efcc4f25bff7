package bot

import (
	"strconv"
	"strings"
	"time"

	"supportbot/storage"
)

// The window of /stats, in days.
const (
	statsDays    = 7
	statsMaxDays = 365
)

// stats: /stats [days] gives agents the service figures of the last days (README,
// "Service figures"): what was opened and resolved, the three service times, CSAT
// and the queue as it is now. Typed inside a dialog, whose client reads along, the
// figures go to the agent's own chat with the bot instead. The figures only read:
// they are written from a read snapshot just before they are sent (answers.go).
func (t *turn) stats(args string) error {
	if !t.from.agent {
		return t.reply(t.t.AgentsOnly, nil)
	}
	days := statsDays
	if fields := strings.Fields(args); len(fields) > 0 {
		n, err := strconv.Atoi(fields[0])
		if err != nil || n < 1 {
			return t.reply(t.t.StatsUsage, nil)
		}
		days = min(n, statsMaxDays)
	}
	return t.answerAgent(answer{Command: cmdStats, Days: days}, t.t.StatsSentPrivately)
}

// statsAnswer is the figures of the last days.
func (t *turn) statsAnswer(days int) (string, error) {
	now := t.tx.Now()
	f, err := t.tx.ServiceFigures(t.portal.ID, now.Add(-time.Duration(days)*24*time.Hour), now)
	if err != nil {
		return "", err
	}
	waiting, err := t.tx.WaitingDialogs(t.portal.ID)
	if err != nil {
		return "", err
	}
	lines := []string{t.t.StatsHeader(days), t.t.StatsCounts(f.Opened, f.Resolved, f.AutoClosed)}
	for _, s := range []struct {
		name string
		sum  storage.TimeSummary
	}{{t.t.StatsFirst, f.FirstResponse}, {t.t.StatsReply, f.Reply}, {t.t.StatsResolve, f.Resolution}} {
		if s.sum.Count == 0 {
			lines = append(lines, t.t.StatsNoTimes(s.name))
			continue
		}
		lines = append(lines, t.t.StatsTime(s.name, s.sum.Count, t.duration(s.sum.Median), t.duration(s.sum.P90)))
	}
	if f.Ratings == 0 {
		lines = append(lines, t.t.StatsNoRating)
	} else {
		lines = append(lines, t.t.StatsCSAT((f.Helped*200+f.Ratings)/(2*f.Ratings), f.Helped, f.Ratings))
	}
	if len(waiting) == 0 {
		lines = append(lines, t.t.StatsNoQueue)
	} else {
		// The queue is longest waiting first.
		lines = append(lines, t.t.StatsBacklog(len(waiting), t.duration(max(now.Sub(waiting[0].WaitingSince), 0))))
	}
	perAgent, err := t.targetFigures(now.Add(-time.Duration(days)*24*time.Hour), now)
	if err != nil {
		return "", err
	}
	lines = append(lines, perAgent...)
	return strings.Join(lines, "\n"), nil
}

// duration is a duration as the figures show it: seconds under a minute, else as
// the queue shows waits.
func (t *turn) duration(d time.Duration) string {
	if d < time.Minute {
		return t.t.Seconds(int(d / time.Second))
	}
	return t.t.Duration(d)
}
