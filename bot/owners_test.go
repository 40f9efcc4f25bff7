package bot

import (
	"testing"
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
