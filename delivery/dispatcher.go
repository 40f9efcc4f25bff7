// Package delivery sends what the bot decided to say: it takes due entries from the
// outbox, calls the portal — one batch for everything due at once — and records each
// result, in order per chat, retrying what can succeed later.
package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// Caller makes REST calls to one portal. *bitrix24.Client is one; DryRun another.
type Caller interface {
	Call(ctx context.Context, method string, params any) (json.RawMessage, error)
	Batch(ctx context.Context, cmds []bitrix24.BatchCommand, halt bool) ([]bitrix24.BatchResult, error)
}

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
	log     *slog.Logger
	obs     Observer

	// Poll is the longest the dispatcher sleeps when nothing signals new work.
	Poll time.Duration
	// MaxBackoff caps the wait between attempts of one entry.
	MaxBackoff time.Duration

	wake chan struct{}
}

// New builds a dispatcher that sends through the caller of each entry's portal.
func New(store *storage.Store, callers func(portalID int64) (Caller, error), log *slog.Logger, obs Observer) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = nopObserver{}
	}
	return &Dispatcher{
		store: store, callers: callers, log: log, obs: obs,
		Poll: time.Second, MaxBackoff: 2 * time.Minute,
		wake: make(chan struct{}, 1),
	}
}

// Single returns a callers function for one portal's caller (webhook mode).
func Single(c Caller) func(int64) (Caller, error) {
	return func(int64) (Caller, error) { return c, nil }
}

// Wake makes the dispatcher look at the outbox now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
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
		case <-d.wake:
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
	result    json.RawMessage
	err       error
	maybeSent bool   // the failed attempt may have run on the portal
	giveUp    string // set: fail the entry without a call
}

// RunOnce sends the entries due now — at most one per chat, so that replies to one
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

// send makes one portal's calls: a single call for one entry, one batch for more.
func (d *Dispatcher) send(ctx context.Context, portalID int64, entries []storage.OutboxEntry) []outcome {
	outcomes := make([]outcome, 0, len(entries))
	var toSend []storage.OutboxEntry
	caller, err := d.callers(portalID)
	for _, e := range entries {
		switch {
		case err != nil:
			outcomes = append(outcomes, outcome{entry: e, err: err})
		case e.NeedsDialog != 0 && e.DialogChatFailed:
			outcomes = append(outcomes, outcome{entry: e, giveUp: "the dialog's chat could not be created"})
		case e.Method == "imbot.chat.add" && e.MaybeSent:
			// The chat may exist already: look for it by the entity the bot stamped
			// on it rather than create a second one.
			if o, found := d.findChat(ctx, caller, e); found {
				outcomes = append(outcomes, o)
				continue
			}
			toSend = append(toSend, e)
		default:
			toSend = append(toSend, e)
		}
	}
	if len(toSend) == 0 {
		return outcomes
	}
	for _, e := range toSend {
		if e.MaybeSent && e.Method != "imbot.chat.add" && !idempotent(e.Method) {
			d.obs.ObserveMaybeDuplicate(e.Method)
			d.log.Warn("sending again a call that may have run: the portal may show it twice",
				"method", e.Method, "outbox_id", e.ID, "chat", e.ChatKey)
		}
	}
	if len(toSend) == 1 {
		e := toSend[0]
		result, err := caller.Call(ctx, e.Method, paramsOf(e))
		return append(outcomes, d.outcomeOf(e, result, err))
	}
	batch := make([]bitrix24.BatchCommand, 0, len(toSend))
	sent := make([]storage.OutboxEntry, 0, len(toSend))
	for _, e := range toSend {
		params, err := decodeParams(paramsOf(e))
		if err != nil {
			// Our own JSON: cannot happen unless the database was edited by hand.
			outcomes = append(outcomes, outcome{entry: e, giveUp: "unreadable params: " + err.Error()})
			continue
		}
		batch = append(batch, bitrix24.BatchCommand{Key: "o" + strconv.FormatInt(e.ID, 10), Method: e.Method, Params: params})
		sent = append(sent, e)
	}
	results, err := caller.Batch(ctx, batch, false)
	for i, e := range sent {
		if err != nil {
			outcomes = append(outcomes, d.outcomeOf(e, nil, err))
			continue
		}
		outcomes = append(outcomes, d.outcomeOf(e, results[i].Result, results[i].Err))
	}
	return outcomes
}

// paramsOf is an entry's params with the dialog's chat ID and the bot's ID filled in.
func paramsOf(e storage.OutboxEntry) json.RawMessage {
	params := e.Params
	if e.NeedsDialog != 0 {
		params = fillChatID(params, e.DialogChatID)
	}
	return bytes.ReplaceAll(params, botPlaceholderJSON, []byte(strconv.FormatInt(e.PortalBotID, 10)))
}

func (d *Dispatcher) outcomeOf(e storage.OutboxEntry, result json.RawMessage, err error) outcome {
	o := outcome{entry: e, result: result, err: err}
	var te *bitrix24.TransportError
	if errors.As(err, &te) {
		o.maybeSent = te.MaybeSent
	}
	return o
}

