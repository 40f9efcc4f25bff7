package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustUpdate(t *testing.T, s *Store, fn func(*Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func title(n int) string { return fmt.Sprintf("Question #%d", n) }

func TestOpenSetsPragmas(t *testing.T) {
	s, _ := openSQLite(t)
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "10000"} {
		var got string
		if err := s.write.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("writer %s = %s, want %s", pragma, got, want)
		}
		if err := s.read.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("reader %s = %s, want %s", pragma, got, want)
		}
	}
	if _, err := s.read.Exec("INSERT INTO portals (member_id, created_at, updated_at) VALUES ('x', 1, 1)"); err == nil {
		t.Error("the read pool accepted a write")
	}
}

// Concurrent updates share commits, but a failing or panicking one undoes only its own
// work.
func TestUpdateIsolatesFailures(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 60)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(ctx, func(tx *Tx) error {
				if _, err := tx.EnsurePortal(fmt.Sprintf("m%d", i), ""); err != nil {
					return err
				}
				switch i % 3 {
				case 1:
					return errors.New("refused")
				case 2:
					panic("boom")
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%3 == 0) != (err == nil) {
			t.Fatalf("update %d: err = %v", i, err)
		}
	}
	var n int
	if err := s.read.QueryRow("SELECT COUNT(*) FROM portals").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Fatalf("%d portals committed, want 20", n)
	}
}

func TestUpdateAfterClose(t *testing.T) {
	s, _ := openTest(t)
	s.Close()
	if err := s.Update(context.Background(), func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

func TestMarkProcessed(t *testing.T) {
	s, _ := openTest(t)
	p, err := s.EnsurePortal(context.Background(), "webhook", "")
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, func(tx *Tx) error {
		for i, want := range []bool{true, false} {
			fresh, err := tx.MarkProcessed(p.ID, "message:1", "ONIMBOTMESSAGEADD")
			if err != nil || fresh != want {
				t.Errorf("attempt %d: fresh=%v err=%v", i, fresh, err)
			}
		}
		return nil
	})
}

func TestDialogsUnreadAndReopen(t *testing.T) {
	s, path := openTest(t)
	ctx := context.Background()
	p, _ := s.EnsurePortal(ctx, "webhook", "")
	var d1, d2 Dialog
	mustUpdate(t, s, func(tx *Tx) (err error) {
		if d1, err = tx.CreateDialog(NewDialog{PortalID: p.ID, ClientID: 27, Language: "en", Title: title}); err != nil {
			return err
		}
		if d2, err = tx.CreateDialog(NewDialog{PortalID: p.ID, ClientID: 27, Language: "en", Title: title}); err != nil {
			return err
		}
		if err := tx.SetDialogChat(d1.ID, 1001); err != nil {
			return err
		}
		seq, _, err := tx.AddMessage(Message{DialogID: d1.ID, BitrixMessageID: 1, AuthorID: 27, AuthorRole: RoleClient, Text: "q"})
		if err != nil {
			return err
		}
		if err := tx.SetLastSeen(d1.ID, 27, seq); err != nil {
			return err
		}
		for i, role := range []string{RoleAgent, RoleBot, RoleOther} {
			if _, _, err := tx.AddMessage(Message{DialogID: d1.ID, BitrixMessageID: int64(10 + i), AuthorID: 5, AuthorRole: role, Text: "a"}); err != nil {
				return err
			}
		}
		// The same Bitrix24 message again is not a second message.
		if _, added, err := tx.AddMessage(Message{DialogID: d1.ID, BitrixMessageID: 10, AuthorID: 5, AuthorRole: RoleAgent}); err != nil || added {
			return fmt.Errorf("re-add: added=%v err=%v", added, err)
		}
		return tx.SetDialogStatus(d2.ID, StatusResolved)
	})
	if d1.Number != 1 || d2.Number != 2 || d2.Title != "Question #2" {
		t.Fatalf("numbers %d %d title %q", d1.Number, d2.Number, d2.Title)
	}
	check := func(s *Store) {
		t.Helper()
		mustUpdate(t, s, func(tx *Tx) error {
			list, err := tx.ClientDialogs(p.ID, 27)
			if err != nil {
				return err
			}
			if len(list) != 2 || list[0].ID != d1.ID || list[0].Unread != 2 || list[1].Status != StatusResolved {
				t.Errorf("list = %+v", list)
			}
			if n, _ := tx.CountActiveDialogs(p.ID, 27); n != 1 {
				t.Errorf("active = %d", n)
			}
			if d, err := tx.DialogByChat(p.ID, 1001); err != nil || d.ID != d1.ID {
				t.Errorf("by chat: %+v %v", d, err)
			}
			return nil
		})
	}
	check(s)
	// Everything survives a restart on the same file.
	s.Close()
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	check(s2)
	mustUpdate(t, s2, func(tx *Tx) error {
		if err := tx.MarkAllSeen(d1.ID, 27); err != nil {
			return err
		}
		if n, _ := tx.Unread(d1.ID); n != 0 {
			t.Errorf("unread after mark = %d", n)
		}
		if _, err := tx.DialogByNumber(p.ID, 9); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing dialog: %v", err)
		}
		return nil
	})
}

