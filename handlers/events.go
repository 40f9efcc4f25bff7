// Package handlers holds the HTTP routes: Bitrix24's events, the sidebar page,
// health and readiness.
// It is the only package that knows Echo.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

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

// Processor applies the bot's rules to an event inside its transaction.
type Processor interface {
	Process(tx *storage.Tx, portal storage.Portal, ev bitrix24.Event, admin int64) (bot.Outcome, error)
}

// Events is POST /bitrix/events.
type Events struct {
	Store EventStore
	Bot   Processor
	Auth  portals.Authenticator
	Log   *slog.Logger
	// Observe, if set, is told how each event ended ("processed", "duplicate",
	// "ignored", "unknown", "rejected", "failed").
	Observe func(eventType, outcome string)
}

// Handle checks, decodes and stores one event. It answers 200 only once the event and
// everything it caused are committed: Bitrix24 never resends, so an event answered
// 200 must already be safe on disk.
func (h *Events) Handle(c echo.Context) error {
	req := c.Request()
	body, err := readBody(req, MaxEventBody)
	if errors.Is(err, errTooLarge) {
		h.observe("", "rejected")
		return jsonError(c, http.StatusRequestEntityTooLarge, "body larger than 1 MiB")
	}
	if err != nil {
		h.observe("", "rejected")
		return jsonError(c, http.StatusBadRequest, "could not read body")
	}
	ev, err := bitrix24.Decode(body)
	if err != nil {
		h.observe("", "rejected")
		h.Log.Warn("malformed event", "err", err, "remote", c.RealIP())
		return jsonError(c, http.StatusBadRequest, err.Error())
	}
	typ := ev.Head().Type
	origin, err := h.Auth.Authenticate(req.Context(), ev)
	if errors.Is(err, bitrix24.ErrNotGenuine) {
		h.observe(typ, "rejected")
		h.Log.Warn("event refused", "event", typ, "err", err, "remote", c.RealIP())
		return jsonError(c, http.StatusUnauthorized, "unauthorized")
	}
	if err != nil {
		h.observe(typ, "failed")
		h.Log.Error("cannot verify the event now", "event", typ, "err", err)
		return jsonError(c, http.StatusServiceUnavailable, "cannot verify the event now")
	}
	if _, unknown := ev.(*bitrix24.Unknown); unknown {
		h.observe(typ, "unknown")
		return c.JSON(http.StatusOK, map[string]string{"result": "ignored"})
	}
	var outcome bot.Outcome
	err = h.Store.Update(req.Context(), func(tx *storage.Tx) error {
		portal, err := tx.Portal(origin.PortalID)
		if err != nil {
			return err
		}
		outcome, err = h.Bot.Process(tx, portal, ev, origin.Admin)
		return err
	})
	if err != nil {
		h.observe(typ, "failed")
		h.Log.Error("event not stored", "event", typ, "key", ev.DedupKey(), "err", err)
		if errors.Is(err, storage.ErrClosed) {
			return jsonError(c, http.StatusServiceUnavailable, "shutting down")
		}
		return jsonError(c, http.StatusInternalServerError, "event not stored")
	}
	result := outcome.String()
	h.observe(typ, result)
	h.Log.Debug("event", "event", typ, "key", ev.DedupKey(), "outcome", result)
	return c.JSON(http.StatusOK, map[string]string{"result": result})
}

func (h *Events) observe(eventType, outcome string) {
	if h.Observe != nil {
		h.Observe(eventType, outcome)
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
