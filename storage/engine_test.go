package storage

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"testing"
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
