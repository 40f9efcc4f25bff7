package metrics

import (
	"context"
	"strings"
	"testing"

	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// TestTargetMisses: /metrics counts the misses the database records, on every portal,
// the same from a second registry (a restart, another replica).
func TestTargetMisses(t *testing.T) {
	store := storagetest.Open(t)
	ctx := context.Background()
	for i, domain := range []string{"a", "b"} {
		portal, err := store.EnsurePortal(ctx, domain, "")
		if err != nil {
			t.Fatal(err)
		}
		err = store.Update(ctx, func(tx *storage.Tx) error {
			d, err := tx.CreateDialog(storage.NewDialog{PortalID: portal.ID, ClientID: 27, Language: "en", Title: func(int) string { return "q" }})
			for range i + 1 {
				if err == nil {
					err = tx.RecordTargetMissed(d, 50)
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		m := New(nil)
		m.WatchTargetMisses(store)
		if text := scrape(m); !strings.Contains(text, "supportbot_response_target_misses_total 3\n") {
			t.Errorf("registry %d:\n%s", i+1, text)
		}
	}
}
