package portals

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// Origin is what authenticating an event established: the portal it comes from and,
// in app mode, whether its author administers that portal.
type Origin struct {
	PortalID int64
	// Admin is the event's author when the portal confirmed, before the event's
	// transaction, that they administer it (user.admin); 0 otherwise. The rules then
	// treat them as a client without a configured list.
	Admin int64
}

// An Authenticator says which portal an event comes from and whether it is genuine:
// bitrix24.ErrNotGenuine when it is not, another error when it cannot tell now. It
// runs before the event's transaction, so it may ask the network (bounded in time).
type Authenticator interface {
	Authenticate(ctx context.Context, ev bitrix24.Event) (Origin, error)
}

// tokenMatches compares a token an event or page carries with the one expected, in
// constant time, so response timing tells an attacker nothing about it. An empty
// expected token matches nothing. Every token check goes through here.
func tokenMatches(got, want string) bool {
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Webhook authenticates events in webhook mode: one portal, one configured
// application token. Only the top-level auth[application_token] counts, never the
// copy under data[BOT], which any bot's event carries.
type Webhook struct {
	PortalID int64
	Token    string
	// Open accepts events without a token check: dry-run with no token configured,
	// for trying the bot on a machine with no portal.
	Open bool
}

// Authenticate implements Authenticator.
func (w Webhook) Authenticate(_ context.Context, ev bitrix24.Event) (Origin, error) {
	if w.Open || tokenMatches(ev.Head().Auth.ApplicationToken, w.Token) {
		return Origin{PortalID: w.PortalID}, nil
	}
	return Origin{}, fmt.Errorf("application token does not match: %w", bitrix24.ErrNotGenuine)
}

// App authenticates events in app mode: each portal's events carry the application
// token it got at installation. An installation itself is verified with Bitrix24's
// OAuth server before it is believed. Once an event is genuine, its author's admin
// role is asked of the portal (user.admin, with the author's own token, which app-mode
// events carry) and cached.
type App struct {
	Store       *storage.Store
	OAuth       OAuthApp
	Connections *Connections
	HTTP        *http.Client
	Log         *slog.Logger
	AdminTTL    time.Duration // how long a yes from user.admin is trusted; 0 = 10 minutes; a no, a tenth of it
	AdminCache  int           // the most answers kept; 0 = 10,000
	// ViewerTTL is how long user.current's answer for a page's AUTH_ID is trusted
	// (0 = a minute); ViewerCache, the most kept (0 = 10,000). See Viewer.
	ViewerTTL   time.Duration
	ViewerCache int

	mu      sync.Mutex
	admins  map[[2]int64]adminEntry
	viewers map[viewerKey]viewerEntry
}

type adminEntry struct {
	admin bool
	until time.Time
}

// Authenticate implements Authenticator.
func (a *App) Authenticate(ctx context.Context, ev bitrix24.Event) (Origin, error) {
	head := ev.Head()
	if install, ok := ev.(*bitrix24.AppInstall); ok {
		id, err := a.install(ctx, install)
		return Origin{PortalID: id}, err
	}
	if head.Auth.MemberID == "" || head.Auth.ApplicationToken == "" {
		return Origin{}, fmt.Errorf("no member_id or application token: %w", bitrix24.ErrNotGenuine)
	}
	p, err := a.Store.PortalByMemberID(ctx, head.Auth.MemberID)
	if errors.Is(err, storage.ErrNotFound) {
		return Origin{}, fmt.Errorf("member_id of no portal that installed the application: %w", bitrix24.ErrNotGenuine)
	}
	if err != nil {
		return Origin{}, err
	}
	if !tokenMatches(head.Auth.ApplicationToken, p.ApplicationToken) {
		return Origin{}, fmt.Errorf("application token does not match the portal's: %w", bitrix24.ErrNotGenuine)
	}
	if _, uninstall := ev.(*bitrix24.AppUninstall); !uninstall && p.UninstalledAt.After(p.InstalledAt) {
		// A removed application gets no more events; one that still comes is
		// someone replaying the token.
		return Origin{}, fmt.Errorf("the application was uninstalled from portal %s: %w", p.Domain, bitrix24.ErrNotGenuine)
	}
	o := Origin{PortalID: p.ID}
	if a.isAdmin(ctx, p.ID, head.Auth) {
		o.Admin = head.Auth.UserID
	}
	return o, nil
}

// install verifies an ONAPPINSTALL and records the portal. The event is only a
// claim — anyone can post one — so its refresh token is exchanged at the OAuth server
// with the application's secret: only a genuine installation has one that works, and
// the server's answer, not the event, says which portal it is and where it lives.
func (a *App) install(ctx context.Context, ev *bitrix24.AppInstall) (int64, error) {
	if ev.Auth.RefreshToken == "" || ev.Auth.ApplicationToken == "" || ev.Auth.MemberID == "" {
		return 0, fmt.Errorf("installation without tokens: %w", bitrix24.ErrNotGenuine)
	}
	// A live installation keeps its application token. Its events carry the users'
	// refresh tokens, so anyone who saw one event body could otherwise "install" again
	// with their own application token and lock the portal out. A genuine reinstall
	// comes after ONAPPUNINSTALL (bound at installation), which clears the way.
	if p, err := a.Store.PortalByMemberID(ctx, ev.Auth.MemberID); err == nil && !p.InstalledAt.IsZero() &&
		!p.UninstalledAt.After(p.InstalledAt) && !tokenMatches(ev.Auth.ApplicationToken, p.ApplicationToken) {
		a.log().Error("an installation with a new application token for a portal that has not uninstalled the application; refused. "+
			"If the portal really reinstalled it, remove the application there and install it again", "portal", p)
		return 0, fmt.Errorf("installation replacing a live one: %w", bitrix24.ErrNotGenuine)
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return 0, err
	}
	hc := a.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	ts, err := bitrix24.RefreshToken(ctx, hc, bitrix24.TokenURL(a.OAuth.URL), a.OAuth.ClientID, a.OAuth.ClientSecret, ev.Auth.RefreshToken)
	if err != nil {
		var be *bitrix24.Error
		if errors.As(err, &be) {
			return 0, fmt.Errorf("installation refused by the OAuth server (%s): %w", be.Code, bitrix24.ErrNotGenuine)
		}
		return 0, fmt.Errorf("verify the installation: %w", err)
	}
	if ts.MemberID != ev.Auth.MemberID || ts.ClientEndpoint == "" {
		return 0, fmt.Errorf("installation claims member_id %s, its token belongs to %s: %w", ev.Auth.MemberID, ts.MemberID, bitrix24.ErrNotGenuine)
	}
	// Only an administrator installs applications; a user's token from an ordinary
	// event does not make an installation.
	admin, err := bitrix24.IsAdmin(ctx, bitrix24.NewClient(ts.ClientEndpoint, bitrix24.WithTokens(bitrix24.StaticToken(ts.AccessToken)),
		bitrix24.WithHTTPClient(hc)))
	if err != nil {
		return 0, fmt.Errorf("verify the installation: %w", err)
	}
	if !admin {
		return 0, fmt.Errorf("installation by user %d, who is not an administrator: %w", ts.UserID, bitrix24.ErrNotGenuine)
	}
	var portal storage.Portal
	err = a.Store.Update(ctx, func(tx *storage.Tx) (err error) {
		portal, err = tx.InstallPortal(storage.Installation{
			MemberID: ts.MemberID, Domain: endpointHost(ts.ClientEndpoint), ClientEndpoint: ts.ClientEndpoint,
			ApplicationToken: ev.Auth.ApplicationToken, AccessToken: ts.AccessToken, RefreshToken: ts.RefreshToken,
			TokenExpiresAt: ts.ExpiresAt, InstalledBy: ts.UserID,
		})
		return err
	})
	if err != nil {
		return 0, err
	}
	if a.Connections != nil {
		a.Connections.Forget(portal.ID)
	}
	a.log().Info("application installed", "portal", portal)
	return portal.ID, nil
}

// isAdmin asks the portal whether the event's author administers it, unless the
// answer is cached. It is bounded in time: a portal that does not answer leaves the
// user without the admin role for this event.
func (a *App) isAdmin(ctx context.Context, portalID int64, auth bitrix24.Auth) bool {
	if auth.UserID <= 0 || auth.AccessToken == "" || a.Connections == nil {
		return false
	}
	key := [2]int64{portalID, auth.UserID}
	a.mu.Lock()
	e, ok := a.admins[key]
	a.mu.Unlock()
	if ok && time.Now().Before(e.until) {
		return e.admin
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	client, err := a.Connections.UserClient(ctx, portalID, auth.AccessToken)
	if err != nil {
		return false
	}
	admin, err := bitrix24.IsAdmin(ctx, client)
	if err != nil {
		a.log().Warn("cannot ask the portal whether the author is an administrator", "portal", portalID, "user", auth.UserID, "err", err)
		return false
	}
	ttl := cmp.Or(a.AdminTTL, 10*time.Minute)
	if !admin {
		ttl /= 10 // someone just made an administrator should not wait long
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.admins == nil {
		a.admins = map[[2]int64]adminEntry{}
	}
	// Bounded: a portal's users are many; expired answers go first, then any.
	if size := cmp.Or(a.AdminCache, 10_000); len(a.admins) >= size {
		now := time.Now()
		for k, e := range a.admins {
			if now.After(e.until) || len(a.admins) >= size {
				delete(a.admins, k)
			}
		}
	}
	a.admins[key] = adminEntry{admin: admin, until: time.Now().Add(ttl)}
	return admin
}

// FetchedAdmin is Origin.Admin for an event fetched from the portal's queue (imbot.v2
// fetch mode): it carries no token to ask user.admin with, so the one administrator
// known is the one who installed the application. Webhook mode recognises every one.
func FetchedAdmin(portal storage.Portal, ev bitrix24.Event) int64 {
	if author := bitrix24.Author(ev); author != 0 && author == portal.InstalledBy {
		return author
	}
	return 0
}

// endpointHost is the portal's domain. The OAuth server's answer names the portal by
// its client_endpoint; its "domain" field is the OAuth server's own.
func endpointHost(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	return u.Host
}

func (a *App) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

// CachedAdmins is how many user.admin answers are kept.
func (a *App) CachedAdmins() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.admins)
}
