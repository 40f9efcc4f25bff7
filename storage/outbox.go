package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// NextOutboxAttempt is when the earliest pending entry that waits for a retry is due
// (zero when none waits), so the dispatcher can sleep until then.
func (s *Store) NextOutboxAttempt(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	err := s.read.QueryRowContext(ctx, `SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending' AND next_attempt_at > ?`,
		millis(s.clock())).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next outbox attempt: %w", err)
	}
	return fromMillis(next), nil
}

// Outbox entry states.
const (
	OutboxPending = "pending"
	OutboxDone    = "done"
	OutboxFailed  = "failed"
)

// Effects: what an outbox call's result means to the bot, applied by the dispatcher
// when the call succeeds or fails for good.
const (
	EffectDialogChat        = "dialog_chat"        // the result is the chat of dialog EffectRef
	EffectTitleSent         = "title_sent"         // a rename of dialog EffectRef has finished
	EffectBotRegistered     = "bot_registered"     // the result is the portal's bot ID
	EffectCommandRegistered = "command_registered" // the result is the ID of the params' COMMAND
)

// BotIDPlaceholder stands for the portal's bot ID in an entry's params, filled in
// when the entry is sent: commands registered on install name a bot whose ID is only
// known once the registration before them in the lane has answered.
const BotIDPlaceholder = "\x00BOT_ID\x00"

// ChatIDPlaceholder stands for the chat ID of an entry's NeedsDialog in its params,
// replaced when the entry is sent. It holds NUL bytes, which escaped user text never
// contains, so user text cannot forge it.
const ChatIDPlaceholder = "\x00CHAT_ID\x00"

// OutboxEntry is one call the bot decided to make.
type OutboxEntry struct {
	ID       int64
	PortalID int64
	// ChatKey is the ordering lane: entries with the same key are sent one after
	// another in ID order.
	ChatKey string
	Method  string
	Params  json.RawMessage
	// NeedsDialog holds the entry back until that dialog's chat exists; the chat's
	// ID then fills the placeholders in Params.
	NeedsDialog int64
	// Effect names what the result means to the bot (for example "the new chat of
	// dialog EffectRef"); the dispatcher applies it when the call succeeds.
	Effect        string
	EffectRef     int64
	State         string
	Attempts      int
	MaybeSent     bool // an earlier attempt may have run on the portal
	NextAttemptAt time.Time
	LastError     string
	Result        json.RawMessage
	CreatedAt     time.Time
	DoneAt        time.Time

	// Filled by DueOutbox for entries with NeedsDialog.
	DialogChatID     int64
	DialogChatFailed bool
	// Filled by DueOutbox: the portal's bot ID when the entry is due.
	PortalBotID int64
}

// Enqueue adds a call to the outbox; it is sent after the transaction commits.
func (tx *Tx) Enqueue(e OutboxEntry) (int64, error) {
	if len(e.Params) == 0 {
		e.Params = json.RawMessage("{}")
	}
	var needs any
	if e.NeedsDialog != 0 {
		needs = e.NeedsDialog
	}
	res, err := tx.exec(`INSERT INTO outbox (portal_id, chat_key, method, params, needs_dialog, effect, effect_ref, next_attempt_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.PortalID, e.ChatKey, e.Method, string(e.Params), needs, e.Effect, e.EffectRef, millis(tx.now), millis(tx.now))
	if err != nil {
		return 0, fmt.Errorf("enqueue %s: %w", e.Method, err)
	}
	tx.enqueued = true
	return res.LastInsertId()
}

const outboxColumns = `o.id, o.portal_id, o.chat_key, o.method, o.params, o.needs_dialog, o.effect, o.effect_ref,
	o.state, o.attempts, o.next_attempt_at, o.last_error, o.result, o.created_at, o.done_at, o.maybe_sent OR o.in_flight`

func scanOutbox(row interface{ Scan(...any) error }, extra ...any) (OutboxEntry, error) {
	var e OutboxEntry
	var params string
	var needs, next, created, done sql.NullInt64
	var result sql.NullString
	dest := append([]any{&e.ID, &e.PortalID, &e.ChatKey, &e.Method, &params, &needs, &e.Effect, &e.EffectRef,
		&e.State, &e.Attempts, &next, &e.LastError, &result, &created, &done, &e.MaybeSent}, extra...)
	if err := row.Scan(dest...); err != nil {
		return OutboxEntry{}, err
	}
	e.Params = json.RawMessage(params)
	e.NeedsDialog = needs.Int64
	e.NextAttemptAt = fromMillis(next)
	if result.Valid {
		e.Result = json.RawMessage(result.String)
	}
	e.CreatedAt = fromMillis(created)
	e.DoneAt = fromMillis(done)
	return e, nil
}

// DueOutbox returns the entries that may be sent now: the oldest pending entry of each
// lane, if it is due, its portal still has the bot, and the dialog chat it needs exists
// (or has failed, so the dispatcher can give the entry up). Oldest first.
func (s *Store) DueOutbox(ctx context.Context, limit int) ([]OutboxEntry, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+outboxColumns+`, COALESCE(d.chat_id, 0), COALESCE(d.chat_failed, 0), p.bot_id
		FROM (SELECT MIN(id) AS id FROM outbox WHERE state = 'pending' GROUP BY portal_id, chat_key) h
		JOIN outbox o ON o.id = h.id
		JOIN portals p ON p.id = o.portal_id AND p.bot_deleted_at IS NULL AND p.uninstalled_at IS NULL
		LEFT JOIN dialogs d ON d.id = o.needs_dialog
		WHERE o.next_attempt_at <= ? AND (o.needs_dialog IS NULL OR d.chat_id IS NOT NULL OR d.chat_failed = 1)
		ORDER BY o.id LIMIT ?`, millis(s.clock()), limit)
	if err != nil {
		return nil, fmt.Errorf("due outbox: %w", err)
	}
	defer rows.Close()
	var list []OutboxEntry
	for rows.Next() {
		var chatID, botID int64
		var failed bool
		e, err := scanOutbox(rows, &chatID, &failed, &botID)
		if err != nil {
			return nil, fmt.Errorf("due outbox: %w", err)
		}
		e.DialogChatID, e.DialogChatFailed, e.PortalBotID = chatID, failed, botID
		list = append(list, e)
	}
	return list, rows.Err()
}

// Outbox lists a portal's entries in ID order (all states), for tests and tools.
func (s *Store) Outbox(ctx context.Context, portalID int64) ([]OutboxEntry, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+outboxColumns+` FROM outbox o WHERE o.portal_id = ? ORDER BY o.id`, portalID)
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	defer rows.Close()
	var list []OutboxEntry
	for rows.Next() {
		e, err := scanOutbox(rows)
		if err != nil {
			return nil, fmt.Errorf("list outbox: %w", err)
		}
		list = append(list, e)
	}
	return list, rows.Err()
}

// OutboxStats reports how many entries are pending and when the oldest was queued.
func (s *Store) OutboxStats(ctx context.Context) (pending int, oldest time.Time, err error) {
	var first sql.NullInt64
	err = s.read.QueryRowContext(ctx, `SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending'`).Scan(&pending, &first)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox stats: %w", err)
	}
	return pending, fromMillis(first), nil
}

