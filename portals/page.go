package portals

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// Viewer is who opened one of the application's pages in a portal's interface (the
// IM_SIDEBAR placement), as the portal itself said.
type Viewer struct {
	PortalID int64
	UserID   int64
	Name     string
	// Admin: the portal confirmed that the viewer administers it (user.admin).
	Admin bool
}

type viewerKey struct {
	portal int64
	auth   [sha256.Size]byte // a digest of the AUTH_ID: the token itself is not kept
}

type viewerEntry struct {
	userID int64
	name   string
	until  time.Time
}

// Viewer says whose page a placement's opening is. It is genuine only if member_id
// is a portal that has the application installed and APPLICATION_TOKEN is that
// portal's (the one compare of tokenMatches); the viewer is whoever the portal says
// AUTH_ID belongs to (user.current, asked of the portal's stored endpoint, never of
// the DOMAIN the request names), and whether they administer it (user.admin). A
// forgery, a token of another portal or an AUTH_ID the portal does not know is
// bitrix24.ErrNotGenuine; a portal that cannot answer now, another error.
// Answers are cached briefly, keyed by a digest of AUTH_ID.
func (a *App) Viewer(ctx context.Context, pl bitrix24.Placement) (Viewer, error) {
	if pl.MemberID == "" || pl.ApplicationToken == "" || pl.AuthID == "" {
		return Viewer{}, fmt.Errorf("no member_id, application token or AUTH_ID: %w", bitrix24.ErrNotGenuine)
	}
	p, err := a.Store.PortalByMemberID(ctx, pl.MemberID)
	if errors.Is(err, storage.ErrNotFound) {
		return Viewer{}, fmt.Errorf("member_id of no portal that installed the application: %w", bitrix24.ErrNotGenuine)
	}
	if err != nil {
		return Viewer{}, err
	}
	if !tokenMatches(pl.ApplicationToken, p.ApplicationToken) {
		return Viewer{}, fmt.Errorf("application token does not match the portal's: %w", bitrix24.ErrNotGenuine)
	}
	if p.InstalledAt.IsZero() || p.UninstalledAt.After(p.InstalledAt) {
		return Viewer{}, fmt.Errorf("the application is not installed on portal %s: %w", p.Domain, bitrix24.ErrNotGenuine)
	}
	user, err := a.currentUser(ctx, p.ID, pl.AuthID)
	if err != nil {
		return Viewer{}, err
	}
	return Viewer{PortalID: p.ID, UserID: user.userID, Name: user.name,
		Admin: a.isAdmin(ctx, p.ID, bitrix24.Auth{UserID: user.userID, AccessToken: pl.AuthID})}, nil
}

// currentUser is user.current for an AUTH_ID, cached for ViewerTTL.
func (a *App) currentUser(ctx context.Context, portalID int64, authID string) (viewerEntry, error) {
	key := viewerKey{portal: portalID, auth: sha256.Sum256([]byte(authID))}
	a.mu.Lock()
	e, ok := a.viewers[key]
	a.mu.Unlock()
	if ok && time.Now().Before(e.until) {
		return e, nil
	}
	if a.Connections == nil {
		return viewerEntry{}, errors.New("no connections to the portals")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	client, err := a.Connections.UserClient(ctx, portalID, authID)
	if err != nil {
		return viewerEntry{}, err
	}
	u, err := bitrix24.CurrentUser(ctx, client)
	var be *bitrix24.Error
	var expired *bitrix24.RefreshError // the AUTH_ID expired: a user's token is not renewed
	if errors.As(err, &expired) || (errors.As(err, &be) && (be.HTTPStatus == http.StatusUnauthorized ||
		errors.Is(be, bitrix24.ErrNoAuthFound) || errors.Is(be, bitrix24.ErrInvalidToken))) {
		return viewerEntry{}, fmt.Errorf("the portal does not take the page's AUTH_ID (%w): %w", err, bitrix24.ErrNotGenuine)
	}
	if err != nil {
		return viewerEntry{}, fmt.Errorf("ask the portal who opened the page: %w", err)
	}
	e = viewerEntry{userID: u.ID, name: u.Name, until: time.Now().Add(cmp.Or(a.ViewerTTL, time.Minute))}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.viewers == nil {
		a.viewers = map[viewerKey]viewerEntry{}
	}
	// Bounded like the admins: expired answers go first, then any.
	if size := cmp.Or(a.ViewerCache, 10_000); len(a.viewers) >= size {
		now := time.Now()
		for k, old := range a.viewers {
			if now.After(old.until) || len(a.viewers) >= size {
				delete(a.viewers, k)
			}
		}
	}
	a.viewers[key] = e
	return e, nil
}

// CachedViewers is how many user.current answers are kept.
func (a *App) CachedViewers() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.viewers)
}
