package bot

import (
	"context"
	"strings"
	"testing"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// TestTitlesLoseHiddenCharacters: a title carrying bidirectional overrides or other
// format characters ("\u202egnp.exe\u202c" shows as "exe.png") is stored and sent
// without them, whether it comes with "rename", with the pencil (CHAT_TITLE) or is
// quoted; the joiners that emoji are written with stay.
func TestTitlesLoseHiddenCharacters(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "first"))
	chats := h.createChats()
	h.sent()
	title := func() string {
		var d storage.Dialog
		err := h.store.View(context.Background(), func(tx *storage.Tx) (err error) {
			d, err = tx.DialogByNumber(h.portal.ID, 1)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return d.Title
	}
	hidden := []string{"\u202e", "\u202c", "\u2066", "\u2069", "\u200e", "\u200f", "\u061c", "\u00ad", "\ufeff", "\u2060", "\U000e0001"}

	h.process(h.private(admin, "rename 1 \u202egnp.exe\u202c \u2066x\u2069\u200e\u00ad\ufeff"))
	sent := h.sent()
	if got := title(); got != "gnp.exe x" {
		t.Fatalf("stored title %q", got)
	}
	if kinds(sent) != "rename_chat,send_message" || act(t, sent[0]).(bitrix24.RenameChat).Title != "gnp.exe x" {
		t.Fatalf("rename queued %s %s", kinds(sent), sent[0].Action)
	}
	if !strings.Contains(text(t, sent[1]), "“gnp.exe x”") {
		t.Fatalf("reply %q", text(t, sent[1]))
	}
	h.store.Update(context.Background(), func(tx *storage.Tx) error {
		d, _ := tx.DialogByNumber(h.portal.ID, 1)
		return tx.TitleSent(d.ID)
	})

	// The pencil: the title arrives with the next event. A family emoji keeps its joiners.
	h.process(h.group(admin, chats[1], "\u202dBilling\u200f 👨\u200d👩\u200d👧", "hello"))
	if got := title(); got != "Billing 👨\u200d👩\u200d👧" {
		t.Fatalf("title from CHAT_TITLE %q", got)
	}

	// What is quoted from users is shown without them too.
	h.process(h.private(admin, "second \u202eevil\u202c question"))
	h.process(h.private(admin, "all chats"))
	for _, e := range h.sent() {
		var s string
		switch a := act(t, e).(type) {
		case bitrix24.SendMessage:
			s = a.Text
		case bitrix24.CreateChat:
			s = a.Title
		}
		for _, c := range hidden {
			if strings.Contains(s, c) {
				t.Fatalf("%s carries %U: %q", e.Kind, []rune(c)[0], s)
			}
		}
	}
}
