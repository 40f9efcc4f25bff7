// Package handlers holds the HTTP routes: Bitrix24's events, the sidebar page,
// health and readiness.
// It is the only package that knows Echo.
package handlers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"supportbot/backoff"
	"supportbot/bitrix24"
	"supportbot/bot"
	"supportbot/portals"
	"supportbot/storage"
)

// MaxEventBody is the largest event body accepted. Real events are a few KiB.
const MaxEventBody = 1 << 20

// EventStore is what the event route needs from storage.
type EventStore interface {
	Update(ctx context.Context, fn func(*storage.Tx) error) error
}

// Processor takes an authenticated event in, inside its transaction (bot.Bot.Take).
type Processor interface {
	Take(tx *storage.Tx, a bot.Arrival) (bot.Outcome, error)
}

// Events is POST /bitrix/events.
type Events struct {
	Store EventStore
	Bot   Processor
	Auth  portals.Authenticator
	Log   *slog.Logger
	// Observe, if set, is told how each event ended ("processed", "duplicate",
	// "ignored", "unknown", "rejected", "failed"; "kept" for one whose author the
	// portal could not confirm yet, "given_up" when that never came).
	Observe func(eventType, outcome string)
	// MaxPending is the most events one portal may have kept awaiting confirmation
	// (0 = 1,000); beyond it the answer is 503. PendingFor is how long a kept event is
	// checked again: the life of the author's token it carries (0 = an hour).
	MaxPending int
	PendingFor time.Duration
}

// Handle checks, decodes and stores one event. It answers 200 only once the event and
// everything it caused are committed: Bitrix24 never resends, so an event answered
// 200 must already be safe on disk.
func (h *Events) Handle(c echo.Context) error {
	req := c.Request()
	body, err := readBody(req, MaxEventBody)
	if errors.Is(err, errTooLarge) {
		h.observe("", bot.Rejected)
		return jsonError(c, http.StatusRequestEntityTooLarge, "body larger than 1 MiB")
	}
	if err != nil {
		h.observe("", bot.Rejected)
		return jsonError(c, http.StatusBadRequest, "could not read body")
	}
	ev, err := bitrix24.Decode(body)
	if err != nil {
		h.observe("", bot.Rejected)
		h.Log.Warn("malformed event", "err", err, "remote", c.RealIP())
		return jsonError(c, http.StatusBadRequest, err.Error())
	}
	typ := ev.Head().Type
	origin, err := h.Auth.Authenticate(req.Context(), ev)
	if errors.Is(err, bitrix24.ErrNotGenuine) {
		h.observe(typ, bot.Rejected)
		h.Log.Warn("event refused", "event", typ, "err", err, "remote", c.RealIP())
		return jsonError(c, http.StatusUnauthorized, "unauthorized")
	}
	if errors.Is(err, portals.ErrUnverified) && origin.PortalID != 0 {
		// Bitrix24 does not send it again, and its author may be anyone, an
		// administrator too: kept, unapplied, until the portal can tell.
		return h.keep(c, origin.PortalID, ev, body, err)
	}
	if err != nil {
		h.observe(typ, bot.Failed)
		h.Log.Error("cannot verify the event now", "event", typ, "err", err)
		return jsonError(c, http.StatusServiceUnavailable, "cannot verify the event now")
	}
	var outcome bot.Outcome
	err = h.Store.Update(req.Context(), func(tx *storage.Tx) (err error) {
		outcome, err = h.Bot.Take(tx, bot.Arrival{PortalID: origin.PortalID, Event: ev, Admin: origin.Admin})
		return err
	})
	if err != nil {
		h.observe(typ, bot.Failed)
		h.Log.Error("event not stored", "event", typ, "key", ev.DedupKey(), "err", err)
		if errors.Is(err, storage.ErrClosed) {
			return jsonError(c, http.StatusServiceUnavailable, "shutting down")
		}
		return jsonError(c, http.StatusInternalServerError, "event not stored")
	}
	h.observe(typ, outcome)
	h.Log.Debug("event", "event", typ, "key", ev.DedupKey(), "author", origin.Author, "outcome", outcome.String())
	return c.JSON(http.StatusOK, map[string]string{"result": outcome.String()})
}

// keep stores an event whose author the portal could not confirm now; 200 only once
// it is on disk.
func (h *Events) keep(c echo.Context, portalID int64, ev bitrix24.Event, body []byte, why error) error {
	typ := ev.Head().Type
	var kept bool
	err := h.Store.Update(c.Request().Context(), func(tx *storage.Tx) (err error) {
		kept, err = tx.KeepPending(portalID, typ, body, tx.Now().Add(pendingBackoff(0)), cmp.Or(h.MaxPending, 1000))
		return err
	})
	if err != nil || !kept {
		h.observe(typ, bot.Failed)
		h.Log.Error("an event whose author the portal cannot confirm now could not be kept", "event", typ, "portal", portalID,
			"full", !kept, "err", cmp.Or(err, why))
		return jsonError(c, http.StatusServiceUnavailable, "cannot verify the event now")
	}
	h.observe(typ, bot.Kept)
	h.Log.Warn("the portal cannot confirm the event's author now: kept, to be checked again", "event", typ, "portal", portalID, "err", why)
	return c.JSON(http.StatusOK, map[string]string{"result": bot.Kept.String()})
}

