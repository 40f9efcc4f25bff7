package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"supportbot/backoff"
	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// choose picks the entries of one request to a portal: up to a batch of due entries,
// oldest first, several of a lane in a row, none of the lanes in busy (held by
// another request in flight), and no more than any picked entry's batch limit: an
// entry of a request that timed out goes in requests half as large, so that a call
// that hangs is soon sent alone and holds up no other chat. Only what is picked is
// read (outbox.Handlers.Read).
func (d *Dispatcher) choose(ctx context.Context, portalID int64, busy map[string]bool) ([]outbox.Sending, error) {
	due, err := d.store.DueOutbox(ctx, portalID, 4*bitrix24.MaxBatch)
	if err != nil {
		return nil, err
	}
	var picked []outbox.Sending
	limit := bitrix24.MaxBatch
	if len(due) > 0 && (!bitrix24.WireFor(due[0].PortalAPI).Batch() || singleCalls(due[0], d.store.Now())) {
		limit = 1 // a call a request
	}
	passed := map[string]bool{} // lanes left out of this request from some entry on: the rest must wait
	for _, row := range due {
		if busy[row.Lane] || passed[row.Lane] {
			continue
		}
		own := bitrix24.MaxBatch
		if row.BatchLimit > 0 {
			own = row.BatchLimit
		}
		if len(picked) >= min(limit, own) {
			passed[row.Lane] = true
			continue
		}
		e := d.outbox.Read(row)
		picked, limit = append(picked, e), min(limit, own)
		if len(picked) == limit {
			break
		}
		if errors.Is(e.Err, outbox.ErrNewer) || (e.Action != nil && e.Action.AwaitsResult()) {
			passed[row.Lane] = true // the rest of its lane needs its answer first (or it, sent)
		}
	}
	return picked, nil
}

// outcome is what became of one entry's attempt.
type outcome struct {
	entry     outbox.Sending
	action    bitrix24.Action // as sent (an answer written); nil when the entry could not be read
	method    string          // the call's method, or the action's kind when no call was made
	result    json.RawMessage
	err       error
	maybeSent bool   // the failed attempt may have run on the portal
	giveUp    string // set: fail the entry without a call
	found     int64  // set: what the action creates exists already, with this ID
	skipped   bool   // the batch halted before it: it surely did not run
	refused   bool   // the portal would not run it inside batch: it surely did not run
	inBatch   bool   // it ran inside a batch
	merged    bool   // a later action in the request does its work (a later rename of the chat)
	sent      int    // how many calls went in its request
}

// deliver makes one request of entries to a portal and records what became of each.
func (d *Dispatcher) deliver(ctx context.Context, portalID int64, entries []outbox.Sending) error {
	if len(entries) == 0 {
		return nil
	}
	if err := d.store.Update(ctx, func(tx *storage.Tx) error { return tx.MarkInFlight(idsOf(entries)) }); err != nil {
		return err
	}
	outcomes := d.send(ctx, portalID, entries)
	if ctx.Err() != nil {
		// Abandoned: nothing is recorded. The entries stay pending and in flight, so
		// the next attempt knows they may have run.
		return ctx.Err()
	}
	return d.record(ctx, outcomes)
}

func idsOf(entries []outbox.Sending) []int64 {
	ids := make([]int64, len(entries))
	for i, e := range entries {
		ids[i] = e.Row.ID
	}
	return ids
}

// prepared is an entry ready to send: its action and the call that does it.
type prepared struct {
	entry  outbox.Sending
	action bitrix24.Action
	call   bitrix24.Call
}

