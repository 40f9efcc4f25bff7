package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bitrix24/b24test/botv2"
	"supportbot/bot"
	"supportbot/outbox"
	"supportbot/poller"
	"supportbot/storage"
	"supportbot/storage/storagetest"
	"supportbot/testwait"
)

// The delivery benchmarks: whole drains through the fake portal enforcing the real
// bucket (2 requests/s, 50 deep), timed from the first request to the last reply,
// for each API a bot may use: v1, imbot.v2 in batch, and imbot.v2 one call a request
// (a portal that refuses v2 inside batch). A v2 bot fetches its events meanwhile, at
// the default interval, through the same client: its polls share the budget.
//
//	go test -run XXX -bench . -benchtime 1x -count 3 ./delivery/
//
// The bot's limiter starts as if the bucket were full (it cannot know it is not), so
// the least time is the least requests at 2/s.

// api is a chat-bot API a benchmark runs on.
type api struct {
	name         string
	v2, refusing bool
}

var apis = []api{{name: "v1"}, {name: "v2-batch", v2: true}, {name: "v2-single", v2: true, refusing: true}}

// onAPI makes the portal's bot one of a's: for v2 a bot registered on the fake (which
// refuses v2 inside batch if a says so), recorded for the portal as `register` does.
func onAPI(b testing.TB, a api, store *storage.Store, portal storage.Portal, fake *b24test.Portal) {
	b.Helper()
	if !a.v2 {
		return
	}
	f := botv2.Attach(fake)
	if a.refusing {
		f.SetBatch(botv2.BatchNotAllowed)
	}
	const token = "tok-0123456789"
	id, err := bitrix24.Perform(context.Background(), bitrix24.NewClient(fake.WebhookURL()), bitrix24.V2,
		bitrix24.RegisterBot{Profile: bitrix24.BotProfile{Code: "support", Name: "Support", EventMode: "fetch"}},
		bitrix24.Context{BotToken: token})
	if err == nil {
		err = store.Update(context.Background(), func(tx *storage.Tx) error {
			return tx.SetBotV2(portal.ID, id, token, storage.EventsFetch)
		})
	}
	if err != nil {
		b.Fatal(err)
	}
}

