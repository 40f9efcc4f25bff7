// Package delivery does what the bot decided: it takes due actions from the outbox,
// has the wire render them as calls, sends them — one batch for everything due at
// once — in order per lane, retries what can succeed later and records each outcome,
// asking the bot (Settle) what it means.
package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"supportbot/bitrix24"
	"supportbot/bot"
	"supportbot/storage"
)

// Caller makes REST calls to one portal. *bitrix24.Client is one; bitrix24.DryRun
// another.
type Caller interface {
	bitrix24.Caller
	Batch(ctx context.Context, cmds []bitrix24.BatchCommand, halt bool) ([]bitrix24.BatchResult, error)
}

// Settle is told how each action ended, in the transaction that records it: the bot's
// bot.Bot.Settle, which owns what results mean.
type Settle func(tx *storage.Tx, e storage.OutboxEntry, a bitrix24.Action, r bot.Result) error

// Observer is told what becomes of outbox entries, for metrics.
type Observer interface {
	// ObserveDelivery: an entry was delivered ("delivered") or given up ("failed").
	ObserveDelivery(method, outcome string)
	// ObserveRetry: an attempt failed for a reason that may pass (an error code, or
	// "transport"), and the entry will be tried again.
	ObserveRetry(method, reason string)
	// ObserveMaybeDuplicate: an entry is sent again although an earlier attempt may
	// have run on the portal, so the portal may now show it twice.
	ObserveMaybeDuplicate(method string)
}

type nopObserver struct{}

func (nopObserver) ObserveDelivery(string, string) {}
func (nopObserver) ObserveRetry(string, string)    {}
func (nopObserver) ObserveMaybeDuplicate(string)   {}

// Dispatcher drains the outbox.
type Dispatcher struct {
	store   *storage.Store
	callers func(portalID int64) (Caller, error)
	wire    bitrix24.Wire
	settle  Settle
	log     *slog.Logger
	obs     Observer

	// Poll is the longest the dispatcher sleeps when nothing signals new work.
	Poll time.Duration
	// MaxBackoff caps the wait between attempts of one entry.
	MaxBackoff time.Duration
}

// New builds a dispatcher that sends through the caller of each entry's portal and
// tells settle how each action ended.
func New(store *storage.Store, callers func(portalID int64) (Caller, error), settle Settle, log *slog.Logger, obs Observer) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = nopObserver{}
	}
	return &Dispatcher{
		store: store, callers: callers, wire: bitrix24.V1, settle: settle, log: log, obs: obs,
		Poll: time.Second, MaxBackoff: 2 * time.Minute,
	}
}

// Single returns a callers function for one portal's caller (webhook mode).
func Single(c Caller) func(int64) (Caller, error) {
	return func(int64) (Caller, error) { return c, nil }
}

// Run sends until ctx ends; then it finishes the calls under way and returns. Those
// calls run under hard: cancelling hard abandons them (their entries stay pending and
// are sent again after a restart).
func (d *Dispatcher) Run(ctx, hard context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		n, err := d.RunOnce(hard)
		if err != nil && hard.Err() == nil {
			d.log.Error("outbox", "err", err)
		}
		if n > 0 && err == nil {
			continue // more may be due at once
		}
		timer.Reset(d.sleep(ctx))
		select {
		case <-ctx.Done():
			return
		case <-d.store.OutboxSignal():
		case <-timer.C:
		}
	}
}

// sleep is how long to wait for new work: until the next retry is due, at most Poll.
func (d *Dispatcher) sleep(ctx context.Context) time.Duration {
	next, err := d.store.NextOutboxAttempt(ctx)
	if err != nil || next.IsZero() {
		return d.Poll
	}
	return min(max(time.Until(next), 10*time.Millisecond), d.Poll)
}

// outcome is what became of one entry's attempt.
type outcome struct {
	entry     storage.OutboxEntry
	action    bitrix24.Action // nil when the entry could not be read
	method    string          // the call's method, or the action's kind when no call was made
	result    json.RawMessage
	err       error
	maybeSent bool   // the failed attempt may have run on the portal
	giveUp    string // set: fail the entry without a call
	found     int64  // set: what the action creates exists already, with this ID
}

