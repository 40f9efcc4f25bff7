package storage

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Access request states.
const (
	AccessPending  = "pending"
	AccessGranted  = "granted"
	AccessDeclined = "declined"
)

// AccessRequest asks a client to let technical support into their portal.
type AccessRequest struct {
	ID          int64
	DialogID    int64
	ClientID    int64
	RequestedBy int64
	Status      string
	MessageID   int64
	RequestedAt time.Time
	DecidedBy   int64
	DecidedAt   time.Time
}

const accessColumns = `id, dialog_id, client_id, requested_by, status, COALESCE(message_id, 0), requested_at,
	COALESCE(decided_by, 0), decided_at`

func scanAccess(row interface{ Scan(...any) error }) (AccessRequest, error) {
	var r AccessRequest
	var requested, decided sql.NullInt64
	err := row.Scan(&r.ID, &r.DialogID, &r.ClientID, &r.RequestedBy, &r.Status, &r.MessageID, &requested, &r.DecidedBy, &decided)
	if errors.Is(err, sql.ErrNoRows) {
		return AccessRequest{}, ErrNotFound
	}
	r.RequestedAt, r.DecidedAt = fromMillis(requested), fromMillis(decided)
	return r, err
}

// CreateAccessRequest records a pending request for a dialog.
func (tx *Tx) CreateAccessRequest(dialogID, clientID, agentID int64) (AccessRequest, error) {
	id, _, err := tx.insert(`INSERT INTO access_requests (dialog_id, client_id, requested_by, requested_at) VALUES (?, ?, ?, ?)`,
		dialogID, clientID, agentID, millis(tx.now))
	if err != nil {
		return AccessRequest{}, fmt.Errorf("access request for dialog %d: %w", dialogID, err)
	}
	return tx.AccessRequest(id)
}

// AccessRequest reads a request by ID.
func (tx *Tx) AccessRequest(id int64) (AccessRequest, error) {
	r, err := scanAccess(tx.queryRow(`SELECT `+accessColumns+` FROM access_requests WHERE id = ?`, id))
	if err != nil {
		return AccessRequest{}, fmt.Errorf("access request %d: %w", id, err)
	}
	return r, nil
}

// PendingAccessRequest returns the dialog's request still waiting for an answer.
func (tx *Tx) PendingAccessRequest(dialogID int64) (AccessRequest, error) {
	r, err := scanAccess(tx.queryRow(`SELECT `+accessColumns+` FROM access_requests WHERE dialog_id = ? AND status = 'pending'`, dialogID))
	if err != nil {
		return AccessRequest{}, fmt.Errorf("pending access request of dialog %d: %w", dialogID, err)
	}
	return r, nil
}

// DecideAccessRequest records the client's answer. It reports false, changing
// nothing, when the request was already answered.
func (tx *Tx) DecideAccessRequest(id int64, status string, by int64) (bool, error) {
	res, err := tx.exec(`UPDATE access_requests SET status = ?, decided_by = ?, decided_at = ? WHERE id = ? AND status = 'pending'`,
		status, by, millis(tx.now), id)
	if err != nil {
		return false, fmt.Errorf("decide access request %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SetAccessRequestMessage records which message carries the request's buttons.
func (tx *Tx) SetAccessRequestMessage(id, messageID int64) error {
	_, err := tx.exec(`UPDATE access_requests SET message_id = ? WHERE id = ?`, messageID, id)
	if err != nil {
		return fmt.Errorf("access request %d message: %w", id, err)
	}
	return nil
}

// Rating is a client's verdict on one resolution of a dialog.
type Rating struct {
	DialogID   int64
	ResolvedAt time.Time
	UserID     int64
	Helped     bool
	RatedAt    time.Time
}

// RateDialog records the client's rating of the dialog's current resolution; rating
// again replaces it.
func (tx *Tx) RateDialog(d Dialog, userID int64, helped bool) error {
	if d.ResolvedAt.IsZero() {
		return fmt.Errorf("rate dialog %d: it was never resolved", d.ID)
	}
	_, err := tx.exec(`INSERT INTO ratings (dialog_id, resolved_at, user_id, helped, rated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (dialog_id, resolved_at) DO UPDATE SET helped = excluded.helped, user_id = excluded.user_id, rated_at = excluded.rated_at`,
		d.ID, millis(d.ResolvedAt), userID, helped, millis(tx.now))
	if err != nil {
		return fmt.Errorf("rate dialog %d: %w", d.ID, err)
	}
	return nil
}

// Ratings lists a dialog's ratings, oldest resolution first.
func (tx *Tx) Ratings(dialogID int64) ([]Rating, error) {
	rows, err := tx.query(`SELECT dialog_id, resolved_at, user_id, helped, rated_at FROM ratings WHERE dialog_id = ? ORDER BY resolved_at`, dialogID)
	list, err := collect(rows, err, func(row *sql.Rows) (r Rating, err error) {
		var resolved, rated sql.NullInt64
		err = row.Scan(&r.DialogID, &resolved, &r.UserID, &r.Helped, &rated)
		r.ResolvedAt, r.RatedAt = fromMillis(resolved), fromMillis(rated)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("ratings of dialog %d: %w", dialogID, err)
	}
	return list, nil
}
