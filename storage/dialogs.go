package storage

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Dialog statuses.
const (
	StatusActive   = "active"
	StatusResolved = "resolved"
)

// Dialog is one question of one client, held in its own group chat.
type Dialog struct {
	ID             int64
	PortalID       int64
	Number         int
	ClientID       int64
	ClientName     string
	ChatID         int64 // 0 until the portal has answered the chat's creation
	ChatFailed     bool  // the chat could not be created: the dialog is withdrawn
	Title          string
	TitlePending   bool // a rename of ours has not reached the portal yet
	Status         string
	EscalatedAt    time.Time
	EscalatedBy    int64
	Owner          int64 // 0 = unowned (owners: /take, /assign, the first answer)
	Language       string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	LastActivityAt time.Time
	ResolvedAt     time.Time
}

// Active reports whether the dialog counts against the client's limit. A dialog
// whose chat could not be created is withdrawn: neither active nor resolved, and
// listed nowhere.
func (d Dialog) Active() bool { return d.Status == StatusActive && !d.ChatFailed }

// DialogSummary is a dialog as a list shows it.
type DialogSummary struct {
	Dialog
	Unread int // messages by others newer than the client's last-seen mark
}

const dialogColumns = `d.id, d.portal_id, d.number, d.client_id, d.chat_id, d.chat_failed, d.title, d.title_pending,
	d.status, d.escalated_at, d.language, d.created_at, d.updated_at, d.last_activity_at, d.resolved_at,
	d.client_name, COALESCE(d.escalated_by, 0), COALESCE(d.owner_id, 0)`

func scanDialog(row interface{ Scan(...any) error }, extra ...any) (Dialog, error) {
	var d Dialog
	var chatID sql.NullInt64
	var escalated, created, updated, activity, resolved sql.NullInt64
	var titlePending int
	dest := append([]any{&d.ID, &d.PortalID, &d.Number, &d.ClientID, &chatID, &d.ChatFailed, &d.Title, &titlePending,
		&d.Status, &escalated, &d.Language, &created, &updated, &activity, &resolved, &d.ClientName, &d.EscalatedBy, &d.Owner}, extra...)
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Dialog{}, ErrNotFound
		}
		return Dialog{}, err
	}
	d.ChatID = chatID.Int64
	d.TitlePending = titlePending > 0
	d.EscalatedAt = fromMillis(escalated)
	d.CreatedAt = fromMillis(created)
	d.UpdatedAt = fromMillis(updated)
	d.LastActivityAt = fromMillis(activity)
	d.ResolvedAt = fromMillis(resolved)
	return d, nil
}

// NewDialog describes a dialog to create.
type NewDialog struct {
	PortalID   int64
	ClientID   int64
	ClientName string
	Language   string
	// Title builds the default title from the number the dialog gets.
	Title func(number int) string
}

// CountActiveDialogs counts the client's active dialogs. Callers check the limit and
// create in the same transaction, so the count cannot go stale in between.
func (tx *Tx) CountActiveDialogs(portalID, clientID int64) (int, error) {
	var n int
	err := tx.queryRow(`SELECT COUNT(*) FROM dialogs WHERE portal_id = ? AND client_id = ? AND status = 'active' AND NOT chat_failed`,
		portalID, clientID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count active dialogs of %d: %w", clientID, err)
	}
	return n, nil
}

// CreateDialog adds an active dialog with the portal's next number.
func (tx *Tx) CreateDialog(nd NewDialog) (Dialog, error) {
	var number int
	if err := tx.queryRow(`SELECT COALESCE(MAX(number), 0) + 1 FROM dialogs WHERE portal_id = ?`, nd.PortalID).Scan(&number); err != nil {
		return Dialog{}, fmt.Errorf("create dialog: next number: %w", err)
	}
	now := millis(tx.now)
	id, _, err := tx.insert(`INSERT INTO dialogs (portal_id, number, client_id, client_name, title, status, language, created_at, updated_at, last_activity_at)
		VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)`,
		nd.PortalID, number, nd.ClientID, nd.ClientName, nd.Title(number), nd.Language, now, now, now)
	if err != nil {
		return Dialog{}, fmt.Errorf("create dialog №%d: %w", number, err)
	}
	return tx.Dialog(id)
}

// Dialog reads a dialog by its ID.
func (tx *Tx) Dialog(id int64) (Dialog, error) {
	d, err := scanDialog(tx.queryRow(`SELECT `+dialogColumns+` FROM dialogs d WHERE d.id = ?`, id))
	if err != nil {
		return Dialog{}, fmt.Errorf("dialog %d: %w", id, err)
	}
	return d, nil
}

