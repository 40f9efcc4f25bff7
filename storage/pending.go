package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// PendingEvent is a posted event kept until the portal confirms its author (see
// migration 0015): never applied before.
type PendingEvent struct {
	ID         int64
	PortalID   int64
	Type       string
	Body       []byte // as posted; it holds the author's access token
	ReceivedAt time.Time
	Attempts   int
}

// KeepPending stores a posted event to be checked again at next, unless the portal
// already has limit events waiting: then it reports false and stores nothing.
func (tx *Tx) KeepPending(portalID int64, eventType string, body []byte, next time.Time, limit int) (bool, error) {
	var n int
	if err := tx.queryRow(`SELECT COUNT(*) FROM pending_events WHERE portal_id = ?`, portalID).Scan(&n); err != nil {
		return false, fmt.Errorf("count the events awaiting confirmation: %w", err)
	}
	if n >= limit {
		return false, nil
	}
	_, err := tx.exec(`INSERT INTO pending_events (portal_id, event_type, body, received_at, attempts, next_at) VALUES (?, ?, ?, ?, 0, ?)`,
		portalID, eventType, body, millis(tx.now), millis(next))
	if err != nil {
		return false, fmt.Errorf("keep an event awaiting confirmation: %w", err)
	}
	return true, nil
}

// DuePending lists up to n kept events whose next check is due, oldest due first.
func (s *Store) DuePending(ctx context.Context, n int) ([]PendingEvent, error) {
	rows, err := s.readRows(ctx, `SELECT id, portal_id, event_type, body, received_at, attempts FROM pending_events
		WHERE next_at <= ? ORDER BY next_at, id LIMIT ?`, millis(s.Now()), n)
	return collect(rows, err, func(r *sql.Rows) (e PendingEvent, err error) {
		var received sql.NullInt64
		err = r.Scan(&e.ID, &e.PortalID, &e.Type, &e.Body, &received, &e.Attempts)
		e.ReceivedAt = fromMillis(received)
		return e, err
	})
}

// DropPending deletes a kept event: applied, refused or given up. It reports false
// when it was gone already (done by another replica).
func (tx *Tx) DropPending(id int64) (bool, error) {
	res, err := tx.exec(`DELETE FROM pending_events WHERE id = ?`, id)
	if err != nil {
		return false, fmt.Errorf("drop kept event %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// PostponePending counts a failed check of a kept event and sets its next one.
func (tx *Tx) PostponePending(id int64, next time.Time) error {
	if _, err := tx.exec(`UPDATE pending_events SET attempts = attempts + 1, next_at = ? WHERE id = ?`, millis(next), id); err != nil {
		return fmt.Errorf("postpone kept event %d: %w", id, err)
	}
	return nil
}

// KeptEvents is how many events are kept awaiting confirmation, on every portal:
// the supportbot_kept_events gauge.
func (s *Store) KeptEvents(ctx context.Context) (int, error) {
	var n int
	err := s.readRow(ctx, `SELECT COUNT(*) FROM pending_events`).Scan(&n)
	return n, err
}
