package poller_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"supportbot/bitrix24"
	"supportbot/bot"
	"supportbot/poller"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// The tests of an event confirmed to the portal but never stored: the one loss the
// poller must never cause, whatever the portal answers and however the database fails.

// stopping is the real bot, except that it cannot store one message's event, and the
// process stops (the poller's context ends) at its second failure.
type stopping struct {
	*bot.Bot
	mu    sync.Mutex
	msg   int64
	fails int
	stop  func()
}

func (s *stopping) Take(tx *storage.Tx, a bot.Arrival) (bot.Outcome, error) {
	if m, ok := a.Event.(*bitrix24.MessageAdd); ok && m.Message.ID == s.msg {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fails++; s.fails == 2 {
			s.stop()
		}
		return 0, errors.New("disk full")
	}
	return s.Bot.Take(tx, a)
}

// reordering answers Event.get with a page's events in another order: the docs do
// not say in which order they come.
type reordering struct {
	bitrix24.Caller
	order func([]json.RawMessage)
}

func (r reordering) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	raw, err := r.Caller.Call(ctx, method, params)
	if err != nil || method != "imbot.v2.Event.get" {
		return raw, err
	}
	var page map[string]json.RawMessage
	var events []json.RawMessage
	if err := json.Unmarshal(raw, &page); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(page["events"], &events); err != nil {
		return nil, err
	}
	r.order(events)
	page["events"], _ = json.Marshal(events)
	return json.Marshal(page)
}

// TestOneByOneInTheOrderOfIDs: a page comes as events a, a+2, a+1 and cannot be
// stored whole; one by one, a+1 fails, and the process stops there. Had a+2 gone
// before it, its offset a+3 would have confirmed a+1 unstored: the events go in the
// order of their IDs, and a+1 is stored after the restart.
func TestOneByOneInTheOrderOfIDs(t *testing.T) {
	store, portal, fake, client := setUp(t)
	fake.Message(27, "27", "open new first")
	middle := fake.Message(27, "27", "open new second")
	fake.Message(27, "27", "open new third")
	swap := reordering{Caller: client, order: func(e []json.RawMessage) {
		if len(e) == 3 {
			e[1], e[2] = e[2], e[1]
		}
	}}
	callers := func(int64) (bitrix24.Caller, error) { return swap, nil }
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	p := &poller.Poller{Store: store, Bot: &stopping{Bot: newBot(), msg: fake.MessageID(middle), stop: stop}, Log: quiet(), Callers: callers}
	if _, err := p.PollOnce(ctx, portal.ID); err == nil {
		t.Fatal("the poll went on after the process stopped")
	}
	stored, _ := store.Portal(t.Context(), portal.ID)
	// Restarted, and the event can be stored now.
	p = &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Callers: callers}
	for range 3 {
		if _, err := p.PollOnce(t.Context(), portal.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := dialogCount(t, store, portal.ID); n != 3 {
		t.Fatalf("%d dialogs for 3 questions: the offset %d left at the stop confirmed event %d unstored", n, stored.FetchOffset, middle)
	}
}

// unnumbered answers Event.get with every eventId unreadable and a nextOffset far
// beyond the page.
type unnumbered struct{ bitrix24.Caller }

func (u unnumbered) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	raw, err := u.Caller.Call(ctx, method, params)
	if err != nil || method != "imbot.v2.Event.get" {
		return raw, err
	}
	var page map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&page); err != nil {
		return nil, err
	}
	events, _ := page["events"].([]any)
	for _, e := range events {
		if m, ok := e.(map[string]any); ok {
			m["eventId"] = fmt.Sprint("e", m["eventId"])
		}
	}
	if len(events) > 0 {
		page["nextOffset"] = 1000000
	}
	return json.Marshal(page)
}

// TestNextOffsetWithoutEventIDs: events whose IDs cannot be read do not let the
// portal's nextOffset confirm what the poller never saw: it is beyond the page (its
// last readable ID is none), so nothing is confirmed, and the next question is
// fetched and stored.
func TestNextOffsetWithoutEventIDs(t *testing.T) {
	store, portal, fake, client := setUp(t)
	fake.Message(27, "27", "open new first")
	obs := &observed{}
	p := &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Obs: obs,
		Callers: func(int64) (bitrix24.Caller, error) { return unnumbered{client}, nil }}
	if _, err := p.PollOnce(t.Context(), portal.ID); err != nil && !errors.Is(err, poller.ErrOffsetStuck) {
		t.Fatal(err)
	}
	fake.Message(27, "27", "open new second")
	for range 2 {
		if _, err := p.PollOnce(t.Context(), portal.ID); err != nil && !errors.Is(err, poller.ErrOffsetStuck) {
			t.Fatal(err)
		}
	}
	stored, _ := store.Portal(t.Context(), portal.ID)
	if n := dialogCount(t, store, portal.ID); n != 2 || obs.anomalies["beyond"] == 0 {
		t.Fatalf("%d dialogs for 2 questions; offset %d, anomalies %v", n, stored.FetchOffset, obs.anomalies)
	}
}

// terminating is the real bot, except that while it takes one message's event, the
// first kills times, the server ends the session of its transaction, as a restart,
// a failover or an operator's pg_terminate_backend does.
type terminating struct {
	*bot.Bot
	admin        *sql.DB
	app          string // the store's sessions' application_name
	msg          int64
	kills, tries int
}

func (k *terminating) Take(tx *storage.Tx, a bot.Arrival) (bot.Outcome, error) {
	if m, ok := a.Event.(*bitrix24.MessageAdd); ok && m.Message.ID == k.msg && k.tries < k.kills {
		k.tries++
		if _, err := k.admin.Exec(`SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
			WHERE application_name = $1 AND state LIKE 'idle in transaction%'`, k.app); err != nil {
			return 0, fmt.Errorf("terminate: %w", err)
		}
	}
	return k.Bot.Take(tx, a)
}

// TestDatabaseFailureSkipsNothing: an event whose transaction the server ends six
// times (more than the attempts an event that cannot be stored gets) is not
// skipped: the database failed, not the event. The poll fails and the page is
// fetched again; once the database holds, all three questions are stored.
func TestDatabaseFailureSkipsNothing(t *testing.T) {
	url := storagetest.OnPostgres(t, filepath.Join(t.TempDir(), "terminated.db"))
	app := fmt.Sprintf("poller-test-%p", t)
	store, portal, fake, client := setUpOn(t, storagetest.OpenAt(t, url+"&application_name="+app))
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	fake.Message(27, "27", "open new first")
	middle := fake.Message(27, "27", "open new second")
	fake.Message(27, "27", "open new third")
	proc := &terminating{Bot: newBot(), admin: admin, app: app, msg: fake.MessageID(middle), kills: 6}
	obs := &observed{}
	p := &poller.Poller{Store: store, Bot: proc, Log: quiet(), Obs: obs,
		Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	failed := 0
	for range 10 {
		if _, err := p.PollOnce(t.Context(), portal.ID); err != nil {
			if !storage.Transient(err) {
				t.Fatalf("poll %d: %v, not a failure of the database", failed+1, err)
			}
			failed++
		}
	}
	if n := dialogCount(t, store, portal.ID); n != 3 || proc.tries != 6 || obs.count("failed") != 0 {
		t.Fatalf("%d dialogs for 3 questions after %d terminated sessions, %d failed polls; outcomes %v", n, proc.tries, failed, obs.outcomes)
	}
}