// send makes the request: a single call for one entry, one batch for more, with halt
// so that after a failure nothing of a lane runs out of order. The entries are one
// portal's, so one wire renders them all.
func (d *Dispatcher) send(ctx context.Context, portalID int64, entries []outbox.Sending) []outcome {
	outcomes := make([]outcome, 0, len(entries))
	var toSend []prepared
	caller, callerErr := d.callers(portalID)
	wire, cx := bitrix24.WireFor(entries[0].Row.PortalAPI), contextOf(entries[0].Row)
	actions := make([]bitrix24.Action, len(entries))
	errs := make([]error, len(entries))
	readErrs := make([]error, len(entries))
	for i, e := range entries {
		actions[i], errs[i] = e.Action, e.Err
		if errors.Is(e.Err, outbox.ErrNewer) {
			// Not this replica's to give up: it keeps its place for one that knows it.
			errs[i], readErrs[i] = nil, e.Err
			continue
		}
		if errs[i] != nil {
			continue
		}
		// An answer that only reads is written now, from a read snapshot, outside the
		// writer (bot/answers.go); any other action stays as it is.
		written, err := d.outbox.Write(ctx, d.store, e)
		switch {
		case errors.Is(err, outbox.ErrUnreadable):
			errs[i] = err
		case err != nil:
			readErrs[i] = err
		default:
			actions[i] = written
		}
	}
	held := map[string]bool{} // lanes with an answer that could not be written
	for i, e := range entries {
		a, err := actions[i], errs[i]
		switch {
		case err != nil:
			// Our own rows: cannot happen unless the database was edited by hand.
			outcomes = append(outcomes, outcome{entry: e, method: e.Row.Kind, giveUp: "unreadable action: " + err.Error()})
			continue
		case callerErr != nil:
			outcomes = append(outcomes, outcome{entry: e, action: a, method: e.Row.Kind, err: callerErr})
			continue
		case readErrs[i] != nil: // the database could not be read, or a newer release wrote it: later
			// Not tried now: what an earlier attempt may have done stays said.
			outcomes = append(outcomes, outcome{entry: e, action: a, method: e.Row.Kind, err: readErrs[i], maybeSent: e.Row.MaybeSent})
			held[e.Row.Lane] = true
			continue
		case held[e.Row.Lane]: // behind an answer that waits: keeps its place, as a halted batch's
			outcomes = append(outcomes, outcome{entry: e, action: a, method: e.Row.Kind, skipped: true})
			continue
		case e.ChatFailed():
			outcomes = append(outcomes, outcome{entry: e, action: a, method: e.Row.Kind, giveUp: "the dialog's chat could not be created"})
			continue
		case superseded(actions, errs, i):
			outcomes = append(outcomes, outcome{entry: e, action: a, method: e.Row.Kind, merged: true})
			continue
		}
		if e.Row.MaybeSent && !a.Repeatable() {
			if lookup, ok := wire.Lookup(a); ok {
				// What it creates may exist already: look for it rather than make a second.
				if o, found := d.findExisting(ctx, caller, wire, cx, e, a, lookup); found {
					outcomes = append(outcomes, o)
					continue
				}
			}
		}
		call, err := wire.Render(a, cx)
		if err != nil {
			outcomes = append(outcomes, outcome{entry: e, action: a, method: e.Row.Kind, giveUp: err.Error()})
			continue
		}
		if e.Row.MaybeSent && !a.Repeatable() {
			if _, lookable := wire.Lookup(a); !lookable {
				d.obs.ObserveMaybeDuplicate(call.Method)
				d.log.Warn("sending again a call that may have run: the portal may show it twice",
					"method", call.Method, "outbox_id", e.Row.ID, "lane", e.Row.Lane)
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
		batch[i] = bitrix24.BatchCommand{Key: "o" + strconv.FormatInt(p.entry.Row.ID, 10), Method: p.call.Method, Params: p.call.Params}
	}
	results, err := caller.Batch(ctx, batch, true)
	for i, p := range toSend {
		switch {
		case err != nil && bitrix24.BatchRefused(p.call.Method, err),
			err == nil && bitrix24.BatchRefused(p.call.Method, results[i].Err),
			// Nothing run and nothing said of the first command: the portal ran none.
			err == nil && i == 0 && bitrix24.IsV2Method(p.call.Method) && errors.Is(results[i].Err, bitrix24.ErrBatchSkipped):
			outcomes = append(outcomes, outcome{entry: p.entry, action: p.action, method: p.call.Method, skipped: true, refused: true})
		case err != nil:
			o := d.outcomeOf(p, nil, err)
			o.sent = len(toSend)
			outcomes = append(outcomes, o)
		case i == 0 && errors.Is(results[i].Err, bitrix24.ErrBatchSkipped):
			// Nothing run and nothing said of the first command of a v1 request, which
			// no error halted: an answer the portal should not give. A failed attempt
			// that may have run, so that it backs off and ends with MaxAge rather than
			// go again at once for ever; the rest are put back.
			o := d.outcomeOf(p, nil, &bitrix24.TransportError{Method: p.call.Method, HTTPStatus: http.StatusOK, MaybeSent: true,
				Err: errors.New("the portal's answer to the batch has neither a result nor an error for it")})
			o.sent = len(toSend)
			outcomes = append(outcomes, o)
		case errors.Is(results[i].Err, bitrix24.ErrBatchSkipped):
			outcomes = append(outcomes, outcome{entry: p.entry, action: p.action, method: p.call.Method, skipped: true})
		default:
			o := d.outcomeOf(p, results[i].Result, results[i].Err)
			o.inBatch = true
			outcomes = append(outcomes, o)
		}
	}
	return outcomes
}

// superseded reports that a later action of the request makes action i unnecessary
// (bitrix24.Superseder): it is done without a call.
func superseded(actions []bitrix24.Action, errs []error, i int) bool {
	for j := i + 1; j < len(actions); j++ {
		if s, ok := actions[j].(bitrix24.Superseder); ok && errs[j] == nil && s.Supersedes(actions[i]) {
			return true
		}
	}
	return false
}

func (d *Dispatcher) outcomeOf(p prepared, result json.RawMessage, err error) outcome {
	o := outcome{entry: p.entry, action: p.action, method: p.call.Method, result: result, err: err, sent: 1}
	var te *bitrix24.TransportError
	if errors.As(err, &te) {
		o.maybeSent = te.MaybeSent
	}
	return o
}

// findExisting asks the portal for what an action that may have run created (the
// chat of a dialog, by its entity). found is false when there is nothing: the first
// attempt did not run, and the action is sent again.
func (d *Dispatcher) findExisting(ctx context.Context, caller Caller, wire bitrix24.Wire, cx bitrix24.Context,
	e outbox.Sending, a, lookup bitrix24.Action) (outcome, bool) {
	call, err := wire.Render(lookup, cx)
	if err != nil {
		return outcome{}, false
	}
	raw, err := caller.Call(ctx, call.Method, call.Params)
	if err != nil {
		// Not knowing is not a reason to create a second one: try again later.
		return d.outcomeOf(prepared{entry: e, action: a, call: call}, nil, err), true
	}
	id := wire.ResultID(lookup, raw)
	if id == 0 {
		return outcome{}, false
	}
	d.log.Info("found what an earlier attempt created", "outbox_id", e.Row.ID, "kind", e.Row.Kind, "id", id)
	return outcome{entry: e, action: a, method: call.Method, result: json.RawMessage(strconv.FormatInt(id, 10)), found: id}, true
}

// record writes every outcome of a round in one transaction.
func (d *Dispatcher) record(ctx context.Context, outcomes []outcome) error {
	now := d.store.Now()
	return d.untilRecorded(ctx, func(tx *storage.Tx, again bool) error {
		for _, o := range outcomes {
			if again {
				if pending, err := tx.OutboxPending(o.entry.Row.ID); err != nil || !pending {
					if err != nil {
						return err
					}
					continue // the try that lost its connection had committed
				}
			}
			if err := d.recordOne(tx, now, o); err != nil {
				return err
			}
		}
		return d.recordBatching(tx, now, outcomes)
	})
}

// singleCalls reports an entry whose portal refused imbot.v2 methods inside batch
// less than a day ago: its calls go one a request until then.
func singleCalls(e storage.OutboxRow, now time.Time) bool {
	return storage.Portal{BatchRefusedAt: e.PortalBatchRefusedAt}.SingleCalls(now)
}

// recordBatching keeps, with the portal, what a batch of v2 calls taught: that the
// portal refuses them inside batch (logged and counted once, whichever replica or
// request learnt it first), or, a day later, that it takes them again.
func (d *Dispatcher) recordBatching(tx *storage.Tx, now time.Time, outcomes []outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	refused, ran := false, false
	for _, o := range outcomes {
		refused = refused || o.refused
		ran = ran || (o.inBatch && o.err == nil && bitrix24.IsV2Method(o.method))
	}
	e := outcomes[0].entry.Row
	switch {
	case refused:
		p, err := tx.Portal(e.PortalID)
		if err != nil || p.SingleCalls(now) {
			return err // known already
		}
		d.obs.ObserveBatchRefused()
		d.log.Warn("the portal does not run imbot.v2 methods inside batch: its calls go one a request; batch is tried again in a day",
			"portal", e.PortalID, "retry_at", now.Add(storage.BatchRetryAfter))
		return tx.SetBatchRefused(e.PortalID, now)
	case ran && !e.PortalBatchRefusedAt.IsZero():
		d.log.Info("the portal runs imbot.v2 methods inside batch again", "portal", e.PortalID)
		return tx.SetBatchRefused(e.PortalID, time.Time{})
	}
	return nil
}

func (d *Dispatcher) recordOne(tx *storage.Tx, now time.Time, o outcome) error {
	e := o.entry.Row
	var apiErr *bitrix24.Error
	switch {
	case o.skipped:
		return tx.ReleaseOutbox([]storage.OutboxRow{e})
	case o.merged:
		if done, err := tx.CompleteOutbox(e.ID, json.RawMessage(`"superseded by a later action"`)); err != nil || !done {
			return err
		}
		d.obs.ObserveDelivery(o.method, "merged")
		return d.settle(tx, o, 0, false)
	case o.giveUp != "":
		d.log.Error("giving an action up", "method", o.method, "reason", o.giveUp, "outbox_id", e.ID)
		return d.fail(tx, o, "failed", o.giveUp)
	case o.err == nil:
		// Recorded already by the replica that took the portal over while this call
		// hung: its outcome is the one the bot acted on, and this one changes nothing.
		if done, err := tx.CompleteOutbox(e.ID, o.result); err != nil || !done {
			if err == nil {
				d.log.Warn("a call ended after another replica had recorded its entry; its result is left alone",
					"method", o.method, "outbox_id", e.ID)
			}
			return err
		}
		d.obs.ObserveDelivery(o.method, "delivered")
		id := o.found
		if id == 0 {
			id = bitrix24.WireFor(e.PortalAPI).ResultID(o.action, o.result)
		}
		return d.settle(tx, o, id, false)
	case errors.As(o.err, &apiErr) && !apiErr.Temporary():
		d.log.Error("the portal refused a call; giving it up", "method", o.method, "code", apiErr.Code,
			"description", apiErr.Description, "outbox_id", e.ID, "lane", e.Lane)
		return d.fail(tx, o, "failed", apiErr.Code+": "+apiErr.Description)
	// Failing for MaxAge, since its own first failure: the time it waited behind its
	// lane's head, or through an outage, is not failure.
	case d.MaxAge > 0 && !e.FailingSince.IsZero() && now.Sub(e.FailingSince) >= d.MaxAge:
		code := "transport"
		if errors.As(o.err, &apiErr) {
			code = apiErr.Code
		}
		d.log.Error("an action kept failing; giving it up", "method", o.method, "code", code, "err", o.err,
			"attempts", e.Attempts+1, "failing_since", e.FailingSince, "queued", e.CreatedAt, "outbox_id", e.ID, "lane", e.Lane)
		return d.fail(tx, o, "expired", fmt.Sprintf("given up after %v of failures: %v", d.MaxAge, o.err))
	default:
		at, reason := d.retryAt(now, e.Attempts, o.err)
		d.obs.ObserveRetry(o.method, reason)
		msg := "call failed; will retry"
		if reason == newerRelease {
			msg = "an entry of a newer release; left for a replica that knows it"
		}
		d.log.Warn(msg, "method", o.method, "reason", reason, "err", o.err,
			"attempt", e.Attempts+1, "retry_at", at, "maybe_sent", o.maybeSent, "outbox_id", e.ID)
		limit := 0
		if timedOut(o.err) || o.sent > 1 && unanswered(o.err) {
			limit = max(o.sent/2, 1)
		}
		return tx.RetryOutbox(e.ID, at, o.err.Error(), o.maybeSent, limit)
	}
}

// fail gives an entry up for good ("failed", or "expired" after MaxAge) and tells the
// bot.
func (d *Dispatcher) fail(tx *storage.Tx, o outcome, how, reason string) error {
	if failed, err := tx.FailOutbox(o.entry.Row.ID, reason); err != nil || !failed {
		return err // !failed: recorded already (see recordOne)
	}
	d.obs.ObserveDelivery(o.method, how)
	return d.settle(tx, o, 0, true)
}

// settle tells the bot how an entry's action ended (outbox.Handlers.Settle), with the
// action as it was sent.
func (d *Dispatcher) settle(tx *storage.Tx, o outcome, id int64, failed bool) error {
	e := o.entry
	e.Action = o.action // nil when unreadable: nothing the bot could make of it
	return d.outbox.Settle(tx, e, id, failed)
}

// retryAt decides when to try again after attempts failures: exponential backoff with
// jitter, gentler where the portal asks for it, and never before operating_reset_at.
func (d *Dispatcher) retryAt(now time.Time, attempts int, err error) (time.Time, string) {
	base, limit, reason := time.Second, d.MaxBackoff, "transport"
	if errors.Is(err, outbox.ErrNewer) {
		reason = newerRelease
	}
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
	wait := backoff.Wait(base, limit, attempts)
	// Full jitter on the upper half: entries that failed together spread out.
	wait = wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
	at := now.Add(wait)
	if apiErr != nil && at.Before(apiErr.ResetAt) {
		// The portal's word, but never farther than maxResetWait: a reset time years
		// away (a clock gone wrong, a hostile answer) would hold the lane for good,
		// and an entry never tried again is never given up either.
		at = apiErr.ResetAt
		if latest := now.Add(maxResetWait); at.After(latest) {
			at = latest
		}
		at = at.Add(time.Duration(rand.Int64N(int64(time.Second))))
	}
	return at, reason
}

// maxResetWait bounds the wait for an operating_reset_at: the portal blocks a method
// that used too much time for 10 minutes.
const maxResetWait = 15 * time.Minute

// newerRelease is the retries' reason for an entry a newer release wrote
// (outbox.ErrNewer): during a rolling upgrade it waits for a replica that knows it.
const newerRelease = "newer_release"

// unanswered reports a request the portal answered with no Bitrix24 answer, in a way
// one command can cause: a 500 page (a PHP fatal error), 413 (too large), or a 200
// that cannot be read. Like a timeout, it splits the request in halves on the next
// attempts, so that the command goes alone and the others get through, rather than
// all fail together until MaxAge. Not 502-504: a portal down or in maintenance
// answers those to any request, and splitting would only slow the drain after it.
func unanswered(err error) bool {
	var te *bitrix24.TransportError
	return errors.As(err, &te) && (te.HTTPStatus == http.StatusInternalServerError ||
		te.HTTPStatus == http.StatusRequestEntityTooLarge || te.HTTPStatus == http.StatusOK)
}

// timedOut reports a call that got no answer in time: the kind that may hang again.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// contextOf is what the entry's calls need of its portal's bot.
func contextOf(e storage.OutboxRow) bitrix24.Context {
	return bitrix24.Context{BotID: e.PortalBotID, BotToken: e.PortalBotToken}
}
