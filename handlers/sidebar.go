package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"supportbot/bitrix24"
	"supportbot/bot"
	"supportbot/portals"
	"supportbot/sidebar"
	"supportbot/storage"
)

// MaxPageBody bounds the body of every sidebar route: the portal's opening is about
// a kilobyte, a form with the longest question some 60 KiB.
const MaxPageBody = 128 << 10

// PageAuth says whose page an opening of the placement is (portals.App).
type PageAuth interface {
	Viewer(ctx context.Context, pl bitrix24.Placement) (portals.Viewer, error)
	Rights(ctx context.Context, portalID int64, authID string) (portals.Viewer, error)
}

// PageBot is what the page needs of the rules (bot.Bot).
type PageBot interface {
	PageLang(lang string) string
	Page(tx *storage.Tx, portal storage.Portal, v bot.Viewer, lang string) (bot.Page, error)
	PageOpenNew(tx *storage.Tx, portal storage.Portal, v bot.Viewer, lang, question, once string) (bot.PageResult, error)
	PageRename(tx *storage.Tx, portal storage.Portal, v bot.Viewer, lang string, number int, title string) (bot.PageResult, error)
	PageOpen(tx *storage.Tx, portal storage.Portal, v bot.Viewer, lang string, number int) (bot.PageResult, error)
}

// PageStore is what the page needs of storage.
type PageStore interface {
	View(ctx context.Context, fn func(*storage.Tx) error) error
	Update(ctx context.Context, fn func(*storage.Tx) error) error
}

// Sidebar is the page in the messenger's chat sidebar (app mode's IM_SIDEBAR):
// POST /bitrix/sidebar, where the portal opens it, and its forms' routes. The
// opening is believed only as the portal confirms it (Auth); every form carries the
// signed token the page got (Tokens), checked before anything else is read.
type Sidebar struct {
	Store  PageStore
	Bot    PageBot
	Auth   PageAuth
	Tokens *sidebar.Signer
	Log    *slog.Logger
	// Self is the origin the page is served from ("https://support.example.com", from
	// http.public_url); empty: the request's own scheme and host.
	Self string
}

// Open is POST /bitrix/sidebar: the portal opens the page for a user.
func (h *Sidebar) Open(c echo.Context) error {
	req := c.Request()
	query := []byte(req.URL.RawQuery)
	lang := h.Bot.PageLang(queryLang(req.URL.RawQuery))
	body, err := readBody(req, MaxPageBody)
	if errors.Is(err, errTooLarge) {
		return refuse(c, http.StatusRequestEntityTooLarge, lang, "", sidebar.TooLarge)
	}
	if err != nil {
		return refuse(c, http.StatusBadRequest, lang, "", sidebar.Malformed)
	}
	pl, err := bitrix24.DecodePlacement(query, body)
	if err != nil {
		h.Log.Warn("malformed sidebar opening", "err", err, "remote", c.RealIP())
		return refuse(c, http.StatusBadRequest, lang, "", sidebar.Malformed)
	}
	lang = h.Bot.PageLang(pl.Lang)
	v, err := h.Auth.Viewer(req.Context(), pl)
	if errors.Is(err, bitrix24.ErrNotGenuine) {
		// The refusal may show in the frame of the portal it claims: it holds nothing.
		h.Log.Warn("sidebar opening refused", "placement", pl, "err", err, "remote", c.RealIP())
		return refuse(c, http.StatusForbidden, lang, pl.Origin(), sidebar.NotGenuine)
	}
	if errors.Is(err, portals.ErrBusy) {
		// The pages' share of the portal's limit is spent: the replies come first.
		h.Log.Warn("sidebar opening put off: the pages' share of the portal's limit is spent", "placement", pl)
		return refuse(c, http.StatusServiceUnavailable, lang, pl.Origin(), sidebar.Unavailable)
	}
	if err != nil {
		h.Log.Error("cannot tell who opened the sidebar now", "placement", pl, "err", err)
		return refuse(c, http.StatusServiceUnavailable, lang, pl.Origin(), sidebar.Unavailable)
	}
	// The name is capped as the bot caps names it writes, so the token stays short.
	claims := sidebar.Claims{Portal: v.PortalID, User: v.UserID, Name: bitrix24.Shorten(v.Name, 100), Admin: v.Admin, Lang: lang,
		Dialog: pl.Options.Chat}
	if v.Admin {
		// Kept, sealed, to ask again at the moment a form is used (Form).
		if claims.Auth, err = h.Tokens.SealAuth(pl.AuthID); err != nil {
			return err
		}
	}
	return h.render(c, claims, sidebar.View{Opened: true})
}

