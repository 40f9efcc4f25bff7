package bot

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *testClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func clockedHarness(t *testing.T) (*harness, *testClock) {
	t.Helper()
	clock := &testClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	store := storagetest.Open(t, storage.WithClock(clock.Now))
	portal, err := store.EnsurePortal(context.Background(), "test", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Agents: []int64{agent}, Admins: []int64{admin}, MaxActive: 5, Language: "en", RatingWindow: 7 * 24 * time.Hour}
	return &harness{t: t, store: store, bot: New(cfg, nil), portal: portal, nextID: 1000}, clock
}

// rateButtons closes the dialog in chat and returns the params of its 👍 button,
// or "" if the client was asked for no rating.
func (h *harness) closeAndRateButton(chat int64, command string) string {
	h.t.Helper()
	h.sent()
	h.process(h.group(agent, chat, "", command))
	for _, e := range h.sent() {
		if a, ok := act(h.t, e).(bitrix24.SendMessage); ok && a.To == "27" && a.Keyboard != nil {
			for _, b := range a.Keyboard.Buttons {
				if b.Command == cmdRate && strings.Contains(b.CommandParams, " up") {
					return b.CommandParams
				}
			}
		}
	}
	return ""
}

func (h *harness) ratings(number int) []storage.Rating {
	h.t.Helper()
	var list []storage.Rating
	err := h.store.View(context.Background(), func(tx *storage.Tx) error {
		d, err := tx.DialogByNumber(h.portal.ID, number)
		if err != nil {
			return err
		}
		list, err = tx.Ratings(d.ID)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return list
}

// TestRatingRespectsTheClient: a rating is asked once per resolve and recorded
// within the window; a press after the window, or on the buttons of an earlier
// resolve, is thanked but not recorded; "/close norate" asks for none.
func TestRatingRespectsTheClient(t *testing.T) {
	h, clock := clockedHarness(t)
	h.process(h.private(admin, "printing from CRM"))
	chat := h.createChats()[1]

	first := h.closeAndRateButton(chat, "/close")
	if first == "" {
		t.Fatal("no rating asked on /close")
	}
	// Reopened and resolved again: the first resolve's buttons no longer rate.
	clock.advance(time.Hour)
	h.process(h.group(agent, chat, "", "/reopen"))
	clock.advance(time.Hour)
	second := h.closeAndRateButton(chat, "/close")
	if second == "" || second == first {
		t.Fatalf("second resolve's button %q (first %q)", second, first)
	}
	h.process(h.press(admin, "27", 0, cmdRate, first))
	if got := h.ratings(1); len(got) != 0 {
		t.Fatalf("a press on an earlier resolve's buttons was recorded: %+v", got)
	}
	if thanks := h.sent(); len(thanks) != 1 || !strings.Contains(text(t, thanks[0]), "Thank") {
		t.Fatalf("the late press was not thanked: %s", kinds(thanks))
	}
	h.process(h.press(admin, "27", 0, cmdRate, second))
	if got := h.ratings(1); len(got) != 1 || !got[0].Helped {
		t.Fatalf("ratings %+v", got)
	}

	// After the window, thanked and not recorded.
	h.process(h.group(agent, chat, "", "/reopen"))
	third := h.closeAndRateButton(chat, "/close")
	clock.advance(7*24*time.Hour + time.Minute)
	h.sent()
	h.process(h.press(admin, "27", 0, cmdRate, strings.Replace(third, " up", " down", 1)))
	if got := h.ratings(1); len(got) != 1 {
		t.Fatalf("a press after the window was recorded: %+v", got)
	}
	if thanks := h.sent(); len(thanks) != 1 || !strings.Contains(text(t, thanks[0]), "Thank") {
		t.Fatalf("the press after the window was not thanked: %s", kinds(thanks))
	}

	// /close norate: the client is told, with no buttons.
	h.process(h.group(agent, chat, "", "/reopen"))
	if got := h.closeAndRateButton(chat, "/close norate"); got != "" {
		t.Fatalf("norate still asked: %q", got)
	}
}
