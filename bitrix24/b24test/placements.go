package b24test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"supportbot/bitrix24"
)

// Placements (an application's pages in the portal's interface) and the user who
// opens them, as the rest module does them (b24restdocs api-reference/widgets/
// placement-bind.md, im/sidebar.md, user/user-current.md; Bitrix\Rest\PlacementTable):
//
//   - placement.bind needs an application's token: a webhook gets 403 WRONG_AUTH_TYPE;
//     it needs the placement scope and an administrator (403 ACCESS_DENIED);
//   - PLACEMENT and HANDLER are required, and IM_SIDEBAR's OPTIONS[iconName]
//     (ERROR_ARGUMENT, with the argument named); a context other than ALL, USER,
//     CHAT, LINES or CRM is refused;
//   - the same application, placement and handler again: 400 ERROR_CORE "Unable to set
//     placement handler: Handler already binded";
//   - placement.unbind removes the application's handlers of a placement, all of them
//     or HANDLER's, and answers {"count": n};
//   - user.current answers the caller: the token's user, or the webhook's.
//
// The portal's own pages, where an application's page is framed, are the test's
// (HandlePage); PlacementOpen builds the POST the portal sends into that frame.

// Placement is a placement handler an application bound.
type Placement struct {
	ClientID  string // the application's client_id
	Placement string // "IM_SIDEBAR"
	Handler   string
	Title     string
	LangAll   map[string]string // language → TITLE
	Options   map[string]string // OPTIONS, as sent
	// Binds is how many placement.bind calls asked for it, refused repeats included.
	Binds int
}

var imSidebarContexts = []string{"ALL", "USER", "CHAT", "LINES", "CRM"}

// Placements returns the bound placement handlers, in the order they were bound.
func (p *Portal) Placements() []Placement {
	defer p.lock()()
	out := make([]Placement, len(p.placements))
	for i, pl := range p.placements {
		out[i] = *pl
		out[i].LangAll, out[i].Options = maps.Clone(pl.LangAll), maps.Clone(pl.Options)
	}
	return out
}

// placement.bind: PLACEMENT, HANDLER, TITLE, LANG_ALL[lang][TITLE], OPTIONS → true.
func (p *Portal) placementBind(c caller, f bitrix24.Form) (any, *bitrix24.Error) {
	if c.token == "" {
		return nil, &bitrix24.Error{Code: "WRONG_AUTH_TYPE", Description: "Current authorization type is denied for this method Application context required",
			HTTPStatus: http.StatusForbidden}
	}
	argument := func(name string) *bitrix24.Error {
		return wrongRequest("ERROR_ARGUMENT", "Argument '"+name+"' is null or empty")
	}
	placement, handler := strings.ToUpper(strings.TrimSpace(f.String("PLACEMENT"))), strings.TrimSpace(f.String("HANDLER"))
	opts := map[string]string{}
	for _, k := range f.Group("OPTIONS").Keys() {
		opts[k] = f.Group("OPTIONS").String(k)
	}
	switch u, err := url.Parse(handler); {
	case placement == "":
		return nil, argument("PLACEMENT")
	case handler == "" || err != nil || u.Host == "":
		return nil, argument("HANDLER")
	case placement == bitrix24.PlacementIMSidebar && strings.TrimSpace(opts["iconName"]) == "":
		return nil, argument("iconName")
	case placement == bitrix24.PlacementIMSidebar && opts["context"] != "" && !validContexts(opts["context"]):
		return nil, wrongRequest("ERROR_ARGUMENT", "Wrong value of context option")
	}
	defer p.lock()()
	if !p.admins[c.userID] {
		return nil, &bitrix24.Error{Code: "ACCESS_DENIED", Description: "Access denied!", HTTPStatus: http.StatusForbidden}
	}
	for _, pl := range p.placements {
		if pl.ClientID == c.clientID && pl.Placement == placement && pl.Handler == handler {
			pl.Binds++
			return nil, wrongRequest("ERROR_CORE", "Unable to set placement handler: Handler already binded")
		}
	}
	pl := &Placement{ClientID: c.clientID, Placement: placement, Handler: handler, Title: f.String("TITLE"),
		LangAll: map[string]string{}, Options: opts, Binds: 1}
	for _, lang := range f.Group("LANG_ALL").Keys() {
		pl.LangAll[lang] = f.Group("LANG_ALL", lang).String("TITLE")
	}
	p.placements = append(p.placements, pl)
	return true, nil
}

