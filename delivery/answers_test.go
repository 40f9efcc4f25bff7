package delivery

import (
	"context"
	"strings"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bot"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// TestAnswerThatCannotBeReadWaits: an answer that only reads ("all chats") is
// written just before it is sent; while the database cannot be read for it, it is
// tried again later and what follows it in its chat waits, so the chat still gets
// everything once and in order.
func TestAnswerThatCannotBeReadWaits(t *testing.T) {
	f := newFixture(t)
	f.newDialog()
	f.drain()
	before := len(f.fake.Messages("27")) // the answer that opened the dialog
	f.nextID++
	ev := &bitrix24.MessageAdd{
		Envelope: bitrix24.Envelope{Type: bitrix24.EventMessageAdd},
		Message:  bitrix24.Message{ID: f.nextID, Chat: "27", ChatType: "P", FromUserID: 27, Text: "all chats", Language: "en"},
		User:     bitrix24.User{ID: 27},
	}
	err := f.store.Update(context.Background(), func(tx *storage.Tx) error {
		_, err := f.bot.Take(tx, bot.Arrival{PortalID: f.portal.ID, Event: ev})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "after the list"})

	// The transcript cannot be read: the list's unread counts need it.
	rename := func(from, to string) {
		t.Helper()
		storagetest.Exec(t, storagetest.Location(t, f.path), "ALTER TABLE "+from+" RENAME TO "+to)
	}
	rename("messages", "messages_away")
	f.drain()
	if got := f.fake.Messages("27")[before:]; len(got) != 0 {
		t.Fatalf("sent while the answer could not be written: %+v", got)
	}
	list, err := f.store.Outbox(context.Background(), f.portal.ID)
	if err != nil {
		t.Fatal(err)
	}
	answer, after := list[len(list)-2], list[len(list)-1]
	if answer.State != storage.OutboxPending || answer.Attempts != 1 || answer.LastError == "" ||
		after.State != storage.OutboxPending || after.Attempts != 0 {
		t.Fatalf("answer %s after %d attempts (%s); the message after it %s after %d",
			answer.State, answer.Attempts, answer.LastError, after.State, after.Attempts)
	}

	rename("messages_away", "messages")
	f.advance(10 * time.Minute)
	f.drain()
	got := f.fake.Messages("27")[before:]
	if len(got) != 2 || !strings.Contains(got[0].Text, "Your questions") || got[1].Text != "after the list" {
		t.Fatalf("the chat got %+v", got)
	}
}
