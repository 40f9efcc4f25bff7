package b24test

import (
	"crypto/subtle"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// OAuth is the authorisation server of one application (oauth.bitrix.info for it):
// it renews tokens at URL()+"/oauth/token/" and is the REST proxy (server_endpoint)
// URL()+"/rest/". The portals the application is installed on (NewAppPortal) share it.
//
// Renewal follows settings/oauth/auto-renewal.md: GET (or POST)
// /oauth/token/?grant_type=refresh_token&client_id&client_secret&refresh_token answers
// a new access token (1 h) and a new refresh token; the refresh token used stops
// working (invalid_grant when used again). Errors are those of settings/oauth/error-codes.md.
type OAuth struct {
	srv          *httptest.Server
	clientID     string
	clientSecret string

	mu        sync.Mutex
	portals   []*Portal
	refreshes int
	byMember  map[string]int
	delay     time.Duration

	done      chan struct{}
	closeOnce sync.Once
}

// NewOAuth starts the OAuth server of an application; it stops when the test ends.
func NewOAuth(t testing.TB, clientID, clientSecret string) *OAuth {
	t.Helper()
	o := &OAuth{clientID: clientID, clientSecret: clientSecret, byMember: map[string]int{}, done: make(chan struct{})}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serveHTTP))
	t.Cleanup(func() {
		o.closeOnce.Do(func() { close(o.done) })
		o.srv.Close()
	})
	return o
}

// URL is the server root: tokens are renewed at URL()+"/oauth/token/", and
// URL()+"/rest/" is the server_endpoint.
func (o *OAuth) URL() string { return o.srv.URL }

// Refreshes is how many token renewals succeeded, on every portal.
func (o *OAuth) Refreshes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.refreshes
}

// RefreshesFor is how many token renewals succeeded for the portal with memberID.
func (o *OAuth) RefreshesFor(memberID string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.byMember[memberID]
}

// SetRefreshDelay makes every request to the token endpoint wait d before it is
// answered (and before it takes effect), so that a test can pile calls up behind one
// renewal.
func (o *OAuth) SetRefreshDelay(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.delay = d
}

// NewAppPortal starts a portal with the application installed: its own member_id,
// domain, application_token and client_endpoint (URL()+"/rest/"), its tokens
// renewed by o. Its webhook (WebhookURL) works as on any portal.
func NewAppPortal(t testing.TB, o *OAuth) *Portal {
	t.Helper()
	p := newPortal(t, o)
	o.mu.Lock()
	o.portals = append(o.portals, p)
	o.mu.Unlock()
	return p
}

func (o *OAuth) portalList() []*Portal {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*Portal(nil), o.portals...)
}

func (o *OAuth) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch path := r.URL.Path; {
	case path == "/oauth/token/" || path == "/oauth/token":
		o.serveToken(w, r)
	case strings.HasPrefix(path, "/rest/"):
		o.serveREST(w, r, strings.TrimPrefix(path, "/rest/"))
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "<html><body><h1>404 Not Found</h1></body></html>")
	}
}

// serveREST is the server_endpoint: a call with a token answers as the portal the
// token belongs to.
func (o *OAuth) serveREST(w http.ResponseWriter, r *http.Request, rest string) {
	start := time.Now()
	if strings.Contains(rest, "/") {
		writeError(w, errNoAuth())
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	tok := authToken(r, body)
	if tok == "" {
		writeError(w, errNoAuth())
		return
	}
	for _, p := range o.portalList() {
		if p.hasToken(tok) {
			p.serveWithToken(w, r, tok, strings.TrimSuffix(rest, ".json"), start)
			return
		}
	}
	writeError(w, errInvalidToken())
}

// oauthError is an answer of the token endpoint that is not a token pair.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func (o *OAuth) serveToken(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	delay := o.delay
	o.mu.Unlock()
	if delay > 0 {
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return
		case <-o.done:
			timer.Stop()
			return
		}
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "An incorrectly formatted authorization request was provided")
		return
	}
	get := r.Form.Get
	if get("grant_type") != "refresh_token" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "An incorrectly formatted authorization request was provided")
		return
	}
	if subtle.ConstantTimeCompare([]byte(get("client_id")), []byte(o.clientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(get("client_secret")), []byte(o.clientSecret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Invalid client data was provided")
		return
	}
	refresh := get("refresh_token")
	if refresh == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "An incorrectly formatted authorization request was provided")
		return
	}
	for _, p := range o.portalList() {
		if pair, ok := p.rotate(refresh); ok {
			o.mu.Lock()
			o.refreshes++
			o.byMember[p.memberID]++
			o.mu.Unlock()
			writeJSON(w, http.StatusOK, o.tokenAnswer(p, pair))
			return
		}
	}
	oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid authorization data was provided")
}

