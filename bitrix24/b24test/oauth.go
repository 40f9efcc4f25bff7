package b24test

import (
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
)

// Authorisation as Bitrix24's rest module does it (b24restdocs _includes/system-errors.md,
// settings/oauth/*; the rest module's OAuth\Auth and APAuth\Auth for the texts):
//
//   - webhook calls (/rest/<user>/<secret>/METHOD) act as the webhook's user, 1;
//   - application calls (/rest/METHOD) carry an access token as auth or access_token
//     (query, JSON or form body); none is 401 NO_AUTH_FOUND, one the portal did not
//     issue 401 invalid_token, an expired one 401 expired_token;
//   - a method of a scope the webhook or application lacks is 403 insufficient_scope.

const (
	webhookUser = 1
	// defaultClientID is the application a webhook portal's tokens (UserToken) act for.
	defaultClientID = "local.b24test0000000.00000000"
	// tokenLifetime is how long an access token lives (settings/oauth/auto-renewal.md).
	tokenLifetime = time.Hour
	// appStatus is the application's status in tokens and app.info: F, free — as in the
	// recorded events.
	appStatus = "F"
)

// defaultScopes is what a portal's webhook and application are granted at first.
var defaultScopes = []string{"imbot", "im", "user"}

// scopedFamilies are the method families (the name up to the first dot) that need the
// scope of their name (api-reference/scopes/permissions.md); the others, and the basic
// methods (scope, app.info, user.admin, batch…), need none.
var scopedFamilies = strings.Fields("imbot im user imopenlines imconnector crm department disk task " +
	"calendar entity log sonet_group telephony lists bizproc placement landing sale catalog")

// caller is who made a call: the webhook, or an application's token.
type caller struct {
	token    string // "" for the webhook
	userID   int64
	clientID string // the application's client_id for token calls; "" for the webhook
}

// name is Call.Auth.
func (c caller) name() string {
	if c.token == "" {
		return "webhook"
	}
	return c.token
}

// strip removes the token from a token call's parameters, as Bitrix24 does before the
// method sees them.
func (c caller) strip(f bitrix24.Form) {
	if c.token != "" {
		delete(f, "auth")
		delete(f, "access_token")
	}
}

