package botv2_test

import (
	"encoding/json"
	"testing"

	"supportbot/bitrix24/b24test"
	"supportbot/bitrix24/b24test/botv2"
)

// TestLocalEventsAndState: the events of the portal's own messages (Said, Deleted,
// Commanded) carry their IDs; a command not registered is not one; and a Fake
// restored from its State, written as JSON, serves the same unconfirmed events and
// numbers the next ones on.
func TestLocalEventsAndState(t *testing.T) {
	t.Parallel()
	e := setup(t)
	if _, ok := e.fake.Said(27, "27", 5001, "too early", false); ok || e.fake.Fetching() {
		t.Fatal("an event with no bot to take it")
	}
	id := e.register(t, "support", token)
	e.call(t, "imbot.v2.Command.register", map[string]any{"botId": id, "botToken": token, "fields": map[string]any{"command": "help",
		"title": map[string]any{"en": "Help"}}})
	said, _ := e.fake.Said(27, "27", 5001, "hello", false)
	edited, _ := e.fake.Said(27, "27", 5001, "hello again", true)
	deleted, _ := e.fake.Deleted(27, "27", 5001)
	cmd, ok := e.fake.Commanded(27, "27", 5002, "/HELP", "me", false)
	if !ok {
		t.Fatal("a registered command refused")
	}
	if _, ok := e.fake.Commanded(27, "27", 5003, "/nothing", "", false); ok {
		t.Error("a command nobody registered")
	}
	for ev, msg := range map[int64]int64{said: 5001, edited: 5001, cmd: 5002} {
		if got := e.fake.MessageID(ev); got != msg {
			t.Errorf("event %d's message %d, want %d", ev, got, msg)
		}
	}

	raw, err := json.Marshal(e.fake.State())
	if err != nil {
		t.Fatal(err)
	}
	var st botv2.State
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	restored := botv2.Restore(b24test.New(t), st)
	if restored.Pending() != 4 || !restored.Registered("help") || len(restored.Bots()) != 1 || restored.Bots()[0].Token != token {
		t.Fatalf("restored: %d pending, bots %+v", restored.Pending(), restored.Bots())
	}
	next, _ := restored.Said(27, "27", 5004, "after", false)
	if next != deleted+2 { // the command's event came after the deletion's
		t.Errorf("the next event is %d after %d", next, deleted)
	}
}
