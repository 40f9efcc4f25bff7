// Package storagetest opens real stores for tests: a SQLite file in the test's
// temporary directory, or, when SUPPORTBOT_TEST_POSTGRES names a PostgreSQL server
// (as CI does), a schema of its own on that server; closed and dropped when the test
// ends. The same tests so run on both engines.
package storagetest

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to create the schemas

	"supportbot/storage"
)

// PostgresEnv names the server the tests use instead of SQLite files, e.g.
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
const PostgresEnv = "SUPPORTBOT_TEST_POSTGRES"

// Postgres is the server of PostgresEnv, or "".
func Postgres() string { return os.Getenv(PostgresEnv) }

// NeedPostgres skips a test that only means something on PostgreSQL (replicas)
// when no server is given, saying how to give one; under CI=true it fails instead.
func NeedPostgres(t testing.TB) string {
	t.Helper()
	if u := Postgres(); u != "" {
		return u
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set: CI must run the PostgreSQL tests (.ci/run starts a server)", PostgresEnv)
	}
	t.Skipf("no PostgreSQL server: set %s=postgres://… to run this test (.ci/run starts one)", PostgresEnv)
	return ""
}

// Open opens a fresh store in t's temporary directory (or schema).
func Open(t testing.TB, opts ...storage.Option) *storage.Store {
	t.Helper()
	return OpenAt(t, filepath.Join(t.TempDir(), "test.db"), opts...)
}

// OpenSQLite opens a fresh SQLite file whatever PostgresEnv says, for the tests of
// what only SQLite has (a page quota standing in for a full disk).
func OpenSQLite(t testing.TB, opts ...storage.Option) *storage.Store {
	t.Helper()
	s, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// OpenAt opens the store at path (creating it if needed), for tests that share a
// database with a running bot or reopen one; it is closed when the test ends.
func OpenAt(t testing.TB, path string, opts ...storage.Option) *storage.Store {
	t.Helper()
	s, err := storage.Open(context.Background(), Location(t, path), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Location is where a test's database at path lives: path itself, or, with
// PostgresEnv set, the URL of a schema named after path on that server (the same
// path, the same schema), dropped when the test that first asked ends.
func Location(t testing.TB, path string) string {
	t.Helper()
	base := Postgres()
	if base == "" || storage.IsPostgres(path) {
		return path
	}
	h := fnv.New64a()
	h.Write([]byte(path))
	schema := fmt.Sprintf("t%x", h.Sum64())
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	mu.Lock()
	defer mu.Unlock()
	if !created[schema] {
		db := admin(t, base)
		if _, err := db.Exec(`CREATE SCHEMA IF NOT EXISTS ` + schema); err != nil {
			t.Fatalf("create schema: %v", err)
		}
		created[schema] = true
		t.Cleanup(func() {
			mu.Lock()
			delete(created, schema)
			mu.Unlock()
			db.Exec(`DROP SCHEMA IF EXISTS ` + schema + ` CASCADE`)
		})
	}
	return u.String()
}

var (
	mu      sync.Mutex
	created = map[string]bool{}
	admins  = map[string]*sql.DB{}
)

// admin is a connection pool to the server, shared by the tests of a package.
func admin(t testing.TB, base string) *sql.DB {
	t.Helper()
	if db := admins[base]; db != nil {
		return db
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	db.SetMaxOpenConns(2)
	admins[base] = db
	return db
}
