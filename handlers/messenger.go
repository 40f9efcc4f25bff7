package handlers

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"supportbot/localportal"
)

// Messenger is the local portal's messenger page (no portal configured): GET / picks
// a person and shows their chats; its forms post to /local/…; the local portal's REST
// API and OAuth server are served under /rest/ and /oauth/.
type Messenger struct {
	Portal *localportal.Portal
	Log    *slog.Logger
}

// personCookie remembers who the browser was last, for the portal's chat links that
// name no one (/online/).
const personCookie = "local_portal_person"

// maxMessengerForm bounds a form of the page: the longest message is 20,000
// characters, some 80 KB in UTF-8, escaped.
const maxMessengerForm = 256 << 10

func (m *Messenger) routes(e *echo.Echo) {
	rest := echo.WrapHandler(m.Portal.REST())
	e.Any("/rest/*", rest)
	e.Any("/oauth/*", rest)
	e.GET("/", m.page)
	e.GET("/local/changes", func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.String(http.StatusOK, m.Portal.Changes())
	})
	// The portal's messenger page of a chat, where the sidebar page leads (without
	// BX24) when it opens a dialog: the page of whoever was looking, with that chat.
	e.GET("/online/", func(c echo.Context) error {
		as := int64(0)
		if cookie, err := c.Cookie(personCookie); err == nil {
			as, _ = strconv.ParseInt(cookie.Value, 10, 64)
		}
		return c.Redirect(http.StatusFound, localportal.PageURL(as, c.QueryParam("IM_DIALOG")))
	})
	for _, form := range []string{"send", "press", "edit", "delete", "rename"} {
		e.POST("/local/"+form, m.form(form))
	}
}

// page is GET /: the person of ?as= with the chat of ?chat= open.
func (m *Messenger) page(c echo.Context) error {
	// The bot's sidebar lets only the portal's own address frame it.
	if base, err := url.Parse(m.Portal.Base()); err == nil && c.Request().Host != base.Host {
		return c.Redirect(http.StatusFound, m.Portal.Base()+c.Request().URL.RequestURI())
	}
	v := localportal.View{Changes: m.Portal.Changes(), Base: m.Portal.Base(), Notice: c.QueryParam("notice")}
	as, _ := strconv.ParseInt(c.QueryParam("as"), 10, 64)
	me, ok := localportal.PersonOf(as)
	if !ok {
		return localportal.WritePage(c.Response(), http.StatusOK, v)
	}
	v.Me = me
	c.SetCookie(&http.Cookie{Name: personCookie, Value: strconv.FormatInt(me.ID, 10), Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	var err error
	if v.Chats, err = m.Portal.Chats(me.ID); err != nil {
		return err
	}
	v.Dialog = c.QueryParam("chat")
	if v.Dialog == "" {
		v.Dialog = strconv.FormatInt(me.ID, 10) // the chat with the bot
	}
	v.Thread, err = m.Portal.Read(me.ID, v.Dialog)
	if errors.Is(err, localportal.ErrNoChat) {
		v.Dialog, v.Notice = "", "You are not in that chat."
		return localportal.WritePage(c.Response(), http.StatusNotFound, v)
	}
	if err != nil {
		return err
	}
	for i, ch := range v.Chats {
		if ch.DialogID == v.Dialog {
			v.Chats[i].Unread = 0 // read now
			v.Title, v.Group = ch.Title, !ch.Private
		}
	}
	v.Sidebar, _ = m.Portal.Sidebar(me.ID, v.Dialog, "en")
	return localportal.WritePage(c.Response(), http.StatusOK, v)
}

// form is POST /local/<form>: a person's action, then back to the page (or where a
// button leads).
func (m *Messenger) form(form string) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		// Another site's page could post here from the person's browser.
		if site := req.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
			return c.String(http.StatusForbidden, "forms of the local portal are taken from its own page only")
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, maxMessengerForm)
		if err := req.ParseForm(); err != nil {
			return c.String(http.StatusBadRequest, "malformed form")
		}
		f := req.PostForm
		as, _ := strconv.ParseInt(f.Get("as"), 10, 64)
		dialog := f.Get("chat")
		message, _ := strconv.ParseInt(f.Get("message"), 10, 64)
		back := localportal.PageURL(as, dialog)
		var err error
		switch form {
		case "send":
			err = m.Portal.Send(as, dialog, f.Get("text"))
		case "edit", "delete":
			err = m.Portal.Edit(as, dialog, message, f.Get("text"), form == "delete")
		case "rename":
			err = m.Portal.Rename(as, dialog, f.Get("title"))
		case "press":
			button, _ := strconv.Atoi(f.Get("button"))
			var open, link string
			open, link, err = m.Portal.Press(as, dialog, message, button)
			switch {
			case link != "":
				return c.Redirect(http.StatusSeeOther, link)
			case open != "":
				back = localportal.PageURL(as, open)
			}
		}
		switch {
		case errors.Is(err, localportal.ErrNoPerson), errors.Is(err, localportal.ErrNoChat), errors.Is(err, localportal.ErrNoMessage),
			errors.Is(err, localportal.ErrEmpty), errors.Is(err, localportal.ErrTooLong), errors.Is(err, localportal.ErrNotReady):
			return c.Redirect(http.StatusSeeOther, back+"&notice="+url.QueryEscape(err.Error()))
		case err != nil:
			m.Log.Error("local portal: the page's action failed", "form", form, "err", err)
			return err
		}
		return c.Redirect(http.StatusSeeOther, back)
	}
}
