package storage

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// lifeScript plays dialog events at controlled times on a real database.
type lifeScript struct {
	t     *testing.T
	s     *Store
	t0    time.Time
	mu    sync.Mutex
	now   time.Time
	byKey map[string]Dialog
}

func newLifeScript(t *testing.T) *lifeScript {
	l := &lifeScript{t: t, t0: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), byKey: map[string]Dialog{}}
	l.now = l.t0
	l.s, _ = openTest(t, WithClock(func() time.Time { l.mu.Lock(); defer l.mu.Unlock(); return l.now }))
	return l
}

// at runs fn in a transaction at t0+offset.
func (l *lifeScript) at(offset time.Duration, fn func(*Tx) error) {
	l.t.Helper()
	l.mu.Lock()
	l.now = l.t0.Add(offset)
	l.mu.Unlock()
	mustUpdate(l.t, l.s, fn)
}

// open creates dialog key on the portal at t0+offset, recording its opening.
func (l *lifeScript) open(offset time.Duration, portalID int64, key string) {
	l.t.Helper()
	l.at(offset, func(tx *Tx) error {
		d, err := tx.CreateDialog(NewDialog{PortalID: portalID, ClientID: 27, Language: "en", Title: title})
		if err != nil {
			return err
		}
		l.byKey[key] = d
		return tx.AddDialogEvent(d, LifeOpened, 27)
	})
}

// event records kinds for dialog key at t0+offset, one after the other in one transaction.
func (l *lifeScript) event(offset time.Duration, key string, kinds ...string) {
	l.t.Helper()
	l.at(offset, func(tx *Tx) error {
		for _, k := range kinds {
			if err := tx.AddDialogEvent(l.byKey[key], k, 0); err != nil {
				return err
			}
		}
		return nil
	})
}

