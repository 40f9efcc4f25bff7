package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/delivery"
	"supportbot/storage"
	"supportbot/storage/storagetest"
	"supportbot/testwait"
)

// The tests look into the bot's database through the store's own methods, never SQL
// against the schema, and wait with waitFor only.

var (
	storesMu sync.Mutex
	stores   = map[string]*storage.Store{} // by test and path
)

// dbEnv is env with, when the tests run on PostgreSQL (storagetest.PostgresEnv), the
// database of its db.path on that server as db.url. A test of what only SQLite does
// names an empty SUPPORTBOT_DB_URL to stay on the file.
// dir is where a binary runs, whose default db.path is dir/supportbot.db ("" in process).
func dbEnv(t *testing.T, env []string, dir string) []string {
	t.Helper()
	if storagetest.Postgres() == "" {
		return env
	}
	path := ""
	if dir != "" {
		path = filepath.Join(dir, "supportbot.db")
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "SUPPORTBOT_DB_URL=") {
			return env
		}
		if p, ok := strings.CutPrefix(kv, "SUPPORTBOT_DB_PATH="); ok {
			path = p
		}
	}
	if path == "" {
		return env
	}
	return append([]string{"SUPPORTBOT_DB_URL=" + storagetest.Location(t, path)}, env...)
}

// storeAt is the store at path, opened once per test beside the bot that uses it.
func storeAt(t *testing.T, path string) *storage.Store {
	t.Helper()
	key := t.Name() + "\x00" + path
	storesMu.Lock()
	s, ok := stores[key]
	storesMu.Unlock()
	if ok {
		return s
	}
	s = storagetest.OpenAt(t, path)
	storesMu.Lock()
	stores[key] = s
	storesMu.Unlock()
	t.Cleanup(func() { storesMu.Lock(); delete(stores, key); storesMu.Unlock() })
	return s
}

