// Package delivery does what the bot decided: it takes due actions from the outbox,
// has the wire render them as calls, sends them in order per lane, retries what can
// succeed later and records each outcome, handing it to the bot's handlers
// (outbox.Handlers), which own what it means.
//
// Every portal with due work gets a sender of its own (dispatcher.go), so that one
// portal's outage, hung call or empty bucket delays no other; a sender keeps several
// requests in flight, each holding lanes no other holds, so that a hung call delays
// only its own chats. A request is one batch of up to 50 calls, several of a lane in
// a row, sent with halt so that nothing runs after a failure and order survives
// (request.go).
package delivery

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"supportbot/backoff"
	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// Caller makes REST calls to one portal. *bitrix24.Client is one; bitrix24.DryRun
// another.
type Caller interface {
	bitrix24.Caller
	Batch(ctx context.Context, cmds []bitrix24.BatchCommand, halt bool) ([]bitrix24.BatchResult, error)
}

// Observer is told what becomes of outbox entries, for metrics.
type Observer interface {
	// ObserveDelivery: an entry was delivered ("delivered"), made unnecessary by a later
	// one ("merged"), or given up: refused ("failed") or failing past MaxAge ("expired").
	ObserveDelivery(method, outcome string)
	// ObserveRetry: an attempt failed for a reason that may pass (an error code, or
	// "transport"), and the entry will be tried again.
	ObserveRetry(method, reason string)
	// ObserveMaybeDuplicate: an entry is sent again although an earlier attempt may
	// have run on the portal, so the portal may now show it twice.
	ObserveMaybeDuplicate(method string)
	// ObserveBatchRefused: a portal was found to refuse imbot.v2 methods inside
	// batch; its calls go one a request for a day.
	ObserveBatchRefused()
}

type nopObserver struct{}

func (nopObserver) ObserveDelivery(string, string) {}
func (nopObserver) ObserveRetry(string, string)    {}
func (nopObserver) ObserveMaybeDuplicate(string)   {}
func (nopObserver) ObserveBatchRefused()           {}

// Dispatcher drains the outbox.
type Dispatcher struct {
	store   *storage.Store
	callers func(portalID int64) (Caller, error)
	outbox  *outbox.Handlers // the bot's: what results mean, how answers are written
	log     *slog.Logger
	obs     Observer

	// Poll is the longest the dispatcher sleeps when nothing signals new work.
	Poll time.Duration
	// MaxBackoff caps the wait between attempts of one entry.
	MaxBackoff time.Duration
	// MaxAge is how long an entry that keeps failing is tried before it is given up
	// (delivery.max_age); 0 tries for ever.
	MaxAge time.Duration
	// PerPortal bounds the requests in flight to one portal, Workers those to all.
	PerPortal, Workers int
	// TakeoverGrace is how long, after taking a portal over from another replica,
	// the entries that replica had in flight are left to it: it may still be alive
	// (only its claim's session died) and about to record them. Past it they are
	// sent again, counted as maybe sent.
	TakeoverGrace time.Duration
	// RecordFor is how long the outcome of a request that ran is tried to be
	// recorded while the database is unavailable.
	RecordFor time.Duration

	mu        sync.Mutex
	senders   map[int64]*sender   // the portals being drained
	takeovers map[int64]time.Time // when each portal was taken over from another replica
	slots     chan struct{}       // a place per request in flight, Workers of them
}

// New builds a dispatcher that sends through the caller of each entry's portal and
// reads entries with, and tells how each action ended to, the bot's handlers
// (bot.Bot.Outbox).
func New(store *storage.Store, callers func(portalID int64) (Caller, error), handlers *outbox.Handlers, log *slog.Logger, obs Observer) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = nopObserver{}
	}
	return &Dispatcher{
		store: store, callers: callers, outbox: handlers, log: log, obs: obs,
		Poll: time.Second, MaxBackoff: 2 * time.Minute, MaxAge: 24 * time.Hour, PerPortal: 4, Workers: 64,
		TakeoverGrace: 10 * time.Second, RecordFor: 10 * time.Minute,
		senders: map[int64]*sender{}, takeovers: map[int64]time.Time{},
	}
}

// Single returns the callers function of a bot that serves one portal (a webhook,
// or no portal at all): every portal ID gets its one caller.
func Single(c Caller) func(int64) (Caller, error) {
	return func(int64) (Caller, error) { return c, nil }
}

// sender drains one portal. Only its goroutine touches busy and inflight.
type sender struct {
	portalID int64
	wake     chan struct{}
	done     chan finished   // a request finished
	woken    bool            // guarded by Dispatcher.mu: wake came since the last look
	busy     map[string]bool // lanes held by a request in flight
	inflight int
	lost     bool // the portal's claim is gone: no new request, only those under way finish
}

