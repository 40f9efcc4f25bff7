package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// TestServiceHistograms: the histograms scraped from a real database count exactly
// the intervals of a scripted history, computed here by hand, in the right buckets
// and with the right sums; a second metrics registry over the same database (a
// restart, another replica) scrapes the same.
func TestServiceHistograms(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := t0
	store := storagetest.Open(t, storage.WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now }))
	ctx := context.Background()
	portal, err := store.EnsurePortal(ctx, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	var d storage.Dialog
	at := func(offset time.Duration, kinds ...string) {
		t.Helper()
		mu.Lock()
		now = t0.Add(offset)
		mu.Unlock()
		err := store.Update(ctx, func(tx *storage.Tx) error {
			for _, k := range kinds {
				if k == storage.LifeOpened {
					var err error
					if d, err = tx.CreateDialog(storage.NewDialog{PortalID: portal.ID, ClientID: 27, Language: "en",
						Title: func(int) string { return "q" }}); err != nil {
						return err
					}
				}
				if err := tx.AddDialogEvent(d, k, 0); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	m, s := time.Minute, time.Second
	// Dialog 1: the question answered in 45 s; a wait of 20 min; resolved after 2 h.
	at(0, storage.LifeOpened, storage.LifeClientMessage)
	at(45*s, storage.LifeAgentAnswer)
	at(10*m, storage.LifeClientMessage)
	at(30*m, storage.LifeAgentAnswer)
	at(2*time.Hour, storage.LifeResolved)
	// Dialog 2: no question; answered after 3 h; auto-closed after 4 days.
	at(3*time.Hour, storage.LifeOpened)
	at(6*time.Hour, storage.LifeAgentAnswer)
	at(3*time.Hour+4*24*time.Hour, storage.LifeAutoClosed)

	want := []string{
		// First responses: 45 s and 3 h.
		`supportbot_first_response_seconds_bucket{le="60"} 1`,
		`supportbot_first_response_seconds_bucket{le="7200"} 1`,
		`supportbot_first_response_seconds_bucket{le="14400"} 2`,
		`supportbot_first_response_seconds_bucket{le="+Inf"} 2`,
		`supportbot_first_response_seconds_sum 10845`,
		`supportbot_first_response_seconds_count 2`,
		// Replies: 45 s and 20 min.
		`supportbot_reply_seconds_bucket{le="60"} 1`,
		`supportbot_reply_seconds_bucket{le="900"} 1`,
		`supportbot_reply_seconds_bucket{le="1800"} 2`,
		`supportbot_reply_seconds_sum 1245`,
		`supportbot_reply_seconds_count 2`,
		// Resolutions: 2 h and 4 days.
		`supportbot_resolution_seconds_bucket{le="3600"} 0`,
		`supportbot_resolution_seconds_bucket{le="7200"} 1`,
		`supportbot_resolution_seconds_bucket{le="259200"} 1`,
		`supportbot_resolution_seconds_bucket{le="604800"} 2`,
		`supportbot_resolution_seconds_sum 352800`,
		`supportbot_resolution_seconds_count 2`,
	}
	for i := range 2 {
		metrics := New(nil)
		metrics.WatchServiceTimes(store)
		text := scrape(metrics)
		for _, line := range want {
			if !strings.Contains(text, line+"\n") {
				t.Errorf("registry %d: missing %s", i+1, line)
			}
		}
	}
}

func scrape(m *Metrics) string {
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}