// polling runs the poller of a v2 bot through client until the returned stop.
func polling(a api, store *storage.Store, client Caller) (stop func()) {
	if !a.v2 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p := &poller.Poller{Store: store, Bot: bot.New(bot.Config{}, nil), Log: slog.New(slog.DiscardHandler),
		Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	go func() { p.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// requests counts a fake portal's requests from a mark on: the polls, and the rest.
type requests struct {
	fake         *b24test.Portal
	total, polls int
}

func mark(fake *b24test.Portal) requests {
	return requests{fake: fake, total: fake.Requests(), polls: len(fake.CallsTo("imbot.v2.Event.get"))}
}

func (r requests) since() (sends, polls int) {
	polls = len(r.fake.CallsTo("imbot.v2.Event.get")) - r.polls
	return r.fake.Requests() - r.total - polls, polls
}

// leastRequests is the fewest requests that deliver n replies in lanes chats on a.
func leastRequests(a api, n, lanes int) int {
	if a.refusing {
		return n
	}
	perLane := (n/lanes + bitrix24.MaxBatch - 1) / bitrix24.MaxBatch
	return max((n+bitrix24.MaxBatch-1)/bitrix24.MaxBatch, perLane)
}

// queue puts replies due at once into the outbox: for each lane, n replies.
func queue(b testing.TB, store *storage.Store, portalID int64, lanes []string, n int) {
	b.Helper()
	err := store.Update(context.Background(), func(tx *storage.Tx) error {
		for i := range n {
			for _, lane := range lanes {
				err := outbox.Put(tx, portalID, outbox.Entry{Lane: outbox.LaneOf(lane),
					Action: bitrix24.SendMessage{To: lane, Text: fmt.Sprintf("reply %d", i)}})
				if err != nil {
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
	testwait.Within(b, limit, "the drain", done)
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

func settle() *outbox.Handlers { return bot.New(bot.Config{}, nil).Outbox() }

// BenchmarkDrain: 5,000 replies due for one portal at once (1,000 chats). The least
// it can take is 100 requests in batch (5,000 alone), at 2/s once the bucket the bot
// assumes full has room: 50 s, or 2,500 s alone, plus the polls of a v2 bot. One call
// a request drains 500 (a tenth) to keep the run under ten minutes.
func BenchmarkDrain(b *testing.B) {
	for _, a := range apis {
		b.Run(a.name, func(b *testing.B) {
			n := 5000
			if a.refusing {
				n = 500
			}
			for b.Loop() {
				store := storagetest.Open(b)
				portal, _ := store.EnsurePortal(context.Background(), "drain", "")
				fake := b24test.New(b)
				fake.SetRateLimit(2, 50)
				onAPI(b, a, store, portal, fake)
				queue(b, store, portal.ID, lanes(1, n/5), 5)
				client := bitrix24.NewClient(fake.WebhookURL(), bitrix24.WithLimiter(bitrix24.NewLimiter(2, 50)))
				d := New(store, Single(client), settle(), nil, nil)
				at := mark(fake)
				stop := polling(a, store, client)
				elapsed := drainUntil(b, d, 15*time.Minute, func() bool { return len(fake.AllMessages()) == n })
				stop()
				inOrder(b, fake.AllMessages())
				sends, polls := at.since()
				least := float64(leastRequests(a, n, n/5)+polls) / 2
				b.ReportMetric(elapsed.Seconds(), "s/drain")
				b.ReportMetric(elapsed.Seconds()/least, "x-min")
				b.ReportMetric(float64(sends), "requests")
				b.ReportMetric(float64(polls), "polls")
				b.ReportMetric(float64(fake.LimitRejections()), "QUERY_LIMIT_EXCEEDED")
			}
		})
	}
}

// BenchmarkHotChat: 200 replies due in one chat. They go 50 to a request, in order:
// the least is 4 requests (200 alone).
func BenchmarkHotChat(b *testing.B) {
	for _, a := range apis {
		b.Run(a.name, func(b *testing.B) {
			for b.Loop() {
				store := storagetest.Open(b)
				portal, _ := store.EnsurePortal(context.Background(), "hot", "")
				fake := b24test.New(b)
				fake.SetRateLimit(2, 50)
				onAPI(b, a, store, portal, fake)
				queue(b, store, portal.ID, []string{"27"}, 200)
				client := bitrix24.NewClient(fake.WebhookURL(), bitrix24.WithLimiter(bitrix24.NewLimiter(2, 50)))
				d := New(store, Single(client), settle(), nil, nil)
				at := mark(fake)
				stop := polling(a, store, client)
				elapsed := drainUntil(b, d, 5*time.Minute, func() bool { return len(fake.AllMessages()) == 200 })
				stop()
				inOrder(b, fake.AllMessages())
				sends, polls := at.since()
				b.ReportMetric(elapsed.Seconds(), "s/drain")
				b.ReportMetric(float64(sends), "requests")
				b.ReportMetric(float64(sends)/float64(leastRequests(a, 200, 1)), "x-min-requests")
				b.ReportMetric(float64(polls), "polls")
				b.ReportMetric(float64(fake.LimitRejections()), "QUERY_LIMIT_EXCEEDED")
			}
		})
	}
}

// BenchmarkHungCall: one chat's call hangs until the client gives up (5 s here, 60 s
// against a real portal); meanwhile 100 replies to 100 other chats of the same
// portal are delivered. Their minimum is the same drain with nothing hanging,
// measured first in the same run.
func BenchmarkHungCall(b *testing.B) {
	for _, a := range apis {
		b.Run(a.name, func(b *testing.B) { hungCall(b, a) })
	}
}

func hungCall(b *testing.B, a api) {
	run := func(hang bool) time.Duration {
		store := storagetest.Open(b)
		portal, _ := store.EnsurePortal(context.Background(), "hung", "")
		fake := b24test.New(b)
		fake.SetRateLimit(2, 50)
		onAPI(b, a, store, portal, fake)
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
		stop := polling(a, store, client)
		defer stop()
		if hang {
			method := "imbot.message.add"
			if a.v2 {
				method = "imbot.v2.Chat.Message.send"
			}
			fake.WaitCalls(b, method, 1, 10*time.Second) // the hung call is under way
		}
		start := time.Now()
		queue(b, store, portal.ID, lanes(1, 100), 1)
		testwait.Within(b, 5*time.Minute, "100 replies", func() bool { return len(fake.AllMessages()) >= 100 })
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
	for _, a := range apis {
		b.Run(a.name, func(b *testing.B) { manyPortals(b, a) })
	}
}

// manyPortals: its v2 bots do not poll (a thousand pollers would measure the poller).
func manyPortals(b *testing.B, a api) {
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
			onAPI(b, a, store, p, fake) // before the faults, which would refuse the registration
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

// BenchmarkBesideSlowPortals: 1,000 portals that take one call a request (imbot.v2
// refused inside batch) and whose buckets have room for one every 5 s (as when other
// applications spend them: QUERY_LIMIT_EXCEEDED fills the limiter), 20 replies each;
// beside them one portal with room, whose one reply is due at the same moment. The
// slow portals' requests wait for their buckets; the other's reply should not wait
// for them: its latency, from the dispatcher's start to the reply at the portal.
//
//	go test -run XXX -bench BesideSlowPortals -benchtime 1x -count 3 ./delivery/
func BenchmarkBesideSlowPortals(b *testing.B) {
	const slow, perPortal = 1000, 20
	for b.Loop() {
		store := storagetest.Open(b)
		clients := map[int64]Caller{}
		for i := range slow {
			p, _ := store.EnsurePortal(context.Background(), fmt.Sprint("slow-", i), "")
			fake := b24test.New(b)
			fake.SetRateLimit(2, 2)
			onAPI(b, apis[2], store, p, fake)
			clients[p.ID] = bitrix24.NewClient(fake.WebhookURL(), bitrix24.WithLimiter(bitrix24.NewLimiter(0.2, 2)))
			queue(b, store, p.ID, lanes(1, perPortal), 1)
		}
		p, _ := store.EnsurePortal(context.Background(), "roomy", "")
		roomy := b24test.New(b)
		roomy.SetRateLimit(50, 50)
		clients[p.ID] = bitrix24.NewClient(roomy.WebhookURL(), bitrix24.WithLimiter(bitrix24.NewShare(50, 50)))
		queue(b, store, p.ID, lanes(1, 1), 1)
		d := New(store, func(id int64) (Caller, error) { return clients[id], nil }, settle(), nil, nil)
		latency := drainUntil(b, d, 5*time.Minute, func() bool { return len(roomy.AllMessages()) == 1 })
		b.ReportMetric(latency.Seconds(), "s/roomy-reply")
	}
}