// finished is a request's end: its entries, and whether its fence found the claim gone.
type finished struct {
	entries []outbox.Sending
	lost    bool
}

// errClaimLost fences off the requests of a replica that no longer holds the portal.
var errClaimLost = errors.New("this replica no longer holds the portal's claim")

// Run sends until ctx ends; then it finishes the requests under way and returns.
// Those run under hard: cancelling hard abandons them (their entries stay pending,
// marked in flight, and are sent again after a restart).
func (d *Dispatcher) Run(ctx, hard context.Context) {
	d.slots = make(chan struct{}, max(d.Workers, 1))
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	heldElsewhere := map[int64]bool{} // portals another replica sends to, last we asked
	for ctx.Err() == nil {
		portals, err := d.store.DuePortals(hard)
		if err != nil && hard.Err() == nil {
			d.log.Error("outbox", "err", err)
		}
		for _, p := range portals {
			// With replicas on PostgreSQL one of them sends to each portal, so its
			// rate limit and the order per chat hold across them.
			if !d.store.Claim(hard, storage.ClaimPortal, p) {
				heldElsewhere[p] = true
				continue
			}
			if heldElsewhere[p] {
				// Taken over from a replica that may have just spent the portal's
				// bucket: start as if it were full, so the takeover cannot exceed it.
				delete(heldElsewhere, p)
				d.mu.Lock()
				d.takeovers[p] = time.Now()
				d.mu.Unlock()
				if c, err := d.callers(p); err == nil {
					if f, ok := c.(interface{ AssumeBucketFull() }); ok {
						f.AssumeBucketFull()
					}
					// The other replica may have renewed the portal's OAuth tokens.
					if r, ok := c.(interface{ ReloadTokens(context.Context) error }); ok {
						if err := r.ReloadTokens(hard); err != nil {
							d.log.Warn("could not reload the tokens of a portal taken over", "portal", p, "err", err)
						}
					}
				}
			}
			d.wakeSender(ctx, hard, &wg, p)
		}
		timer.Reset(d.sleep(ctx))
		select {
		case <-ctx.Done():
		case <-d.store.OutboxSignal():
		case <-timer.C:
		}
	}
	wg.Wait()
}

// wakeSender tells the portal's sender to look for work, starting one if none runs.
func (d *Dispatcher) wakeSender(ctx, hard context.Context, wg *sync.WaitGroup, portalID int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.senders[portalID]; ok {
		s.woken = true
		select {
		case s.wake <- struct{}{}:
		default:
		}
		return
	}
	// done holds every request in flight's ending, so that none waits for the sender
	// (which may be waiting for the portal's bucket) while holding a slot.
	s := &sender{portalID: portalID, wake: make(chan struct{}, 1), done: make(chan finished, max(d.PerPortal, 1)), busy: map[string]bool{}}
	d.senders[portalID] = s
	wg.Go(func() { d.drain(ctx, hard, s) })
}

// drain keeps up to PerPortal requests of one portal in flight, on disjoint lanes,
// until nothing of it is due; a request that hangs holds only its own lanes.
func (d *Dispatcher) drain(ctx, hard context.Context, s *sender) {
	for {
		d.mu.Lock()
		s.woken = false
		d.mu.Unlock()
		for s.inflight < max(d.PerPortal, 1) && ctx.Err() == nil && !s.lost {
			entries, err := d.chooseOwn(hard, s)
			if err != nil && hard.Err() == nil {
				d.log.Error("outbox", "portal", s.portalID, "err", err)
			}
			if len(entries) == 0 {
				break
			}
			// The portal's bucket first, then a slot: a request waiting for its
			// portal's room holds none of the slots every portal shares.
			reqCtx, err := d.reserve(ctx, hard, s.portalID)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("no place in the portal's bucket: tried again on the next round", "portal", s.portalID, "err", err)
				}
				break
			}
			select {
			case d.slots <- struct{}{}:
			case <-ctx.Done():
				continue
			}
			// One sender per portal across replicas: the claim is checked before
			// every request, so a replica whose claim's session is gone stops at
			// once, before the replica that takes the portal over starts.
			if !d.store.Holding(hard, storage.ClaimPortal, s.portalID) {
				<-d.slots
				s.lost = true
				d.log.Warn("lost the claim on a portal: no more requests to it from this replica", "portal", s.portalID,
					"in_flight", s.inflight)
				break
			}
			for _, e := range entries {
				s.busy[e.Row.Lane] = true
			}
			s.inflight++
			go func() {
				defer func() { <-d.slots }()
				s.done <- finished{entries, d.deliverFenced(reqCtx, s.portalID, entries)}
			}()
		}
		if s.inflight == 0 {
			d.mu.Lock()
			if !s.woken || ctx.Err() != nil || s.lost {
				delete(d.senders, s.portalID)
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			continue
		}
		select {
		case f := <-s.done:
			s.inflight--
			for _, e := range f.entries {
				delete(s.busy, e.Row.Lane)
			}
			if f.lost && !s.lost {
				s.lost = true
				d.log.Warn("lost the claim on a portal: no more requests to it from this replica", "portal", s.portalID)
			}
		case <-s.wake:
		}
	}
}

