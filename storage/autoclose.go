package storage

import (
	"database/sql"
	"fmt"
	"time"
)

// AutoClose is when a dialog closes by itself: After of the client's silence since an
// agent's answer, with the client warned Warning before (0: no warning).
type AutoClose struct {
	After, Warning time.Duration
}

// The rules below are SQL over the dialog's own row (dialogs.*, never an alias), so
// that listing what is due and claiming a dialog test the very same condition.

// autoCloseSQL holds the rules. Arguments, by number (each query names all of its
// own, as PostgreSQL requires): ?1 the transaction's time, ?2 how long the silence
// must have lasted (After - Warning for a warning, After for a close), ?3 the
// characters an agent's command may start after, ?4 Warning (for a close), then the
// dialog (?4 for a warning, ?5 for a close); times in milliseconds.
type autoCloseSQL struct{ warningDue, closeDue string }

var autoCloseSQLite, autoClosePostgres = buildAutoCloseSQL("MAX"), buildAutoCloseSQL("GREATEST")

// buildAutoCloseSQL writes the rules with the engine's maximum of several values.
//
// silence is when the dialog's current silence began: its last word, if that is an
// agent's answer, or else NULL — the client spoke last, or nobody has — so that the
// dialog is never due; but no earlier than the client's "keep it open" or an agent's
// reopening. The last word is the last message by the client or an agent that is not
// deleted; an agent's command ("/rename", "/queue", typed in the dialog) is no answer
// to the client, who may still be waiting.
//
// The NULL comes from the row the maximum is taken over, never from one of its
// arguments: PostgreSQL's GREATEST skips a NULL argument (GREATEST(0, 0, NULL) = 0)
// where SQLite's MAX returns NULL, and a NULL passed in would make every waiting
// dialog due on PostgreSQL alone (issue 19). So the maximum is the one column of a
// subquery that finds no row when the last word is not an agent's answer, and every
// argument is NOT NULL.
//
// closable: dialogs auto-close may touch. An escalated dialog waits for technical
// support, whose work takes its own time; a portal that removed the bot could not
// hear the warning.
//
// A warning is due when the silence has lasted After - Warning and has not been
// warned about yet (a warning before the silence began was about another one). A
// close is due when it has lasted After and, unless there is no warning, was warned
// about at least Warning ago, so a client whose warning came late (the bot was down)
// still gets the whole of it.
func buildAutoCloseSQL(greatest string) autoCloseSQL {
	silence := `(SELECT ` + greatest + `(a.created_at, COALESCE(dialogs.auto_close_kept_at, 0),
	COALESCE((SELECT MAX(e.at) FROM dialog_events e WHERE e.dialog_id = dialogs.id AND e.kind = '` + LifeReopened + `'), 0))
	FROM messages a WHERE a.author_role = 'agent' AND a.id = (
		SELECT MAX(m.id) FROM messages m WHERE m.dialog_id = dialogs.id AND m.deleted_at IS NULL
		AND (m.author_role = 'client' OR (m.author_role = 'agent' AND LTRIM(m.text, ?3) NOT LIKE '/%'))))`
	closable := `dialogs.status = 'active' AND NOT dialogs.chat_failed AND dialogs.chat_id IS NOT NULL
	AND dialogs.escalated_at IS NULL
	AND dialogs.portal_id IN (SELECT p.id FROM portals p WHERE ` + portalLive("p") + `)`
	return autoCloseSQL{
		warningDue: closable + ` AND ` + silence + ` + CAST(?2 AS BIGINT) <= CAST(?1 AS BIGINT)
	AND COALESCE(dialogs.auto_close_warned_at, 0) <= ` + silence,
		closeDue: closable + ` AND ` + silence + ` + CAST(?2 AS BIGINT) <= CAST(?1 AS BIGINT)
	AND (CAST(?4 AS BIGINT) = 0 OR (dialogs.auto_close_warned_at > ` + silence +
			` AND dialogs.auto_close_warned_at + CAST(?4 AS BIGINT) <= CAST(?1 AS BIGINT)))`,
	}
}