// Form is the route of one of the page's forms (sidebar.FormNew, FormRename,
// FormOpen): POST /bitrix/sidebar/<form>.
func (h *Sidebar) Form(form string) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		// The token is what keeps other sites out; a browser that says the form
		// comes from elsewhere is refused before it is read.
		if site := req.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
			h.Log.Warn("sidebar form from another site refused", "form", form, "sec_fetch_site", site, "remote", c.RealIP())
			return refuse(c, http.StatusForbidden, h.Bot.PageLang(""), "", sidebar.NotGenuine)
		}
		body, err := readBody(req, MaxPageBody)
		if errors.Is(err, errTooLarge) {
			return refuse(c, http.StatusRequestEntityTooLarge, h.Bot.PageLang(""), "", sidebar.TooLarge)
		}
		if err != nil {
			return refuse(c, http.StatusBadRequest, h.Bot.PageLang(""), "", sidebar.Malformed)
		}
		a, err := sidebar.ParseAction(body)
		if err != nil {
			return refuse(c, http.StatusBadRequest, h.Bot.PageLang(""), "", sidebar.Malformed)
		}
		claims, err := h.Tokens.Verify(a.Token)
		if errors.Is(err, sidebar.ErrTokenExpired) {
			// Ours, so the refusal may show in its portal's frame; it does nothing else.
			h.Log.Info("sidebar form with an expired token", "form", form, "portal", claims.Portal, "user", claims.User)
			return refuse(c, http.StatusForbidden, h.Bot.PageLang(claims.Lang), h.originOf(req.Context(), claims.Portal), sidebar.Expired)
		}
		if err != nil {
			h.Log.Warn("sidebar form refused", "form", form, "err", err, "remote", c.RealIP())
			return refuse(c, http.StatusForbidden, h.Bot.PageLang(""), "", sidebar.NotGenuine)
		}
		// A browser too old to send Sec-Fetch-Site still names the page a form comes
		// from: it must be ours (or the portal's, which frames it).
		if from := formOrigin(req); req.Header.Get("Sec-Fetch-Site") == "" && from != "" && from != h.self(c) &&
			from != h.originOf(req.Context(), claims.Portal) {
			h.Log.Warn("sidebar form from another origin refused", "form", form, "origin", bitrix24.Shorten(from, 100), "remote", c.RealIP())
			return refuse(c, http.StatusForbidden, claims.Lang, "", sidebar.NotGenuine)
		}
		if form != sidebar.FormNew && a.Number == 0 {
			return refuse(c, http.StatusBadRequest, claims.Lang, "", sidebar.Malformed)
		}
		if claims.Admin {
			// Rights are checked at the moment of use, at most a minute stale: an
			// administrator demoted since the page opened is one no longer.
			if status, why, ok := h.recheck(req.Context(), &claims); !ok {
				return refuse(c, status, claims.Lang, h.originOf(req.Context(), claims.Portal), why)
			}
		}
		var r bot.PageResult
		var origin string
		v := bot.Viewer{UserID: claims.User, Name: claims.Name, Admin: claims.Admin}
		err = h.Store.Update(req.Context(), func(tx *storage.Tx) error {
			p, err := installed(tx, claims.Portal)
			if err != nil {
				return err
			}
			origin = portalOrigin(p)
			switch form {
			case sidebar.FormNew:
				r, err = h.Bot.PageOpenNew(tx, p, v, claims.Lang, a.Question, claims.ID)
			case sidebar.FormRename:
				r, err = h.Bot.PageRename(tx, p, v, claims.Lang, a.Number, a.Title)
			case sidebar.FormOpen:
				r, err = h.Bot.PageOpen(tx, p, v, claims.Lang, a.Number)
			}
			return err
		})
		switch {
		case errors.Is(err, errNotInstalled):
			return refuse(c, http.StatusForbidden, claims.Lang, "", sidebar.NotGenuine)
		case errors.Is(err, storage.ErrClosed):
			return refuse(c, http.StatusServiceUnavailable, claims.Lang, origin, sidebar.Unavailable)
		case err != nil:
			h.Log.Error("sidebar form not done", "form", form, "portal", claims.Portal, "user", claims.User, "err", err)
			return refuse(c, http.StatusInternalServerError, claims.Lang, origin, sidebar.Failure)
		}
		if form == sidebar.FormOpen && !a.Script && r.Refusal == "" && r.ChatID != 0 {
			// Without BX24 the chat opens as a page of the portal's messenger.
			return c.Redirect(http.StatusSeeOther, origin+"/online/?IM_DIALOG="+bitrix24.GroupChat(r.ChatID))
		}
		notice, failed := sidebar.NoticeOf(claims.Lang, form, r)
		view := sidebar.View{Notice: notice, Failed: failed}
		if a.Script {
			view.Base = a.Base // the answer replaces the page that asked, where it is
		}
		return h.render(c, claims, view)
	}
}

