package bot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// Working hours and response targets (README, "Owners and response targets"). A
// client who writes while support is closed is told, once per dialog and closed
// period, when it opens again. A client's wait has a target in working time: at 80 %
// of it the owner (or, with none, every agent) is reminded in the dialog, and past it
// the agents are told and the miss is recorded. The steps are due at instants the
// database holds with the wait (storage.TargetStep), each claimed in the transaction
// that queues its message, so each is taken once across restarts and replicas.

// sweepBatch is how many due steps one read of the sweep takes.
const sweepBatch = 500

// target is the response target of a kind of wait; 0 = none.
func (b *Bot) target(kind string) time.Duration {
	switch kind {
	case storage.TimeFirstResponse:
		return b.cfg.FirstResponseTarget
	case storage.TimeReply:
		return b.cfg.ReplyTarget
	}
	return 0
}

// reminderShare: the reminder comes when 80 % of the target has passed.
func reminderAt(target time.Duration) time.Duration { return target * 4 / 5 }

type targetMark int

const (
	targetNone targetMark = iota
	targetNear            // 80 % of the target has passed
	targetPast
)

// targetState is how near a wait that started at started is to its target at now.
func (b *Bot) targetState(kind string, started, now time.Time) targetMark {
	target := b.target(kind)
	if target <= 0 || started.IsZero() {
		return targetNone
	}
	switch waited := b.cfg.Hours.Between(started, now); {
	case waited >= target:
		return targetPast
	case waited >= reminderAt(target):
		return targetNear
	}
	return targetNone
}

// ResponseTargets takes the steps toward the response targets that are due at the
// store's time: it works out new waits' instants, sends the reminders and tells the
// misses, and reports how many reminders and misses it sent. It reads only the steps
// due (an index on their instant); a dialog that fails is left for the next sweep.
func (b *Bot) ResponseTargets(ctx context.Context, store *storage.Store) (reminded, missed int, err error) {
	if b.cfg.FirstResponseTarget <= 0 && b.cfg.ReplyTarget <= 0 {
		return 0, 0, nil
	}
	var errs []error
	for {
		var due []storage.TargetStep
		err := store.View(ctx, func(tx *storage.Tx) (err error) {
			due, err = tx.DueTargetSteps(sweepBatch)
			return err
		})
		if err != nil {
			return reminded, missed, err
		}
		moved := 0
		for _, s := range due {
			if err := ctx.Err(); err != nil {
				return reminded, missed, err
			}
			r, m, n, err := b.takeSteps(ctx, store, s.DialogID)
			reminded, missed, moved = reminded+r, missed+m, moved+n
			if err != nil {
				errs = append(errs, fmt.Errorf("response target of dialog %d: %w", s.DialogID, err))
			}
		}
		// A full batch may hide more; steps that cannot move yet (a chat still being
		// created) must not make the sweep spin.
		if len(due) < sweepBatch || moved == 0 {
			return reminded, missed, errors.Join(errs...)
		}
	}
}

// takeSteps takes, in one transaction, every step of the dialog due now, and reports
// the reminders and misses it sent and the steps it moved.
func (b *Bot) takeSteps(ctx context.Context, store *storage.Store, dialogID int64) (reminded, missed, moved int, err error) {
	err = store.Update(ctx, func(tx *storage.Tx) error {
		reminded, missed, moved = 0, 0, 0 // the function may run again
		now := tx.Now()
		s, err := tx.TargetStepOf(dialogID)
		if err != nil {
			return err
		}
		for s.Step != "" && !s.DueAt.After(now) {
			if !s.Live && !s.Dead {
				return nil // the chat is being created: the step waits for it
			}
			next, at, tell := b.nextStep(s, now)
			won, err := tx.ClaimTargetStep(s, next, at)
			if err != nil || !won {
				return err
			}
			moved++
			if tell != "" {
				d, err := tx.Dialog(dialogID)
				if err != nil {
					return err
				}
				if err := b.tellTarget(tx, d, s, tell); err != nil {
					return err
				}
				if tell == storage.StepRemind {
					reminded++
				} else {
					missed++
				}
			}
			s.Step, s.DueAt = next, at
		}
		return nil
	})
	return reminded, missed, moved, err
}

// nextStep is the step after s, when it is due, and what s itself tells ("", or
// StepRemind or StepMiss).
func (b *Bot) nextStep(s storage.TargetStep, now time.Time) (next string, at time.Time, tell string) {
	target := b.target(s.WaitKind)
	if s.Dead || target <= 0 {
		return "", time.Time{}, ""
	}
	remind := b.cfg.Hours.Add(s.WaitStarted, reminderAt(target))
	miss := b.cfg.Hours.Add(s.WaitStarted, target)
	switch s.Step {
	case storage.StepSchedule:
		return storage.StepRemind, remind, ""
	case storage.StepRemind:
		if !now.Before(miss) {
			return storage.StepMiss, miss, "" // the sweep came too late to remind: the miss is told
		}
		return storage.StepMiss, miss, storage.StepRemind
	}
	return "", time.Time{}, storage.StepMiss
}

// tellTarget queues, in the dialog, the reminder to the owner (or every agent) or the
// miss to the agents, and records a miss.
func (b *Bot) tellTarget(tx *storage.Tx, d storage.Dialog, s storage.TargetStep, tell string) error {
	agents, err := tx.Members(d.PortalID, storage.RoleAgent)
	if err != nil {
		return err
	}
	who := mentions(agents)
	if s.Owner != 0 && tell == storage.StepRemind {
		who = mention(s.Owner, "")
	}
	tt := textsFor(b.cfg.Language)
	target := b.target(s.WaitKind)
	var text string
	if tell == storage.StepRemind {
		left := target - b.cfg.Hours.Between(s.WaitStarted, tx.Now())
		text = tt.TargetReminder(d.Number, who, tt.TargetKind(s.WaitKind), tt.Duration(max(left, time.Minute)))
	} else {
		if err := tx.RecordTargetMissed(d, s.Owner); err != nil {
			return err
		}
		text = tt.TargetMissed(d.Number, who, tt.TargetKind(s.WaitKind), tt.Span(target))
	}
	return enqueue(tx, d.PortalID, outbox.Entry{Lane: outbox.DialogLane(d.ID)}, bitrix24.SendMessage{
		To: bitrix24.GroupChat(d.ChatID), Text: text,
	})
}

// outOfHours answers a client who writes in the dialog while support is closed, once
// per dialog and closed period (named by the instant it ends), in the client's
// language, saying when support is back.
func (t *turn) outOfHours(d storage.Dialog) error {
	h := t.b.cfg.Hours
	now := t.tx.Now()
	if h.Open(now) {
		return nil
	}
	back := h.NextOpen(now)
	told, err := t.tx.ClaimOutOfHours(d.ID, back)
	if err != nil || !told {
		return err
	}
	ct := clientTexts(&d)
	return t.send(outbox.DialogLane(d.ID), bitrix24.AwaitedChat, ct.OutOfHours(ct.When(back.In(h.Location()))), nil, d.ID)
}
