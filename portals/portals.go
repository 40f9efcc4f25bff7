// Package portals knows who each portal is and how to reach it: it tells a genuine
// event from a forged one and which portal (and, in app mode, which administrator)
// it comes from (auth.go: one authenticator per mode, one token compare), and it
// hands out each portal's REST client with its own rate limit and, in app mode, its
// OAuth tokens (this file).
package portals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// OAuthApp is the OAuth application, in app mode.
type OAuthApp struct {
	ClientID     string
	ClientSecret string
	URL          string // the OAuth server, "https://oauth.bitrix.info/"
}

// Connections hands out each portal's REST client. Every caller of one portal shares
// one client, and so one rate limiter and one token source.
type Connections struct {
	store    *storage.Store
	app      OAuthApp
	perSec   float64
	burst    int
	http     *http.Client
	log      *slog.Logger
	observer bitrix24.Observer

	mu       sync.Mutex
	clients  map[int64]*bitrix24.Client
	limiters map[int64]*bitrix24.Limiter
	checks   map[int64][numChecks]*bitrix24.Limiter // each portal's shares for checks
}

// NewConnections serves app mode: clients are built from the portals table.
func NewConnections(store *storage.Store, app OAuthApp, perSecond float64, burst int, log *slog.Logger, obs bitrix24.Observer) *Connections {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Connections{
		store: store, app: app, perSec: perSecond, burst: burst, log: log, observer: obs,
		http:     &http.Client{Timeout: 60 * time.Second},
		clients:  map[int64]*bitrix24.Client{},
		limiters: map[int64]*bitrix24.Limiter{},
		checks:   map[int64][numChecks]*bitrix24.Limiter{},
	}
}

