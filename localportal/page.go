package localportal

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"supportbot/webpage"
)

//go:embed templates/*.html
var files embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"bb": func(text string, as int64) template.HTML {
		return RenderBB(text, func(d string) string { return PageURL(as, d) })
	},
	"page": PageURL,
	"time": func(m Message) string { return m.Date.Local().Format("15:04") },
}).ParseFS(files, "templates/*.html"))

// PageURL is the page of person as with dialog open ("" for their list only).
func PageURL(as int64, dialog string) string {
	q := url.Values{"as": {strconv.FormatInt(as, 10)}}
	if dialog != "" {
		q.Set("chat", dialog)
	}
	return "/?" + q.Encode()
}

// View is one rendering of the messenger page.
type View struct {
	People  []Person
	Me      Person // zero: nobody chosen yet
	Chats   []Chat
	Dialog  string // the open chat
	Title   string
	Group   bool // a group chat, which may be renamed
	Thread  []Message
	Sidebar Opening
	Notice  string
	Changes string
	Nonce   string
	Base    string
}

// WritePage renders the messenger page with its headers: its own inline script and
// style by nonce, forms to itself, frames of itself (the sidebar, which the bot
// serves on the same address), framed by nobody.
func WritePage(w http.ResponseWriter, status int, v View) error {
	nonce, err := webpage.Nonce()
	if err != nil {
		return err
	}
	v.Nonce, v.People = nonce, People
	var body bytes.Buffer
	if err := templates.ExecuteTemplate(&body, "page", v); err != nil {
		return err
	}
	return webpage.Write(w, status, strings.Join([]string{
		"default-src 'none'", "script-src 'nonce-" + v.Nonce + "'", "style-src 'nonce-" + v.Nonce + "'", "img-src data:",
		"connect-src 'self'", "form-action 'self'", "frame-src 'self'", "base-uri 'none'", "frame-ancestors 'none'",
	}, "; "), body.Bytes())
}
