package bot

import (
	"context"
	"testing"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// TestTakeOutcomes: the one intake answers every source alike with a typed outcome:
// an unknown type is Unknown (not merely Ignored), a new event Processed, its repeat
// Duplicate; and each event of a transaction sees the portal as the ones before it
// in the same transaction left it (a fetched page is one transaction).
func TestTakeOutcomes(t *testing.T) {
	h := newHarness(t)
	unknown := &bitrix24.Unknown{Envelope: bitrix24.Envelope{Type: "ONSOMETHINGELSE"}}
	first := h.private(admin, "q")
	other := h.private(admin, "q2")
	other.BotID = botID + 1 // a second bot of the same application
	var got []Outcome
	err := h.store.Update(context.Background(), func(tx *storage.Tx) error {
		for _, ev := range []bitrix24.Event{unknown, first, first, other} {
			o, err := h.bot.Take(tx, Arrival{PortalID: h.portal.ID, Event: ev})
			if err != nil {
				return err
			}
			got = append(got, o)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Outcome{Unknown, Processed, Duplicate, Processed}
	if len(got) != len(want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %v, want %v", i, got[i], want[i])
		}
	}
	p, err := h.store.Portal(context.Background(), h.portal.ID)
	if err != nil || p.BotID != botID {
		t.Errorf("bot %d (%v), want %d: the second event did not see the bot the first one recorded", p.BotID, err, botID)
	}
}

func TestOutcomeNames(t *testing.T) {
	for o, want := range map[Outcome]string{Processed: "processed", Duplicate: "duplicate", Ignored: "ignored", Unknown: "unknown",
		Rejected: "rejected", Failed: "failed", Kept: "kept", GivenUp: "given_up"} {
		if o.String() != want {
			t.Errorf("%d is %q, want %q (the metric's label)", int(o), o.String(), want)
		}
	}
}
