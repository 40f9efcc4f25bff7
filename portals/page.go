package portals

import (
	"context"
	"errors"
	"fmt"

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

// Viewer says whose page a placement's opening is. It is genuine only if member_id
// is a portal that has the application installed, APPLICATION_TOKEN (when the portal
// sends it: portals older than the documentation's 2026-08 note may not) is that
// portal's (the one compare of tokenMatches), and the portal, asked on its stored
// endpoint (never the DOMAIN the request names), says AUTH_ID is a token of this
// application (app.info): the application token alone proves nothing, since every
// user who opens the page reads it. The viewer is whom the portal says AUTH_ID
// belongs to (user.current), and whether they administer it (user.admin). A forgery,
// a token of another portal or application or one the portal does not know is
// bitrix24.ErrNotGenuine; a portal that cannot answer now, or whose share of
// requests for pages is spent, another error. Answers are cached briefly, by a
// digest of AUTH_ID.
func (a *App) Viewer(ctx context.Context, pl bitrix24.Placement) (Viewer, error) {
	if pl.MemberID == "" || pl.AuthID == "" {
		return Viewer{}, fmt.Errorf("no member_id or AUTH_ID: %w", bitrix24.ErrNotGenuine)
	}
	p, err := a.Store.PortalByMemberID(ctx, pl.MemberID)
	if errors.Is(err, storage.ErrNotFound) {
		return Viewer{}, fmt.Errorf("member_id of no portal that installed the application: %w", bitrix24.ErrNotGenuine)
	}
	if err != nil {
		return Viewer{}, err
	}
	if pl.ApplicationToken != "" && !tokenMatches(pl.ApplicationToken, p.ApplicationToken) {
		return Viewer{}, fmt.Errorf("application token does not match the portal's: %w", bitrix24.ErrNotGenuine)
	}
	return a.viewer(ctx, p, pl.AuthID)
}

// Rights is Viewer again for a page already open, at the moment one of its forms
// is used: the portal's answer about the AUTH_ID it was opened with is at most a
// minute old, so an administrator demoted since acts as one no longer.
func (a *App) Rights(ctx context.Context, portalID int64, authID string) (Viewer, error) {
	p, err := a.Store.Portal(ctx, portalID)
	if errors.Is(err, storage.ErrNotFound) {
		return Viewer{}, fmt.Errorf("no portal %d: %w", portalID, bitrix24.ErrNotGenuine)
	}
	if err != nil {
		return Viewer{}, err
	}
	return a.viewer(ctx, p, authID)
}

func (a *App) viewer(ctx context.Context, p storage.Portal, authID string) (Viewer, error) {
	if !p.Installed() {
		return Viewer{}, fmt.Errorf("the application is not installed on portal %s: %w", p.Domain, bitrix24.ErrNotGenuine)
	}
	owner, err := a.whose(ctx, p, authID, CheckPage)
	if err != nil {
		return Viewer{}, err
	}
	return Viewer{PortalID: p.ID, UserID: owner.User.ID, Name: owner.User.Name, Admin: owner.Admin}, nil
}