// tokenPair is what a renewal issues.
type tokenPair struct {
	access, refresh string
	expires         time.Time
	userID          int64
	scope           string
}

// rotate spends a refresh token of this portal for a new pair.
func (p *Portal) rotate(refresh string) (tokenPair, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.grants[refresh]
	if g == nil || g.used {
		return tokenPair{}, false
	}
	g.used = true
	access, exp := p.issueLocked(g.userID)
	return tokenPair{access: access, refresh: p.grantLocked(g.userID), expires: exp, userID: g.userID,
		scope: strings.Join(p.scopes, ",")}, true
}

// tokenAnswer is the renewal's answer, keys in the documentation's order; domain is
// the authorisation server's, as documented (not the portal's).
func (o *OAuth) tokenAnswer(p *Portal, t tokenPair) *phpArray {
	out := &phpArray{}
	out.set("access_token", t.access)
	out.set("client_endpoint", p.ClientEndpoint())
	out.set("domain", hostOf(o.srv.URL))
	out.set("expires", t.expires.Unix())
	out.set("expires_in", int(tokenLifetime.Seconds()))
	out.set("member_id", p.memberID)
	out.set("refresh_token", t.refresh)
	out.set("scope", t.scope)
	out.set("server_endpoint", o.srv.URL+"/rest/")
	out.set("status", appStatus)
	out.set("user_id", t.userID)
	return out
}

// serverEndpoint is the server_endpoint events carry: the OAuth server's REST proxy,
// or the real one's for a webhook portal.
func (p *Portal) serverEndpoint() string {
	if p.oauth == nil {
		return "https://oauth.bitrix.info/rest/"
	}
	return p.oauth.srv.URL + "/rest/"
}

// installUser is who installs the application: the lowest administrator, else 1.
func (p *Portal) installUserLocked() int64 {
	var user int64
	for id := range p.admins {
		if user == 0 || id < user {
			user = id
		}
	}
	if user == 0 {
		user = webhookUser
	}
	return user
}

// InstallEvent is the ONAPPINSTALL body (fixture app/onappinstall.form) this portal
// sends when the application is installed: its member_id, domain, client_endpoint,
// server_endpoint and application_token, the granted scopes, and a fresh token pair
// acting as an administrator (the lowest of SetAdmins, user 1 at first), expires_in 3600.
func (p *Portal) InstallEvent() []byte {
	p.mu.Lock()
	user := p.installUserLocked()
	access, _ := p.issueLocked(user)
	refresh := p.grantLocked(user)
	scope := strings.Join(p.scopes, ",")
	p.mu.Unlock()
	return Event("app/onappinstall.form", map[string]string{
		"auth[domain]":            p.Domain(),
		"auth[member_id]":         p.memberID,
		"auth[client_endpoint]":   p.ClientEndpoint(),
		"auth[server_endpoint]":   p.serverEndpoint(),
		"auth[access_token]":      access,
		"auth[refresh_token]":     refresh,
		"auth[expires_in]":        strconv.Itoa(int(tokenLifetime.Seconds())),
		"auth[scope]":             scope,
		"auth[application_token]": p.appToken,
	})
}