// findChat asks the portal for the chat of the dialog an imbot.chat.add was for.
func (d *Dispatcher) findChat(ctx context.Context, caller Caller, e storage.OutboxEntry) (outcome, bool) {
	var p struct {
		EntityType string `json:"ENTITY_TYPE"`
		EntityID   string `json:"ENTITY_ID"`
	}
	if json.Unmarshal(e.Params, &p) != nil || p.EntityType == "" || p.EntityID == "" {
		return outcome{}, false
	}
	raw, err := caller.Call(ctx, "imbot.chat.get", map[string]any{"ENTITY_TYPE": p.EntityType, "ENTITY_ID": p.EntityID})
	if err != nil {
		// Not knowing is not a reason to create a second chat: try again later.
		return d.outcomeOf(e, nil, err), true
	}
	id, err := chatIDOf(raw)
	if err != nil {
		return outcome{}, false // no such chat: the first attempt did not create it
	}
	d.log.Info("found the chat an earlier attempt created", "outbox_id", e.ID, "chat_id", id)
	return outcome{entry: e, result: json.RawMessage(strconv.FormatInt(id, 10))}, true
}

// chatIDOf reads imbot.chat.get's result: the chat's ID as a number or string, or an
// object with an ID field; null or false when there is no such chat.
func chatIDOf(raw json.RawMessage) (int64, error) {
	if id, err := resultID(raw); err == nil {
		return id, nil
	}
	var obj struct {
		ID json.RawMessage `json:"ID"`
	}
	if json.Unmarshal(raw, &obj) == nil && len(obj.ID) > 0 {
		return resultID(obj.ID)
	}
	return 0, fmt.Errorf("no chat in %s", raw)
}

// idempotent lists methods that do no harm when they run twice.
func idempotent(method string) bool {
	switch method {
	case "imbot.chat.updateTitle", "imbot.message.update", "imbot.chat.get", "imbot.dialog.get":
		return true
	}
	return false
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
		d.obs.ObserveDelivery(e.Method, "failed")
		d.log.Error("giving a call up", "method", e.Method, "reason", o.giveUp, "outbox_id", e.ID)
		if err := tx.FailOutbox(e.ID, o.giveUp); err != nil {
			return err
		}
		return applyFailure(tx, e)
	case o.err == nil:
		d.obs.ObserveDelivery(e.Method, "delivered")
		if err := tx.CompleteOutbox(e.ID, o.result); err != nil {
			return err
		}
		return applySuccess(tx, e, o.result)
	case errors.As(o.err, &apiErr) && !apiErr.Temporary():
		d.obs.ObserveDelivery(e.Method, "failed")
		d.log.Error("the portal refused a call; giving it up", "method", e.Method, "code", apiErr.Code,
			"description", apiErr.Description, "outbox_id", e.ID, "chat", e.ChatKey)
		if err := tx.FailOutbox(e.ID, apiErr.Code+": "+apiErr.Description); err != nil {
			return err
		}
		return applyFailure(tx, e)
	default:
		at, reason := d.retryAt(now, e.Attempts, o.err)
		d.obs.ObserveRetry(e.Method, reason)
		d.log.Warn("call failed; will retry", "method", e.Method, "reason", reason, "err", o.err,
			"attempt", e.Attempts+1, "retry_at", at, "maybe_sent", o.maybeSent, "outbox_id", e.ID)
		return tx.RetryOutbox(e.ID, at, o.err.Error(), o.maybeSent)
	}
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

// placeholderJSON and botPlaceholderJSON are the placeholders as encoding/json writes
// them inside a JSON string.
var (
	placeholderJSON    = jsonInner(storage.ChatIDPlaceholder)
	botPlaceholderJSON = jsonInner(storage.BotIDPlaceholder)
)

func jsonInner(s string) []byte {
	b, _ := json.Marshal(s)
	return b[1 : len(b)-1]
}

// fillChatID puts the dialog's chat ID where the bot left the placeholder.
func fillChatID(params json.RawMessage, chatID int64) json.RawMessage {
	return bytes.ReplaceAll(params, placeholderJSON, []byte(strconv.FormatInt(chatID, 10)))
}

// decodeParams turns stored params into the map a batch command takes, numbers kept
// exact.
func decodeParams(raw json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
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
	case storage.EffectBotRegistered:
		id, err := resultID(result)
		if err != nil {
			return tx.FailLane(e.PortalID, e.ChatKey, "imbot.register answered without a bot ID")
		}
		return tx.SetBotID(e.PortalID, id)
	case storage.EffectCommandRegistered:
		var p struct {
			Command string `json:"COMMAND"`
		}
		id, err := resultID(result)
		if err != nil || json.Unmarshal(e.Params, &p) != nil || p.Command == "" {
			return nil
		}
		return tx.SetCommand(e.PortalID, p.Command, id)
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
	case storage.EffectBotRegistered:
		return tx.FailLane(e.PortalID, e.ChatKey, "the bot could not be registered")
	}
	return nil
}

// resultID reads an ID result, which Bitrix24 sends as a number or a numeric string.
func resultID(raw json.RawMessage) (int64, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return 0, fmt.Errorf("result %s: %w", raw, err)
	}
	var n json.Number
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
