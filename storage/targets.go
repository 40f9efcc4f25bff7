package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Owners and response targets (issue 22; README, "Owners and response targets").
// A dialog's row says who owns it, what its client waits for and since when, and the
// next step toward the wait's response target and when it is due. The waits follow
// the dialog's life as it is recorded (trackWait), so every way an event is recorded
// keeps them; the bot works out the instants in working time and takes the steps.

// Kinds of dialog events about owners and targets.
const (
	// LifeOwner: the owner changed; the event's subject is the new owner (0 when
	// released), its actor who changed it (the new owner when an answer took it).
	LifeOwner = "owner"
	// LifeTargetMissed: a wait went past its response target; the subject is the
	// owner then (0: none).
	LifeTargetMissed = "target_missed"
)

// Steps toward a wait's response target, in the order they come.
const (
	StepSchedule = "schedule" // work out the reminder's and the miss's instants
	StepRemind   = "remind"   // the 80 % reminder
	StepMiss     = "miss"     // the target is missed
)

// TargetStep is a dialog's next step toward its wait's target.
type TargetStep struct {
	DialogID    int64
	PortalID    int64
	WaitKind    string // TimeFirstResponse or TimeReply
	WaitStarted time.Time
	Step        string
	DueAt       time.Time
	Owner       int64 // 0 = unowned
	// Live: the step may be taken now, the dialog being active with its chat, on a
	// portal that still has the bot. A dialog whose chat is still being created is
	// neither live nor Dead: it waits.
	Live, Dead bool
}

// trackWait keeps the dialog's wait in step with the event kind just recorded at ms:
// an opening starts a wait for the first response; a client's message starts a wait
// for a reply unless the client already waits (or the dialog is not active); an
// agent's answer, a resolve or an auto-close ends the wait. An agent's answer also
// makes its author the owner of an unowned dialog.
func (tx *Tx) trackWait(d Dialog, kind string, actorID, ms int64) error {
	var err error
	switch kind {
	case LifeOpened, LifeReopened:
		_, err = tx.exec(`UPDATE dialogs SET wait_kind = ?, wait_started_at = ?, target_step = ?, target_due_at = ? WHERE id = ?`,
			TimeFirstResponse, ms, StepSchedule, ms, d.ID)
	case LifeClientMessage:
		_, err = tx.exec(`UPDATE dialogs SET wait_kind = ?, wait_started_at = ?, target_step = ?, target_due_at = ?
			WHERE id = ? AND wait_kind IS NULL AND status = 'active' AND NOT chat_failed`,
			TimeReply, ms, StepSchedule, ms, d.ID)
	case LifeAgentAnswer, LifeResolved, LifeAutoClosed:
		_, err = tx.exec(`UPDATE dialogs SET wait_kind = NULL, wait_started_at = NULL, target_step = NULL, target_due_at = NULL
			WHERE id = ?`, d.ID)
		if err == nil && kind == LifeAgentAnswer && actorID > 0 {
			err = tx.takeUnowned(d, actorID)
		}
	}
	if err != nil {
		return fmt.Errorf("wait of dialog %d after %s: %w", d.ID, kind, err)
	}
	return nil
}

