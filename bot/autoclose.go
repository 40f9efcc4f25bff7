package bot

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// Auto-close: a dialog an agent answered last, whose client has been silent for
// AutoCloseAfter, is resolved; AutoCloseWarning before, the client is warned in the
// dialog, with a button to keep it open. The client's message ends the silence, and
// so does the button. What is due is read from the database (see storage.AutoClose),
// never held in memory, so a restart neither skips nor repeats anything.

func (b *Bot) autoClose() storage.AutoClose {
	return storage.AutoClose{After: b.cfg.AutoCloseAfter, Warning: b.cfg.AutoCloseWarning}
}

// The sweep's pace: a warning or a close comes at most one sweep late, so the sweep
// runs every tenth of the shortest period it keeps, but not more than once a second
// (each sweep reads the active dialogs) and at least once a minute.
const (
	sweepShare = 10
	minSweep   = time.Second
	maxSweep   = time.Minute
)

// AutoCloseSweep is how often the auto-close sweep runs for these periods: a tenth
// of the silence before the warning or of the warning, whichever is shorter, within
// a second and a minute. Periods under ten seconds would be kept less well than that;
// the configuration refuses them.
func AutoCloseSweep(after, warning time.Duration) time.Duration {
	period := after
	if warning > 0 {
		period = min(warning, after-warning)
	}
	if period <= 0 {
		return maxSweep
	}
	return min(max(period/sweepShare, minSweep), maxSweep)
}

// AutoClose sends the warnings and makes the closes that are due, and reports how
// many of each it did. Each is one transaction that claims the dialog and queues its
// message together: only one of any number of concurrent sweeps (a second replica, a
// run that overlaps a restart) can claim it, and a crash loses or repeats neither.
// A dialog that fails is left for the next sweep; the others go on.
func (b *Bot) AutoClose(ctx context.Context, store *storage.Store) (warned, closed int, err error) {
	ac := b.autoClose()
	if ac.After <= 0 {
		return 0, 0, nil
	}
	var warn, closing []int64
	err = store.View(ctx, func(tx *storage.Tx) (err error) {
		warn, closing, err = tx.DueAutoClose(ac)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	var errs []error
	for _, id := range warn {
		done, err := b.claimAndTell(ctx, store, id, (*storage.Tx).ClaimAutoCloseWarning, b.warnOfAutoClose)
		if done {
			warned++
		}
		errs = append(errs, err)
	}
	for _, id := range closing {
		done, err := b.claimAndTell(ctx, store, id, (*storage.Tx).ClaimAutoClose, b.announceAutoClose)
		if done {
			closed++
		}
		errs = append(errs, err)
	}
	return warned, closed, errors.Join(errs...)
}

// claimAndTell runs, in one transaction, claim for a dialog and, if it won, tell. A
// dialog that fails stays due, for the next sweep.
func (b *Bot) claimAndTell(ctx context.Context, store *storage.Store, dialogID int64,
	claim func(*storage.Tx, int64, storage.AutoClose) (bool, error), tell func(*storage.Tx, storage.Dialog) error) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var won bool
	err := store.Update(ctx, func(tx *storage.Tx) error {
		ok, err := claim(tx, dialogID, b.autoClose())
		won = ok // not +=: the function may run again
		if err != nil || !ok {
			return err
		}
		d, err := tx.Dialog(dialogID)
		if err != nil {
			return err
		}
		return tell(tx, d)
	})
	if err != nil {
		return false, fmt.Errorf("auto-close of dialog %d: %w", dialogID, err)
	}
	return won, nil
}

// warnOfAutoClose tells the client, in the dialog and in their language, that it
// closes unless they answer, with the button that keeps it open.
func (b *Bot) warnOfAutoClose(tx *storage.Tx, d storage.Dialog) error {
	ct := clientTexts(&d)
	kb := &bitrix24.Keyboard{Buttons: []bitrix24.Button{button(ct.BtnKeepOpen, cmdKeep, strconv.Itoa(d.Number), true)}}
	return enqueue(tx, d.PortalID, outbox.Entry{Lane: outbox.DialogLane(d.ID)}, bitrix24.SendMessage{
		To: bitrix24.GroupChat(d.ChatID), Text: b.autoCloseWarning(ct, d), Keyboard: kb,
	})
}

func (b *Bot) autoCloseWarning(ct *texts, d storage.Dialog) string {
	return ct.AutoCloseWarning(d.Number, mention(d.ClientID, d.ClientName), ct.Span(b.cfg.AutoCloseWarning))
}

// announceAutoClose records the auto-close in the dialog's life and says in the
// dialog why it closed and how to reopen it. Unlike an agent's /close it asks for no
// rating: nobody said the question was solved.
func (b *Bot) announceAutoClose(tx *storage.Tx, d storage.Dialog) error {
	if err := tx.AddDialogEvent(d, storage.LifeAutoClosed, 0); err != nil {
		return err
	}
	ct := clientTexts(&d)
	return enqueue(tx, d.PortalID, outbox.Entry{Lane: outbox.DialogLane(d.ID)}, bitrix24.SendMessage{
		To: bitrix24.GroupChat(d.ChatID), Text: ct.AutoClosed(d.Number, ct.Span(b.cfg.AutoCloseAfter)),
	})
}

// keepOpen: the client's "Keep it open" under a warning starts the silence again and
// turns the button into the answer. Only the dialog's client's press counts; anyone
// else's changes nothing. Pressed after the dialog closed, it reopens it as writing
// there would.
func (t *turn) keepOpen(args string) error {
	d := t.dialog
	if d == nil {
		return t.reply(t.t.NotInDialog, nil)
	}
	if n := strings.TrimSpace(args); d.ClientID != t.from.id || (n != "" && n != strconv.Itoa(d.Number)) {
		t.b.log.Warn("keep-open ignored", "dialog", d.Number, "args", args, "user", t.from.id, "client", d.ClientID)
		return nil
	}
	if !d.Active() {
		if err := t.clientWritesInResolved(); err != nil || !d.Active() {
			return err
		}
	}
	if err := t.tx.KeepOpen(d.ID); err != nil {
		return err
	}
	if t.keyboardMessageID <= 0 {
		return nil
	}
	ct := clientTexts(d)
	return t.enqueue(outbox.Entry{Lane: outbox.DialogLane(d.ID)}, bitrix24.UpdateMessage{
		MessageID: t.keyboardMessageID, Text: t.b.autoCloseWarning(ct, *d) + "\n\n" + ct.KeptOpen, DropKeyboard: true,
	})
}