// AppEvent builds an event body from any fixture as this portal would send it to
// the application: the top-level auth block gets the portal's member_id, domain,
// client_endpoint, server_endpoint, application_token and scopes, an access token
// acting as userID and user_id = userID (added when the fixture lacks them), and,
// where the fixture has them, a fresh refresh_token, expires and expires_in. The
// copies under data[BOT][<id>] and data[BOT][<id>][AUTH] (and data[COMMAND][<id>]…)
// get the same portal values, client_id, and a token acting as the bot (their user_id
// stays the bot's). Then set is applied as Event applies it.
func (p *Portal) AppEvent(fixture string, userID int64, set map[string]string) []byte {
	fields := parseFields(Fixture(fixture))
	p.mu.Lock()
	scope := strings.Join(p.scopes, ",")
	type pair struct{ access, refresh, expires string }
	pairs := map[int64]pair{}
	tokensFor := func(user int64) pair {
		if tp, ok := pairs[user]; ok {
			return tp
		}
		access, exp := p.issueLocked(user)
		tp := pair{access: access, refresh: p.grantLocked(user), expires: strconv.FormatInt(exp.Unix(), 10)}
		pairs[user] = tp
		return tp
	}
	portalValue := func(key string, tp pair) (string, bool) {
		switch key {
		case "member_id":
			return p.memberID, true
		case "domain":
			return p.Domain(), true
		case "client_endpoint":
			return p.ClientEndpoint(), true
		case "server_endpoint":
			return p.serverEndpoint(), true
		case "application_token":
			return p.appToken, true
		case "scope":
			return scope, true
		case "access_token":
			return tp.access, true
		case "refresh_token":
			return tp.refresh, true
		case "expires":
			return tp.expires, true
		case "expires_in":
			return strconv.Itoa(int(tokenLifetime.Seconds())), true
		case "client_id":
			return p.clientID, true
		}
		return "", false
	}
	own := tokensFor(userID)
	for i, f := range fields {
		switch {
		case len(f.path) == 2 && f.path[0] == "auth":
			if f.path[1] == "user_id" {
				fields[i].value = itoa(userID)
			} else if v, ok := portalValue(f.path[1], own); ok && f.path[1] != "client_id" {
				fields[i].value = v
			}
		case len(f.path) >= 4 && f.path[0] == "data" && (f.path[1] == "BOT" || f.path[1] == "COMMAND"):
			key := f.path[3]
			if len(f.path) == 5 && f.path[3] == "AUTH" {
				key = f.path[4]
			} else if len(f.path) != 4 {
				continue
			}
			bot := botOfCopy(fields, f.path[:3])
			if v, ok := portalValue(key, tokensFor(bot)); ok {
				fields[i].value = v
			}
		}
	}
	p.mu.Unlock()
	for _, key := range []string{"access_token", "user_id", "member_id", "domain", "client_endpoint", "server_endpoint", "application_token"} {
		if !hasField(fields, "auth", key) {
			v := itoa(userID)
			if key != "user_id" {
				v, _ = portalValue(key, own)
			}
			fields = setField(fields, []string{"auth", key}, v, "auth["+key+"]")
		}
	}
	return encodeFields(applySet(fields, set))
}

// botOfCopy is the user a data[BOT|COMMAND][<id>] copy's token acts for: its
// user_id (the bot), else the <id> of a BOT copy.
func botOfCopy(fields []field, prefix []string) int64 {
	for _, f := range fields {
		if len(f.path) == 4 && matchPrefix(prefix, f.path) && f.path[3] == "user_id" {
			if id, err := strconv.ParseInt(f.value, 10, 64); err == nil {
				return id
			}
		}
	}
	id, _ := strconv.ParseInt(prefix[2], 10, 64)
	return id
}

func hasField(fields []field, path ...string) bool {
	for _, f := range fields {
		if len(f.path) == len(path) && matchPrefix(path, f.path) {
			return true
		}
	}
	return false
}