// DialogByNumber reads the portal's dialog №number.
func (tx *Tx) DialogByNumber(portalID int64, number int) (Dialog, error) {
	d, err := scanDialog(tx.queryRow(`SELECT `+dialogColumns+` FROM dialogs d WHERE d.portal_id = ? AND d.number = ?`,
		portalID, number))
	if err != nil {
		return Dialog{}, fmt.Errorf("dialog №%d: %w", number, err)
	}
	return d, nil
}

// DialogByChat reads the dialog held in a Bitrix24 chat.
func (tx *Tx) DialogByChat(portalID, chatID int64) (Dialog, error) {
	d, err := scanDialog(tx.queryRow(`SELECT `+dialogColumns+` FROM dialogs d WHERE d.portal_id = ? AND d.chat_id = ?`,
		portalID, chatID))
	if err != nil {
		return Dialog{}, fmt.Errorf("dialog in chat %d: %w", chatID, err)
	}
	return d, nil
}

// OpenDialogs lists the portal's open dialogs (Dialog.Active: active, the chat not
// failed), by number. A role change reads them in the writer, so it costs what the
// open ones cost, not the portal's whole history.
func (tx *Tx) OpenDialogs(portalID int64) ([]Dialog, error) {
	rows, err := tx.query(`SELECT `+dialogColumns+` FROM dialogs d
		WHERE d.portal_id = ? AND d.status = 'active' AND NOT d.chat_failed ORDER BY d.number`, portalID)
	list, err := collect(rows, err, func(r *sql.Rows) (Dialog, error) { return scanDialog(r) })
	if err != nil {
		return nil, fmt.Errorf("list open dialogs of portal %d: %w", portalID, err)
	}
	return list, nil
}