// takeUnowned makes the agent who answered the owner, unless the dialog has one.
func (tx *Tx) takeUnowned(d Dialog, agentID int64) error {
	res, err := tx.exec(`UPDATE dialogs SET owner_id = ? WHERE id = ? AND owner_id IS NULL`, agentID, d.ID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	return tx.addSubjectEvent(d, LifeOwner, agentID, agentID)
}

// addSubjectEvent records an event about someone: the owner events and the misses,
// which end no service time.
func (tx *Tx) addSubjectEvent(d Dialog, kind string, actorID, subjectID int64) error {
	_, _, err := tx.insert(`INSERT INTO dialog_events (portal_id, dialog_id, kind, actor_id, subject_id, at) VALUES (?, ?, ?, ?, ?, ?)`,
		d.PortalID, d.ID, kind, actorID, subjectID, millis(tx.now))
	if err != nil {
		return fmt.Errorf("record %s of dialog %d: %w", kind, d.ID, err)
	}
	return nil
}

// SetOwner gives the dialog to owner (0: nobody) and records who did it; it reports
// false, recording nothing, when the owner was already that.
func (tx *Tx) SetOwner(d Dialog, owner, by int64) (bool, error) {
	var res sql.Result
	var err error
	if owner == 0 {
		res, err = tx.exec(`UPDATE dialogs SET owner_id = NULL WHERE id = ? AND owner_id IS NOT NULL`, d.ID)
	} else {
		res, err = tx.exec(`UPDATE dialogs SET owner_id = ? WHERE id = ? AND (owner_id IS NULL OR owner_id <> ?)`, owner, d.ID, owner)
	}
	if err != nil {
		return false, fmt.Errorf("owner of dialog %d: %w", d.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	return true, tx.addSubjectEvent(d, LifeOwner, by, owner)
}

// DeskState is what the agents' views show of an active dialog besides the dialog:
// its owner and its client's wait.
type DeskState struct {
	Owner       int64  // 0 = unowned
	WaitKind    string // "" = nobody waits
	WaitStarted time.Time
}

// DeskStates are the portal's active dialogs' owners and waits, by dialog ID; dialogs
// with neither are left out.
func (tx *Tx) DeskStates(portalID int64) (map[int64]DeskState, error) {
	rows, err := tx.query(`SELECT id, owner_id, wait_kind, wait_started_at FROM dialogs
		WHERE portal_id = ? AND status = 'active' AND (owner_id IS NOT NULL OR wait_kind IS NOT NULL)`, portalID)
	type row struct {
		id int64
		s  DeskState
	}
	list, err := collect(rows, err, func(r *sql.Rows) (x row, err error) {
		var owner, started sql.NullInt64
		var kind sql.NullString
		err = r.Scan(&x.id, &owner, &kind, &started)
		x.s = DeskState{Owner: owner.Int64, WaitKind: kind.String, WaitStarted: fromMillis(started)}
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("owners and waits of portal %d: %w", portalID, err)
	}
	out := make(map[int64]DeskState, len(list))
	for _, x := range list {
		out[x.id] = x.s
	}
	return out, nil
}

var targetStepColumns = `d.id, d.portal_id, d.wait_kind, d.wait_started_at, d.target_step, d.target_due_at, COALESCE(d.owner_id, 0),
	d.status = 'active' AND NOT d.chat_failed AND d.chat_id IS NOT NULL AND ` + portalLive("p") + `,
	d.status <> 'active' OR d.chat_failed OR NOT ` + portalLive("p")

func scanTargetStep(r interface{ Scan(...any) error }) (s TargetStep, err error) {
	var started, due sql.NullInt64
	var kind, step sql.NullString
	err = r.Scan(&s.DialogID, &s.PortalID, &kind, &started, &step, &due, &s.Owner, &s.Live, &s.Dead)
	s.WaitKind, s.Step, s.WaitStarted, s.DueAt = kind.String, step.String, fromMillis(started), fromMillis(due)
	return s, err
}

// DueTargetSteps lists, soonest first, up to limit steps due by the transaction's
// time. It reads the index on the due instant: the cost grows with the steps due,
// not with the dialogs.
func (tx *Tx) DueTargetSteps(limit int) ([]TargetStep, error) {
	rows, err := tx.query(`SELECT `+targetStepColumns+` FROM dialogs d JOIN portals p ON p.id = d.portal_id
		WHERE d.target_due_at IS NOT NULL AND d.target_due_at <= ? ORDER BY d.target_due_at, d.id LIMIT ?`, millis(tx.now), limit)
	list, err := collect(rows, err, func(r *sql.Rows) (TargetStep, error) { return scanTargetStep(r) })
	if err != nil {
		return nil, fmt.Errorf("response target steps due: %w", err)
	}
	return list, nil
}

// TargetStepOf reads the dialog's next step as it is now.
func (tx *Tx) TargetStepOf(dialogID int64) (TargetStep, error) {
	s, err := scanTargetStep(tx.queryRow(`SELECT `+targetStepColumns+` FROM dialogs d JOIN portals p ON p.id = d.portal_id
		WHERE d.id = ?`, dialogID))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return s, fmt.Errorf("response target step of dialog %d: %w", dialogID, err)
	}
	return s, nil
}

// ClaimTargetStep moves the dialog from step s to next, due at nextAt ("" ends the
// wait's steps), if s is still its step: the update tests the step, its instant and
// the wait's start on the row it changes, so of any number of transactions that read
// s (sweeps of several replicas, a sweep overlapping a restart) only one wins, and
// the message queued with the claim is sent once.
func (tx *Tx) ClaimTargetStep(s TargetStep, next string, nextAt time.Time) (bool, error) {
	var step, at any // NULL unless there is a next step
	if next != "" {
		step, at = next, millis(nextAt)
	}
	res, err := tx.exec(`UPDATE dialogs SET target_step = ?, target_due_at = ?
		WHERE id = ? AND target_step = ? AND target_due_at = ? AND wait_started_at = ?`,
		step, at, s.DialogID, s.Step, millis(s.DueAt), millis(s.WaitStarted))
	if err != nil {
		return false, fmt.Errorf("claim the %s step of dialog %d: %w", s.Step, s.DialogID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// RecordTargetMissed records that the dialog's wait went past its target.
func (tx *Tx) RecordTargetMissed(d Dialog, owner int64) error {
	return tx.addSubjectEvent(d, LifeTargetMissed, 0, owner)
}

// ClaimOutOfHours records that the dialog's client is told support opens again at
// until; it reports false when they were already told of that opening.
func (tx *Tx) ClaimOutOfHours(dialogID int64, until time.Time) (bool, error) {
	res, err := tx.exec(`UPDATE dialogs SET out_of_hours_until = ? WHERE id = ? AND (out_of_hours_until IS NULL OR out_of_hours_until <> ?)`,
		millis(until), dialogID, millis(until))
	if err != nil {
		return false, fmt.Errorf("out-of-hours answer in dialog %d: %w", dialogID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// AnsweredTime is a measured first response or reply with the agent whose answer
// ended it.
type AnsweredTime struct {
	EventID        int64 // the answer: one answer may end a first response and a reply
	Kind           string
	Agent          int64
	Started, Ended time.Time
}

// AnsweredTimes lists the first responses and replies of the portal that ended in
// [since, until), with who answered.
func (tx *Tx) AnsweredTimes(portalID int64, since, until time.Time) ([]AnsweredTime, error) {
	rows, err := tx.query(`SELECT s.event_id, s.kind, e.actor_id, s.started_at, s.ended_at FROM service_times s
		JOIN dialog_events e ON e.id = s.event_id
		WHERE s.portal_id = ? AND s.kind IN (?, ?) AND s.ended_at >= ? AND s.ended_at < ? ORDER BY s.id`,
		portalID, TimeFirstResponse, TimeReply, millis(since), millis(until))
	list, err := collect(rows, err, func(r *sql.Rows) (a AnsweredTime, err error) {
		var started, ended sql.NullInt64
		err = r.Scan(&a.EventID, &a.Kind, &a.Agent, &started, &ended)
		a.Started, a.Ended = fromMillis(started), fromMillis(ended)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("answered times of portal %d: %w", portalID, err)
	}
	return list, nil
}

// TargetMisses counts every recorded miss, on every portal, for /metrics.
func (s *Store) TargetMisses(ctx context.Context) (uint64, error) {
	var n uint64
	if err := s.readRow(ctx, `SELECT COUNT(*) FROM dialog_events WHERE kind = '`+LifeTargetMissed+`'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count response target misses: %w", err)
	}
	return n, nil
}
