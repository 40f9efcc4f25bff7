package poller_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/delivery"
	"supportbot/outbox"
	"supportbot/poller"
	"supportbot/storage"
	"supportbot/testwait"
)

// BenchmarkFetchDrain: 1,000 messages queued at the fake portal (in 50 existing
// dialogs' chats and the client's main chat) are fetched in pages of 100 and handled,
// each page committed with its offset on a real SQLite file. Reports events/s.
func BenchmarkFetchDrain(b *testing.B) {
	for range b.N {
		b.StopTimer()
		store, portal, fake, client := setUp(b)
		for i := range 1000 {
			fake.Message(27, "27", "open new question "+strconv.Itoa(i))
		}
		p := &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Limit: 100,
			Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
		b.StartTimer()
		start := time.Now()
		for {
			more, err := p.PollOnce(b.Context(), portal.ID)
			if err != nil {
				b.Fatal(err)
			}
			if !more {
				break
			}
		}
		b.ReportMetric(1000/time.Since(start).Seconds(), "events/s")
	}
}

// BenchmarkMessageToReply: fetch mode as a new installation runs it — the real bucket
// (2 requests/s, 50 deep) at the fake portal and in the bot's limiter, the default
// poll interval, the poller and the dispatcher sharing one client. A client writes
// "help" at a random moment; the time from the event's queueing at the portal to the
// reply's arrival there is one sample. Idle: nothing else to send; busy: 200 replies
// to 200 other chats fall due just before each message. Reports p50 and p99 (of 12
// samples: the largest) against the goal, the poll interval + 1 s.
//
//	go test -run XXX -bench MessageToReply -benchtime 1x -count 3 ./poller/
func BenchmarkMessageToReply(b *testing.B) {
	for _, busy := range []bool{false, true} {
		name := "idle"
		if busy {
			name = "200-due"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				messageToReply(b, busy)
			}
		})
	}
}

func messageToReply(b *testing.B, busy bool) {
	store, portal, fake, _ := setUp(b)
	fake.Portal().SetRateLimit(2, 50)
	client := bitrix24.NewClient(fake.Portal().WebhookURL(), bitrix24.WithLimiter(bitrix24.NewLimiter(2, 50)))
	brain := newBot()
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	p := &poller.Poller{Store: store, Bot: brain, Log: quiet(), Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	d := delivery.New(store, delivery.Single(client), brain.Outbox(), quiet(), nil)
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx) })
	wg.Go(func() { d.Run(ctx, ctx) })
	defer wg.Wait()
	defer cancel()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 18))
	var samples []time.Duration
	for i := range 12 {
		time.Sleep(time.Duration(rng.Int64N(int64(poller.DefaultInterval)))) // a random phase of the poll
		if busy {
			err := store.Update(b.Context(), func(tx *storage.Tx) error {
				for c := range 200 {
					err := outbox.Put(tx, portal.ID, outbox.Entry{Lane: outbox.ClientLane(int64(1000 + c)),
						Action: bitrix24.SendMessage{To: strconv.Itoa(1000 + c), Text: "due " + strconv.Itoa(i)}})
					if err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		before := len(fake.Portal().Messages("27"))
		start := time.Now()
		fake.Message(27, "27", "help")
		testwait.Within(b, time.Minute, "the reply", func() bool { return len(fake.Portal().Messages("27")) > before })
		samples = append(samples, time.Since(start))
	}
	slices.Sort(samples)
	b.ReportMetric(samples[len(samples)/2].Seconds(), "s-p50")
	b.ReportMetric(samples[len(samples)-1].Seconds(), "s-p99")
	b.ReportMetric(samples[len(samples)-1].Seconds()/(poller.DefaultInterval+time.Second).Seconds(), "x-goal")
	b.ReportMetric(float64(fake.Portal().LimitRejections()), "QUERY_LIMIT_EXCEEDED")
}
