// Package poller reads imbot.v2 bots' event queues (fetch mode): the bot asks the
// portal for its events instead of waiting for them at a public address, and the
// portal keeps every event until the bot confirms it, so nothing is lost while the
// bot is down.
//
// Each page of events is handled exactly as the webhook route handles one event,
// and the offset that confirms the page is committed in the same transaction as
// the page's effects: a crash before the commit leaves the offset where it was,
// and the events come again (to be handled for the first time); a crash after it
// has them confirmed at the next poll. Neither loses nor repeats an event.
package poller

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"supportbot/backoff"
	"supportbot/bitrix24"
	"supportbot/bot"
	"supportbot/storage"
)

// Processor takes an event in, inside its transaction (bot.Bot.Take).
type Processor interface {
	Take(tx *storage.Tx, a bot.Arrival) (bot.Outcome, error)
}

// Observer is told what the poller does; metrics implements it.
type Observer interface {
	// ObserveEvent counts an event by type and outcome, like the webhook route's.
	ObserveEvent(eventType, outcome string)
	// ObservePoll reports a poll of a portal's queue: whether it succeeded and, when
	// it did, how far behind the queue the bot is (the age of the oldest event it
	// brought; 0 for an empty queue).
	ObservePoll(portalID int64, ok bool, lag time.Duration)
	// ForgetPortal drops a portal no longer polled.
	ForgetPortal(portalID int64)
	// ObserveOffsetAnomaly counts a nextOffset the poller would not trust: "beyond"
	// the page's last event, or "stuck" where it was after a page of events.
	ObserveOffsetAnomaly(portalID int64, kind string)
}

type nopObserver struct{}

func (nopObserver) ObserveEvent(string, string)            {}
func (nopObserver) ObservePoll(int64, bool, time.Duration) {}
func (nopObserver) ForgetPortal(int64)                     {}
func (nopObserver) ObserveOffsetAnomaly(int64, string)     {}

// The docs' pace (chat-bots-v2/index.md): "Recommended interval: 5–30 seconds when
// there are no new events. If hasMore = true — the next request should have a minimum
// pause of two seconds"; Event.get takes 1–1000 events a request.
const (
	DefaultInterval = 5 * time.Second
	MorePause       = 2 * time.Second
	MaxLimit        = 1000
)

var errOwnership = &bitrix24.Error{Code: "BOT_OWNERSHIP_ERROR"}

// ErrOffsetStuck: the portal answered a page of events with a nextOffset that does
// not move past the offset sent, so the next poll would bring the same page.
var ErrOffsetStuck = errors.New("the portal's nextOffset does not move past the page it answered")

// Poller runs one loop per portal whose bot fetches its events.
type Poller struct {
	Store *storage.Store
	Bot   Processor
	// Callers gives the client of a portal: the one delivery uses, so that polls and
	// replies share the portal's rate limit.
	Callers func(portalID int64) (bitrix24.Caller, error)
	Log     *slog.Logger
	Obs     Observer
	// Admin, if set, says whether a fetched event's author administers the portal
	// (app mode); fetched events carry no token to ask the portal with.
	Admin func(portal storage.Portal, ev bitrix24.Event) int64

	// Wake, if set, cuts the wait for the next poll short: a portal in the bot's own
	// process (the local portal) says an event was queued. A real portal cannot.
	Wake <-chan struct{}

	Interval   time.Duration // the wait between polls of an empty queue (bitrix.poll_interval); 0 = 5 s
	MaxBackoff time.Duration // the longest wait after failed polls; 0 = 1 minute
	Limit      int           // events asked for per poll; 0 = 1,000, the most Event.get gives
	Attempts   int           // how often one event may fail to be stored before it is skipped; 0 = 5
	Rescan     time.Duration // how often the portals are looked at for bots to start or stop polling; 0 = 1 s
}