func (tx *Tx) autoCloseSQL() autoCloseSQL {
	if tx.pg {
		return autoClosePostgres
	}
	return autoCloseSQLite
}

const commandLead = " ,:\t\n\r"

func (tx *Tx) warningArgs(ac AutoClose, id ...any) []any {
	return append([]any{millis(tx.now), (ac.After - ac.Warning).Milliseconds(), commandLead}, id...)
}

func (tx *Tx) closeArgs(ac AutoClose, id ...any) []any {
	return append([]any{millis(tx.now), ac.After.Milliseconds(), commandLead, ac.Warning.Milliseconds()}, id...)
}

// DueAutoClose lists, by ID, the dialogs whose client is due to be warned and those
// due to be closed, as of the transaction's time.
func (tx *Tx) DueAutoClose(ac AutoClose) (warn, closing []int64, err error) {
	if ac.After <= 0 {
		return nil, nil, nil
	}
	ids := func(r *sql.Rows) (id int64, err error) { return id, r.Scan(&id) }
	if ac.Warning > 0 {
		rows, err := tx.query(`SELECT dialogs.id FROM dialogs WHERE `+tx.autoCloseSQL().warningDue+` ORDER BY dialogs.id`, tx.warningArgs(ac)...)
		if warn, err = collect(rows, err, ids); err != nil {
			return nil, nil, fmt.Errorf("dialogs due for an auto-close warning: %w", err)
		}
	}
	rows, err := tx.query(`SELECT dialogs.id FROM dialogs WHERE `+tx.autoCloseSQL().closeDue+` ORDER BY dialogs.id`, tx.closeArgs(ac)...)
	if closing, err = collect(rows, err, ids); err != nil {
		return nil, nil, fmt.Errorf("dialogs due for an auto-close: %w", err)
	}
	return warn, closing, nil
}

// ClaimAutoCloseWarning records that the client of the dialog is being warned, if a
// warning is due. Only one transaction can win it per silence (the update re-tests
// the condition on the row it changes), so the warning queued with it is sent once
// however many sweeps, restarts or replicas race for it.
func (tx *Tx) ClaimAutoCloseWarning(dialogID int64, ac AutoClose) (bool, error) {
	if ac.After <= 0 || ac.Warning <= 0 {
		return false, nil
	}
	res, err := tx.exec(`UPDATE dialogs SET auto_close_warned_at = CAST(?1 AS BIGINT) WHERE dialogs.id = ?4 AND `+tx.autoCloseSQL().warningDue,
		tx.warningArgs(ac, dialogID)...)
	if err != nil {
		return false, fmt.Errorf("warn of the auto-close of dialog %d: %w", dialogID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ClaimAutoClose resolves the dialog if its auto-close is due; like
// ClaimAutoCloseWarning, only one transaction wins it.
func (tx *Tx) ClaimAutoClose(dialogID int64, ac AutoClose) (bool, error) {
	if ac.After <= 0 {
		return false, nil
	}
	res, err := tx.exec(`UPDATE dialogs SET status = 'resolved', resolved_at = CAST(?1 AS BIGINT), updated_at = CAST(?1 AS BIGINT),
		last_activity_at = CAST(?1 AS BIGINT) WHERE dialogs.id = ?5 AND `+tx.autoCloseSQL().closeDue, tx.closeArgs(ac, dialogID)...)
	if err != nil {
		return false, fmt.Errorf("auto-close dialog %d: %w", dialogID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// KeepOpen starts the dialog's silence again now: the client asked to keep it open.
func (tx *Tx) KeepOpen(dialogID int64) error {
	if _, err := tx.exec(`UPDATE dialogs SET auto_close_kept_at = ? WHERE id = ?`, millis(tx.now), dialogID); err != nil {
		return fmt.Errorf("keep dialog %d open: %w", dialogID, err)
	}
	return nil
}
