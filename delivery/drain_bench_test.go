package delivery

import (
	"context"
	"fmt"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bot"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// BenchmarkDrain: 5,000 replies due for one portal at once, through the fake portal
// with the real bucket (2 requests/s, 50 deep). With 50-call batches the least it can
// take is 100 requests — 50 at once, the other 50 at 2/s — so 25 s.
//
//	go test -run XXX -bench Drain -benchtime 1x ./delivery/
func BenchmarkDrain(b *testing.B) {
	const replies, chats = 5000, 1000
	for b.Loop() {
		store := storagetest.Open(b)
		portal, _ := store.EnsurePortal(context.Background(), "drain", "")
		fake := b24test.New(b)
		fake.SetRateLimit(2, 50)
		err := store.Update(context.Background(), func(tx *storage.Tx) error {
			for i := 0; i < replies; i++ {
				chat := fmt.Sprint(1 + i%chats)
				kind, data, err := bitrix24.EncodeAction(bitrix24.SendMessage{DialogID: chat, Text: fmt.Sprintf("reply %d", i)})
				if err != nil {
					return err
				}
				if _, err := tx.Enqueue(storage.OutboxEntry{PortalID: portal.ID, Lane: chat, Kind: kind, Action: data}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		client := bitrix24.NewClient(fake.WebhookURL(), bitrix24.WithLimiter(bitrix24.NewLimiter(2, 50)))
		d := New(store, Single(client), bot.New(bot.Config{}, nil).Settle, nil, nil)
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.Run(ctx, context.Background()); close(done) }()
		for {
			pending, _, err := store.OutboxStats(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if pending == 0 {
				break
			}
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("%d replies still pending after 5 minutes", pending)
			}
			time.Sleep(20 * time.Millisecond)
		}
		elapsed := time.Since(start)
		cancel()
		<-done
		if n := len(fake.AllMessages()); n != replies {
			b.Fatalf("%d messages reached the portal, want %d", n, replies)
		}
		const minimum = 25 * time.Second
		b.ReportMetric(elapsed.Seconds(), "s/drain")
		b.ReportMetric(elapsed.Seconds()/minimum.Seconds(), "x-theoretical-min")
		b.ReportMetric(float64(fake.Requests()), "requests")
		b.ReportMetric(float64(fake.LimitRejections()), "QUERY_LIMIT_EXCEEDED")
	}
}
