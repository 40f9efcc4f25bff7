package bot

import (
	"strings"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/storage"
	"supportbot/workhours"
)

// TestPageQueueShowsOwner: the sidebar's queue names each waiting dialog's owner, as
// /queue does.
func TestPageQueueShowsOwner(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "Where are my invoices?"))
	h.process(h.private(admin, "How do I add a user?"))
	chats := h.createChats()
	h.process(h.group(agent, chats[1], "", "In CRM → Invoices."))
	h.process(h.group(admin, chats[1], "", "Not there"))
	pg := h.pageOf(Viewer{UserID: agent}, "en")
	owners := map[int]string{}
	for _, w := range pg.Queue {
		owners[w.Number] = w.Owner
	}
	if owners[1] != "owner #50" || owners[2] != "no owner" {
		t.Fatalf("the page's owners %v", owners)
	}
}

// TestOutOfHoursOnThePage: a question asked on the sidebar page outside the working
// hours gets the out-of-hours answer in its dialog, as a typed one does.
func TestOutOfHoursOnThePage(t *testing.T) {
	// Open all day three days from now: closed now, whenever the test runs.
	day := [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}[(time.Now().UTC().Weekday()+3)%7]
	hours, err := workhours.Parse(day+" 00:00-24:00", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) { c.Hours = hours })
	h.process(h.private(agent, "help")) // the first event seeds the roles: a dialog needs agents
	h.page(func(tx *storage.Tx, p storage.Portal) error {
		_, err := h.bot.PageOpenNew(tx, p, Viewer{UserID: admin, Name: "Ann"}, "en", "Where are my invoices?", "")
		return err
	})
	told := 0
	for _, e := range h.sent() {
		if m, ok := act(t, e).(bitrix24.SendMessage); ok && strings.HasPrefix(m.Text, "Support is closed now") {
			told++
		}
	}
	if told != 1 {
		t.Fatalf("%d out-of-hours answers", told)
	}
}
