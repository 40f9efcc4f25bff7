package storage

import "fmt"

// Kinds of dialog events: a dialog's life, from which the service figures come.
const (
	LifeOpened        = "opened"
	LifeClientMessage = "client_message"
	LifeAgentAnswer   = "agent_answer"
	LifeResolved      = "resolved"
	LifeReopened      = "reopened"
	LifeEscalated     = "escalated"
	LifeAutoClosed    = "auto_closed"
)

// AddDialogEvent records a moment of the dialog's life at the transaction's time,
// and the service times it ends.
func (tx *Tx) AddDialogEvent(d Dialog, kind string, actorID int64) error {
	at := millis(tx.now)
	id, _, err := tx.insert(`INSERT INTO dialog_events (portal_id, dialog_id, kind, actor_id, at) VALUES (?, ?, ?, ?, ?)`,
		d.PortalID, d.ID, kind, actorID, at)
	if err != nil {
		return fmt.Errorf("record %s of dialog %d: %w", kind, d.ID, err)
	}
	// The intervals it ends are measured now, in the same transaction (service.go),
	// and the client's wait follows (targets.go).
	if err := tx.deriveServiceTimes(d, kind, id, at); err != nil {
		return err
	}
	return tx.trackWait(d, kind, actorID, at)
}