type accessToken struct {
	userID  int64
	expires time.Time
	// clientID is the application the token was issued to: "" for the portal's own
	// application (the one under test), another application's client_id otherwise.
	clientID string
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// issueLocked makes an access token acting as userID.
func (p *Portal) issueLocked(userID int64) (string, time.Time) {
	tok := randomHex(22)
	exp := time.Now().Add(tokenLifetime)
	p.tokens[tok] = &accessToken{userID: userID, expires: exp}
	return tok, exp
}

// grantLocked makes a refresh token for userID.
func (p *Portal) grantLocked(userID int64) string {
	tok := randomHex(16)
	p.grants[tok] = userID
	return tok
}

// MemberID is the portal's member_id: 32 hex digits.
func (p *Portal) MemberID() string { return p.memberID }

// Domain is the portal's domain as events and tokens carry it: the host of URL().
func (p *Portal) Domain() string { return strings.TrimPrefix(p.base, "http://") }

// ClientEndpoint is the application's REST base on this portal, URL()+"/rest/".
func (p *Portal) ClientEndpoint() string { return p.base + "/rest/" }

// ApplicationToken is the application_token of the application installed on the
// portal: the top-level auth[application_token] of its events.
func (p *Portal) ApplicationToken() string { return p.appToken }

// UserToken issues an access token acting as userID: calls made with it act as that
// user (user.admin answers for them). It works on a webhook portal too.
func (p *Portal) UserToken(userID int64) string {
	defer p.lock()()
	tok, _ := p.issueLocked(userID)
	return tok
}

// OtherAppToken issues an access token acting as userID for another application
// installed on the same portal (clientID, e.g. "local.0000000000aaaa.11111111"): it
// works for REST calls as that user, and app.info answers that application's CODE.
// Any user who opens another application's page holds one.
func (p *Portal) OtherAppToken(userID int64, clientID string) string {
	defer p.lock()()
	tok, _ := p.issueLocked(userID)
	p.tokens[tok].clientID = clientID
	return tok
}

// Uninstall removes the application from the portal, as the portal's administrator
// does: every access and refresh token issued to it stops working at once
// (invalid_token, invalid_grant), as on-app-uninstall.md says ("all access
// permissions for the application to the API are removed"). Other applications'
// tokens keep working; InstallEvent issues new ones, as a new installation does.
func (p *Portal) Uninstall() {
	defer p.lock()()
	for tok, t := range p.tokens {
		if t.clientID == "" {
			delete(p.tokens, tok)
		}
	}
	clear(p.grants)
}

// ExpireTokens makes every access token issued so far answer expired_token from now
// on. Refresh tokens keep working; tokens issued later are good.
func (p *Portal) ExpireTokens() {
	defer p.lock()()
	for _, t := range p.tokens {
		t.expires = time.Time{}
	}
}

// SetAdmins says who user.admin calls an administrator; at first only user 1, the
// webhook's user.
func (p *Portal) SetAdmins(userIDs ...int64) {
	defer p.lock()()
	p.admins = map[int64]bool{}
	for _, id := range userIDs {
		p.admins[id] = true
	}
}

// user.admin: whether the caller is an administrator.
func (p *Portal) userAdmin(c caller, _ bitrix24.Form) (any, *bitrix24.Error) {
	defer p.lock()()
	return p.admins[c.userID], nil
}

// SetScopes sets the scopes of the webhook and of the application's tokens (all of
// them, issued or not); at first imbot, im and user.
func (p *Portal) SetScopes(scopes ...string) {
	defer p.lock()()
	p.scopes = slices.Clone(scopes)
}

// scope: the granted scopes, a JSON array of strings (api-reference/common/system/scope.md).
func (p *Portal) scopeList(caller, bitrix24.Form) (any, *bitrix24.Error) {
	defer p.lock()()
	return append([]string{}, p.scopes...), nil
}

// checkScope refuses a known method whose scope the caller lacks: 403
// insufficient_scope, worded as the rest module words it for webhooks and tokens.
func (p *Portal) checkScope(c caller, method string) *bitrix24.Error {
	key := strings.ToLower(method)
	need, _, _ := strings.Cut(key, ".")
	p.mu.Lock()
	granted := slices.Contains(p.scopes, need)
	p.mu.Unlock()
	basic := key == "user.admin" || key == "user.access" // no scope although their family has one
	if granted || basic || !slices.Contains(scopedFamilies, need) || !p.hasMethod(method) {
		return nil
	}
	desc := "The request requires higher privileges than provided by the webhook token"
	if c.token != "" {
		desc = "The request requires higher privileges than provided by the access token"
	}
	return &bitrix24.Error{Code: "insufficient_scope", Description: desc, HTTPStatus: http.StatusForbidden}
}

// serveToken answers an application's call, authorised by the token it carries as
// auth, else access_token. Bad credentials are answered 401 and cost nothing, as for
// a webhook.
func (p *Portal) serveToken(w http.ResponseWriter, req *request) {
	tok := req.params.String("auth")
	if tok == "" {
		tok = req.params.String("access_token")
	}
	if tok == "" {
		writeError(w, errNoAuth)
		return
	}
	p.mu.Lock()
	t := p.tokens[tok]
	p.mu.Unlock()
	switch {
	case t == nil:
		writeError(w, &bitrix24.Error{Code: "invalid_token", Description: "Unable to get application by token", HTTPStatus: http.StatusUnauthorized})
	case !time.Now().Before(t.expires):
		writeError(w, &bitrix24.Error{Code: "expired_token", Description: "The access token provided has expired",
			HTTPStatus: http.StatusUnauthorized})
	default:
		req.caller = caller{token: tok, userID: t.userID, clientID: cmp.Or(t.clientID, p.clientID)}
		req.strip(req.params)
		p.serve(w, req)
	}
}

// app.info: the application's record (api-reference/common/system/app-info.md). Only
// an application may ask: a webhook gets ACCESS_DENIED, 403 as the rest module's
// AccessException sends it.
func (p *Portal) appInfo(c caller, _ bitrix24.Form) (any, *bitrix24.Error) {
	if c.token == "" {
		return nil, &bitrix24.Error{Code: "ACCESS_DENIED", Description: "Access denied! Application context required",
			HTTPStatus: http.StatusForbidden}
	}
	return phpArray{"ID", 1, "CODE", c.clientID, "VERSION", 1, "STATUS", appStatus, "INSTALLED", true, "PAYMENT_EXPIRED", "N",
		"DAYS", nil, "LANGUAGE_ID", "en", "LICENSE", "en_pro100", "LICENSE_TYPE", "pro100", "LICENSE_FAMILY", "pro"}, nil
}

// OAuth is the authorisation server of one application (oauth.bitrix.info for it),
// shared by the portals it is installed on (NewAppPortal). As settings/oauth/
// auto-renewal.md says, /oauth/token/?grant_type=refresh_token&client_id&client_secret&
// refresh_token answers a new access token (1 h) and refresh token; the refresh token
// used is spent (invalid_grant). Errors are those of settings/oauth/error-codes.md.
// Events name URL()+"/rest/" their server_endpoint; the fake serves nothing there.
type OAuth struct {
	srv          *httptest.Server
	base         string // the server root: srv's URL, or NewLocalApp's base
	clientID     string
	clientSecret string

	mu       sync.Mutex
	portals  []*Portal
	byMember map[string]int // renewals by member_id
	delay    time.Duration
	done     chan struct{}
}

// NewOAuth starts the OAuth server of an application; it stops when the test ends.
func NewOAuth(t testing.TB, clientID, clientSecret string) *OAuth {
	o := &OAuth{clientID: clientID, clientSecret: clientSecret, byMember: map[string]int{}, done: make(chan struct{})}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serveHTTP))
	o.base = o.srv.URL
	t.Cleanup(func() {
		close(o.done)
		o.srv.Close()
	})
	return o
}

