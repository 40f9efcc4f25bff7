package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// NextOutboxAttempt is when the earliest pending entry that waits for a retry is due
// (zero when none waits), so the dispatcher can sleep until then.
func (s *Store) NextOutboxAttempt(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	err := s.readRow(ctx, `SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending' AND next_attempt_at > ?`,
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

// OutboxRow is one action the bot decided on, waiting to be done or done.
type OutboxRow struct {
	ID       int64
	PortalID int64
	// Lane orders the entries: those of one lane (a chat, the set-up) are sent one
	// after another in ID order.
	Lane string
	// Kind and Action are the action as bitrix24 encodes it; storage does not look
	// inside.
	Kind   string
	Action json.RawMessage
	// AwaitsDialog holds the entry back until that dialog's chat exists; the chat's
	// ID then fills the action's placeholders.
	AwaitsDialog int64
	// Effect and EffectRef are the bot's note of what the result means (for example
	// "the chat of dialog EffectRef"); the bot reads them when the action is settled.
	Effect        string
	EffectRef     int64
	State         string
	Attempts      int
	MaybeSent     bool // an earlier attempt may have run on the portal
	InFlight      bool // an attempt was under way, and its outcome is not recorded yet
	BatchLimit    int  // the largest request it may go in; 0 for any
	NextAttemptAt time.Time
	LastError     string
	Result        json.RawMessage
	CreatedAt     time.Time
	DoneAt        time.Time
	FailingSince  time.Time // its first failed attempt; zero until one (MaxAge counts from it)

	// Answer is the bot's note of an answer that only reads: Action says where it
	// goes, and its text is written from a read snapshot just before it is sent
	// (bot.WriteAnswer), never in the writer. "" for every other entry.
	Answer string

	// Filled by DueOutbox for entries with AwaitsDialog.
	DialogChatID     int64
	DialogChatFailed bool
	// Filled by DueOutbox: the portal's bot when the entry is due — its ID, the API
	// it is registered with, and a v2 bot's token.
	PortalBotID    int64
	PortalAPI      string
	PortalBotToken string
	// PortalBatchRefusedAt: when the portal last refused imbot.v2 methods inside
	// batch (zero: never).
	PortalBatchRefusedAt time.Time
}

// Enqueue adds an action to the outbox; it is sent after the transaction commits.
func (tx *Tx) Enqueue(e OutboxRow) (int64, error) {
	if e.Kind == "" || len(e.Action) == 0 {
		return 0, errors.New("enqueue: no action")
	}
	var awaits any
	if e.AwaitsDialog != 0 {
		awaits = e.AwaitsDialog
	}
	id, _, err := tx.insert(`INSERT INTO outbox (portal_id, lane, kind, action, awaits_dialog, effect, effect_ref, answer, next_attempt_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.PortalID, e.Lane, e.Kind, string(e.Action), awaits, e.Effect, e.EffectRef, e.Answer, millis(tx.now), millis(tx.now))
	if err != nil {
		return 0, fmt.Errorf("enqueue %s: %w", e.Kind, err)
	}
	tx.enqueued = true
	return id, nil
}

const outboxColumns = `o.id, o.portal_id, o.lane, o.kind, o.action, o.awaits_dialog, o.effect, o.effect_ref,
	o.state, o.attempts, o.next_attempt_at, o.last_error, o.result, o.created_at, o.done_at, o.maybe_sent OR o.in_flight, o.batch_limit, o.in_flight, o.answer,
	o.failing_since`

func scanOutbox(row interface{ Scan(...any) error }, extra ...any) (OutboxRow, error) {
	var e OutboxRow
	var action string
	var awaits, next, created, done, failing sql.NullInt64
	var result sql.NullString
	dest := append([]any{&e.ID, &e.PortalID, &e.Lane, &e.Kind, &action, &awaits, &e.Effect, &e.EffectRef,
		&e.State, &e.Attempts, &next, &e.LastError, &result, &created, &done, &e.MaybeSent, &e.BatchLimit, &e.InFlight, &e.Answer,
		&failing}, extra...)
	if err := row.Scan(dest...); err != nil {
		return OutboxRow{}, err
	}
	e.Action = json.RawMessage(action)
	e.AwaitsDialog = awaits.Int64
	e.NextAttemptAt = fromMillis(next)
	if result.Valid {
		e.Result = json.RawMessage(result.String)
	}
	e.CreatedAt = fromMillis(created)
	e.DoneAt = fromMillis(done)
	e.FailingSince = fromMillis(failing)
	return e, nil
}

// readySQL marks, for one portal's pending entries, those that may be sent now: due,
// and not waiting for a dialog's chat that does not exist yet (one whose chat failed
// is ready, so the dispatcher can give it up).
const readySQL = `SELECT o.*, COALESCE(d.chat_id, 0) AS dialog_chat, COALESCE(d.chat_failed, FALSE) AS dialog_failed,
		(o.next_attempt_at <= ? AND (o.awaits_dialog IS NULL OR d.chat_id IS NOT NULL OR d.chat_failed)) AS ready
	FROM outbox o LEFT JOIN dialogs d ON d.id = o.awaits_dialog
	WHERE o.state = 'pending' AND o.portal_id = ?`

// DueOutbox returns a portal's entries that may be sent now, oldest first: from each
// lane the run of ready entries from its head, up to the first that is not ready, so
// that what is sent of a lane is always a prefix of it and keeps its order. Nothing is
// due while the portal has no live bot.
func (s *Store) DueOutbox(ctx context.Context, portalID int64, limit int) ([]OutboxRow, error) {
	rows, err := s.readRows(ctx, `WITH p AS (`+readySQL+`),
		blocked AS (SELECT lane, MIN(id) AS first FROM p WHERE NOT ready GROUP BY lane)
		SELECT `+outboxColumns+`, o.dialog_chat, o.dialog_failed, pt.bot_id, pt.api, pt.bot_token, pt.batch_refused_at FROM p o
		JOIN portals pt ON pt.id = o.portal_id AND `+portalLive("pt")+`
		LEFT JOIN blocked b ON b.lane = o.lane
		WHERE o.ready AND (b.first IS NULL OR o.id < b.first)
		ORDER BY o.id LIMIT ?`, millis(s.clock()), portalID, limit)
	list, err := collect(rows, err, func(r *sql.Rows) (OutboxRow, error) {
		var chatID, botID int64
		var failed bool
		var api, token string
		var refused sql.NullInt64
		e, err := scanOutbox(r, &chatID, &failed, &botID, &api, &token, &refused)
		e.DialogChatID, e.DialogChatFailed, e.PortalBotID, e.PortalAPI, e.PortalBotToken = chatID, failed, botID, api, token
		e.PortalBatchRefusedAt = fromMillis(refused)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("due outbox of portal %d: %w", portalID, err)
	}
	return list, nil
}

// DuePortals lists the portals with entries due now, so that each gets a sender.
func (s *Store) DuePortals(ctx context.Context) ([]int64, error) {
	rows, err := s.readRows(ctx, `SELECT DISTINCT o.portal_id FROM outbox o
		JOIN portals p ON p.id = o.portal_id AND `+portalLive("p")+`
		WHERE o.state = 'pending' AND o.next_attempt_at <= ? ORDER BY o.portal_id`, millis(s.clock()))
	list, err := collect(rows, err, func(r *sql.Rows) (id int64, err error) { return id, r.Scan(&id) })
	if err != nil {
		return nil, fmt.Errorf("due portals: %w", err)
	}
	return list, nil
}

// Outbox lists a portal's entries in ID order (all states), for tests and tools.
func (s *Store) Outbox(ctx context.Context, portalID int64) ([]OutboxRow, error) {
	rows, err := s.readRows(ctx, `SELECT `+outboxColumns+` FROM outbox o WHERE o.portal_id = ? ORDER BY o.id`, portalID)
	list, err := collect(rows, err, func(r *sql.Rows) (OutboxRow, error) { return scanOutbox(r) })
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	return list, nil
}

// OutboxStats reports how many entries are pending and when the oldest was queued.
func (s *Store) OutboxStats(ctx context.Context) (pending int, oldest time.Time, err error) {
	var first sql.NullInt64
	err = s.readRow(ctx, `SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending'`).Scan(&pending, &first)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox stats: %w", err)
	}
	return pending, fromMillis(first), nil
}

// CompleteOutbox records a successful call and its result. It reports false, changing
// nothing, when the entry was no longer pending: another replica recorded its own
// attempt first (a takeover while this one's call hung), and that outcome stands.
func (tx *Tx) CompleteOutbox(id int64, result json.RawMessage) (bool, error) {
	var res any
	if len(result) > 0 {
		res = string(result)
	}
	r, err := tx.exec(`UPDATE outbox SET state = 'done', attempts = attempts + 1, result = ?, last_error = '', done_at = ?,
		in_flight = FALSE WHERE id = ? AND state = 'pending'`, res, millis(tx.now), id)
	if err != nil {
		return false, fmt.Errorf("complete outbox %d: %w", id, err)
	}
	n, err := r.RowsAffected()
	return n == 1, err
}

// FailOutbox gives an entry up for good: the error is permanent. Like CompleteOutbox,
// it reports false when the entry was no longer pending.
func (tx *Tx) FailOutbox(id int64, reason string) (bool, error) {
	r, err := tx.exec(`UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?, done_at = ?,
		in_flight = FALSE WHERE id = ? AND state = 'pending'`, reason, millis(tx.now), id)
	if err != nil {
		return false, fmt.Errorf("fail outbox %d: %w", id, err)
	}
	n, err := r.RowsAffected()
	return n == 1, err
}

// RetryOutbox schedules another attempt; the entry keeps its place in its lane.
// maybeSent records that this attempt may have run on the portal; batchLimit, if not
// 0, is the largest request the entry may go in from now on.
func (tx *Tx) RetryOutbox(id int64, at time.Time, reason string, maybeSent bool, batchLimit int) error {
	_, err := tx.exec(`UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,
		failing_since = COALESCE(failing_since, ?),
		maybe_sent = maybe_sent OR ?, batch_limit = CASE WHEN ? > 0 THEN ? ELSE batch_limit END, in_flight = FALSE
		WHERE id = ? AND state = 'pending'`, millis(at), reason, millis(tx.now), maybeSent, batchLimit, batchLimit, id)
	if err != nil {
		return fmt.Errorf("retry outbox %d: %w", id, err)
	}
	return nil
}

// ReleaseOutbox puts back entries whose attempt surely did not run (a batch halted
// before them, a request the claim's fence stopped): no attempt is counted. Each is
// given as it was read before the attempt: one that an earlier attempt may have run
// (MaybeSent: a process that died with it in flight) keeps that mark, which this
// attempt's in-flight mark would otherwise take with it.
func (tx *Tx) ReleaseOutbox(rows []OutboxRow) error {
	for _, r := range rows {
		if _, err := tx.exec(`UPDATE outbox SET maybe_sent = maybe_sent OR ?, in_flight = FALSE WHERE id = ? AND state = 'pending'`,
			r.MaybeSent, r.ID); err != nil {
			return fmt.Errorf("release outbox %d: %w", r.ID, err)
		}
	}
	return nil
}

// MarkInFlight records that attempts of these entries are about to be made. Until
// their outcome is recorded, the entries count as maybe sent: if the process dies
// meanwhile, the next one cannot know whether the portal ran them.
func (tx *Tx) MarkInFlight(ids []int64) error {
	for _, id := range ids {
		if _, err := tx.exec(`UPDATE outbox SET in_flight = TRUE WHERE id = ? AND state = 'pending'`, id); err != nil {
			return fmt.Errorf("mark outbox %d in flight: %w", id, err)
		}
	}
	return nil
}

// FailLane gives up every pending entry of a lane: what follows a failed
// registration cannot succeed.
func (tx *Tx) FailLane(portalID int64, lane, reason string) error {
	_, err := tx.exec(`UPDATE outbox SET state = 'failed', last_error = ?, done_at = ?, in_flight = FALSE
		WHERE portal_id = ? AND lane = ? AND state = 'pending'`, reason, millis(tx.now), portalID, lane)
	if err != nil {
		return fmt.Errorf("fail lane %s: %w", lane, err)
	}
	return nil
}

// FailDependents gives up every pending entry waiting for a dialog's chat, which will
// never exist. It returns how many there were.
func (tx *Tx) FailDependents(dialogID int64, reason string) (int64, error) {
	res, err := tx.exec(`UPDATE outbox SET state = 'failed', last_error = ?, done_at = ?
		WHERE awaits_dialog = ? AND state = 'pending'`, reason, millis(tx.now), dialogID)
	if err != nil {
		return 0, fmt.Errorf("fail entries waiting for dialog %d: %w", dialogID, err)
	}
	return res.RowsAffected()
}

// Prune deletes what has served its time: finished outbox entries and processed event
// keys older than before, and messages kept from chats that never became a dialog's.
// It returns how many rows went.
func (tx *Tx) Prune(before time.Time) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM outbox WHERE state IN ('done', 'failed') AND done_at < ?`,
		`DELETE FROM processed_events WHERE received_at < ?`,
		`DELETE FROM stray_messages WHERE created_at < ?`,
	} {
		res, err := tx.exec(q, millis(before))
		if err != nil {
			return total, fmt.Errorf("prune: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// FailOrphans gives up the pending entries, queued before before, of portals that no
// longer have the bot: they can never be sent.
func (tx *Tx) FailOrphans(before time.Time, reason string) (int64, error) {
	res, err := tx.exec(`UPDATE outbox SET state = 'failed', last_error = ?, done_at = ?, in_flight = FALSE
		WHERE state = 'pending' AND created_at < ? AND portal_id IN
		(SELECT id FROM portals WHERE NOT `+portalLive("portals")+`)`, reason, millis(tx.now), millis(before))
	if err != nil {
		return 0, fmt.Errorf("fail orphans: %w", err)
	}
	return res.RowsAffected()
}

// Housekeep prunes what is older than retention (Prune) and gives up what waits for a
// portal that no longer has the bot for longer than orphanAge (FailOrphans), in one
// transaction. It returns how many rows it touched.
func (s *Store) Housekeep(ctx context.Context, retention, orphanAge time.Duration) (int64, error) {
	var n int64
	err := s.Update(ctx, func(tx *Tx) error {
		pruned, err := tx.Prune(tx.Now().Add(-retention))
		if err != nil {
			return err
		}
		failed, err := tx.FailOrphans(tx.Now().Add(-orphanAge), "the portal no longer has the bot")
		n = pruned + failed
		return err
	})
	return n, err
}

// OutboxPending reports whether the entry still waits for its outcome: a recording
// tried again after a lost connection, whose first try may have committed, skips
// what is recorded already.
func (tx *Tx) OutboxPending(id int64) (bool, error) {
	var n int
	if err := tx.queryRow(`SELECT COUNT(*) FROM outbox WHERE id = ? AND state = 'pending'`, id).Scan(&n); err != nil {
		return false, fmt.Errorf("outbox %d pending: %w", id, err)
	}
	return n == 1, nil
}