// reserve waits, under ctx, for a place in the portal's bucket for its next request,
// and returns the context (a child of hard) the request is made under, which holds
// it. A caller without a bucket of its own is returned hard as it is.
func (d *Dispatcher) reserve(ctx, hard context.Context, portalID int64) (context.Context, error) {
	c, err := d.callers(portalID)
	if err != nil {
		return hard, nil // the request fails as it would have: send reports it
	}
	r, ok := c.(interface {
		Reserve(wait, ctx context.Context) (context.Context, error)
	})
	if !ok {
		return hard, nil
	}
	return r.Reserve(ctx, hard)
}

// deliverFenced delivers one request, fenced with the portal's claim: asked again
// after the limiter's wait, just before the request is written. A request the fence
// stopped was not sent; its entries are put back for the replica that holds the
// portal now, and lost reports it.
func (d *Dispatcher) deliverFenced(hard context.Context, portalID int64, entries []outbox.Sending) (lost bool) {
	ctx, cancel := context.WithCancelCause(hard)
	defer cancel(nil)
	ctx = bitrix24.WithFence(ctx, func(ctx context.Context) error {
		if d.store.Holding(ctx, storage.ClaimPortal, portalID) {
			return nil
		}
		cancel(errClaimLost) // abandons the request: deliver records nothing
		return errClaimLost
	})
	err := d.deliver(ctx, portalID, entries)
	if !errors.Is(context.Cause(ctx), errClaimLost) {
		if err != nil && hard.Err() == nil {
			d.log.Error("outbox", "portal", portalID, "err", err)
		}
		return false
	}
	rows := make([]storage.OutboxRow, len(entries))
	for i, e := range entries {
		rows[i] = e.Row
	}
	if err := d.store.Update(hard, func(tx *storage.Tx) error { return tx.ReleaseOutbox(rows) }); err != nil && hard.Err() == nil {
		d.log.Error("outbox: putting back a request that was not sent", "portal", portalID, "err", err)
	}
	return true
}

// untilRecorded records the outcome of requests that ran, in fn: on a lost or
// refused database connection it tries again, with backoff, until the database is
// back (at most RecordFor, or until hard ends), for entries whose outcome is not
// recorded stay in flight, and would be sent a second time as "may have run". again
// tells fn that an earlier try may have committed.
func (d *Dispatcher) untilRecorded(hard context.Context, fn func(tx *storage.Tx, again bool) error) error {
	deadline := time.Now().Add(d.RecordFor)
	for attempt := 1; ; attempt++ {
		err := d.store.Update(context.WithoutCancel(hard), func(tx *storage.Tx) error { return fn(tx, attempt > 1) })
		if err == nil || !storage.Transient(err) || time.Now().After(deadline) || hard.Err() != nil {
			return err
		}
		if o, ok := d.obs.(interface{ ObserveRecordRetry() }); ok {
			o.ObserveRecordRetry()
		}
		d.log.Warn("cannot record what was sent: the database is unavailable; trying again", "attempt", attempt, "err", err)
		select {
		case <-hard.Done():
		case <-time.After(backoff.Wait(50*time.Millisecond, time.Second, attempt-1)):
		}
	}
}

// chooseOwn is choose, leaving alone for TakeoverGrace after a takeover the lanes
// whose head another replica had in flight.
func (d *Dispatcher) chooseOwn(ctx context.Context, s *sender) ([]outbox.Sending, error) {
	d.mu.Lock()
	at, ok := d.takeovers[s.portalID]
	if ok && time.Since(at) >= d.TakeoverGrace {
		delete(d.takeovers, s.portalID)
		ok = false
	}
	d.mu.Unlock()
	if !ok {
		return d.choose(ctx, s.portalID, s.busy)
	}
	busy := maps.Clone(s.busy)
	for {
		entries, err := d.choose(ctx, s.portalID, busy)
		theirs := false
		for _, e := range entries {
			if e.Row.InFlight { // not ours: ours are in busy lanes
				busy[e.Row.Lane], theirs = true, true
			}
		}
		if err != nil || !theirs {
			return entries, err
		}
	}
}

// sleep is how long to wait for new work: until the next retry is due, at most Poll.
func (d *Dispatcher) sleep(ctx context.Context) time.Duration {
	next, err := d.store.NextOutboxAttempt(ctx)
	if err != nil || next.IsZero() {
		return d.Poll
	}
	return min(max(next.Sub(d.store.Now()), 10*time.Millisecond), d.Poll)
}