// RunOnce sends the entries due now — at most one per lane, so that replies to one
// chat keep their order — and records the outcomes. It returns how many entries it
// handled.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	entries, err := d.store.DueOutbox(ctx, bitrix24.MaxBatch)
	if err != nil {
		return 0, err
	}
	if len(entries) == 0 {
		return 0, nil
	}
	byPortal := map[int64][]storage.OutboxEntry{}
	var portals []int64
	for _, e := range entries {
		if _, ok := byPortal[e.PortalID]; !ok {
			portals = append(portals, e.PortalID)
		}
		byPortal[e.PortalID] = append(byPortal[e.PortalID], e)
	}
	ids := make([]int64, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	if err := d.store.Update(ctx, func(tx *storage.Tx) error { return tx.MarkInFlight(ids) }); err != nil {
		return 0, err
	}
	var outcomes []outcome
	for _, p := range portals {
		outcomes = append(outcomes, d.send(ctx, p, byPortal[p])...)
	}
	if ctx.Err() != nil {
		// Abandoned: nothing is recorded. The entries stay pending and in flight, so
		// the next attempt knows they may have run.
		return 0, ctx.Err()
	}
	return len(outcomes), d.record(ctx, outcomes)
}

// prepared is an entry ready to send: its action and the call that does it.
type prepared struct {
	entry  storage.OutboxEntry
	action bitrix24.Action
	call   bitrix24.Call
}

// send does one portal's entries: a single call for one entry, one batch for more.
func (d *Dispatcher) send(ctx context.Context, portalID int64, entries []storage.OutboxEntry) []outcome {
	outcomes := make([]outcome, 0, len(entries))
	var toSend []prepared
	caller, callerErr := d.callers(portalID)
	for _, e := range entries {
		a, err := bitrix24.DecodeAction(e.Kind, e.Action, e.DialogChatID)
		switch {
		case err != nil:
			// Our own JSON: cannot happen unless the database was edited by hand.
			outcomes = append(outcomes, outcome{entry: e, method: e.Kind, giveUp: "unreadable action: " + err.Error()})
			continue
		case callerErr != nil:
			outcomes = append(outcomes, outcome{entry: e, action: a, method: e.Kind, err: callerErr})
			continue
		case e.AwaitsDialog != 0 && e.DialogChatFailed:
			outcomes = append(outcomes, outcome{entry: e, action: a, method: e.Kind, giveUp: "the dialog's chat could not be created"})
			continue
		}
		if e.MaybeSent && !a.Repeatable() {
			if lookup, ok := d.wire.Lookup(a); ok {
				// What it creates may exist already: look for it rather than make a second.
				if o, found := d.findExisting(ctx, caller, e, a, lookup); found {
					outcomes = append(outcomes, o)
					continue
				}
			}
		}
		call, err := d.wire.Render(a, bitrix24.Context{BotID: e.PortalBotID})
		if err != nil {
			outcomes = append(outcomes, outcome{entry: e, action: a, method: e.Kind, giveUp: err.Error()})
			continue
		}
		if e.MaybeSent && !a.Repeatable() {
			if _, lookable := d.wire.Lookup(a); !lookable {
				d.obs.ObserveMaybeDuplicate(call.Method)
				d.log.Warn("sending again a call that may have run: the portal may show it twice",
					"method", call.Method, "outbox_id", e.ID, "lane", e.Lane)
			}
		}
		toSend = append(toSend, prepared{entry: e, action: a, call: call})
	}
	switch len(toSend) {
	case 0:
		return outcomes
	case 1:
		p := toSend[0]
		result, err := caller.Call(ctx, p.call.Method, p.call.Params)
		return append(outcomes, d.outcomeOf(p, result, err))
	}
	batch := make([]bitrix24.BatchCommand, len(toSend))
	for i, p := range toSend {
		batch[i] = bitrix24.BatchCommand{Key: "o" + strconv.FormatInt(p.entry.ID, 10), Method: p.call.Method, Params: p.call.Params}
	}
	results, err := caller.Batch(ctx, batch, false)
	for i, p := range toSend {
		if err != nil {
			outcomes = append(outcomes, d.outcomeOf(p, nil, err))
			continue
		}
		outcomes = append(outcomes, d.outcomeOf(p, results[i].Result, results[i].Err))
	}
	return outcomes
}

func (d *Dispatcher) outcomeOf(p prepared, result json.RawMessage, err error) outcome {
	o := outcome{entry: p.entry, action: p.action, method: p.call.Method, result: result, err: err}
	var te *bitrix24.TransportError
	if errors.As(err, &te) {
		o.maybeSent = te.MaybeSent
	}
	return o
}

