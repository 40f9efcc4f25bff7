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

// The storage tests run on SQLite, and on PostgreSQL too when SUPPORTBOT_TEST_POSTGRES
// names a server (as in CI). storagetest does the same for the other packages; it
// cannot be imported from here.

// openTest opens a fresh store on the engine under test.
func openTest(t *testing.T, opts ...Option) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	if base := os.Getenv("SUPPORTBOT_TEST_POSTGRES"); base != "" {
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
func testSchema(t *testing.T, base string) string {
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