// Run polls every fetching portal until ctx ends; it starts a loop for each new
// one and stops the loops of portals that stopped fetching (a bot unregistered,
// deleted, or registered again in webhook mode).
func (p *Poller) Run(ctx context.Context) {
	if p.Obs == nil {
		p.Obs = nopObserver{}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	loops := map[int64]context.CancelFunc{}
	defer func() {
		for _, stop := range loops {
			stop()
		}
	}()
	tick := time.NewTicker(cmp.Or(p.Rescan, time.Second))
	defer tick.Stop()
	for {
		list, err := p.Store.Portals(ctx)
		if err != nil && ctx.Err() == nil {
			p.Log.Error("cannot list the portals to poll", "err", err)
		}
		want := map[int64]bool{}
		for _, portal := range list {
			// One replica polls each portal: the one that sends to it (see storage.Claim).
			if portal.Polled() && p.Store.Claim(ctx, storage.ClaimPortal, portal.ID) {
				want[portal.ID] = true
			}
		}
		for id := range want {
			if loops[id] == nil {
				loopCtx, stop := context.WithCancel(ctx)
				loops[id] = stop
				wg.Go(func() { p.loop(loopCtx, id) })
			}
		}
		for id, stop := range loops {
			if !want[id] && err == nil {
				stop()
				delete(loops, id)
				p.Obs.ForgetPortal(id)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// loop polls one portal's queue until ctx ends.
func (p *Poller) loop(ctx context.Context, portalID int64) {
	p.Log.Info("polling the portal's event queue", "portal", portalID, "interval", p.Interval)
	failures := 0
	for ctx.Err() == nil {
		more, err := p.PollOnce(ctx, portalID)
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failures++
			// Doubling from the interval, to a bound: a portal that is down is asked
			// again, never for ever at full speed, and every failure is logged.
			wait = backoff.Wait(p.interval(), cmp.Or(p.MaxBackoff, time.Minute), failures-1)
			var be *bitrix24.Error
			if errors.Is(err, ErrOffsetStuck) {
				p.Log.Error("the portal's event queue does not move on: backing off", "portal", portalID,
					"failures", failures, "retry_in", wait)
			} else if errors.As(err, &be) && (be.Code == "BOT_NOT_FOUND" || be.Code == "BOT_OWNERSHIP_ERROR") {
				p.Log.Error("the portal does not know the bot or its token: run `supportbot register`", "portal", portalID,
					"failures", failures, "retry_in", wait, "err", err)
			} else {
				p.Log.Warn("poll of the portal's event queue failed", "portal", portalID, "failures", failures, "retry_in", wait, "err", err)
			}
		case more:
			failures = 0
			wait = MorePause
		default:
			failures = 0
			wait = p.interval()
		}
		if err := p.wait(ctx, wait, err != nil); err != nil {
			return
		}
	}
}

// wait waits before the next poll; after a failure, no longer than until the
// database answers again if it was the database that failed.
func (p *Poller) wait(ctx context.Context, d time.Duration, failed bool) error {
	waitCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var back <-chan struct{}
	if failed {
		back = p.Store.Back(waitCtx)
	}
	select {
	case <-waitCtx.Done():
	case <-back:
	case <-p.Wake:
	}
	return ctx.Err()
}

func (p *Poller) interval() time.Duration { return cmp.Or(p.Interval, DefaultInterval) }

// PollOnce asks the portal for the next page of events, handles them and commits
// them with the offset that confirms them. more reports that the portal holds
// further events.
func (p *Poller) PollOnce(ctx context.Context, portalID int64) (more bool, err error) {
	if p.Obs == nil {
		p.Obs = nopObserver{}
	}
	portal, err := p.Store.Portal(ctx, portalID)
	if err != nil {
		return false, err
	}
	caller, err := p.Callers(portalID)
	if err != nil { // e.g. an app portal whose OAuth tokens cannot be renewed
		p.Obs.ObservePoll(portalID, false, 0)
		return false, err
	}
	// Replies go first through the portal's limiter, but this poll yields for no more
	// than an interval.
	sent := portal.Offset()
	fetch := func(token string) (bitrix24.Fetched, error) {
		return bitrix24.FetchEvents(bitrix24.Yielding(ctx, time.Now().Add(p.interval())), caller,
			bitrix24.Context{BotID: portal.BotID, BotToken: token}, sent, min(cmp.Or(p.Limit, MaxLimit), MaxLimit))
	}
	page, err := fetch(portal.BotToken)
	if pending := portal.PendingToken; errors.Is(err, errOwnership) && pending != "" && pending != portal.BotToken {
		// A token rotation reached the portal before the process recording it died:
		// the old token lost access at once, the pending one has it.
		if page, err = fetch(pending); err == nil {
			p.Log.Warn("the bot's new token works, the old does not: completing an interrupted token rotation", "portal", portalID)
			if err := p.Store.Update(ctx, func(tx *storage.Tx) error { return tx.AdoptPendingToken(portalID, pending) }); err != nil {
				return false, err
			}
			portal.BotToken = pending
		}
	}
	if err != nil {
		p.Obs.ObservePoll(portalID, false, 0)
		return false, err
	}
	var lag time.Duration
	if len(page.Events) > 0 {
		if t := page.Events[0].Head().Time; !t.IsZero() {
			lag = max(time.Since(t), 0)
		}
	}
	if len(page.Events) == 0 {
		// Nothing new, whatever nextOffset says (missing, null, 0, or ahead): an
		// offset moved over an empty page could confirm events not yet seen.
		p.Obs.ObservePoll(portalID, true, lag)
		return false, nil
	}
	next, stuck := p.nextOffset(portal, sent, page)
	// A poll succeeds when its page is stored: one fetched again and again because
	// the database refuses it is a failing poll, not a healthy one.
	if err := p.apply(ctx, portal, page.Events, next); err != nil {
		p.Obs.ObservePoll(portalID, false, 0)
		return false, err
	}
	p.Obs.ObservePoll(portalID, true, lag)
	if stuck {
		return false, ErrOffsetStuck
	}
	return page.HasMore, nil
}

// nextOffset is the offset that confirms a page of events: the portal's nextOffset,
// unless it lies beyond the page's last event + 1 (it would confirm events never
// seen: so too when no event carries a readable ID, and the page's last is 0) or
// does not move past the offset sent (the same page would come again: the page's
// own events then say how far it goes, never back, and the poller backs off). Each
// is logged and counted.
func (p *Poller) nextOffset(portal storage.Portal, sent int64, page bitrix24.Fetched) (next int64, stuck bool) {
	var last int64
	for _, ev := range page.Events {
		last = max(last, ev.Head().ID)
	}
	next = page.NextOffset
	if next > last+1 {
		p.Log.Error("the portal's nextOffset lies beyond the events it answered: confirming only those", "portal", portal.ID,
			"next_offset", next, "last_event", last)
		p.Obs.ObserveOffsetAnomaly(portal.ID, "beyond")
		next = last + 1
	}
	if next <= sent {
		p.Log.Error("the portal's nextOffset does not move past a page of events", "portal", portal.ID,
			"next_offset", next, "sent", sent, "last_event", last)
		p.Obs.ObserveOffsetAnomaly(portal.ID, "stuck")
		return max(last+1, sent), true
	}
	return next, false
}

// apply handles a page in one transaction with its offset. If that fails, the
// events go one by one, in the order of their IDs, each with the offset just past it
// (never back), so that one event that cannot be stored does not hold up the others;
// an event that fails Attempts times is skipped (logged and counted) rather than
// stall the queue for ever. A failure of the database itself (storage.Transient: a
// restart, a failover, a conflict lost again and again) skips nothing: the page
// stays unconfirmed, to be fetched again once the database is back.
func (p *Poller) apply(ctx context.Context, portal storage.Portal, events []bitrix24.Event, next int64) error {
	outcomes, err := p.commit(ctx, portal, events, next)
	if err == nil {
		for i, ev := range events {
			p.Obs.ObserveEvent(ev.Head().Type, outcomes[i])
		}
		return nil
	}
	if ctx.Err() != nil || errors.Is(err, storage.ErrClosed) || storage.Transient(err) {
		return err
	}
	p.Log.Warn("a page of fetched events could not be stored: storing them one by one", "portal", portal.ID, "err", err)
	// Confirming an event confirms every lower ID: the lower ones go first.
	events = slices.SortedStableFunc(slices.Values(events), func(a, b bitrix24.Event) int { return cmp.Compare(a.Head().ID, b.Head().ID) })
	sent := portal.Offset()
	for _, ev := range events {
		past := max(ev.Head().ID+1, sent)
		var outcomes []string
		var err error
		for attempt := 1; ; attempt++ {
			if outcomes, err = p.commit(ctx, portal, []bitrix24.Event{ev}, past); err == nil {
				break
			}
			if ctx.Err() != nil || errors.Is(err, storage.ErrClosed) || storage.Transient(err) {
				return err
			}
			if attempt >= cmp.Or(p.Attempts, 5) {
				p.Log.Error("a fetched event cannot be stored: skipped", "portal", portal.ID, "event", ev.Head().Type,
					"event_id", ev.Head().ID, "attempts", attempt, "err", err)
				outcomes = []string{bot.Failed.String()}
				if _, err := p.commit(ctx, portal, nil, past); err != nil {
					return err
				}
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff.Wait(50*time.Millisecond, time.Second, attempt-1)):
			}
		}
		p.Obs.ObserveEvent(ev.Head().Type, outcomes[0])
	}
	_, err = p.commit(ctx, portal, nil, next)
	return err
}

// commit processes events in one transaction that also moves the portal's offset
// to next, and returns each event's outcome.
func (p *Poller) commit(ctx context.Context, portal storage.Portal, events []bitrix24.Event, next int64) ([]string, error) {
	admins := make([]int64, len(events))
	if p.Admin != nil { // asked before the transaction: it may use the network
		for i, ev := range events {
			admins[i] = p.Admin(portal, ev)
		}
	}
	var outcomes []string
	err := p.Store.Update(ctx, func(tx *storage.Tx) error {
		outcomes = outcomes[:0]
		for i, ev := range events {
			o, err := p.Bot.Take(tx, bot.Arrival{PortalID: portal.ID, Event: ev, Admin: admins[i]})
			if err != nil {
				return err
			}
			outcomes = append(outcomes, o.String())
		}
		return tx.SetFetchOffset(portal.ID, portal.BotID, next)
	})
	return outcomes, err
}
