package poller_test

import (
	"strconv"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/poller"
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
