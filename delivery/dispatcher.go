// Package delivery sends what the bot decided to say: it takes due entries from the
// outbox, calls the portal, and records each result, in order per chat.
package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// Caller makes one REST call to a portal. *bitrix24.Client is one; DryRun another.
type Caller interface {
	Call(ctx context.Context, method string, params any) (json.RawMessage, error)
}

// Dispatcher drains the outbox.
type Dispatcher struct {
	store  *storage.Store
	caller Caller
	log    *slog.Logger

	// Poll is how often the outbox is checked when nothing signals new work; it is
	// what picks up retries that have come due.
	Poll time.Duration
	// MaxBackoff caps the wait between attempts of one entry.
	MaxBackoff time.Duration

	wake chan struct{}
}

// New builds a dispatcher that sends through caller.
func New(store *storage.Store, caller Caller, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		store: store, caller: caller, log: log,
		Poll: time.Second, MaxBackoff: 5 * time.Minute,
		wake: make(chan struct{}, 1),
	}
	return d
}

// Wake makes the dispatcher look at the outbox now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run sends until ctx ends. A call under way when ctx ends is abandoned on our side
// and its entry stays pending, to be sent again on the next start.
func (d *Dispatcher) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		n, err := d.RunOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.log.Error("outbox", "err", err)
		}
		if n > 0 && err == nil {
			continue // more may be due at once
		}
		timer.Reset(d.Poll)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-d.store.OutboxSignal():
		case <-timer.C:
		}
	}
}

// RunOnce sends the entries due now, at most one per chat, and returns how many it
// handled.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	entries, err := d.store.DueOutbox(ctx, 50)
	if err != nil {
		return 0, err
	}
	for i, e := range entries {
		if err := d.deliver(ctx, e); err != nil {
			return i, err
		}
	}
	return len(entries), nil
}

// deliver makes one entry's call and records what happened.
func (d *Dispatcher) deliver(ctx context.Context, e storage.OutboxEntry) error {
	if e.NeedsDialog != 0 && e.DialogChatFailed {
		return d.store.Update(ctx, func(tx *storage.Tx) error {
			if err := tx.FailOutbox(e.ID, "the dialog's chat could not be created"); err != nil {
				return err
			}
			return applyFailure(tx, e)
		})
	}
	params := e.Params
	if e.NeedsDialog != 0 {
		params = fillChatID(params, e.DialogChatID)
	}
	result, callErr := d.caller.Call(ctx, e.Method, params)
	if callErr != nil && ctx.Err() != nil {
		return nil // shutting down: the entry stays pending and is sent after the restart
	}
	var apiErr *bitrix24.Error
	switch {
	case callErr == nil:
		return d.store.Update(context.WithoutCancel(ctx), func(tx *storage.Tx) error {
			if err := tx.CompleteOutbox(e.ID, result); err != nil {
				return err
			}
			return applySuccess(tx, e, result)
		})
	case errors.As(callErr, &apiErr) && !apiErr.Temporary():
		d.log.Error("portal refused a call; giving it up", "method", e.Method, "code", apiErr.Code,
			"description", apiErr.Description, "outbox_id", e.ID, "chat", e.ChatKey)
		return d.store.Update(context.WithoutCancel(ctx), func(tx *storage.Tx) error {
			if err := tx.FailOutbox(e.ID, apiErr.Code+": "+apiErr.Description); err != nil {
				return err
			}
			return applyFailure(tx, e)
		})
	default:
		wait := d.backoff(e.Attempts)
		d.log.Warn("call failed; will retry", "method", e.Method, "err", callErr, "attempt", e.Attempts+1,
			"retry_in", wait, "outbox_id", e.ID)
		return d.store.Update(context.WithoutCancel(ctx), func(tx *storage.Tx) error {
			return tx.RetryOutbox(e.ID, tx.Now().Add(wait), callErr.Error())
		})
	}
}

// backoff doubles the wait with each attempt: 1 s, 2 s, 4 s … up to MaxBackoff.
func (d *Dispatcher) backoff(attempts int) time.Duration {
	wait := time.Second
	for i := 0; i < attempts && wait < d.MaxBackoff; i++ {
		wait *= 2
	}
	return min(wait, d.MaxBackoff)
}

// placeholderJSON is storage.ChatIDPlaceholder as encoding/json writes it inside a
// JSON string.
var placeholderJSON = func() []byte {
	b, _ := json.Marshal(storage.ChatIDPlaceholder)
	return b[1 : len(b)-1]
}()

// fillChatID puts the dialog's chat ID where the bot left the placeholder.
func fillChatID(params json.RawMessage, chatID int64) json.RawMessage {
	return bytes.ReplaceAll(params, placeholderJSON, []byte(strconv.FormatInt(chatID, 10)))
}

// applySuccess records what a successful call's result means.
func applySuccess(tx *storage.Tx, e storage.OutboxEntry, result json.RawMessage) error {
	switch e.Effect {
	case storage.EffectDialogChat:
		chatID, err := resultID(result)
		if err != nil {
			if err := tx.MarkDialogChatFailed(e.EffectRef); err != nil {
				return err
			}
			_, err := tx.FailDependents(e.EffectRef, "imbot.chat.add answered without a chat ID")
			return err
		}
		return tx.SetDialogChat(e.EffectRef, chatID)
	case storage.EffectTitleSent:
		return tx.TitleSent(e.EffectRef)
	case storage.EffectAccessRequestMessage:
		if id, err := resultID(result); err == nil {
			return tx.SetAccessRequestMessage(e.EffectRef, id)
		}
	}
	return nil
}

// applyFailure records that a call will never be made.
func applyFailure(tx *storage.Tx, e storage.OutboxEntry) error {
	switch e.Effect {
	case storage.EffectDialogChat:
		if err := tx.MarkDialogChatFailed(e.EffectRef); err != nil {
			return err
		}
		_, err := tx.FailDependents(e.EffectRef, "the dialog's chat could not be created")
		return err
	case storage.EffectTitleSent:
		return tx.TitleSent(e.EffectRef)
	}
	return nil
}

// resultID reads an ID result, which Bitrix24 sends as a number or a numeric string.
func resultID(raw json.RawMessage) (int64, error) {
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return 0, fmt.Errorf("result %s: %w", raw, err)
	}
	switch x := v.(type) {
	case json.Number:
		n = x
	case string:
		n = json.Number(x)
	default:
		return 0, fmt.Errorf("result %s is not an ID", raw)
	}
	id, err := n.Int64()
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("result %s is not an ID", raw)
	}
	return id, nil
}