// ClientDialogs lists a client's dialogs as the list shows them: active first, then
// resolved, each newest activity first, with unread counts; withdrawn ones are not
// listed.
func (tx *Tx) ClientDialogs(portalID, clientID int64) ([]DialogSummary, error) {
	rows, err := tx.query(clientDialogsSQL, portalID, clientID)
	list, err := collect(rows, err, func(r *sql.Rows) (s DialogSummary, err error) {
		s.Dialog, err = scanDialog(r, &s.Unread)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("list dialogs of %d: %w", clientID, err)
	}
	return list, nil
}

// waitingSQL is the agents' queue. Each active dialog's last agent message is found
// once, walking back from its newest message (messages_by_dialog), and the client's
// messages after it are one range of that index: the cost is the dialogs and what
// their clients wrote since an answer, never a look-up per message (which had made a
// flood of 20,000 unanswered messages take minutes). A deleted agent message still
// counts as the answer, as it always has.
const waitingSQL = `WITH answered AS (
		SELECT d.id AS dialog_id, COALESCE((SELECT a.id FROM messages a WHERE a.dialog_id = d.id AND a.author_role = 'agent'
			ORDER BY a.id DESC LIMIT 1), 0) AS last_answer
		FROM dialogs d WHERE d.portal_id = ? AND d.status = 'active' AND NOT d.chat_failed),
	pending AS (
		SELECT m.dialog_id, COUNT(*) AS n, MIN(m.created_at) AS since
		FROM answered x JOIN messages m ON m.dialog_id = x.dialog_id AND m.id > x.last_answer
		WHERE m.author_role = 'client' AND m.deleted_at IS NULL
		GROUP BY m.dialog_id)
	SELECT ` + dialogColumns + `, p.n, p.since FROM pending p JOIN dialogs d ON d.id = p.dialog_id
	ORDER BY p.since, d.number`

// unreadSQL counts, for the dialog d, messages by others than the client (bot notices
// excluded) after the client's last-seen mark.
const unreadSQL = `SELECT COUNT(*) FROM messages m
	WHERE m.dialog_id = d.id AND m.deleted_at IS NULL AND m.author_role IN ('agent', 'other')
	AND m.id > COALESCE((SELECT l.message_seq FROM last_seen l WHERE l.dialog_id = d.id AND l.user_id = d.client_id), 0)`

// clientDialogsSQL is "all chats": each dialog's unread count is one range of
// messages_by_dialog, the messages after the client's mark (which their own messages
// move), so it costs what others wrote since, not the dialog's length.
const clientDialogsSQL = `SELECT ` + dialogColumns + `, (` + unreadSQL + `) FROM dialogs d
	WHERE d.portal_id = ? AND d.client_id = ? AND NOT d.chat_failed
	ORDER BY d.status = 'active' DESC, d.last_activity_at DESC, d.id DESC`

// Unread is the client's unread count for one dialog.
func (tx *Tx) Unread(dialogID int64) (int, error) {
	var n int
	if err := tx.queryRow(`SELECT (`+unreadSQL+`) FROM dialogs d WHERE d.id = ?`, dialogID).Scan(&n); err != nil {
		return 0, fmt.Errorf("unread of dialog %d: %w", dialogID, err)
	}
	return n, nil
}

// SetDialogChat records the chat the portal created for the dialog.
func (tx *Tx) SetDialogChat(dialogID, chatID int64) error {
	_, err := tx.exec(`UPDATE dialogs SET chat_id = ?, chat_failed = FALSE, updated_at = ? WHERE id = ?`,
		chatID, millis(tx.now), dialogID)
	if err != nil {
		return fmt.Errorf("set chat %d of dialog %d: %w", chatID, dialogID, err)
	}
	return nil
}

// MarkDialogChatFailed records that the dialog's chat could not be created.
func (tx *Tx) MarkDialogChatFailed(dialogID int64) error {
	_, err := tx.exec(`UPDATE dialogs SET chat_failed = TRUE, updated_at = ? WHERE id = ?`, millis(tx.now), dialogID)
	if err != nil {
		return fmt.Errorf("mark chat of dialog %d failed: %w", dialogID, err)
	}
	return nil
}

// RenameDialog stores a new title. byBot means the bot will push it to the portal
// (a rename of the chat); until that has finished, titles reported by events
// are older than ours and are not taken (see TitleSent).
func (tx *Tx) RenameDialog(dialogID int64, title string, byBot bool) error {
	pending := 0
	if byBot {
		pending = 1
	}
	_, err := tx.exec(`UPDATE dialogs SET title = ?, title_pending = title_pending + ?, updated_at = ? WHERE id = ?`,
		title, pending, millis(tx.now), dialogID)
	if err != nil {
		return fmt.Errorf("rename dialog %d: %w", dialogID, err)
	}
	return nil
}

// TitleSent records that one of the bot's renames has finished (sent or given up).
func (tx *Tx) TitleSent(dialogID int64) error {
	_, err := tx.exec(`UPDATE dialogs SET title_pending = CASE WHEN title_pending > 0 THEN title_pending - 1 ELSE 0 END WHERE id = ?`, dialogID)
	if err != nil {
		return fmt.Errorf("title of dialog %d sent: %w", dialogID, err)
	}
	return nil
}

// SetDialogStatus makes a dialog active or resolved.
func (tx *Tx) SetDialogStatus(dialogID int64, status string) error {
	now := millis(tx.now)
	// resolved_at keeps the last resolution after a reopen: a rating pressed later
	// still knows which resolution it judges.
	_, err := tx.exec(`UPDATE dialogs SET status = ?, resolved_at = CASE WHEN ? = 'resolved' THEN ? ELSE resolved_at END,
		updated_at = ?, last_activity_at = ? WHERE id = ?`,
		status, status, now, now, now, dialogID)
	if err != nil {
		return fmt.Errorf("set dialog %d %s: %w", dialogID, status, err)
	}
	return nil
}

// TouchDialog moves the dialog's last activity to now.
func (tx *Tx) TouchDialog(dialogID int64) error {
	_, err := tx.exec(`UPDATE dialogs SET last_activity_at = ? WHERE id = ?`, millis(tx.now), dialogID)
	if err != nil {
		return fmt.Errorf("touch dialog %d: %w", dialogID, err)
	}
	return nil
}

// EscalateDialog marks a dialog as handed to technical support.
func (tx *Tx) EscalateDialog(dialogID, agentID int64) error {
	now := millis(tx.now)
	_, err := tx.exec(`UPDATE dialogs SET escalated_at = COALESCE(escalated_at, ?), escalated_by = COALESCE(escalated_by, ?),
		updated_at = ? WHERE id = ?`, now, agentID, now, dialogID)
	if err != nil {
		return fmt.Errorf("escalate dialog %d: %w", dialogID, err)
	}
	return nil
}

// WaitingDialog is an active dialog whose client waits for an answer.
type WaitingDialog struct {
	Dialog
	Waiting      int       // the client's messages since the last agent message
	WaitingSince time.Time // the first of them
}

// WaitingDialogs lists the portal's active dialogs where the client has written since
// the last agent message, longest waiting first: the agents' queue.
func (tx *Tx) WaitingDialogs(portalID int64) ([]WaitingDialog, error) {
	rows, err := tx.query(waitingSQL, portalID)
	list, err := collect(rows, err, func(r *sql.Rows) (w WaitingDialog, err error) {
		var since sql.NullInt64
		w.Dialog, err = scanDialog(r, &w.Waiting, &since)
		w.WaitingSince = fromMillis(since)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("waiting dialogs: %w", err)
	}
	return list, nil
}