// findExisting asks the portal for what an action that may have run created (the
// chat of a dialog, by its entity). found is false when there is nothing: the first
// attempt did not run, and the action is sent again.
func (d *Dispatcher) findExisting(ctx context.Context, caller Caller, e storage.OutboxEntry, a, lookup bitrix24.Action) (outcome, bool) {
	call, err := d.wire.Render(lookup, bitrix24.Context{BotID: e.PortalBotID})
	if err != nil {
		return outcome{}, false
	}
	raw, err := caller.Call(ctx, call.Method, call.Params)
	if err != nil {
		// Not knowing is not a reason to create a second one: try again later.
		return d.outcomeOf(prepared{entry: e, action: a, call: call}, nil, err), true
	}
	id := d.wire.ResultID(lookup, raw)
	if id == 0 {
		return outcome{}, false
	}
	d.log.Info("found what an earlier attempt created", "outbox_id", e.ID, "kind", e.Kind, "id", id)
	return outcome{entry: e, action: a, method: call.Method, result: json.RawMessage(strconv.FormatInt(id, 10)), found: id}, true
}

// record writes every outcome of a round in one transaction.
func (d *Dispatcher) record(ctx context.Context, outcomes []outcome) error {
	now := d.store.Now()
	return d.store.Update(context.WithoutCancel(ctx), func(tx *storage.Tx) error {
		for _, o := range outcomes {
			if err := d.recordOne(tx, now, o); err != nil {
				return err
			}
		}
		return nil
	})
}

func (d *Dispatcher) recordOne(tx *storage.Tx, now time.Time, o outcome) error {
	e := o.entry
	var apiErr *bitrix24.Error
	switch {
	case o.giveUp != "":
		d.log.Error("giving an action up", "method", o.method, "reason", o.giveUp, "outbox_id", e.ID)
		return d.fail(tx, o, o.giveUp)
	case o.err == nil:
		d.obs.ObserveDelivery(o.method, "delivered")
		if err := tx.CompleteOutbox(e.ID, o.result); err != nil {
			return err
		}
		id := o.found
		if id == 0 {
			id = d.wire.ResultID(o.action, o.result)
		}
		return d.settle(tx, e, o.action, bot.Result{ID: id})
	case errors.As(o.err, &apiErr) && !apiErr.Temporary():
		d.log.Error("the portal refused a call; giving it up", "method", o.method, "code", apiErr.Code,
			"description", apiErr.Description, "outbox_id", e.ID, "lane", e.Lane)
		return d.fail(tx, o, apiErr.Code+": "+apiErr.Description)
	default:
		at, reason := d.retryAt(now, e.Attempts, o.err)
		d.obs.ObserveRetry(o.method, reason)
		d.log.Warn("call failed; will retry", "method", o.method, "reason", reason, "err", o.err,
			"attempt", e.Attempts+1, "retry_at", at, "maybe_sent", o.maybeSent, "outbox_id", e.ID)
		return tx.RetryOutbox(e.ID, at, o.err.Error(), o.maybeSent)
	}
}

// fail gives an entry up for good and tells the bot.
func (d *Dispatcher) fail(tx *storage.Tx, o outcome, reason string) error {
	d.obs.ObserveDelivery(o.method, "failed")
	if err := tx.FailOutbox(o.entry.ID, reason); err != nil {
		return err
	}
	if o.action == nil {
		return nil // unreadable: nothing the bot could make of it
	}
	return d.settle(tx, o.entry, o.action, bot.Result{Failed: true})
}

// retryAt decides when to try again after attempts failures: exponential backoff with
// jitter, gentler where the portal asks for it, and never before operating_reset_at.
func (d *Dispatcher) retryAt(now time.Time, attempts int, err error) (time.Time, string) {
	base, limit, reason := time.Second, d.MaxBackoff, "transport"
	var apiErr *bitrix24.Error
	if errors.As(err, &apiErr) {
		reason = apiErr.Code
		switch {
		case errors.Is(apiErr, bitrix24.ErrQueryLimitExceeded):
			// The limiter already waits for the bucket to drain; the retry only needs
			// to leave it room.
			limit = 2 * time.Second
		case errors.Is(apiErr, bitrix24.ErrOverloadLimit):
			// A manual block: hammering it prolongs it.
			base, limit = 30*time.Second, 10*time.Minute
		}
	}
	wait := base
	for i := 0; i < attempts && wait < limit; i++ {
		wait *= 2
	}
	wait = min(wait, limit)
	// Full jitter on the upper half: entries that failed together spread out.
	wait = wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
	at := now.Add(wait)
	if apiErr != nil && at.Before(apiErr.ResetAt) {
		at = apiErr.ResetAt.Add(time.Duration(rand.Int64N(int64(time.Second))))
	}
	return at, reason
}
