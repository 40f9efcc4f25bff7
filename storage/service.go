package storage

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"time"
)

// Kinds of service times: the intervals measured from a dialog's life (README,
// "Service figures").
const (
	TimeFirstResponse = "first_response" // opened or reopened → the first agent answer after it
	TimeReply         = "reply"          // the first client message still unanswered → the agent answer
	TimeResolution    = "resolution"     // opened or reopened → resolved or auto-closed
)

// deriveServiceTimes records the intervals that the dialog's event eventID, just
// recorded at ms, ends. It reads the dialog's earlier events, in the order they were
// recorded:
//
//   - a cycle starts at opened or reopened and ends at resolved or auto_closed;
//   - an agent answer inside a cycle that has had none yet ends its first response;
//   - an agent answer ends a reply when the client wrote since the last agent
//     answer, resolve or auto-close (a resolve ends what the client waited for); it
//     runs from the first of those client messages;
//   - a resolve or auto-close of a cycle ends its resolution.
func (tx *Tx) deriveServiceTimes(d Dialog, kind string, eventID, ms int64) error {
	if kind != LifeAgentAnswer && kind != LifeResolved && kind != LifeAutoClosed {
		return nil
	}
	var cycleID, cycleAt, waitAt sql.NullInt64
	var lastEnd, lastAnswer int64
	err := tx.queryRow(serviceTimesSQL, d.ID, eventID).Scan(&cycleID, &cycleAt, &lastEnd, &lastAnswer, &waitAt)
	if err != nil {
		return fmt.Errorf("service times of dialog %d: %w", d.ID, err)
	}
	inCycle := cycleID.Valid && cycleID.Int64 > lastEnd
	add := func(timeKind string, from int64) error {
		_, err := tx.exec(`INSERT INTO service_times (portal_id, dialog_id, kind, event_id, started_at, ended_at, seconds)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, d.PortalID, d.ID, timeKind, eventID, from, ms, float64(max(ms-from, 0))/1000)
		if err != nil {
			return fmt.Errorf("record %s of dialog %d: %w", timeKind, d.ID, err)
		}
		return nil
	}
	if kind != LifeAgentAnswer {
		if inCycle {
			return add(TimeResolution, cycleAt.Int64)
		}
		return nil
	}
	if inCycle && lastAnswer < cycleID.Int64 {
		if err := add(TimeFirstResponse, cycleAt.Int64); err != nil {
			return err
		}
	}
	if waitAt.Valid {
		return add(TimeReply, waitAt.Int64)
	}
	return nil
}

// serviceTimesSQL reads what deriveServiceTimes needs of a dialog's events before
// ?2. Every part is a look-up of one kind along dialog_events_by_kind, so an agent's
// answer in a dialog whose client wrote 20,000 messages does not read those 20,000
// events in the writer (as one list of the dialog's events, read five times, did).
const serviceTimesSQL = `WITH cycle AS (SELECT id, at FROM dialog_events
		WHERE dialog_id = ?1 AND kind IN ('opened', 'reopened') AND id < ?2 ORDER BY id DESC LIMIT 1),
	ended AS (SELECT COALESCE(MAX(id), 0) AS id FROM dialog_events
		WHERE dialog_id = ?1 AND kind IN ('resolved', 'auto_closed') AND id < ?2),
	answered AS (SELECT COALESCE(MAX(id), 0) AS id FROM dialog_events
		WHERE dialog_id = ?1 AND kind = 'agent_answer' AND id < ?2)
	SELECT (SELECT id FROM cycle), (SELECT at FROM cycle), ended.id, answered.id,
		(SELECT w.at FROM dialog_events w WHERE w.dialog_id = ?1 AND w.kind = 'client_message' AND w.id < ?2
			AND w.id > CASE WHEN ended.id > answered.id THEN ended.id ELSE answered.id END ORDER BY w.id LIMIT 1)
	FROM ended, answered`

// TimeSummary sums up the intervals of one kind: how many, and their median and
// 90th percentile by nearest rank (the value at position ⌈p·n/100⌉ of the sorted
// list, so always one that was measured; the median of an even count is the lower
// middle one).
type TimeSummary struct {
	Count       int
	Median, P90 time.Duration
}

// summarize sums up intervals given in seconds, sorted.
func summarize(sorted []float64) TimeSummary {
	n := len(sorted)
	if n == 0 {
		return TimeSummary{}
	}
	rank := func(p int) time.Duration { return fromSeconds(sorted[(p*n+99)/100-1]) }
	return TimeSummary{Count: n, Median: rank(50), P90: rank(90)}
}

// ServiceFigures are a portal's figures over a window of time: what happened in
// it, and the intervals that ended in it.
type ServiceFigures struct {
	Opened                           int // dialogs opened (withdrawn ones, whose chat could not be created, not counted)
	Resolved                         int // resolves by agents, each resolve of a reopened dialog counted again
	AutoClosed                       int
	FirstResponse, Reply, Resolution TimeSummary
	Ratings, Helped                  int // ratings given in the window, and those that said it helped
}

// figureCountsSQL counts a window's opened, resolved and auto-closed dialogs, one
// kind at a time along dialog_events_portal_kind: the client messages and agent
// answers in the window, most of its events, are never read. (Asked for the three
// kinds at once, PostgreSQL read the whole window and filtered the kinds.)
const figureCountsSQL = `SELECT
	(SELECT COUNT(*) FROM dialog_events e JOIN dialogs d ON d.id = e.dialog_id
		WHERE e.portal_id = ?1 AND e.kind = 'opened' AND e.at > ?2 AND e.at <= ?3 AND NOT d.chat_failed),
	(SELECT COUNT(*) FROM dialog_events e JOIN dialogs d ON d.id = e.dialog_id
		WHERE e.portal_id = ?1 AND e.kind = 'resolved' AND e.at > ?2 AND e.at <= ?3),
	(SELECT COUNT(*) FROM dialog_events e JOIN dialogs d ON d.id = e.dialog_id
		WHERE e.portal_id = ?1 AND e.kind = 'auto_closed' AND e.at > ?2 AND e.at <= ?3)`

// ServiceFigures computes the portal's figures for the window (since, until]: an
// event counts in the window it happened in, an interval in the one it ended in, a
// rating in the one it was given in.
func (tx *Tx) ServiceFigures(portalID int64, since, until time.Time) (ServiceFigures, error) {
	var f ServiceFigures
	from, to := millis(since), millis(until)
	err := tx.queryRow(figureCountsSQL, portalID, from, to).Scan(&f.Opened, &f.Resolved, &f.AutoClosed)
	if err != nil {
		return f, fmt.Errorf("service figures of portal %d: %w", portalID, err)
	}
	for kind, sum := range map[string]*TimeSummary{TimeFirstResponse: &f.FirstResponse, TimeReply: &f.Reply, TimeResolution: &f.Resolution} {
		rows, err := tx.query(`SELECT seconds FROM service_times WHERE portal_id = ? AND kind = ? AND ended_at > ? AND ended_at <= ?
			ORDER BY seconds`, portalID, kind, from, to)
		list, err := collect(rows, err, func(r *sql.Rows) (s float64, err error) { return s, r.Scan(&s) })
		if err != nil {
			return f, fmt.Errorf("%s times of portal %d: %w", kind, portalID, err)
		}
		*sum = summarize(list)
	}
	err = tx.queryRow(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN r.helped THEN 1 ELSE 0 END), 0) FROM ratings r JOIN dialogs d ON d.id = r.dialog_id
		WHERE d.portal_id = ? AND r.rated_at > ? AND r.rated_at <= ?`, portalID, from, to).Scan(&f.Ratings, &f.Helped)
	if err != nil {
		return f, fmt.Errorf("ratings of portal %d: %w", portalID, err)
	}
	return f, nil
}

// ServiceTimeBuckets counts every interval of a kind ever measured, on every
// portal, as a histogram does: for each bound (seconds, ascending) how many were at
// most that long, then how many in all and their sum in seconds. The metrics read it
// at each scrape, so they count exactly what /stats counts, survive restarts and
// agree between replicas sharing the database.
func (s *Store) ServiceTimeBuckets(ctx context.Context, kind string, bounds []float64) (buckets []uint64, count uint64, sum float64, err error) {
	var q strings.Builder
	q.WriteString("SELECT COUNT(*), COALESCE(SUM(seconds), 0)")
	args := make([]any, 0, len(bounds)+1)
	for _, b := range bounds {
		q.WriteString(", COALESCE(SUM(CASE WHEN seconds <= ? THEN 1 ELSE 0 END), 0)")
		args = append(args, b)
	}
	q.WriteString(" FROM service_times WHERE kind = ?")
	args = append(args, kind)
	buckets = make([]uint64, len(bounds))
	dest := []any{&count, &sum}
	for i := range buckets {
		dest = append(dest, &buckets[i])
	}
	if err := s.readRow(ctx, q.String(), args...).Scan(dest...); err != nil {
		return nil, 0, 0, fmt.Errorf("%s histogram: %w", kind, err)
	}
	return buckets, count, sum, nil
}

// fromSeconds converts stored seconds (millisecond precision) to a duration.
func fromSeconds(s float64) time.Duration {
	return time.Duration(math.Round(s*1000)) * time.Millisecond
}