func (l *lifeScript) times(key string) string {
	l.t.Helper()
	var out []string
	err := l.s.View(context.Background(), func(tx *Tx) error {
		list, err := tx.ServiceTimes(l.byKey[key].ID)
		for _, st := range list {
			out = append(out, fmt.Sprintf("%s %v→%v %v", st.Kind, st.Started.Sub(l.t0), st.Ended.Sub(l.t0), st.Duration))
		}
		return err
	})
	if err != nil {
		l.t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

const (
	asks    = LifeClientMessage
	answers = LifeAgentAnswer
)

// script is the scripted history of TestServiceTimesDerived: dialog A on portal p
// answered, resolved, reopened by the client's message, resolved again, then answered
// while resolved; dialog B opened empty, escalated, auto-closed while the client
// waited, reopened and resolved with no answer, written in while resolved, reopened
// by an agent and answered; dialog C on another portal.
func script(l *lifeScript, p, other int64) {
	m := time.Minute
	l.open(0, p, "A")
	l.event(0, "A", asks)            // the question typed at opening
	l.event(10*m, "A", answers)      // first response 10m, reply 10m
	l.event(20*m, "A", asks)         // the client waits from here…
	l.event(25*m, "A", asks)         // …not from here
	l.event(50*m, "A", answers)      // reply 30m
	l.event(55*m, "A", answers)      // nothing: nobody waited
	l.event(60*m, "A", LifeResolved) // resolution 60m
	l.event(120*m, "A", asks, LifeReopened)
	l.event(150*m, "A", answers)        // first response 30m (from the reopening), reply 30m
	l.event(180*m, "A", asks)           // "thanks": the resolve ends that wait
	l.event(190*m, "A", LifeResolved)   // resolution 70m
	l.event(240*m, "A", answers)        // resolved: no cycle, nobody waiting
	l.event(241*m, "A", LifeResolved)   // not a second resolution of the same cycle
	l.open(60*m, p, "B")                // no question
	l.event(65*m, "B", LifeEscalated)   // changes nothing
	l.event(80*m, "B", answers)         // first response 20m, no reply
	l.event(120*m, "B", asks)           // waits…
	l.event(300*m, "B", LifeAutoClosed) // resolution 4h; the wait ends unanswered
	l.event(360*m, "B", LifeReopened)
	l.event(390*m, "B", LifeResolved) // resolution 30m, no first response
	l.event(420*m, "B", asks)         // in the resolved dialog, at the limit: not reopened, but waiting
	l.event(450*m, "B", LifeReopened) // by an agent
	l.event(460*m, "B", answers)      // first response 10m (from the reopening), reply 40m (from the message)
	l.open(0, other, "C")
	l.event(0, "C", asks)
	l.event(5*m, "C", answers)
}

// TestServiceTimesDerived: the intervals recorded with each event are the ones the
// README defines, computed here by hand from the script.
func TestServiceTimesDerived(t *testing.T) {
	l := newLifeScript(t)
	ctx := context.Background()
	p, _ := l.s.EnsurePortal(ctx, "a", "")
	other, _ := l.s.EnsurePortal(ctx, "b", "")
	script(l, p.ID, other.ID)

	for key, want := range map[string]string{
		"A": `first_response 0s→10m0s 10m0s
reply 0s→10m0s 10m0s
reply 20m0s→50m0s 30m0s
resolution 0s→1h0m0s 1h0m0s
first_response 2h0m0s→2h30m0s 30m0s
reply 2h0m0s→2h30m0s 30m0s
resolution 2h0m0s→3h10m0s 1h10m0s`,
		"B": `first_response 1h0m0s→1h20m0s 20m0s
resolution 1h0m0s→5h0m0s 4h0m0s
resolution 6h0m0s→6h30m0s 30m0s
first_response 7h30m0s→7h40m0s 10m0s
reply 7h0m0s→7h40m0s 40m0s`,
		"C": `first_response 0s→5m0s 5m0s
reply 0s→5m0s 5m0s`,
	} {
		if got := l.times(key); got != want {
			t.Errorf("dialog %s:\n%s\nwant\n%s", key, got, want)
		}
	}
}

// TestServiceFiguresWindow: counts, medians and 90th percentiles (nearest rank) over
// a window, each interval in the window it ended in; ratings by when they were given;
// another portal's history counts nowhere.
func TestServiceFiguresWindow(t *testing.T) {
	l := newLifeScript(t)
	ctx := context.Background()
	p, _ := l.s.EnsurePortal(ctx, "a", "")
	other, _ := l.s.EnsurePortal(ctx, "b", "")
	script(l, p.ID, other.ID)
	rate := func(offset time.Duration, key string, helped bool) {
		l.at(offset, func(tx *Tx) error {
			if err := tx.SetDialogStatus(l.byKey[key].ID, StatusResolved); err != nil {
				return err
			}
			d, err := tx.Dialog(l.byKey[key].ID)
			if err != nil {
				return err
			}
			return tx.RateDialog(d, 27, helped)
		})
	}
	rate(500*time.Minute, "A", true)
	rate(501*time.Minute, "B", false)
	rate(502*time.Minute, "C", true) // the other portal's

	figures := func(from, to time.Duration) ServiceFigures {
		var f ServiceFigures
		err := l.s.View(ctx, func(tx *Tx) (err error) {
			f, err = tx.ServiceFigures(p.ID, l.t0.Add(from), l.t0.Add(to))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	m := time.Minute
	all := figures(-m, 24*time.Hour)
	want := ServiceFigures{
		// Resolves as recorded: A at 1h, 3h10m and 4h1m, B at 6h30m.
		Opened: 2, Resolved: 4, AutoClosed: 1,
		// 10, 10, 20, 30 minutes: the lower middle, and rank ⌈0.9·4⌉ = 4.
		FirstResponse: TimeSummary{Count: 4, Median: 10 * m, P90: 30 * m},
		// 10, 30, 30, 40 minutes.
		Reply: TimeSummary{Count: 4, Median: 30 * m, P90: 40 * m},
		// 30, 60, 70, 240 minutes.
		Resolution: TimeSummary{Count: 4, Median: 60 * m, P90: 240 * m},
		Ratings:    2, Helped: 1,
	}
	if all != want {
		t.Errorf("figures over everything\n%+v\nwant\n%+v", all, want)
	}
	// (0, 1h]: the opening at 0 is outside, the one at 1h inside; the resolution
	// ending at 1h counts, the first response that began at 1h and ended later does not.
	early := figures(0, 60*m)
	want = ServiceFigures{
		Opened: 1, Resolved: 1,
		FirstResponse: TimeSummary{Count: 1, Median: 10 * m, P90: 10 * m},
		Reply:         TimeSummary{Count: 2, Median: 10 * m, P90: 30 * m},
		Resolution:    TimeSummary{Count: 1, Median: 60 * m, P90: 60 * m},
	}
	if early != want {
		t.Errorf("figures over (0, 1h]\n%+v\nwant\n%+v", early, want)
	}
	if none := figures(24*time.Hour, 48*time.Hour); none != (ServiceFigures{}) {
		t.Errorf("figures of an empty window: %+v", none)
	}
}

func TestSummarizeNearestRank(t *testing.T) {
	s := func(n ...float64) []float64 { return n }
	for _, c := range []struct {
		in          []float64
		median, p90 time.Duration
	}{
		{s(7), 7 * time.Second, 7 * time.Second},
		{s(1, 2), 1 * time.Second, 2 * time.Second},
		{s(1, 2, 3), 2 * time.Second, 3 * time.Second},
		{s(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 5 * time.Second, 9 * time.Second},
		{s(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), 6 * time.Second, 10 * time.Second},
		{s(0.25), 250 * time.Millisecond, 250 * time.Millisecond},
	} {
		got := summarize(c.in)
		if got.Count != len(c.in) || got.Median != c.median || got.P90 != c.p90 {
			t.Errorf("summarize(%v) = %+v, want median %v p90 %v", c.in, got, c.median, c.p90)
		}
	}
	if got := summarize(nil); got != (TimeSummary{}) {
		t.Errorf("summarize(nil) = %+v", got)
	}
}

// TestServiceTimeBuckets: the histogram counts every interval of the kind, on every
// portal, cumulatively by bound, with their sum.
func TestServiceTimeBuckets(t *testing.T) {
	l := newLifeScript(t)
	ctx := context.Background()
	p, _ := l.s.EnsurePortal(ctx, "a", "")
	other, _ := l.s.EnsurePortal(ctx, "b", "")
	script(l, p.ID, other.ID)
	bounds := []float64{300, 600, 1800, 3600}
	for _, c := range []struct {
		kind    string
		buckets string
		count   uint64
		sum     float64
	}{
		// 5 (portal b), 10, 10, 20, 30 minutes.
		{TimeFirstResponse, "[1 3 5 5]", 5, 75 * 60},
		// 5 (portal b), 10, 30, 30, 40 minutes.
		{TimeReply, "[1 2 4 5]", 5, 115 * 60},
		// 30, 60, 70, 240 minutes.
		{TimeResolution, "[0 0 1 2]", 4, 400 * 60},
	} {
		buckets, count, sum, err := l.s.ServiceTimeBuckets(ctx, c.kind, bounds)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(buckets) != c.buckets || count != c.count || sum != c.sum {
			t.Errorf("%s: buckets %v count %d sum %v; want %s %d %v", c.kind, buckets, count, sum, c.buckets, c.count, c.sum)
		}
	}
}