// pendingBackoff is the wait before the next check of a kept event that failed
// attempts checks: from 2 s, doubling, at most 5 minutes.
func pendingBackoff(attempts int) time.Duration {
	return backoff.Wait(2*time.Second, 5*time.Minute, attempts)
}

// RetryPending checks the kept events that are due again (the scheduled job): those
// the portal now confirms are applied, as if just posted, in the transaction that
// drops them; those it refuses are dropped; the others wait longer, until their
// author's token has surely expired, and are then given up (logged and counted).
// One that is confirmed but cannot be applied waits too, and is given up as late,
// so that it holds up neither the rest nor its portal's room for kept events. Only
// a failure of the database itself ends the run early.
func (h *Events) RetryPending(ctx context.Context, store *storage.Store) error {
	due, err := store.DuePending(ctx, 100)
	if err != nil {
		return err
	}
	for _, p := range due {
		if err := h.retry(ctx, store, p); err != nil {
			return err
		}
	}
	return nil
}

func (h *Events) retry(ctx context.Context, store *storage.Store, p storage.PendingEvent) error {
	ev, err := bitrix24.Decode(p.Body)
	if err != nil { // it decoded when posted: not ours to apply
		return store.Update(ctx, func(tx *storage.Tx) error { _, err := tx.DropPending(p.ID); return err })
	}
	origin, err := h.Auth.Authenticate(ctx, ev)
	switch {
	case errors.Is(err, bitrix24.ErrNotGenuine):
		h.observe(p.Type, bot.Rejected)
		h.Log.Warn("a kept event is refused now that the portal answers", "event", p.Type, "portal", p.PortalID, "err", err)
		return store.Update(ctx, func(tx *storage.Tx) error { _, err := tx.DropPending(p.ID); return err })
	case err != nil && store.Now().Sub(p.ReceivedAt) >= cmp.Or(h.PendingFor, time.Hour):
		h.observe(p.Type, bot.GivenUp)
		h.Log.Error("a kept event is given up: the portal never confirmed its author while the author's token lived",
			"event", p.Type, "portal", p.PortalID, "kept_since", p.ReceivedAt, "attempts", p.Attempts+1, "err", err)
		return store.Update(ctx, func(tx *storage.Tx) error { _, err := tx.DropPending(p.ID); return err })
	case err != nil:
		return store.Update(ctx, func(tx *storage.Tx) error {
			return tx.PostponePending(p.ID, tx.Now().Add(pendingBackoff(p.Attempts+1)))
		})
	}
	var outcome bot.Outcome
	applied := false
	err = store.Update(ctx, func(tx *storage.Tx) error {
		// Dropped in the same transaction: another replica's job cannot apply it too.
		if gone, err := tx.DropPending(p.ID); err != nil || !gone {
			return err
		}
		outcome, err = h.Bot.Take(tx, bot.Arrival{PortalID: origin.PortalID, Event: ev, Admin: origin.Admin})
		applied = err == nil
		return err
	})
	if err != nil {
		h.observe(p.Type, bot.Failed)
		if ctx.Err() != nil || errors.Is(err, storage.ErrClosed) || storage.Transient(err) {
			return fmt.Errorf("apply a kept event: %w", err)
		}
		if store.Now().Sub(p.ReceivedAt) >= cmp.Or(h.PendingFor, time.Hour) {
			h.observe(p.Type, bot.GivenUp)
			h.Log.Error("a kept event is given up: it cannot be applied", "event", p.Type, "portal", p.PortalID,
				"kept_since", p.ReceivedAt, "attempts", p.Attempts+1, "err", err)
			return store.Update(ctx, func(tx *storage.Tx) error { _, err := tx.DropPending(p.ID); return err })
		}
		h.Log.Error("a kept event cannot be applied: it will be tried again", "event", p.Type, "portal", p.PortalID,
			"attempts", p.Attempts+1, "err", err)
		return store.Update(ctx, func(tx *storage.Tx) error {
			return tx.PostponePending(p.ID, tx.Now().Add(pendingBackoff(p.Attempts+1)))
		})
	}
	if applied {
		h.observe(p.Type, outcome)
		h.Log.Info("a kept event is applied: the portal confirmed its author", "event", p.Type, "portal", p.PortalID, "outcome", outcome.String())
	}
	return nil
}

func (h *Events) observe(eventType string, outcome bot.Outcome) {
	if h.Observe != nil {
		h.Observe(eventType, outcome.String())
	}
}

var errTooLarge = errors.New("body too large")

// readBody reads at most limit bytes, telling an over-long body from a broken one.
func readBody(req *http.Request, limit int64) ([]byte, error) {
	if req.ContentLength > limit {
		return nil, errTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, errTooLarge
	}
	return body, nil
}

func jsonError(c echo.Context, status int, msg string) error {
	return c.JSON(status, map[string]string{"error": msg})
}
