// Package portals knows who each portal is and how to reach it: it tells a genuine
// event from a forged one and which portal (and, in app mode, which administrator)
// it comes from (auth.go: one authenticator per mode, one token compare), and it
// hands out each portal's REST client with its own rate limit and, in app mode, its
// OAuth tokens (this file).
package portals

import (
	"context"
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

// UserClient is a client acting as a user, with the access token an event carried
// for them; it shares the portal's rate limiter. It never refreshes: the token is
// the user's, not the application's.
func (c *Connections) UserClient(ctx context.Context, portalID int64, accessToken string) (*bitrix24.Client, error) {
	p, err := c.store.Portal(ctx, portalID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	l := c.limiterLocked(portalID)
	c.mu.Unlock()
	return bitrix24.NewClient(p.ClientEndpoint, bitrix24.WithTokens(bitrix24.StaticToken(accessToken)), bitrix24.WithHTTPClient(c.http),
		bitrix24.WithLimiter(l), bitrix24.WithObserver(c.observer), bitrix24.WithLogger(c.log)), nil
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
