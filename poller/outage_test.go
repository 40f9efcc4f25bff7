package poller_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/poller"
	"supportbot/storage/storagetest"
	"supportbot/testwait"
)

// longestWait is a log handler that keeps the longest retry_in the poller announced.
type longestWait struct{ ns atomic.Int64 }

func (l *longestWait) Enabled(context.Context, slog.Level) bool { return true }
func (l *longestWait) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *longestWait) WithGroup(string) slog.Handler            { return l }
func (l *longestWait) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "retry_in" && int64(a.Value.Duration()) > l.ns.Load() {
			l.ns.Store(int64(a.Value.Duration()))
		}
		return true
	})
	return nil
}

// TestBackOnTheFirstAnswer: the database (a throwaway cluster of the test's own) is
// away long enough for the poller's backoff to reach 10 s; once it is back, the
// question waiting at the portal is taken in at once, not after the backoff.
func TestBackOnTheFirstAnswer(t *testing.T) {
	cluster := storagetest.NewCluster(t)
	store, _, fake, client := setUpOn(t, storagetest.OpenAt(t, cluster.URL))
	waits := &longestWait{}
	obs := &observed{}
	p := &poller.Poller{Store: store, Bot: newBot(), Log: slog.New(waits), Obs: obs, Interval: 40 * time.Millisecond,
		MaxBackoff: time.Minute, Rescan: 20 * time.Millisecond, Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	run(t, p)
	fake.Message(27, "27", "open new")
	testwait.For(t, "the first question processed", func() bool { return obs.count("processed") == 1 })

	cluster.Stop(t)
	fake.Message(27, "27", "open new")
	testwait.For(t, "the poller's backoff to reach 10 s", func() bool { return time.Duration(waits.ns.Load()) >= 10*time.Second })
	cluster.Start(t)
	testwait.Within(t, 5*time.Second, "the second question processed", func() bool { return obs.count("processed") == 2 }) // 5 s, against the 10 s backoff
}
