package delivery

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bot"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// The delivery benchmarks: whole drains through the fake portal enforcing the real
// bucket (2 requests/s, 50 deep), timed from the first request to the last reply.
//
//	go test -run XXX -bench . -benchtime 1x ./delivery/

// queue puts replies due at once into the outbox: for each lane, n replies.
func queue(b testing.TB, store *storage.Store, portalID int64, lanes []string, n int) {
	b.Helper()
	err := store.Update(context.Background(), func(tx *storage.Tx) error {
		for i := range n {
			for _, lane := range lanes {
				kind, data, err := bitrix24.EncodeAction(bitrix24.SendMessage{DialogID: lane, Text: fmt.Sprintf("reply %d", i)})
				if err != nil {
					return err
				}
				if _, err := tx.Enqueue(storage.OutboxEntry{PortalID: portalID, Lane: lane, Kind: kind, Action: data}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

func lanes(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(from + i)
	}
	return out
}

// drainUntil runs the dispatcher until done holds, and returns how long it took.
func drainUntil(b *testing.B, d *Dispatcher, limit time.Duration, done func() bool) time.Duration {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hard, abandon := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	start := time.Now()
	go func() { d.Run(ctx, hard); close(stopped) }()
	for !done() {
		if time.Since(start) > limit {
			b.Fatalf("not drained after %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	abandon() // a hung call is not waited for
	<-stopped
	return elapsed
}

// inOrder fails unless each chat's replies arrived in order, each once.
func inOrder(b *testing.B, msgs []b24test.Message) {
	b.Helper()
	next := map[string]int{}
	for _, m := range msgs {
		if want := fmt.Sprintf("reply %d", next[m.DialogID]); m.Text != want {
			b.Fatalf("chat %s: %q where %q was due", m.DialogID, m.Text, want)
		}
		next[m.DialogID]++
	}
}

func settle() Settle { return bot.New(bot.Config{}, nil).Settle }

// BenchmarkDrain: 5,000 replies due for one portal at once (1,000 chats). The least
// it can take is 100 requests — 50 at once, the other 50 at 2/s — so 25 s.
func BenchmarkDrain(b *testing.B) {
	for b.Loop() {
		store := storagetest.Open(b)
		portal, _ := store.EnsurePortal(context.Background(), "drain", "")
		fake := b24test.New(b)
		fake.SetRateLimit(2, 50)
		queue(b, store, portal.ID, lanes(1, 1000), 5)
		client := bitrix24.NewClient(fake.WebhookURL(), bitrix24.WithLimiter(bitrix24.NewLimiter(2, 50)))
		d := New(store, Single(client), settle(), nil, nil)
		elapsed := drainUntil(b, d, 5*time.Minute, func() bool { return len(fake.AllMessages()) == 5000 })
		inOrder(b, fake.AllMessages())
		b.ReportMetric(elapsed.Seconds(), "s/drain")
		b.ReportMetric(elapsed.Seconds()/25, "x-theoretical-min")
		b.ReportMetric(float64(fake.Requests()), "requests")
		b.ReportMetric(float64(fake.LimitRejections()), "QUERY_LIMIT_EXCEEDED")
	}
}

// BenchmarkHotChat: 200 replies due in one chat. They go 50 to a request, in order:
// the least is 4 requests, all within the bucket's burst.
func BenchmarkHotChat(b *testing.B) {
	for b.Loop() {
		store := storagetest.Open(b)
		portal, _ := store.EnsurePortal(context.Background(), "hot", "")
		fake := b24test.New(b)
		fake.SetRateLimit(2, 50)
		queue(b, store, portal.ID, []string{"27"}, 200)
		client := bitrix24.NewClient(fake.WebhookURL(), bitrix24.WithLimiter(bitrix24.NewLimiter(2, 50)))
		d := New(store, Single(client), settle(), nil, nil)
		elapsed := drainUntil(b, d, 5*time.Minute, func() bool { return len(fake.AllMessages()) == 200 })
		inOrder(b, fake.AllMessages())
		b.ReportMetric(elapsed.Seconds(), "s/drain")
		b.ReportMetric(float64(fake.Requests()), "requests")
		b.ReportMetric(float64(fake.Requests())/4, "x-min-requests")
		b.ReportMetric(float64(fake.LimitRejections()), "QUERY_LIMIT_EXCEEDED")
	}
}

// BenchmarkHungCall: one chat's call hangs until the client gives up (5 s here, 60 s
// against a real portal); meanwhile 100 replies to 100 other chats of the same
// portal are delivered. Their minimum is the same drain with nothing hanging,
// measured first in the same run.
func BenchmarkHungCall(b *testing.B) {
	run := func(hang bool) time.Duration {
		store := storagetest.Open(b)
		portal, _ := store.EnsurePortal(context.Background(), "hung", "")
		fake := b24test.New(b)
		fake.SetRateLimit(2, 50)
		client := bitrix24.NewClient(fake.WebhookURL(), bitrix24.WithLimiter(bitrix24.NewLimiter(2, 50)),
			bitrix24.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
		d := New(store, Single(client), settle(), nil, nil)
		if hang {
			fake.HangChat("999")
			queue(b, store, portal.ID, []string{"999"}, 1)
		}
		ctx, cancel := context.WithCancel(context.Background())
		hard, abandon := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { d.Run(ctx, hard); close(stopped) }()
		defer func() { cancel(); abandon(); <-stopped }()
		if hang {
			fake.WaitCalls(b, "imbot.message.add", 1, 10*time.Second) // the hung call is under way
		}
		start := time.Now()
		queue(b, store, portal.ID, lanes(1, 100), 1)
		for len(fake.AllMessages()) < 100 {
			if time.Since(start) > time.Minute {
				b.Fatal("not drained after a minute")
			}
			time.Sleep(time.Millisecond)
		}
		return time.Since(start)
	}
	for b.Loop() {
		minimum, hung := run(false), run(true)
		b.ReportMetric(minimum.Seconds(), "s/without-hang")
		b.ReportMetric(hung.Seconds(), "s/with-hang")
		b.ReportMetric(hung.Seconds()/minimum.Seconds(), "x-min")
	}
}

// BenchmarkManyPortals: 1,000 portals with 20 replies each (20 chats), one portal
// hanging and one answering 503 to everything. The healthy 998 drain as fast as they
// do with no broken portal beside them, measured first in the same run; no portal
// gets more than its bucket allows.
func BenchmarkManyPortals(b *testing.B) {
	const portals, perPortal = 1000, 20
	run := func(broken bool) (time.Duration, int) {
		store := storagetest.Open(b)
		fakes := map[int64]*b24test.Portal{}
		clients := map[int64]Caller{}
		var healthy []*b24test.Portal
		for i := range portals {
			p, _ := store.EnsurePortal(context.Background(), fmt.Sprint("portal-", i), "")
			fake := b24test.New(b)
			fake.SetRateLimit(2, 50)
			switch {
			case broken && i == 0:
				for _, l := range lanes(1, perPortal) {
					fake.HangChat(l)
				}
			case broken && i == 1:
				fake.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultQueryLimit}})
			default:
				healthy = append(healthy, fake)
			}
			fakes[p.ID] = fake
			clients[p.ID] = bitrix24.NewClient(fake.WebhookURL(), bitrix24.WithLimiter(bitrix24.NewLimiter(2, 50)),
				bitrix24.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
			queue(b, store, p.ID, lanes(1, perPortal), 1)
		}
		d := New(store, func(id int64) (Caller, error) { return clients[id], nil }, settle(), nil, nil)
		elapsed := drainUntil(b, d, 5*time.Minute, func() bool {
			for _, f := range healthy {
				if len(f.AllMessages()) < perPortal {
					return false
				}
			}
			return true
		})
		rejections := 0
		for _, f := range healthy {
			rejections += f.LimitRejections()
		}
		return elapsed, rejections
	}
	for b.Loop() {
		minimum, _ := run(false)
		withBroken, rejections := run(true)
		b.ReportMetric(minimum.Seconds(), "s/all-healthy")
		b.ReportMetric(withBroken.Seconds(), "s/with-broken")
		b.ReportMetric(withBroken.Seconds()/minimum.Seconds(), "x-min")
		b.ReportMetric(float64(rejections), "QUERY_LIMIT_EXCEEDED")
	}
}