func TestOutboxLanes(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, _ := openTest(t, WithClock(clock))
	ctx := context.Background()
	p, _ := s.EnsurePortal(ctx, "webhook", "")
	var d Dialog
	var ids []int64
	mustUpdate(t, s, func(tx *Tx) (err error) {
		d, err = tx.CreateDialog(NewDialog{PortalID: p.ID, ClientID: 27, Language: "ru", Title: title})
		if err != nil {
			return err
		}
		for _, e := range []OutboxRow{
			{Lane: "dialog:1", Kind: "create_chat", Effect: "dialog_chat", EffectRef: d.ID},
			{Lane: "dialog:1", Kind: "send_message", AwaitsDialog: d.ID},
			{Lane: "27", Kind: "send_message", AwaitsDialog: d.ID},
			{Lane: "27", Kind: "send_message"},
			{Lane: "28", Kind: "send_message", Action: json.RawMessage(`{"text":"x"}`)},
		} {
			e.PortalID = p.ID
			if e.Action == nil {
				e.Action = json.RawMessage(`{}`)
			}
			id, err := tx.Enqueue(e)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	select {
	case <-s.OutboxSignal():
	case <-time.After(time.Second):
		t.Fatal("no outbox signal after commit")
	}
	due := func() []int64 {
		list, err := s.DueOutbox(ctx, p.ID, 50)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, e := range list {
			out = append(out, e.ID)
		}
		return out
	}
	// Only the chat creation and the unrelated lane: the rest waits for the chat.
	if got := due(); fmt.Sprint(got) != fmt.Sprint([]int64{ids[0], ids[4]}) {
		t.Fatalf("due = %v", got)
	}
	mustUpdate(t, s, func(tx *Tx) error {
		if _, err := tx.CompleteOutbox(ids[0], json.RawMessage("1001")); err != nil {
			return err
		}
		if err := tx.RetryOutbox(ids[4], now.Add(time.Minute), "later", false, 0); err != nil {
			return err
		}
		return tx.SetDialogChat(d.ID, 1001)
	})
	// Now a lane's run of ready entries is due, not only its head: both of lane 27.
	list, _ := s.DueOutbox(ctx, p.ID, 50)
	if len(list) != 3 || list[0].ID != ids[1] || list[0].DialogChatID != 1001 || list[1].ID != ids[2] || list[2].ID != ids[3] {
		t.Fatalf("due after chat = %+v", list)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if got := due(); len(got) != 4 || got[3] != ids[4] {
		t.Fatalf("due after retry time = %v", got)
	}
	pending, oldest, err := s.OutboxStats(ctx)
	if err != nil || pending != 4 || !oldest.Equal(now.Add(-2*time.Minute)) {
		t.Fatalf("stats %d %v %v", pending, oldest, err)
	}
	mustUpdate(t, s, func(tx *Tx) error {
		n, err := tx.FailDependents(d.ID, "no chat")
		if n != 2 {
			t.Errorf("failed %d dependents", n)
		}
		return err
	})
	if got := due(); fmt.Sprint(got) != fmt.Sprint([]int64{ids[3], ids[4]}) {
		t.Fatalf("due after giving up = %v", got)
	}
}

// TestViewReadsWithoutWriting: a view sees what is committed and cannot write.
func TestViewReadsWithoutWriting(t *testing.T) {
	s, _ := openTest(t)
	p, _ := s.EnsurePortal(context.Background(), "webhook", "")
	mustUpdate(t, s, func(tx *Tx) error {
		_, err := tx.CreateDialog(NewDialog{PortalID: p.ID, ClientID: 27, Language: "en", Title: title})
		return err
	})
	err := s.View(context.Background(), func(tx *Tx) error {
		d, err := tx.DialogByNumber(p.ID, 1)
		if err != nil || d.ClientID != 27 {
			t.Errorf("dialog №1 %+v %v", d, err)
		}
		if _, err := tx.CreateDialog(NewDialog{PortalID: p.ID, ClientID: 28, Language: "en", Title: title}); err == nil {
			t.Error("a view wrote")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPingNeedsACommit: readiness fails while the database cannot commit what an
// event writes (the disk full, here a page quota reached), although it still
// answers reads, and recovers once there is room again.
func TestPingNeedsACommit(t *testing.T) {
	s, _ := openSQLite(t) // a quota on pages is SQLite's
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("a fresh database is not ready: %v", err)
	}
	p, _ := s.EnsurePortal(ctx, "webhook", "")
	var pages int
	if err := s.read.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMaxPages(ctx, pages+8); err != nil {
		t.Fatal(err)
	}
	// Fill it up as events would, until a commit fails.
	var full error
	for i := 0; full == nil && i < 10000; i++ {
		full = s.Update(ctx, func(tx *Tx) error {
			_, err := tx.MarkProcessed(p.ID, fmt.Sprintf("message:%d:%s", i, strings.Repeat("x", 2000)), "ONIMBOTMESSAGEADD")
			return err
		})
	}
	if full == nil {
		t.Fatal("the quota never filled")
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatalf("ready while events fail with %v", full)
	}
	if err := s.SetMaxPages(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("not ready after room was made: %v", err)
	}
}

// TestPruneKeepsTheDatabaseSmall: four months of simulated traffic, pruned daily with
// a retention of 30 days, leave no more than about 30 days of processed events and
// finished outbox entries.
func TestPruneKeepsTheDatabaseSmall(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, _ := openTest(t, WithClock(clock))
	ctx := context.Background()
	p, _ := s.EnsurePortal(ctx, "webhook", "")
	const perDay, retention = 50, 30 * 24 * time.Hour
	counts := func() map[string]int {
		c, err := s.RowCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for day := range 120 {
		mustUpdate(t, s, func(tx *Tx) error {
			for i := range perDay {
				if _, err := tx.MarkProcessed(p.ID, fmt.Sprintf("message:%d:%d", day, i), "ONIMBOTMESSAGEADD"); err != nil {
					return err
				}
				id, err := tx.Enqueue(OutboxRow{PortalID: p.ID, Lane: "27", Kind: "send_message", Action: json.RawMessage(`{}`)})
				if err != nil {
					return err
				}
				if _, err := tx.CompleteOutbox(id, json.RawMessage("1")); err != nil {
					return err
				}
			}
			_, err := tx.Prune(tx.Now().Add(-retention))
			return err
		})
		mu.Lock()
		now = now.Add(24 * time.Hour)
		mu.Unlock()
	}
	c := counts()
	if limit := 31 * perDay; c["processed_events"] > limit || c["outbox"] > limit {
		t.Fatalf("after 120 days: %v, want at most %d of each", c, limit)
	}
	if c["processed_events"] < 29*perDay {
		t.Fatalf("pruned too much: %v", c)
	}
}

// TestOpenDialogs: the open dialogs are the active ones whose chat did not fail, as
// Dialog.Active says, on either engine; another portal's are not listed.
func TestOpenDialogs(t *testing.T) {
	s, _ := openTest(t)
	p, _ := s.EnsurePortal(context.Background(), "webhook", "")
	other, _ := s.EnsurePortal(context.Background(), "other", "")
	var all []Dialog
	mustUpdate(t, s, func(tx *Tx) error {
		for i, portal := range []int64{p.ID, p.ID, p.ID, p.ID, other.ID} {
			d, err := tx.CreateDialog(NewDialog{PortalID: portal, ClientID: int64(27 + i), Language: "en", Title: title})
			if err != nil {
				return err
			}
			all = append(all, d)
		}
		if err := tx.SetDialogStatus(all[1].ID, StatusResolved); err != nil {
			return err
		}
		return tx.MarkDialogChatFailed(all[2].ID)
	})
	err := s.View(context.Background(), func(tx *Tx) error {
		open, err := tx.OpenDialogs(p.ID)
		var ids []int64
		for _, d := range open {
			if !d.Active() {
				t.Errorf("listed as open: %+v", d)
			}
			ids = append(ids, d.ID)
		}
		if want := []int64{all[0].ID, all[3].ID}; fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("open dialogs %v, want %v", ids, want)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReleaseKeepsMaybeSent: an entry put back without its attempt having run keeps
// what an earlier attempt may have done (one in flight when its process died), and
// gains nothing from this attempt's own in-flight mark; on either engine.
func TestReleaseKeepsMaybeSent(t *testing.T) {
	s, _ := openTest(t)
	p, _ := s.EnsurePortal(context.Background(), "webhook", "")
	ctx := context.Background()
	var earlier, fresh int64
	mustUpdate(t, s, func(tx *Tx) (err error) {
		if earlier, err = tx.Enqueue(OutboxRow{PortalID: p.ID, Lane: "client:27", Kind: "send_message", Action: []byte(`{}`)}); err != nil {
			return err
		}
		if fresh, err = tx.Enqueue(OutboxRow{PortalID: p.ID, Lane: "client:28", Kind: "send_message", Action: []byte(`{}`)}); err != nil {
			return err
		}
		return tx.MarkInFlight([]int64{earlier}) // a process died with it under way
	})
	rows, err := s.Outbox(ctx, p.ID)
	if err != nil || len(rows) != 2 || !rows[0].MaybeSent || rows[1].MaybeSent {
		t.Fatalf("as read: %+v %v", rows, err)
	}
	mustUpdate(t, s, func(tx *Tx) error {
		if err := tx.MarkInFlight([]int64{earlier, fresh}); err != nil { // this attempt
			return err
		}
		return tx.ReleaseOutbox(rows) // which did not run them
	})
	after, err := s.Outbox(ctx, p.ID)
	if err != nil || !after[0].MaybeSent || after[0].InFlight || after[1].MaybeSent || after[1].InFlight {
		t.Fatalf("after the release: %+v %v", after, err)
	}
}

// TestTextFromOutsideIsStored: a portal's error description or a call's result may
// carry a NUL byte or invalid UTF-8, which PostgreSQL refuses in text (SQLSTATE
// 22021) and SQLite keeps. Both engines store them cleaned, the same way, so that an
// outcome is always recorded: refused, its entry would be sent again for ever. A
// lookup by such a text finds what was stored.
func TestTextFromOutsideIsStored(t *testing.T) {
	s, _ := openTest(t)
	p, _ := s.EnsurePortal(context.Background(), "webhook", "")
	ctx := context.Background()
	var failed, retried, done int64
	mustUpdate(t, s, func(tx *Tx) (err error) {
		for i, id := range []*int64{&failed, &retried, &done} {
			if *id, err = tx.Enqueue(OutboxRow{PortalID: p.ID, Lane: fmt.Sprint("client:", 27+i), Kind: "send_message", Action: []byte(`{}`)}); err != nil {
				return err
			}
		}
		if _, err := tx.FailOutbox(failed, "ACCESS_DENIED: no\x00pe"); err != nil {
			return err
		}
		if err := tx.RetryOutbox(retried, tx.Now(), "QUERY_LIMIT_EXCEEDED: sl\xffow", true, 0); err != nil {
			return err
		}
		_, err = tx.CompleteOutbox(done, json.RawMessage("{\"id\":\"7\x00\xff\"}"))
		return err
	})
	rows, err := s.Outbox(ctx, p.ID)
	if err != nil || len(rows) != 3 {
		t.Fatalf("%+v %v", rows, err)
	}
	if rows[0].State != OutboxFailed || rows[0].LastError != "ACCESS_DENIED: nope" ||
		rows[1].LastError != "QUERY_LIMIT_EXCEEDED: sl\uFFFDow" || !rows[1].MaybeSent ||
		rows[2].State != OutboxDone || string(rows[2].Result) != "{\"id\":\"7\uFFFD\"}" {
		t.Fatalf("stored %q %q %q %q", rows[0].State, rows[0].LastError, rows[1].LastError, rows[2].Result)
	}
	var n int
	if err := s.readRow(ctx, `SELECT COUNT(*) FROM outbox WHERE last_error = ?`, "ACCESS_DENIED: no\x00pe").Scan(&n); err != nil || n != 1 {
		t.Fatalf("found by its text: %d, %v", n, err)
	}
}

// TestKeyTakenForGood: a transaction that always breaks a unique key fails at once
// on SQLite; on PostgreSQL it is run a few times more (the key may have been a
// concurrent transaction's, which the next snapshot shows), not as often as a
// transaction that lost a serialization conflict.
func TestKeyTakenForGood(t *testing.T) {
	s, _ := openTest(t)
	p, _ := s.EnsurePortal(context.Background(), "webhook", "")
	var d Dialog
	mustUpdate(t, s, func(tx *Tx) (err error) {
		d, err = tx.CreateDialog(NewDialog{PortalID: p.ID, ClientID: 27, Language: "en", Title: func(n int) string { return fmt.Sprint("№", n) }})
		if err != nil {
			return err
		}
		_, err = tx.CreateAccessRequest(d.ID, 27, 50)
		return err
	})
	runs := 0
	err := s.Update(context.Background(), func(tx *Tx) error {
		runs++
		_, err := tx.CreateAccessRequest(d.ID, 27, 50) // a second pending request of the dialog
		return err
	})
	if err == nil || runs > uniqueRetries {
		t.Fatalf("run %d times: %v", runs, err)
	}
}
