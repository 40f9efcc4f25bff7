package storage

import "fmt"

// MarkProcessed records an event's key. It reports false when the key was already
// there: the event is a duplicate and must not be processed again.
func (tx *Tx) MarkProcessed(portalID int64, key, eventType string) (bool, error) {
	res, err := tx.exec(`INSERT INTO processed_events (portal_id, event_key, event_type, received_at)
		VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, portalID, key, eventType, millis(tx.now))
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", key, err)
	}
	return n == 1, nil
}