// formOrigin is the origin a browser says a form comes from: Origin, else the
// Referer's; "" when it says neither.
func formOrigin(req *http.Request) string {
	if o := req.Header.Get("Origin"); o != "" {
		return o
	}
	u, err := url.Parse(req.Header.Get("Referer"))
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// self is the origin the page is served from.
func (h *Sidebar) self(c echo.Context) string {
	if h.Self != "" {
		return h.Self
	}
	return c.Scheme() + "://" + c.Request().Host
}

// recheck asks again whether the viewer of claims administers the portal, with the
// AUTH_ID the page was opened with, and updates claims. An AUTH_ID the portal no
// longer takes (it lives an hour) asks for the page to be opened again, never
// decides that the viewer is a stranger; so does a portal that cannot answer now.
func (h *Sidebar) recheck(ctx context.Context, claims *sidebar.Claims) (status int, why sidebar.Refusal, ok bool) {
	authID, err := h.Tokens.OpenAuth(claims.Auth)
	if err != nil {
		return http.StatusForbidden, sidebar.Expired, false
	}
	v, err := h.Auth.Rights(ctx, claims.Portal, authID)
	switch {
	case errors.Is(err, bitrix24.ErrNotGenuine):
		h.Log.Info("sidebar form: the page's AUTH_ID is no longer taken", "portal", claims.Portal, "user", claims.User, "err", err)
		return http.StatusForbidden, sidebar.Expired, false
	case err != nil:
		h.Log.Warn("sidebar form: cannot ask the portal for the viewer's rights now", "portal", claims.Portal, "err", err)
		return http.StatusServiceUnavailable, sidebar.Unavailable, false
	case v.UserID != claims.User:
		return http.StatusForbidden, sidebar.NotGenuine, false
	}
	claims.Admin = v.Admin
	if !v.Admin {
		claims.Auth = "" // nothing left to check
	}
	return 0, 0, true
}

var errNotInstalled = errors.New("the application is not installed on the portal")

// installed is the portal, if the application is still installed there.
func installed(tx *storage.Tx, portalID int64) (storage.Portal, error) {
	p, err := tx.Portal(portalID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !p.Installed()) {
		return storage.Portal{}, errNotInstalled
	}
	return p, err
}

// originOf is the origin of a portal the bot knows, or "".
func (h *Sidebar) originOf(ctx context.Context, portalID int64) string {
	var p storage.Portal
	_ = h.Store.View(ctx, func(tx *storage.Tx) (err error) {
		p, err = installed(tx, portalID)
		return err
	})
	return portalOrigin(p)
}

// render answers with the page for claims' viewer, and a fresh token for its forms.
func (h *Sidebar) render(c echo.Context, claims sidebar.Claims, view sidebar.View) error {
	var p storage.Portal
	err := h.Store.View(c.Request().Context(), func(tx *storage.Tx) (err error) {
		if p, err = installed(tx, claims.Portal); err != nil {
			return err
		}
		view.Page, err = h.Bot.Page(tx, p, bot.Viewer{UserID: claims.User, Name: claims.Name, Admin: claims.Admin}, claims.Lang)
		return err
	})
	if errors.Is(err, errNotInstalled) {
		return refuse(c, http.StatusForbidden, claims.Lang, "", sidebar.NotGenuine)
	}
	if err != nil && c.Request().Context().Err() != nil {
		// The browser went away (the portal reloaded the frame): nobody to answer.
		h.Log.Debug("sidebar page abandoned", "portal", claims.Portal, "user", claims.User, "err", err)
		return refuse(c, http.StatusServiceUnavailable, claims.Lang, portalOrigin(p), sidebar.Failure)
	}
	if err != nil {
		h.Log.Error("sidebar page not rendered", "portal", claims.Portal, "user", claims.User, "err", err)
		return refuse(c, http.StatusInternalServerError, claims.Lang, portalOrigin(p), sidebar.Failure)
	}
	if view.Token, err = h.Tokens.Issue(claims); err != nil {
		return err
	}
	view.Portal, view.Dialog = portalOrigin(p), claims.Dialog
	return sidebar.Write(c.Response(), http.StatusOK, view)
}

func refuse(c echo.Context, status int, lang, frameOrigin string, why sidebar.Refusal) error {
	return sidebar.WriteRefusal(c.Response(), status, lang, frameOrigin, why)
}

// portalOrigin is the origin of the portal's interface, from the endpoint the OAuth
// server named at installation: "https://x.bitrix24.ru".
func portalOrigin(p storage.Portal) string {
	u, err := url.Parse(p.ClientEndpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// queryLang is LANG of a query that may not parse, for the words of a refusal.
func queryLang(rawQuery string) string {
	q, _ := url.ParseQuery(rawQuery)
	return q.Get("LANG")
}
