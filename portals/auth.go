package portals

import (
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

// AppAuth authenticates events in app mode: each portal's events carry the
// application token it got at installation. An installation itself is verified with
// Bitrix24's OAuth server before it is believed.
type AppAuth struct {
	Store       *storage.Store
	App         App
	Connections *Connections
	HTTP        *http.Client
	Log         *slog.Logger
}

// Authenticate returns the portal an event comes from.
func (a *AppAuth) Authenticate(ctx context.Context, ev bitrix24.Event) (int64, error) {
	head := ev.Head()
	if install, ok := ev.(*bitrix24.AppInstall); ok {
		return a.install(ctx, install)
	}
	if head.Auth.MemberID == "" || head.Auth.ApplicationToken == "" {
		return 0, fmt.Errorf("no member_id or application token: %w", bitrix24.ErrNotGenuine)
	}
	p, err := a.Store.PortalByMemberID(ctx, head.Auth.MemberID)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, fmt.Errorf("member_id of no portal that installed the application: %w", bitrix24.ErrNotGenuine)
	}
	if err != nil {
		return 0, err
	}
	if p.ApplicationToken == "" ||
		subtle.ConstantTimeCompare([]byte(head.Auth.ApplicationToken), []byte(p.ApplicationToken)) != 1 {
		return 0, fmt.Errorf("application token does not match the portal's: %w", bitrix24.ErrNotGenuine)
	}
	if _, uninstall := ev.(*bitrix24.AppUninstall); !uninstall && p.UninstalledAt.After(p.InstalledAt) {
		// A removed application gets no more events; one that still comes is
		// someone replaying the token.
		return 0, fmt.Errorf("the application was uninstalled from portal %s: %w", p.Domain, bitrix24.ErrNotGenuine)
	}
	return p.ID, nil
}

// install verifies an ONAPPINSTALL and records the portal. The event is only a
// claim — anyone can post one — so its refresh token is exchanged at the OAuth server
// with the application's secret: only a genuine installation has one that works, and
// the server's answer, not the event, says which portal it is and where it lives.
func (a *AppAuth) install(ctx context.Context, ev *bitrix24.AppInstall) (int64, error) {
	if ev.Auth.RefreshToken == "" || ev.Auth.ApplicationToken == "" || ev.Auth.MemberID == "" {
		return 0, fmt.Errorf("installation without tokens: %w", bitrix24.ErrNotGenuine)
	}
	// A live installation keeps its application token. Its events carry the users'
	// refresh tokens, so anyone who saw one event body could otherwise "install" again
	// with their own application token and lock the portal out. A genuine reinstall
	// comes after ONAPPUNINSTALL (bound at installation), which clears the way.
	if p, err := a.Store.PortalByMemberID(ctx, ev.Auth.MemberID); err == nil && !p.InstalledAt.IsZero() &&
		!p.UninstalledAt.After(p.InstalledAt) &&
		subtle.ConstantTimeCompare([]byte(p.ApplicationToken), []byte(ev.Auth.ApplicationToken)) != 1 {
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
	ts, err := bitrix24.RefreshToken(ctx, hc, bitrix24.TokenURL(a.App.OAuthURL), a.App.ClientID, a.App.ClientSecret, ev.Auth.RefreshToken)
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
	admin, err := bitrix24.NewClient(ts.ClientEndpoint, bitrix24.WithTokens(staticToken(ts.AccessToken)),
		bitrix24.WithHTTPClient(hc)).Call(ctx, "user.admin", nil)
	if err != nil {
		return 0, fmt.Errorf("verify the installation: %w", err)
	}
	if string(admin) != "true" {
		return 0, fmt.Errorf("installation by user %d, who is not an administrator: %w", ts.UserID, bitrix24.ErrNotGenuine)
	}
	var portal storage.Portal
	err = a.Store.Update(ctx, func(tx *storage.Tx) (err error) {
		portal, err = tx.InstallPortal(storage.Installation{
			MemberID: ts.MemberID, Domain: endpointHost(ts.ClientEndpoint), ClientEndpoint: ts.ClientEndpoint,
			ApplicationToken: ev.Auth.ApplicationToken, AccessToken: ts.AccessToken, RefreshToken: ts.RefreshToken,
			TokenExpiresAt: ts.ExpiresAt,
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

// endpointHost is the portal's domain. The OAuth server's answer names the portal by
// its client_endpoint; its "domain" field is the OAuth server's own.
func endpointHost(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	return u.Host
}

func (a *AppAuth) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

// Admins answers "is this user a portal administrator?" in app mode, with user.admin
// called with the user's own token (which their events carry), and caches the answer.
type Admins struct {
	Connections *Connections
	Log         *slog.Logger
	TTL         time.Duration // how long an answer is trusted; 0 = 10 minutes

	mu    sync.Mutex
	cache map[[2]int64]adminEntry
}

type adminEntry struct {
	admin bool
	until time.Time
}

// IsAdmin reads the cache only: it runs inside the event's transaction, where nothing
// may wait on the network.
func (a *Admins) IsAdmin(portalID, userID int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.cache[[2]int64{portalID, userID}]
	return ok && e.admin && time.Now().Before(e.until)
}

// Resolve asks the portal about the event's author unless the answer is cached. It
// runs before the event's transaction, bounded in time: a portal that does not
// answer leaves the user without the admin role for this event.
func (a *Admins) Resolve(ctx context.Context, portalID int64, ev bitrix24.Event) {
	head := ev.Head()
	user, token := head.Auth.UserID, head.Auth.AccessToken
	if user <= 0 || token == "" {
		return
	}
	key := [2]int64{portalID, user}
	a.mu.Lock()
	e, ok := a.cache[key]
	a.mu.Unlock()
	if ok && time.Now().Before(e.until) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	client, err := a.Connections.UserClient(ctx, portalID, token)
	if err != nil {
		return
	}
	raw, err := client.Call(ctx, "user.admin", nil)
	if err != nil {
		if a.Log != nil {
			a.Log.Warn("user.admin failed", "portal", portalID, "user", user, "err", err)
		}
		return
	}
	ttl := a.TTL
	if ttl == 0 {
		ttl = 10 * time.Minute
	}
	a.mu.Lock()
	if a.cache == nil {
		a.cache = map[[2]int64]adminEntry{}
	}
	a.cache[key] = adminEntry{admin: string(raw) == "true", until: time.Now().Add(ttl)}
	a.mu.Unlock()
}
