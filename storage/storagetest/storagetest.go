// Package storagetest opens real stores for tests: a SQLite file in the test's
// temporary directory, or, with SUPPORTBOT_TEST_ENGINE=postgres, a schema of its own
// on the PostgreSQL server SUPPORTBOT_TEST_POSTGRES names; closed and dropped when
// the test ends. CI runs the tests once on each engine; the tests of replicas, which
// only PostgreSQL has, run whenever a server is named.
package storagetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to create the schemas

	"supportbot/storage"
)

// PostgresEnv names a PostgreSQL server for the tests, e.g.
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; EngineEnv=postgres
// runs every test's database there instead of in a SQLite file.
const (
	PostgresEnv = "SUPPORTBOT_TEST_POSTGRES"
	EngineEnv   = "SUPPORTBOT_TEST_ENGINE"
)

// Postgres is the server every test's database lives on, or "" for SQLite files.
func Postgres() string {
	if os.Getenv(EngineEnv) != "postgres" {
		return ""
	}
	return os.Getenv(PostgresEnv)
}

// NeedPostgres skips a test that only means something on PostgreSQL (replicas)
// when no server is given, saying how to give one; under CI=true it fails instead.
func NeedPostgres(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(PostgresEnv); u != "" {
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
	if Postgres() == "" {
		return path
	}
	return OnPostgres(t, path)
}

// OnPostgres is the URL of the schema named after path on the server of
// PostgresEnv, whichever engine the other tests use: for the tests of replicas.
func OnPostgres(t testing.TB, path string) string {
	t.Helper()
	base := NeedPostgres(t)
	if storage.IsPostgres(path) {
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

// Dialogs lists every dialog of a portal, by number, withdrawn and resolved ones
// included, as the bot reads them one by one (Tx.DialogByNumber): numbers run from 1
// without gaps.
func Dialogs(tx *storage.Tx, portalID int64) ([]storage.Dialog, error) {
	var list []storage.Dialog
	for n := 1; ; n++ {
		d, err := tx.DialogByNumber(portalID, n)
		if errors.Is(err, storage.ErrNotFound) {
			return list, nil
		}
		if err != nil {
			return nil, err
		}
		list = append(list, d)
	}
}

// Rows reads the database at location (a SQLite file, or a schema's URL as Location
// gives it) with a connection and SQL of the test's own, so that what a test finds
// on disk is not read by the code under test. Parameters are written $1, $2…, which
// both engines take. Each row is its columns printed with %v and joined by spaces,
// NULL as "NULL".
func Rows(tb testing.TB, location, query string, args ...any) []string {
	tb.Helper()
	db := own(tb, location, true)
	defer db.Close()
	rows, err := db.Query(query, args...)
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		words := make([]string, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				words[i] = "NULL"
			case []byte:
				words[i] = string(v)
			default:
				words[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(words, " "))
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// Exec changes the database at location behind the store's back, as Rows reads it:
// for the tests of what the store must survive (a damaged row, a missing table).
func Exec(tb testing.TB, location, query string, args ...any) {
	tb.Helper()
	db := own(tb, location, false)
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
}

// own is a connection of the test's own to the database at location; beside a running
// bot it waits for the bot's writer, and, readOnly, never writes.
func own(tb testing.TB, location string, readOnly bool) *sql.DB {
	tb.Helper()
	driver, dsn := "pgx", location
	if !storage.IsPostgres(location) {
		driver, dsn = "sqlite", location+"?_pragma=busy_timeout(10000)"
		if readOnly {
			dsn += "&_pragma=query_only(ON)"
		}
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// Count is the single number query reads, as Rows reads it.
func Count(tb testing.TB, location, query string, args ...any) int {
	tb.Helper()
	rows := Rows(tb, location, query, args...)
	if len(rows) != 1 {
		tb.Fatalf("%s: %d rows, want one number", query, len(rows))
	}
	n, err := strconv.Atoi(rows[0])
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

// TerminateClaims ends the session holding store's claims on the PostgreSQL database
// at url, as an operator's pg_terminate_backend would, and waits until it is gone;
// the rest of the store's pool lives on.
func TerminateClaims(tb testing.TB, store *storage.Store, url string) {
	tb.Helper()
	pid, err := store.ClaimSessionPID(context.Background())
	if err != nil || pid == 0 {
		tb.Fatalf("the claim session: %d, %v", pid, err)
	}
	admin, err := sql.Open("pgx", url)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`SELECT pg_terminate_backend($1, 5000)`, pid); err != nil {
		tb.Fatal(err)
	}
}
