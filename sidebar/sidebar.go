// Package sidebar is the page the application puts in the messenger's chat sidebar
// (the IM_SIDEBAR placement): its HTML, rendered on the server from embedded
// templates with html/template (every user text escaped; no build step, no assets
// of its own beyond the page), the headers that let only the portal frame it, and
// the short-lived signed token its forms carry instead of the portal's AUTH_ID
// (token.go). What it shows is decided by the bot (bot.Page); the routes are in
// handlers.
package sidebar

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"supportbot/bot"
	"supportbot/webpage"
)

//go:embed templates/*.html
var files embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"chat": func(id int64) string { return "chat" + strconv.FormatInt(id, 10) },
}).ParseFS(files, "templates/*.html"))

// BX24Library is Bitrix24's own frame library (sdk/bx24-js-sdk/index.md), the one
// script from elsewhere: the page loads it once it is shown and, when it is there,
// opens chats with BX24.im.openMessenger; without it, everything works with links
// and forms.
const BX24Library = "https://api.bitrix24.com/api/v1/"

// pageBase is View.Base for the page the portal opened (…/bitrix/sidebar), whose
// forms reach …/bitrix/sidebar/new; the answers of those routes have Base "".
const pageBase = "sidebar/"

// View is one rendering of the page.
type View struct {
	Page  bot.Page
	Token string // signed claims for the page's forms
	// Portal is the portal's origin, "https://x.bitrix24.ru": the only one that may
	// frame the page, and where its chats open.
	Portal string
	// Dialog is the chat whose sidebar the page is in ("chat1001"), marked in the list.
	Dialog string
	// Opened says the page is the one the portal opened (…/bitrix/sidebar), not the
	// answer of one of its forms: it sets where the forms post to, relative to the page,
	// so that the bot may live under any path of its public address.
	Opened bool
	// Base, if set, overrides Opened's choice: the base of the page whose script asked.
	Base   string
	Notice string
	Failed bool // the notice is a refusal
}

// Refusal is why a request got no page: the page that says so instead.
type Refusal int

// Refusals.
const (
	NotGenuine  Refusal = iota // not the portal's page, or a token not ours: 403
	Expired                    // a token of ours that expired: 403
	Unavailable                // the portal cannot say who is looking now: 503
	Malformed                  // 400
	TooLarge                   // 413
	Failure                    // the bot failed: 500
)

// in is the refusal in the words s.
func (r Refusal) in(s *bot.SidebarTexts) string {
	switch r {
	case NotGenuine:
		return s.NotGenuine
	case Expired:
		return s.Expired
	case Unavailable:
		return s.Unavailable
	case Malformed:
		return s.Malformed
	case TooLarge:
		return s.TooLarge
	}
	return s.Failure
}

type pageData struct {
	View
	Lang    string
	S       *bot.SidebarTexts
	Nonce   string
	Library string
}

// Write renders the page with its headers.
func Write(w http.ResponseWriter, status int, v View) error {
	if v.Base == "" && v.Opened {
		v.Base = pageBase
	}
	return render(w, status, v.Portal, "page", pageData{View: v, Lang: v.Page.Lang, S: bot.SidebarTextsFor(v.Page.Lang)})
}

// WriteRefusal renders the refusal r in lang. frameOrigin is who may frame it: the
// portal's origin when the request names a portal, "" for nobody.
func WriteRefusal(w http.ResponseWriter, status int, lang, frameOrigin string, r Refusal) error {
	if lang != "en" {
		lang = "ru"
	}
	s := bot.SidebarTextsFor(lang)
	data := pageData{View: View{Notice: r.in(s), Failed: true, Portal: frameOrigin}, Lang: lang, S: s}
	return render(w, status, frameOrigin, "refusal", data)
}

// The page's forms.
const (
	FormNew    = "new"    // Open new
	FormRename = "rename" // the pencil
	FormOpen   = "open"   // opening a dialog, which marks it read
)

// NoticeOf is what the page says after one of its forms did r, and whether it is a
// refusal.
func NoticeOf(lang, form string, r bot.PageResult) (string, bool) {
	s := bot.SidebarTextsFor(lang)
	switch {
	case r.Refusal != "":
		return r.Refusal, true
	case r.Duplicate:
		return s.Duplicate, false
	case form == FormNew:
		return s.Opened(r.Number), false
	case form == FormRename:
		return s.Renamed(r.Number, r.Title), false
	case form == FormOpen && r.ChatID == 0:
		return s.Pending(r.Number), false
	}
	return "", false
}

func render(w http.ResponseWriter, status int, frameOrigin, name string, data pageData) error {
	nonce, err := webpage.Nonce()
	if err != nil {
		return err
	}
	data.Nonce, data.Library = nonce, BX24Library
	var body bytes.Buffer
	if err := templates.ExecuteTemplate(&body, name, data); err != nil {
		return err
	}
	return webpage.Write(w, status, policy(data.Nonce, frameOrigin), body.Bytes())
}

// policy is the page's Content-Security-Policy: its own inline style and script (by
// nonce) and Bitrix24's library, forms to itself and to the portal (where opening a
// chat leads), requests to itself, and framing by the portal alone.
func policy(nonce, portal string) string {
	ancestors, forms := "'none'", "'self'"
	if portal != "" {
		ancestors, forms = portal, "'self' "+portal
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'nonce-" + nonce + "' " + BX24Library,
		"style-src 'nonce-" + nonce + "'",
		"img-src data:",
		"connect-src 'self'",
		"form-action " + forms,
		"base-uri 'none'",
		"frame-ancestors " + ancestors,
	}, "; ")
}
