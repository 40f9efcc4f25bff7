package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
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

// ServiceTime is one measured interval of a dialog.
type ServiceTime struct {
	DialogID int64
	Kind     string
	Started  time.Time
	Ended    time.Time
	Duration time.Duration
}

// ServiceTimes lists a dialog's measured intervals in the order they ended.
func (tx *Tx) ServiceTimes(dialogID int64) ([]ServiceTime, error) {
	rows, err := tx.query(`SELECT dialog_id, kind, started_at, ended_at, seconds FROM service_times WHERE dialog_id = ? ORDER BY id`, dialogID)
	list, err := collect(rows, err, func(r *sql.Rows) (st ServiceTime, err error) {
		var started, ended sql.NullInt64
		var seconds float64
		err = r.Scan(&st.DialogID, &st.Kind, &started, &ended, &seconds)
		st.Started, st.Ended, st.Duration = fromMillis(started), fromMillis(ended), fromSeconds(seconds)
		return st, err
	})
	if err != nil {
		return nil, fmt.Errorf("service times of dialog %d: %w", dialogID, err)
	}
	return list, nil
}
