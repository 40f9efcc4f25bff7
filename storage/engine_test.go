package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The storage tests run on SQLite, or with SUPPORTBOT_TEST_ENGINE=postgres on the
// server SUPPORTBOT_TEST_POSTGRES names (CI runs both). storagetest does the same for the other packages; it
// cannot be imported from here.

// openTest opens a fresh store on the engine under test.
func openTest(t testing.TB, opts ...Option) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	if base := os.Getenv("SUPPORTBOT_TEST_POSTGRES"); base != "" && os.Getenv("SUPPORTBOT_TEST_ENGINE") == "postgres" {
		path = testSchema(t, base)
	}
	s, err := Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// openSQLite opens a fresh SQLite store, for the tests of what only SQLite has.
func openSQLite(t *testing.T, opts ...Option) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// testSchema makes a schema of the test's own on the server and returns its URL.
func testSchema(t testing.TB, base string) string {
	t.Helper()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := fnv.New64a()
	h.Write([]byte(t.TempDir()))
	schema := fmt.Sprintf("s%x", h.Sum64())
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) })
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestClaims: on PostgreSQL one store at a time holds a claim; it passes to another
// when the holder closes (or dies: its session ends). On SQLite every claim holds.
func TestClaims(t *testing.T) {
	base := os.Getenv("SUPPORTBOT_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SUPPORTBOT_TEST_POSTGRES is not set: CI must run the PostgreSQL tests")
		}
		s, _ := openSQLite(t)
		if !s.Claim(t.Context(), ClaimPortal, 1) {
			t.Fatal("SQLite refused a claim")
		}
		return
	}
	url := testSchema(t, base)
	open := func() *Store {
		s, err := Open(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	if !a.Claim(t.Context(), ClaimPortal, 7) {
		t.Fatal("a could not claim portal 7")
	}
	if again := a.Claim(t.Context(), ClaimPortal, 7); !again {
		t.Fatal("a lost portal 7 when it claimed it again")
	}
	if b.Claim(t.Context(), ClaimPortal, 7) {
		t.Fatal("b claimed what a holds")
	}
	if !b.Claim(t.Context(), ClaimPortal, 8) || !b.Claim(t.Context(), ClaimJob, JobKey("prune")) {
		t.Fatal("b could not claim what nobody holds")
	}
	a.Close()
	if !b.Claim(t.Context(), ClaimPortal, 7) {
		t.Fatal("b could not take over portal 7 after a closed")
	}
}

// engineCase is one place where SQLite's and PostgreSQL's SQL could differ in
// meaning, played on the engine under test through the store's own methods.
type engineCase struct {
	name string
	play func(t *testing.T, l *lifeScript, portal int64)
}

// dialogWith opens dialog key with a chat and the given messages ("client: …" or
// "agent: …"), a minute apart from offset.
func (l *lifeScript) dialogWith(offset time.Duration, portal int64, key string, words ...string) {
	l.t.Helper()
	l.open(offset, portal, key)
	l.at(offset, func(tx *Tx) error { return tx.SetDialogChat(l.byKey[key].ID, 1000+l.byKey[key].ID) })
	for i, w := range words {
		role, text, _ := strings.Cut(w, ": ")
		l.at(offset+time.Duration(i+1)*time.Minute, func(tx *Tx) error {
			_, _, err := tx.AddMessage(Message{DialogID: l.byKey[key].ID, BitrixMessageID: int64(i + 1), AuthorID: 5,
				AuthorRole: role, Text: text, CreatedAt: tx.Now()})
			return err
		})
	}
}

// dueAutoClose is which of keys are due for a warning and for a close at offset.
func (l *lifeScript) dueAutoClose(offset time.Duration, ac AutoClose, keys ...string) (warn, closing []string) {
	l.t.Helper()
	l.at(offset, func(tx *Tx) error {
		w, c, err := tx.DueAutoClose(ac)
		for _, k := range keys {
			if slices.Contains(w, l.byKey[k].ID) {
				warn = append(warn, k)
			}
			if slices.Contains(c, l.byKey[k].ID) {
				closing = append(closing, k)
			}
		}
		return err
	})
	return warn, closing
}

// engineCases: every place the audit of issue 19 found where the two engines' SQL
// could mean different things — NULL in GREATEST/MAX and in comparisons, NULL
// aggregates, booleans in ORDER BY and sums, string comparison, time arithmetic at
// the boundary, integer against real division. (No query orders by a nullable
// column, where NULLs sort first on SQLite and last on PostgreSQL, nor by text,
// where PostgreSQL's collation is not SQLite's byte order; keep it so.)
var engineCases = []engineCase{
	{"GREATEST/MAX with a NULL: a dialog whose client spoke last is never due", func(t *testing.T, l *lifeScript, p int64) {
		ac := AutoClose{After: 72 * time.Hour, Warning: 24 * time.Hour}
		l.dialogWith(0, p, "asked", "client: help", "agent: try this", "client: it fails")
		l.dialogWith(0, p, "kept", "client: help", "agent: try this", "client: it fails")
		l.at(time.Hour, func(tx *Tx) error { return tx.KeepOpen(l.byKey["kept"].ID) }) // not NULL: the maximum's other arguments
		l.dialogWith(0, p, "reopened", "client: help")
		l.event(time.Hour, "reopened", LifeReopened)
		l.dialogWith(0, p, "silent")
		l.dialogWith(0, p, "answered", "client: help", "agent: done")
		keys := []string{"asked", "kept", "reopened", "silent", "answered"}
		warn, _ := l.dueAutoClose(100*24*time.Hour, ac, keys...)
		if !slices.Equal(warn, []string{"answered"}) {
			t.Errorf("due for a warning: %v, want [answered]", warn)
		}
		_, closing := l.dueAutoClose(200*24*time.Hour, AutoClose{After: ac.After}, keys...)
		if !slices.Equal(closing, []string{"answered"}) {
			t.Errorf("due for a close (no warning): %v, want [answered]", closing)
		}
	}},
	{"time arithmetic: due at the very millisecond, not one before; keep-open restarts the silence", func(t *testing.T, l *lifeScript, p int64) {
		ac := AutoClose{After: 72 * time.Hour, Warning: 24 * time.Hour}
		l.dialogWith(0, p, "a", "client: help", "agent: done") // the answer at +2m
		answer := 2 * time.Minute
		if w, _ := l.dueAutoClose(answer+48*time.Hour-time.Millisecond, ac, "a"); len(w) != 0 {
			t.Errorf("warned a millisecond early")
		}
		if w, _ := l.dueAutoClose(answer+48*time.Hour, ac, "a"); len(w) != 1 {
			t.Errorf("not warned when due")
		}
		l.at(answer+time.Hour, func(tx *Tx) error { return tx.KeepOpen(l.byKey["a"].ID) })
		if w, _ := l.dueAutoClose(answer+48*time.Hour, ac, "a"); len(w) != 0 {
			t.Errorf("warned although kept open an hour after the answer")
		}
	}},
	{"LTRIM and LIKE: a command is no answer, text around a slash is", func(t *testing.T, l *lifeScript, p int64) {
		ac := AutoClose{After: time.Hour}
		l.dialogWith(0, p, "command", "client: help", "agent:  \t/rename Billing")
		l.dialogWith(0, p, "slash", "client: help", "agent: see a/b_%")
		if _, c := l.dueAutoClose(24*time.Hour, ac, "command", "slash"); !slices.Equal(c, []string{"slash"}) {
			t.Errorf("due: %v, want [slash]", c)
		}
	}},
	{"NULL comparison: a close needs a warning after the silence began", func(t *testing.T, l *lifeScript, p int64) {
		ac := AutoClose{After: 72 * time.Hour, Warning: 24 * time.Hour}
		l.dialogWith(0, p, "unwarned", "client: help", "agent: done")
		if _, c := l.dueAutoClose(300*24*time.Hour, ac, "unwarned"); len(c) != 0 {
			t.Errorf("closed with auto_close_warned_at NULL")
		}
	}},
	{"aggregates of no rows: MIN is NULL, COALESCE(MAX) is 0", func(t *testing.T, l *lifeScript, p int64) {
		next, err := l.s.NextOutboxAttempt(t.Context())
		if err != nil || !next.IsZero() {
			t.Errorf("next attempt of an empty outbox: %v, %v", next, err)
		}
		l.dialogWith(0, p, "never answered", "client: one", "client: two")
		l.at(time.Hour, func(tx *Tx) error {
			w, err := tx.WaitingDialogs(p)
			if err == nil && (len(w) != 1 || w[0].Waiting != 2) {
				t.Errorf("queue: %+v, want one dialog with 2 waiting", w)
			}
			return err
		})
	}},
	{"booleans in ORDER BY and NULL marks: active first, unread without a mark", func(t *testing.T, l *lifeScript, p int64) {
		l.dialogWith(0, p, "old active", "client: help", "agent: a", "agent: b")
		l.dialogWith(time.Hour, p, "new resolved", "client: help")
		l.at(2*time.Hour, func(tx *Tx) error { return tx.SetDialogStatus(l.byKey["new resolved"].ID, StatusResolved) })
		l.at(3*time.Hour, func(tx *Tx) error {
			list, err := tx.ClientDialogs(p, 27)
			if err == nil && (len(list) != 2 || list[0].ID != l.byKey["old active"].ID || list[0].Unread != 2 || list[1].Unread != 0) {
				t.Errorf("client's list: %+v", list)
			}
			return err
		})
	}},
	{"booleans in sums: ratings that helped", func(t *testing.T, l *lifeScript, p int64) {
		for i, helped := range []bool{true, false, true} {
			key := fmt.Sprint("rated", i)
			l.dialogWith(0, p, key, "client: help")
			l.at(time.Hour, func(tx *Tx) error {
				if err := tx.SetDialogStatus(l.byKey[key].ID, StatusResolved); err != nil {
					return err
				}
				d, err := tx.Dialog(l.byKey[key].ID)
				if err != nil {
					return err
				}
				return tx.RateDialog(d, 27, helped)
			})
		}
		l.at(2*time.Hour, func(tx *Tx) error {
			f, err := tx.ServiceFigures(p, l.t0, l.t0.Add(2*time.Hour))
			if err == nil && (f.Ratings != 3 || f.Helped != 2) {
				t.Errorf("ratings %d, helped %d; want 3, 2", f.Ratings, f.Helped)
			}
			return err
		})
	}},
	{"string comparison: member IDs differing in case are two portals", func(t *testing.T, l *lifeScript, p int64) {
		a, errA := l.s.EnsurePortal(t.Context(), "Member-ABC", "")
		b, errB := l.s.EnsurePortal(t.Context(), "member-abc", "")
		if err := errors.Join(errA, errB); err != nil || a.ID == b.ID {
			t.Errorf("portals %d and %d (%v)", a.ID, b.ID, err)
		}
	}},
	{"division: 1.5 s stays 1.5 s, not an integer's 1", func(t *testing.T, l *lifeScript, p int64) {
		l.open(0, p, "timed")
		l.event(0, "timed", LifeClientMessage)
		l.event(1500*time.Millisecond, "timed", LifeAgentAnswer)
		_, count, sum, err := l.s.ServiceTimeBuckets(t.Context(), TimeFirstResponse, []float64{1})
		if err != nil || count != 1 || sum != 1.5 {
			t.Errorf("first responses %d summing %v s (%v), want 1 of 1.5 s", count, sum, err)
		}
	}},
}

// TestSameMeaningOnBothEngines plays every engineCase; CI runs it on SQLite and on
// PostgreSQL (SUPPORTBOT_TEST_ENGINE=postgres).
func TestSameMeaningOnBothEngines(t *testing.T) {
	for _, c := range engineCases {
		t.Run(c.name, func(t *testing.T) {
			l := newLifeScript(t)
			p, err := l.s.EnsurePortal(t.Context(), "engine", "")
			if err != nil {
				t.Fatal(err)
			}
			c.play(t, l, p.ID)
		})
	}
}

// TestClaimSessionGone: when the session holding a store's claims is terminated, the
// store knows at the next question — Holding says no, and readiness (Ping) says the
// claims are gone — and it can claim again on a new session.
func TestClaimSessionGone(t *testing.T) {
	base := os.Getenv("SUPPORTBOT_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SUPPORTBOT_TEST_POSTGRES is not set: CI must run the PostgreSQL tests")
		}
		t.Skip("no PostgreSQL server: set SUPPORTBOT_TEST_POSTGRES to run this test")
	}
	s, err := Open(t.Context(), testSchema(t, base))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Claim(t.Context(), ClaimPortal, 3) || !s.Holding(t.Context(), ClaimPortal, 3) {
		t.Fatal("no claim")
	}
	pid, err := s.ClaimSessionPID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`SELECT pg_terminate_backend($1, 5000)`, pid); err != nil { // waits until it is gone
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("ready although the claims' session is gone")
	}
	if s.Holding(t.Context(), ClaimPortal, 3) {
		t.Error("still holding a claim whose session is gone")
	}
	if !s.Claim(t.Context(), ClaimPortal, 3) || s.Ping(t.Context()) != nil {
		t.Error("could not claim again on a new session")
	}
}

// TestTransient: which errors mean "the database is away, try again" — and which are
// about the work itself, where trying again would do it twice or never succeed.
func TestTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true}, // admin_shutdown
		{&pgconn.PgError{Code: "57P02"}, true}, // crash_shutdown
		{&pgconn.PgError{Code: "57P03"}, true}, // cannot_connect_now (starting up)
		{&pgconn.PgError{Code: "08006"}, true}, // connection_failure
		{fmt.Errorf("record: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), true},
		{fmt.Errorf("record: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{driver.ErrBadConn, true},
		// Lost more often than Update tries again: the database is too busy for now;
		// an event that met it must not be skipped as if it could never be stored.
		{&pgconn.PgError{Code: "40001"}, true},  // serialization_failure
		{&pgconn.PgError{Code: "40P01"}, true},  // deadlock_detected
		{&pgconn.PgError{Code: "23505"}, false}, // a key taken for good stays taken
		{&pgconn.PgError{Code: "22021"}, false}, // bad text: the same work fails again
		{sql.ErrNoRows, false},
		{errors.New("fn failed"), false},
		{nil, false},
	} {
		if got := Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
