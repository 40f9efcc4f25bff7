// Package storagetest opens real stores for tests: a SQLite file in the test's
// temporary directory, closed when the test ends.
package storagetest

import (
	"context"
	"path/filepath"
	"testing"

	"supportbot/storage"
)

// Open opens a fresh store in t's temporary directory.
func Open(t testing.TB, opts ...storage.Option) *storage.Store {
	t.Helper()
	return OpenAt(t, filepath.Join(t.TempDir(), "test.db"), opts...)
}

// OpenAt opens the store at path (creating it if needed), for tests that share a
// database with a running bot or reopen one; it is closed when the test ends.
func OpenAt(t testing.TB, path string, opts ...storage.Option) *storage.Store {
	t.Helper()
	s, err := storage.Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