// CompleteOutbox records a successful call and its result.
func (tx *Tx) CompleteOutbox(id int64, result json.RawMessage) error {
	var res any
	if len(result) > 0 {
		res = string(result)
	}
	_, err := tx.exec(`UPDATE outbox SET state = 'done', attempts = attempts + 1, result = ?, last_error = '', done_at = ?,
		in_flight = 0 WHERE id = ? AND state = 'pending'`, res, millis(tx.now), id)
	if err != nil {
		return fmt.Errorf("complete outbox %d: %w", id, err)
	}
	return nil
}

// FailOutbox gives an entry up for good: the error is permanent.
func (tx *Tx) FailOutbox(id int64, reason string) error {
	_, err := tx.exec(`UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?, done_at = ?,
		in_flight = 0 WHERE id = ? AND state = 'pending'`, reason, millis(tx.now), id)
	if err != nil {
		return fmt.Errorf("fail outbox %d: %w", id, err)
	}
	return nil
}

// RetryOutbox schedules another attempt; the entry keeps its place in its lane.
// maybeSent records that this attempt may have run on the portal.
func (tx *Tx) RetryOutbox(id int64, at time.Time, reason string, maybeSent bool) error {
	_, err := tx.exec(`UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,
		maybe_sent = maybe_sent OR ?, in_flight = 0 WHERE id = ? AND state = 'pending'`, millis(at), reason, maybeSent, id)
	if err != nil {
		return fmt.Errorf("retry outbox %d: %w", id, err)
	}
	return nil
}

// MarkInFlight records that attempts of these entries are about to be made. Until
// their outcome is recorded, the entries count as maybe sent: if the process dies
// meanwhile, the next one cannot know whether the portal ran them.
func (tx *Tx) MarkInFlight(ids []int64) error {
	for _, id := range ids {
		if _, err := tx.exec(`UPDATE outbox SET in_flight = 1 WHERE id = ? AND state = 'pending'`, id); err != nil {
			return fmt.Errorf("mark outbox %d in flight: %w", id, err)
		}
	}
	return nil
}

// FailLane gives up every pending entry of a lane: what follows a failed
// registration cannot succeed.
func (tx *Tx) FailLane(portalID int64, lane, reason string) error {
	_, err := tx.exec(`UPDATE outbox SET state = 'failed', last_error = ?, done_at = ?, in_flight = 0
		WHERE portal_id = ? AND chat_key = ? AND state = 'pending'`, reason, millis(tx.now), portalID, lane)
	if err != nil {
		return fmt.Errorf("fail lane %s: %w", lane, err)
	}
	return nil
}

// FailDependents gives up every pending entry waiting for a dialog's chat, which will
// never exist. It returns how many there were.
func (tx *Tx) FailDependents(dialogID int64, reason string) (int64, error) {
	res, err := tx.exec(`UPDATE outbox SET state = 'failed', last_error = ?, done_at = ?
		WHERE needs_dialog = ? AND state = 'pending'`, reason, millis(tx.now), dialogID)
	if err != nil {
		return 0, fmt.Errorf("fail entries waiting for dialog %d: %w", dialogID, err)
	}
	return res.RowsAffected()
}
