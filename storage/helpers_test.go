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

// dialogEvent is one moment of a dialog's life.
type dialogEvent struct {
	ID       int64
	PortalID int64
	DialogID int64
	Kind     string
	ActorID  int64 // who; 0 for the bot
	At       time.Time
}

// dialogEvents lists a dialog's life, oldest first.
func (tx *Tx) dialogEvents(dialogID int64) ([]dialogEvent, error) {
	rows, err := tx.query(`SELECT id, portal_id, dialog_id, kind, actor_id, at FROM dialog_events WHERE dialog_id = ? ORDER BY id`, dialogID)
	return collect(rows, err, func(r *sql.Rows) (e dialogEvent, err error) {
		var at sql.NullInt64
		err = r.Scan(&e.ID, &e.PortalID, &e.DialogID, &e.Kind, &e.ActorID, &at)
		e.At = fromMillis(at)
		return e, err
	})
}
