package delivery

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test/botv2"
	"supportbot/storage"
)

// v2Fixture is the fixture with an imbot.v2 bot registered on the fake portal and
// recorded for the portal, as `supportbot register` leaves it.
func v2Fixture(t *testing.T) (*fixture, *botv2.Fake, *refusalObserver) {
	t.Helper()
	f := newFixture(t)
	fake := botv2.Attach(f.fake)
	client := bitrix24.NewClient(f.fake.WebhookURL())
	const token = "tok-0123456789"
	id, err := bitrix24.Perform(context.Background(), client, bitrix24.V2,
		bitrix24.RegisterBot{Profile: bitrix24.BotProfile{Code: "support", Name: "Support", EventMode: "fetch"}},
		bitrix24.Context{BotToken: token})
	if err != nil || id == 0 {
		t.Fatalf("register: %d %v", id, err)
	}
	if err := f.store.Update(context.Background(), func(tx *storage.Tx) error {
		return tx.SetBotV2(f.portal.ID, id, token, storage.EventsFetch)
	}); err != nil {
		t.Fatal(err)
	}
	obs := &refusalObserver{}
	f.disp = New(f.store, Single(client), f.bot.Outbox(), nil, obs)
	return f, fake, obs
}

type refusalObserver struct {
	nopObserver
	mu      sync.Mutex
	refused int
}

func (o *refusalObserver) ObserveBatchRefused() { o.mu.Lock(); o.refused++; o.mu.Unlock() }

// sends counts Chat.Message.send calls made inside batch and alone.
func sends(f *fixture) (batched, single int) {
	for _, c := range f.fake.CallsTo("imbot.v2.Chat.Message.send") {
		if c.Batched {
			batched++
		} else {
			single++
		}
	}
	return batched, single
}

// TestV2HotChatBatched: 120 v2 replies due in one chat go as v1's do, in batches of
// 50, in order: 3 requests.
func TestV2HotChatBatched(t *testing.T) {
	f, _, obs := v2Fixture(t)
	before := f.fake.Requests()
	for i := range 120 {
		f.enqueue("27", bitrix24.SendMessage{To: "27", Text: fmt.Sprint("m", i)})
	}
	f.drain()
	if n := f.fake.Requests() - before; n != 3 {
		t.Errorf("%d requests for 120 v2 replies in one chat, want 3", n)
	}
	msgs := f.fake.Messages("27")
	if len(msgs) != 120 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		if m.Text != fmt.Sprint("m", i) {
			t.Fatalf("message %d is %q: out of order", i, m.Text)
		}
	}
	if b, s := sends(f); b != 120 || s != 0 || obs.refused != 0 {
		t.Errorf("%d sends in batch, %d alone, %d refusals", b, s, obs.refused)
	}
}

// TestV2BatchRefusedFallsBack: a portal that refuses imbot.v2 inside batch, in each
// way it might, gets every entry once, in order, as single calls; what it taught is
// stored with the portal (a new dispatcher, as after a restart, goes on with single
// calls), counted once, and batch is tried again after a day.
func TestV2BatchRefusedFallsBack(t *testing.T) {
	for name, mode := range map[string]botv2.BatchMode{"not allowed": botv2.BatchNotAllowed, "not found": botv2.BatchNotFound,
		"silent": botv2.BatchSilent} {
		t.Run(name, func(t *testing.T) {
			f, fake, obs := v2Fixture(t)
			fake.SetBatch(mode)
			for i := range 10 {
				f.enqueue(fmt.Sprint(27+i%2), bitrix24.SendMessage{To: fmt.Sprint(27 + i%2), Text: fmt.Sprint("m", i)})
			}
			f.drain()
			for first, chat := range []string{"27", "28"} {
				msgs := f.fake.Messages(chat)
				if len(msgs) != 5 {
					t.Fatalf("%d messages in %s, want 5", len(msgs), chat)
				}
				for i, m := range msgs {
					if want := fmt.Sprint("m", first+2*i); m.Text != want {
						t.Fatalf("%s: message %d is %q, want %q", chat, i, m.Text, want)
					}
				}
			}
			if b, s := sends(f); b > 1 || s != 10 {
				t.Errorf("%d sends tried in batch, %d alone", b, s)
			}
			p, err := f.store.Portal(context.Background(), f.portal.ID)
			if err != nil || !p.SingleCalls(f.clock()) || obs.refused != 1 {
				t.Fatalf("refusal stored at %v, counted %d (%v)", p.BatchRefusedAt, obs.refused, err)
			}
			if s := f.states(); s[storage.OutboxDone] != 10 || len(s) != 1 {
				t.Fatalf("states %v", s)
			}

			// A restarted dispatcher remembers: single calls, no probe.
			f.disp = New(f.store, Single(bitrix24.NewClient(f.fake.WebhookURL())), f.bot.Outbox(), nil, obs)
			f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "a"})
			f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "b"})
			b0, _ := sends(f)
			f.drain()
			if b, s := sends(f); b != b0 || s != 12 {
				t.Errorf("after a restart: %d sends in batch (was %d), %d alone", b, b0, s)
			}

			// A day later the portal takes batch again: it is tried, and the refusal forgotten.
			fake.SetBatch(botv2.BatchRuns)
			f.advance(storage.BatchRetryAfter + time.Minute)
			f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "c"})
			f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "d"})
			f.drain()
			if b, s := sends(f); b != b0+2 || s != 12 {
				t.Errorf("a day later: %d sends in batch (was %d), %d alone", b, b0, s)
			}
			if p, _ := f.store.Portal(context.Background(), f.portal.ID); !p.BatchRefusedAt.IsZero() || obs.refused != 1 {
				t.Errorf("refusal still stored (%v) or counted again (%d)", p.BatchRefusedAt, obs.refused)
			}
		})
	}
}