// URL is the server root: tokens are renewed at URL()+"/oauth/token/".
func (o *OAuth) URL() string { return o.base }

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

// serveHTTP answers the token endpoint.
func (o *OAuth) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/oauth/token/" && r.URL.Path != "/oauth/token" {
		writeHTML(w, http.StatusNotFound, nginxPage("404 Not Found"))
		return
	}
	o.mu.Lock()
	delay := o.delay
	o.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		case <-o.done:
			return
		}
	}
	oauthError := func(status int, code, description string) {
		writeJSON(w, status, map[string]string{"error": code, "error_description": description})
	}
	const malformed = "An incorrectly formatted authorization request was provided"
	if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "refresh_token" {
		oauthError(http.StatusBadRequest, "invalid_request", malformed)
		return
	}
	get := r.Form.Get
	if subtle.ConstantTimeCompare([]byte(get("client_id")), []byte(o.clientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(get("client_secret")), []byte(o.clientSecret)) != 1 {
		oauthError(http.StatusUnauthorized, "invalid_client", "Invalid client data was provided")
		return
	}
	refresh := get("refresh_token")
	if refresh == "" {
		oauthError(http.StatusBadRequest, "invalid_request", malformed)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range o.portals {
		if answer := o.rotate(p, refresh); answer != nil {
			o.byMember[p.memberID]++
			writeJSON(w, http.StatusOK, answer)
			return
		}
	}
	oauthError(http.StatusBadRequest, "invalid_grant", "Invalid authorization data was provided")
}

// rotate spends a refresh token of portal p, nil if p did not issue it, for the token
// endpoint's answer (its keys are in alphabetical order, as encoding/json writes them;
// domain is the authorisation server's, as documented).
func (o *OAuth) rotate(p *Portal, refresh string) map[string]any {
	defer p.lock()()
	user, ok := p.grants[refresh]
	if !ok {
		return nil
	}
	delete(p.grants, refresh)
	access, exp := p.issueLocked(user)
	return map[string]any{"access_token": access, "client_endpoint": p.ClientEndpoint(), "domain": strings.TrimPrefix(o.base, "http://"),
		"expires": exp.Unix(), "expires_in": int(tokenLifetime.Seconds()), "member_id": p.memberID,
		"refresh_token": p.grantLocked(user), "scope": strings.Join(p.scopes, ","), "server_endpoint": o.base + "/rest/",
		"status": appStatus, "user_id": user}
}

// serverEndpoint is the server_endpoint events carry: the OAuth server's, or the real
// one's for a webhook portal.
func (p *Portal) serverEndpoint() string {
	if p.oauth == nil {
		return "https://oauth.bitrix.info/rest/"
	}
	return p.oauth.base + "/rest/"
}