func validContexts(s string) bool {
	for _, c := range strings.Split(s, ";") {
		if !slices.Contains(imSidebarContexts, strings.ToUpper(strings.TrimSpace(c))) {
			return false
		}
	}
	return true
}

// placement.unbind: PLACEMENT, HANDLER (optional) → {"count": removed}.
func (p *Portal) placementUnbind(c caller, f bitrix24.Form) (any, *bitrix24.Error) {
	if c.token == "" {
		return nil, &bitrix24.Error{Code: "WRONG_AUTH_TYPE", Description: "Current authorization type is denied for this method Application context required",
			HTTPStatus: http.StatusForbidden}
	}
	placement, handler := strings.ToUpper(strings.TrimSpace(f.String("PLACEMENT"))), strings.TrimSpace(f.String("HANDLER"))
	if placement == "" {
		return nil, wrongRequest("ERROR_ARGUMENT", "Argument 'PLACEMENT' is null or empty")
	}
	defer p.lock()()
	before := len(p.placements)
	p.placements = slices.DeleteFunc(p.placements, func(pl *Placement) bool {
		return pl.ClientID == c.clientID && pl.Placement == placement && (handler == "" || pl.Handler == handler)
	})
	return map[string]int{"count": before - len(p.placements)}, nil
}

// SetUserName names a user as user.current answers them; others are "User <id>".
func (p *Portal) SetUserName(userID int64, first, last string) {
	defer p.lock()()
	p.names[userID] = [2]string{first, last}
}

// user.current: the caller's user, ID as a string as Bitrix24 sends it.
func (p *Portal) userCurrent(c caller, _ bitrix24.Form) (any, *bitrix24.Error) {
	defer p.lock()()
	name, ok := p.names[c.userID]
	if !ok {
		name = [2]string{"User", itoa(c.userID)}
	}
	return phpArray{"ID", itoa(c.userID), "ACTIVE", true, "NAME", name[0], "LAST_NAME", name[1], "IS_ONLINE", "Y"}, nil
}

// HandlePage serves one of the portal's own pages (outside /rest/) with h: the page
// of the messenger where a test frames an application's page, as Bitrix24 does. A nil
// handler removes it.
func (p *Portal) HandlePage(path string, h http.HandlerFunc) {
	defer p.lock()()
	if h == nil {
		delete(p.pages, path)
		return
	}
	p.pages[path] = h
}

// PlacementOpen is what the portal posts to a placement's handler when userID opens
// it in dialogID's sidebar ("chat1001", or a private chat's user ID): the query and
// the form body of the fixture app/placement-im-sidebar.{query,form}, with this
// portal's domain (PROTOCOL 0: the fake speaks http), member_id, application token,
// scopes and server endpoint, and a fresh AUTH_ID and REFRESH_ID acting as userID.
// Then set is applied, each key to the part that has it (the body for new keys);
// Drop removes one.
func (p *Portal) PlacementOpen(userID int64, dialogID string, set map[string]string) (query, body []byte) {
	q, f := parseFixture("app/placement-im-sidebar.query"), parseFixture("app/placement-im-sidebar.form")
	options, _ := json.Marshal(map[string]string{"dialogId": dialogID, "URI": "/online/"})
	p.mu.Lock()
	access, _ := p.issueLocked(userID)
	q["DOMAIN"], q["PROTOCOL"] = p.Domain(), "0"
	f["AUTH_ID"], f["REFRESH_ID"], f["SERVER_ENDPOINT"] = access, p.grantLocked(userID), p.serverEndpoint()
	f["APPLICATION_TOKEN"], f["member_id"], f["APPLICATION_SCOPE"] = p.appToken, p.memberID, strings.Join(p.scopes, ",")
	f["PLACEMENT_OPTIONS"] = string(options)
	p.mu.Unlock()
	for k, v := range set {
		target := f
		if _, ok := q[k]; ok {
			target = q
		}
		target[k] = v
		if v == Drop {
			delete(target, k)
		}
	}
	return []byte(bitrix24.EncodeQuery(q)), []byte(bitrix24.EncodeQuery(f))
}