// view reads the database at path in one snapshot.
func view(t *testing.T, path string, fn func(tx *storage.Tx) error) {
	t.Helper()
	if err := storeAt(t, path).View(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func portalsAt(t *testing.T, path string) []storage.Portal {
	t.Helper()
	list, err := storeAt(t, path).Portals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// dialogsAt lists every dialog of every portal.
func dialogsAt(t *testing.T, path string) []storage.Dialog {
	t.Helper()
	var all []storage.Dialog
	view(t, path, func(tx *storage.Tx) error {
		for _, p := range portalsAt(t, path) {
			list, err := storagetest.Dialogs(tx, p.ID)
			if err != nil {
				return err
			}
			all = append(all, list...)
		}
		return nil
	})
	return all
}

// countDialogs counts the dialogs for which ok holds.
func countDialogs(t *testing.T, path string, ok func(storage.Dialog) bool) int {
	t.Helper()
	n := 0
	for _, d := range dialogsAt(t, path) {
		if ok(d) {
			n++
		}
	}
	return n
}

func anyDialog(storage.Dialog) bool { return true }

// dialogNumbered is the first portal's dialog №n.
func dialogNumbered(t *testing.T, path string, n int) storage.Dialog {
	t.Helper()
	for _, d := range dialogsAt(t, path) {
		if d.Number == n {
			return d
		}
	}
	t.Fatalf("no dialog №%d", n)
	return storage.Dialog{}
}

// outboxAt lists every outbox entry of every portal.
func outboxAt(t *testing.T, path string) []storage.OutboxRow {
	t.Helper()
	var all []storage.OutboxRow
	for _, p := range portalsAt(t, path) {
		list, err := storeAt(t, path).Outbox(context.Background(), p.ID)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, list...)
	}
	return all
}

// countOutbox counts the entries in state (any state when empty).
func countOutbox(t *testing.T, path, state string) int {
	t.Helper()
	n := 0
	for _, e := range outboxAt(t, path) {
		if state == "" || e.State == state {
			n++
		}
	}
	return n
}

// waitIdle waits until the outbox has nothing pending: every call is made and its
// result recorded. What is not sent by then was never going to be.
func waitIdle(t *testing.T, path string) {
	t.Helper()
	waitIdleWithin(t, testwait.Limit, path)
}

func waitIdleWithin(t *testing.T, limit time.Duration, path string) {
	t.Helper()
	testwait.Within(t, limit, "the outbox to drain", func() bool {
		pending, _, err := storeAt(t, path).OutboxStats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return pending == 0
	})
}

// state describes what the database holds of the given parts ("portals", "dialogs",
// "messages", "unread", "access", "ratings", "events", "outbox"), for comparing it
// before and after something that must change nothing.
func state(t *testing.T, path string, parts ...string) string {
	t.Helper()
	var b strings.Builder
	want := map[string]bool{}
	for _, p := range parts {
		want[p] = true
	}
	view(t, path, func(tx *storage.Tx) error {
		for _, p := range portalsAt(t, path) {
			if want["portals"] {
				// When events were last refused for their token is doctor's hint, not
				// something an event changed: TestEventRoute checks it on its own.
				p.EventsRefusedAt = time.Time{}
				fmt.Fprintf(&b, "portal %+v\n", p)
			}
			if want["events"] {
				n := storagetest.Count(t, storagetest.Location(t, path), `SELECT COUNT(*) FROM processed_events WHERE portal_id = $1`, p.ID)
				fmt.Fprintf(&b, "portal %d events %d\n", p.ID, n)
			}
			dialogs, err := storagetest.Dialogs(tx, p.ID)
			if err != nil {
				return err
			}
			for _, d := range dialogs {
				if want["dialogs"] {
					fmt.Fprintf(&b, "dialog %+v\n", d)
				}
				if want["messages"] {
					tr, err := tx.Transcript(d.ID)
					if err != nil {
						return err
					}
					fmt.Fprintf(&b, "transcript %d %+v\n", d.ID, tr)
				}
				if want["unread"] {
					n, err := tx.Unread(d.ID)
					if err != nil {
						return err
					}
					fmt.Fprintf(&b, "unread %d %d\n", d.ID, n)
				}
				if want["access"] {
					list := storagetest.Rows(t, storagetest.Location(t, path), `SELECT * FROM access_requests WHERE dialog_id = $1 ORDER BY id`, d.ID)
					fmt.Fprintf(&b, "access %d %q\n", d.ID, list)
				}
				if want["ratings"] {
					list, err := tx.Ratings(d.ID)
					if err != nil {
						return err
					}
					fmt.Fprintf(&b, "ratings %d %+v\n", d.ID, list)
				}
			}
		}
		return nil
	})
	if want["outbox"] {
		for _, e := range outboxAt(t, path) {
			fmt.Fprintf(&b, "outbox %d %s %s\n", e.ID, e.Kind, e.State)
		}
	}
	return b.String()
}

// runDispatcher sends the outbox as serve does, until stop (or the test's end): for
// the tests that move the clock themselves and wait with drainOutbox.
func runDispatcher(t *testing.T, d *delivery.Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx, ctx) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

// drainOutbox waits until nothing is due at the store's clock: every entry sent,
// given up, or put off past the clock (a retry the test reaches by moving it). The
// outcomes and whatever they queue are written together, so a store with nothing
// due has recorded them all.
func drainOutbox(t *testing.T, store *storage.Store) {
	t.Helper()
	testwait.For(t, "the outbox to drain", func() bool {
		due, err := store.DuePortals(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(due) == 0
	})
}

// processedEvents is how many event keys every portal has recorded.
func processedEvents(t *testing.T, path string) int {
	t.Helper()
	return storagetest.Count(t, storagetest.Location(t, path), `SELECT COUNT(*) FROM processed_events`)
}

// chatsByNumber are the chats of a portal's dialogs (every portal's, for 0), by
// dialog number: chats are created in whatever order requests reach the portal, so
// their IDs say nothing of the dialogs' order.
func chatsByNumber(t *testing.T, path string, portalID int64) []int64 {
	t.Helper()
	var ids []int64
	for _, d := range dialogsAt(t, path) {
		if (portalID == 0 || d.PortalID == portalID) && d.ChatID != 0 {
			ids = append(ids, d.ChatID)
		}
	}
	return ids
}

// chats are the chats of the bot's dialogs, by dialog number.
func (b *runningBot) chats() []int64 { return chatsByNumber(b.t, b.dbPath, 0) }
