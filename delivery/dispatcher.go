// Package delivery does what the bot decided: it takes due actions from the outbox,
// has the wire render them as calls, sends them in order per lane, retries what can
// succeed later and records each outcome, asking the bot (Settle) what it means.
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
	"log/slog"
	"sync"
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
	settle  Settle
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

	mu      sync.Mutex
	senders map[int64]*sender // the portals being drained
	slots   chan struct{}     // a place per request in flight, Workers of them
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
		store: store, callers: callers, settle: settle, log: log, obs: obs,
		Poll: time.Second, MaxBackoff: 2 * time.Minute, MaxAge: 24 * time.Hour, PerPortal: 4, Workers: 64,
		senders: map[int64]*sender{},
	}
}

// Single returns a callers function for one portal's caller (webhook mode).
func Single(c Caller) func(int64) (Caller, error) {
	return func(int64) (Caller, error) { return c, nil }
}

// sender drains one portal. Only its goroutine touches busy and inflight.
type sender struct {
	portalID int64
	wake     chan struct{}
	done     chan []storage.OutboxEntry // a request finished: its entries
	woken    bool                       // guarded by Dispatcher.mu: wake came since the last look
	busy     map[string]bool            // lanes held by a request in flight
	inflight int
}

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
				if c, err := d.callers(p); err == nil {
					if f, ok := c.(interface{ AssumeBucketFull() }); ok {
						f.AssumeBucketFull()
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
	s := &sender{portalID: portalID, wake: make(chan struct{}, 1), done: make(chan []storage.OutboxEntry), busy: map[string]bool{}}
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
		for s.inflight < max(d.PerPortal, 1) && ctx.Err() == nil {
			entries, err := d.choose(hard, s.portalID, s.busy)
			if err != nil && hard.Err() == nil {
				d.log.Error("outbox", "portal", s.portalID, "err", err)
			}
			if len(entries) == 0 {
				break
			}
			select {
			case d.slots <- struct{}{}:
			case <-ctx.Done():
				continue
			}
			for _, e := range entries {
				s.busy[e.Lane] = true
			}
			s.inflight++
			go func() {
				defer func() { <-d.slots }()
				if err := d.deliver(hard, s.portalID, entries); err != nil && hard.Err() == nil {
					d.log.Error("outbox", "portal", s.portalID, "err", err)
				}
				s.done <- entries
			}()
		}
		if s.inflight == 0 {
			d.mu.Lock()
			if !s.woken || ctx.Err() != nil {
				delete(d.senders, s.portalID)
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			continue
		}
		select {
		case entries := <-s.done:
			s.inflight--
			for _, e := range entries {
				delete(s.busy, e.Lane)
			}
		case <-s.wake:
		}
	}
}

// RunOnce sends one request to every portal with due work, one after another, and
// records the outcomes: the dispatcher without goroutines, for tests that step time.
// It returns how many entries it handled.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	portals, err := d.store.DuePortals(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range portals {
		entries, err := d.choose(ctx, p, nil)
		if err != nil {
			return n, err
		}
		if err := d.deliver(ctx, p, entries); err != nil {
			return n, err
		}
		n += len(entries)
	}
	return n, nil
}

// sleep is how long to wait for new work: until the next retry is due, at most Poll.
func (d *Dispatcher) sleep(ctx context.Context) time.Duration {
	next, err := d.store.NextOutboxAttempt(ctx)
	if err != nil || next.IsZero() {
		return d.Poll
	}
	return min(max(next.Sub(d.store.Now()), 10*time.Millisecond), d.Poll)
}
