package outbox_test

import (
	"context"
	"errors"
	"testing"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// TestLanes: a lane comes back from its row as it was, an address is never taken for
// a lane, and what is not a lane is refused.
func TestLanes(t *testing.T) {
	for _, l := range []outbox.Lane{outbox.SetupLane, outbox.DialogLane(12), outbox.ClientLane(27), outbox.GroupLane(5)} {
		back, err := outbox.ParseLane(l.String())
		if err != nil || back != l {
			t.Errorf("%s came back as %v (%v)", l, back, err)
		}
	}
	if outbox.DialogLane(27) == outbox.ClientLane(27) || outbox.ClientLane(5) == outbox.GroupLane(5) {
		t.Error("lanes of different kinds with one ID are the same lane")
	}
	if outbox.LaneOf("27") != outbox.ClientLane(27) || outbox.LaneOf("chat5") != outbox.GroupLane(5) {
		t.Error("the lane of an address")
	}
	for _, bad := range []string{"", "27", "chat5", "dialog:", "dialog:x", "client:1:2", "other:3"} {
		if _, err := outbox.ParseLane(bad); err == nil {
			t.Errorf("%q read as a lane", bad)
		}
	}
}

type (
	chatOf   int64
	titleSet int64
)

func (d chatOf) Effect() (string, int64)   { return "chat_of", int64(d) }
func (d titleSet) Effect() (string, int64) { return "title_set", int64(d) }

// TestEntryRoundTrip: an entry put into the outbox is read back for sending with its
// lane and action; one that waits for a dialog's chat names the chat once it exists;
// and its ending reaches the handler of its effect, typed, with what it refers to.
func TestEntryRoundTrip(t *testing.T) {
	ctx := context.Background()
	store := storagetest.Open(t)
	portal, err := store.EnsurePortal(ctx, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	h := outbox.NewHandlers()
	var settled []string
	outbox.On(h, func(tx *storage.Tx, d chatOf, r outbox.Result) error {
		if r.Failed {
			return tx.MarkDialogChatFailed(int64(d))
		}
		settled = append(settled, "chat_of")
		return tx.SetDialogChat(int64(d), r.ID)
	})
	outbox.On(h, func(tx *storage.Tx, d titleSet, r outbox.Result) error {
		if rename, ok := r.Action.(bitrix24.RenameChat); !ok || rename.Chat != "chat4001" || r.Lane != outbox.DialogLane(int64(d)) {
			t.Errorf("the handler got %#v in %s", r.Action, r.Lane)
		}
		settled = append(settled, "title_set")
		return nil
	})
	var dialog storage.Dialog
	err = store.Update(ctx, func(tx *storage.Tx) error {
		if err := tx.SetBotID(portal.ID, 7); err != nil {
			return err
		}
		if dialog, err = tx.CreateDialog(storage.NewDialog{PortalID: portal.ID, ClientID: 27, Language: "en", Title: func(int) string { return "T" }}); err != nil {
			return err
		}
		lane := outbox.DialogLane(dialog.ID)
		for _, e := range []outbox.Entry{
			{Lane: lane, Action: bitrix24.CreateChat{Title: "T", Users: []int64{27}}, Effect: chatOf(dialog.ID)},
			{Lane: lane, Action: bitrix24.RenameChat{Chat: bitrix24.AwaitedChat, Title: "New"}, Awaits: dialog.ID, Effect: titleSet(dialog.ID)},
			{Lane: outbox.ClientLane(27), Action: bitrix24.SendMessage{To: "27", Text: "see " + bitrix24.AwaitedChatLink("T")}, Awaits: dialog.ID},
		} {
			if err := outbox.Put(tx, portal.ID, e); err != nil {
				return err
			}
		}
		if err := outbox.Put(tx, portal.ID, outbox.Entry{Lane: lane, Action: bitrix24.CreateChat{}, Awaits: dialog.ID}); err == nil {
			t.Error("an action that cannot name a chat was put to wait for one")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	due := read(t, store, h, portal.ID)
	if len(due) != 1 || due[0].Lane != outbox.DialogLane(dialog.ID) || due[0].Action.Kind() != bitrix24.KindCreateChat {
		t.Fatalf("due before the chat exists: %+v", due)
	}
	settle(t, store, h, due[0], 4001)

	due = read(t, store, h, portal.ID)
	if len(due) != 2 {
		t.Fatalf("%d due once the chat exists, want the rename and the link", len(due))
	}
	if msg := due[1].Action.(bitrix24.SendMessage); msg.Text != "see [chat=4001]T[/chat]" || due[1].Lane != outbox.ClientLane(27) {
		t.Errorf("the link waited for the chat and names %q in %s", msg.Text, due[1].Lane)
	}
	settle(t, store, h, due[0], 0)
	if len(settled) != 2 || settled[0] != "chat_of" || settled[1] != "title_set" {
		t.Errorf("handlers called: %v", settled)
	}
}

// TestUnreadableEntries: a damaged row is read as unreadable, to be given up, not
// sent; a well-formed one naming a lane, an action, an effect or an answer this build
// does not know is a newer release's (ErrNewer), to be left for a replica that knows
// it.
func TestUnreadableEntries(t *testing.T) {
	h := outbox.NewHandlers()
	outbox.On(h, func(*storage.Tx, chatOf, outbox.Result) error { return nil })
	kind, data, _ := bitrix24.EncodeAction(bitrix24.SendMessage{To: "27", Text: "x"})
	good := storage.OutboxRow{Lane: "client:27", Kind: kind, Action: data}
	if s := h.Read(good); s.Err != nil || s.Action == nil {
		t.Fatalf("a good row: %v", s.Err)
	}
	for name, c := range map[string]struct {
		change func(*storage.OutboxRow)
		want   error
	}{
		"lane":    {func(r *storage.OutboxRow) { r.Lane = "27" }, outbox.ErrUnreadable},
		"lane id": {func(r *storage.OutboxRow) { r.Lane = "dialog:x" }, outbox.ErrUnreadable},
		"json":    {func(r *storage.OutboxRow) { r.Action = []byte("{") }, outbox.ErrUnreadable},
		"answer":  {func(r *storage.OutboxRow) { r.Answer = `{"command":"queue"}` }, outbox.ErrUnreadable}, // no writer registered
		"awaits": {func(r *storage.OutboxRow) {
			r.Kind, r.Action, r.AwaitsDialog, r.DialogChatID = bitrix24.KindUpdateMessage, []byte(`{"message_id":1}`), 3, 4001
		}, outbox.ErrUnreadable},
		"new lane":   {func(r *storage.OutboxRow) { r.Lane = "team:4" }, outbox.ErrNewer},
		"new lane 2": {func(r *storage.OutboxRow) { r.Lane = "everyone" }, outbox.ErrNewer},
		"new kind":   {func(r *storage.OutboxRow) { r.Kind = "no_such_kind" }, outbox.ErrNewer},
		"new effect": {func(r *storage.OutboxRow) { r.Effect = "no_such_effect" }, outbox.ErrNewer},
	} {
		row := good
		c.change(&row)
		s := h.Read(row)
		if !errors.Is(s.Err, c.want) || s.Action != nil {
			t.Errorf("%s: read as %#v (%v), want %v", name, s.Action, s.Err, c.want)
		}
		if c.want == outbox.ErrNewer && errors.Is(s.Err, outbox.ErrUnreadable) {
			t.Errorf("%s: a newer release's entry read as damaged: %v", name, s.Err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("an effect registered twice")
		}
	}()
	outbox.On(h, func(*storage.Tx, chatOf, outbox.Result) error { return nil })
}

func read(t *testing.T, store *storage.Store, h *outbox.Handlers, portalID int64) []outbox.Sending {
	t.Helper()
	rows, err := store.DueOutbox(context.Background(), portalID, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []outbox.Sending
	for _, row := range rows {
		s := h.Read(row)
		if s.Err != nil {
			t.Fatal(s.Err)
		}
		out = append(out, s)
	}
	return out
}

func settle(t *testing.T, store *storage.Store, h *outbox.Handlers, s outbox.Sending, id int64) {
	t.Helper()
	err := store.Update(context.Background(), func(tx *storage.Tx) error {
		if _, err := tx.CompleteOutbox(s.Row.ID, nil); err != nil {
			return err
		}
		return h.Settle(tx, s, id, false)
	})
	if err != nil {
		t.Fatal(err)
	}
}