// Client returns the portal's client.
func (c *Connections) Client(ctx context.Context, portalID int64) (*bitrix24.Client, error) {
	c.mu.Lock()
	cl, ok := c.clients[portalID]
	c.mu.Unlock()
	if ok {
		return cl, nil
	}
	p, err := c.store.Portal(ctx, portalID)
	if err != nil {
		return nil, err
	}
	if p.ClientEndpoint == "" || p.RefreshToken == "" {
		return nil, fmt.Errorf("portal %d (%s) has no application tokens: was the application installed?", p.ID, p.Domain)
	}
	tokens := bitrix24.NewOAuthTokens(c.app.ClientID, c.app.ClientSecret, c.app.URL,
		bitrix24.TokenSet{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken, ExpiresAt: p.TokenExpiresAt},
		c.http, func(ctx context.Context, ts bitrix24.TokenSet) error {
			// Stored at once: the refresh token just used no longer works.
			return c.store.SaveTokens(context.WithoutCancel(ctx), portalID, ts.AccessToken, ts.RefreshToken, ts.ExpiresAt)
		})
	tokens.LoadWith(func(ctx context.Context) (bitrix24.TokenSet, error) {
		p, err := c.store.Portal(ctx, portalID)
		return bitrix24.TokenSet{AccessToken: p.AccessToken, RefreshToken: p.RefreshToken, ExpiresAt: p.TokenExpiresAt}, err
	})
	tokens.OnSaveError(func(err error) {
		c.log.Error("the portal's renewed OAuth tokens could not be stored; kept in memory and stored again on the next call",
			"portal", p, "err", err)
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[portalID]; ok {
		return cl, nil // built meanwhile by another caller
	}
	cl = bitrix24.NewClient(p.ClientEndpoint, bitrix24.WithTokens(tokens), bitrix24.WithHTTPClient(c.http),
		bitrix24.WithLimiter(c.limiterLocked(portalID)), bitrix24.WithObserver(c.observer), bitrix24.WithLogger(c.log))
	c.clients[portalID] = cl
	return cl, nil
}

// The checks (who a token belongs to, whether the application still lives) that a
// page's opening or a posted event needs are asked of the portal within its limit,
// each kind with a share of the portal's rate and burst of its own, so that a flood
// of either spends that share, never the replies'. A page's check is the least
// urgent: it never waits for its share (the page answers 503 when it is spent). An
// event's check waits for it, within its deadline: the event cannot be applied
// without it. Then each waits its turn in the portal's bucket like a reply.
var checkShares = [numChecks]float64{CheckPage: 0.25, CheckEvent: 0.5}

// Kinds of checks, each with its own share.
const (
	CheckPage  = iota // a page's opening: refused at once when the share is spent (503)
	CheckEvent        // a posted event: waits for its share, within the check's deadline
	numChecks
)

// ErrBusy: the share of the portal's limit left for pages' checks is spent for now.
var ErrBusy = errors.New("the portal's share of requests for pages is spent for now")

// pageRoomWait is how long a page's check looks for free room in the portal's bucket
// before the page answers 503: a bucket assumed full at start frees a place in half a
// second at the cloud's 2 a second.
const pageRoomWait = 2 * time.Second

// checkPacer paces one kind of check: its own share first, then the portal's bucket.
type checkPacer struct {
	own, portal *bitrix24.Limiter
	page        bool
}

// Wait implements bitrix24.Pacer.
func (p checkPacer) Wait(ctx context.Context) (time.Duration, error) {
	if p.page {
		// Only room that is free, in its share and in the portal's bucket, found
		// within pageRoomWait: a page's check never queues, so it is never ahead of a
		// reply that waits.
		start := time.Now()
		if !p.own.TryTake() || !p.portal.TakeFree(ctx, start.Add(pageRoomWait)) {
			return 0, ErrBusy
		}
		return time.Since(start), nil
	}
	waited, err := p.own.Wait(ctx)
	if err != nil {
		return 0, err
	}
	more, err := p.portal.Wait(ctx)
	return waited + more, err
}

// Fill implements bitrix24.Pacer.
func (p checkPacer) Fill() { p.portal.Fill() }

func (c *Connections) checkPacerLocked(portalID int64, kind int) checkPacer {
	own, ok := c.checks[portalID]
	if !ok {
		for k, share := range checkShares {
			own[k] = bitrix24.NewShare(c.perSec*share, max(int(float64(c.burst)*share), 2))
		}
		c.checks[portalID] = own
	}
	return checkPacer{own: own[kind], portal: c.limiterLocked(portalID), page: kind == CheckPage}
}

// CheckClient is a client acting as a user, with an access token an event or a
// page's opening carried, on the portal's stored endpoint (never one the request
// names), paced as a check of kind. It never refreshes: the token is the user's.
func (c *Connections) CheckClient(ctx context.Context, portalID int64, accessToken string, kind int) (*bitrix24.Client, error) {
	p, err := c.store.Portal(ctx, portalID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	pacer := c.checkPacerLocked(portalID, kind)
	c.mu.Unlock()
	return bitrix24.NewClient(p.ClientEndpoint, bitrix24.WithTokens(bitrix24.StaticToken(accessToken)), bitrix24.WithHTTPClient(c.http),
		bitrix24.WithPacer(pacer), bitrix24.WithObserver(c.observer), bitrix24.WithLogger(c.log)), nil
}

// AppCheckClient is the portal's client (the application's own tokens), paced as an
// event's check: for confirming what an event says of the application itself.
func (c *Connections) AppCheckClient(ctx context.Context, portalID int64) (*bitrix24.Client, error) {
	cl, err := c.Client(ctx, portalID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	pacer := c.checkPacerLocked(portalID, CheckEvent)
	c.mu.Unlock()
	return cl.Paced(pacer), nil
}

func (c *Connections) limiterLocked(portalID int64) *bitrix24.Limiter {
	l, ok := c.limiters[portalID]
	if !ok {
		l = bitrix24.NewLimiter(c.perSec, c.burst)
		c.limiters[portalID] = l
	}
	return l
}

// Forget drops a portal's client: after a reinstall its tokens are new.
func (c *Connections) Forget(portalID int64) {
	c.mu.Lock()
	delete(c.clients, portalID)
	c.mu.Unlock()
}
