package storage

import (
	"database/sql"
	"fmt"
	"time"
)

// Roles, one vocabulary for two uses: a person's roles on a portal (the roles
// table: agent, tech, client) and the role of a message's author in a transcript
// (messages.author_role: client, agent, other, bot). An agent is the same word in both.
const (
	RoleClient = "client" // may open dialogs, besides the portal's administrators; wrote as the dialog's client
	RoleAgent  = "agent"  // answers in the dialogs
	RoleTech   = "tech"   // the second line: joins a dialog when it is escalated
	RoleOther  = "other"  // another member of the chat (authors only)
	RoleBot    = "bot"    // the bot itself (authors only)
)

// Message is one message of a dialog's transcript.
type Message struct {
	Seq             int64 // our order; last-seen marks compare against it
	DialogID        int64
	BitrixMessageID int64
	AuthorID        int64
	AuthorRole      string
	Text            string
	CreatedAt       time.Time
	EditedAt        time.Time
	DeletedAt       time.Time
}

// AddMessage appends a message to the transcript. A message already there (same
// Bitrix24 ID) is left alone and added is false.
func (tx *Tx) AddMessage(m Message) (seq int64, added bool, err error) {
	seq, added, err = tx.insert(`INSERT INTO messages (dialog_id, bitrix_message_id, author_id, author_role, text, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dialog_id, bitrix_message_id) DO NOTHING`,
		m.DialogID, m.BitrixMessageID, m.AuthorID, m.AuthorRole, m.Text, millis(tx.now))
	if err != nil {
		return 0, false, fmt.Errorf("add message %d to dialog %d: %w", m.BitrixMessageID, m.DialogID, err)
	}
	if added {
		return seq, true, nil
	}
	err = tx.queryRow(`SELECT id FROM messages WHERE dialog_id = ? AND bitrix_message_id = ?`,
		m.DialogID, m.BitrixMessageID).Scan(&seq)
	return seq, false, err
}

// EditMessage replaces the text of a transcript message. It reports whether the
// message was found.
func (tx *Tx) EditMessage(dialogID, bitrixMessageID, authorID int64, text string) (bool, error) {
	res, err := tx.exec(`UPDATE messages SET text = ?, edited_at = ? WHERE dialog_id = ? AND bitrix_message_id = ? AND author_id = ?`,
		text, millis(tx.now), dialogID, bitrixMessageID, authorID)
	if err != nil {
		return false, fmt.Errorf("edit message %d: %w", bitrixMessageID, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// DeleteMessage marks a transcript message deleted; the row stays as a record.
func (tx *Tx) DeleteMessage(dialogID, bitrixMessageID, authorID int64) (bool, error) {
	res, err := tx.exec(`UPDATE messages SET deleted_at = ? WHERE dialog_id = ? AND bitrix_message_id = ? AND author_id = ? AND deleted_at IS NULL`,
		millis(tx.now), dialogID, bitrixMessageID, authorID)
	if err != nil {
		return false, fmt.Errorf("delete message %d: %w", bitrixMessageID, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// Transcript returns a dialog's messages in order.
func (tx *Tx) Transcript(dialogID int64) ([]Message, error) {
	rows, err := tx.query(`SELECT id, dialog_id, bitrix_message_id, author_id, author_role, text, created_at, edited_at, deleted_at
		FROM messages WHERE dialog_id = ? ORDER BY id`, dialogID)
	list, err := collect(rows, err, func(r *sql.Rows) (m Message, err error) {
		var created, edited, deleted sql.NullInt64
		err = r.Scan(&m.Seq, &m.DialogID, &m.BitrixMessageID, &m.AuthorID, &m.AuthorRole, &m.Text, &created, &edited, &deleted)
		m.CreatedAt, m.EditedAt, m.DeletedAt = fromMillis(created), fromMillis(edited), fromMillis(deleted)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("transcript of dialog %d: %w", dialogID, err)
	}
	return list, nil
}

// SetLastSeen moves a user's mark in a dialog forward to seq (never back).
func (tx *Tx) SetLastSeen(dialogID, userID, seq int64) error {
	_, err := tx.exec(`INSERT INTO last_seen (dialog_id, user_id, message_seq, seen_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (dialog_id, user_id) DO UPDATE SET message_seq = CASE WHEN excluded.message_seq > last_seen.message_seq
			THEN excluded.message_seq ELSE last_seen.message_seq END, seen_at = excluded.seen_at`,
		dialogID, userID, seq, millis(tx.now))
	if err != nil {
		return fmt.Errorf("set last seen of %d in dialog %d: %w", userID, dialogID, err)
	}
	return nil
}

// MarkAllSeen moves a user's mark past every message of the dialog.
func (tx *Tx) MarkAllSeen(dialogID, userID int64) error {
	var seq int64
	if err := tx.queryRow(`SELECT COALESCE(MAX(id), 0) FROM messages WHERE dialog_id = ?`, dialogID).Scan(&seq); err != nil {
		return fmt.Errorf("mark dialog %d seen: %w", dialogID, err)
	}
	return tx.SetLastSeen(dialogID, userID, seq)
}

// StrayMessage is a message from a chat that claims to be a dialog's (see
// AddStray).
type StrayMessage struct {
	ChatID          int64
	DialogID        int64
	BitrixMessageID int64
	AuthorID        int64
	Text            string
	CreatedAt       time.Time
}

// AddStray keeps a message from a chat whose events claim to be dialogID's while
// that dialog's chat is not known: it enters the transcript only if the portal then
// says this is the dialog's chat (TakeStrays).
func (tx *Tx) AddStray(portalID int64, m StrayMessage) error {
	_, err := tx.exec(`INSERT INTO stray_messages (portal_id, chat_id, dialog_id, bitrix_message_id, author_id, text, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		portalID, m.ChatID, m.DialogID, m.BitrixMessageID, m.AuthorID, m.Text, millis(tx.now))
	if err != nil {
		return fmt.Errorf("keep message %d of chat %d: %w", m.BitrixMessageID, m.ChatID, err)
	}
	return nil
}

// TakeStrays removes and returns, oldest first, the messages kept from chatID that
// claimed to be dialogID's.
func (tx *Tx) TakeStrays(portalID, chatID, dialogID int64) ([]StrayMessage, error) {
	rows, err := tx.query(`SELECT chat_id, dialog_id, bitrix_message_id, author_id, text, created_at FROM stray_messages
		WHERE portal_id = ? AND chat_id = ? AND dialog_id = ? ORDER BY created_at, bitrix_message_id`, portalID, chatID, dialogID)
	list, err := collect(rows, err, func(r *sql.Rows) (m StrayMessage, err error) {
		var created sql.NullInt64
		err = r.Scan(&m.ChatID, &m.DialogID, &m.BitrixMessageID, &m.AuthorID, &m.Text, &created)
		m.CreatedAt = fromMillis(created)
		return m, err
	})
	if err == nil {
		_, err = tx.exec(`DELETE FROM stray_messages WHERE portal_id = ? AND chat_id = ? AND dialog_id = ?`, portalID, chatID, dialogID)
	}
	if err != nil {
		return nil, fmt.Errorf("messages kept from chat %d: %w", chatID, err)
	}
	return list, nil
}
