package main

import (
	"context"
	"slices"
	"testing"

	"supportbot/storage"
)

// TestNULInAMessageIsKept: a question and a message holding NUL (U+0000), which
// PostgreSQL's text refuses, are taken in on either engine (CI runs this on both),
// NUL dropped: none is lost after five failed attempts.
func TestNULInAMessageIsKept(t *testing.T) {
	t.Parallel()
	d := newDesk(t)
	chat := d.open("Is the API\x00 down?")
	d.say(client, chat, "Still\x00 down")
	var texts []string
	err := d.store.View(context.Background(), func(tx *storage.Tx) error {
		dl, err := tx.DialogByNumber(d.portalID, 1)
		if err != nil {
			return err
		}
		msgs, err := tx.Transcript(dl.ID)
		for _, m := range msgs {
			texts = append(texts, m.Text)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(texts, "Is the API down?") || !slices.Contains(texts, "Still down") {
		t.Fatalf("transcript %q", texts)
	}
}
