package storage

import (
	"context"
	"fmt"
)

// Exports only the tests use.

// RowCounts are the sizes of the tables that grow with traffic, for housekeeping's
// tests.
func (s *Store) RowCounts(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	for _, table := range []string{"outbox", "processed_events", "stray_messages", "messages", "dialogs"} {
		var n int
		// The table names are our own constants.
		if err := s.readRow(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", table, err)
		}
		out[table] = n
	}
	return out, nil
}
