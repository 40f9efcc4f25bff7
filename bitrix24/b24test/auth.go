package b24test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"supportbot/bitrix24"
)

// Authorisation as Bitrix24's rest module does it (b24restdocs _includes/system-errors.md,
// settings/oauth/*; the rest module's OAuth\Auth and APAuth\Auth for the texts):
//
//   - webhook calls (/rest/<user>/<secret>/METHOD) act as the webhook's user, 1;
//   - application calls (/rest/METHOD, on the portal or on the OAuth server's REST
//     proxy) carry an access token as auth (query, JSON or form body), access_token, or
//     "Authorization: Bearer"; none is 401 NO_AUTH_FOUND, one the portal did not issue
//     401 invalid_token, an expired one 401 expired_token;
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

// allScopes answers "scope" with full=true (api-reference/scopes/permissions.md).
var allScopes = []string{"basic", "bizproc", "calendar", "catalog", "crm", "department", "disk", "entity",
	"im", "imbot", "imconnector", "imopenlines", "landing", "lists", "log", "placement", "sale",
	"sonet_group", "task", "telephony", "user", "user_basic", "user_brief", "userfieldconfig"}

// scopeOf is the scope a method family needs. Families not listed (and the basic
// methods: scope, app.info, user.admin, batch…) need none.
var scopeOf = map[string]string{
	"imbot": "imbot", "im": "im", "user": "user", "imopenlines": "imopenlines", "imconnector": "imconnector",
	"crm": "crm", "department": "department", "disk": "disk", "task": "task", "tasks": "task",
	"calendar": "calendar", "entity": "entity", "log": "log", "sonet_group": "sonet_group",
	"telephony": "telephony", "lists": "lists", "bizproc": "bizproc", "placement": "placement",
	"landing": "landing", "sale": "sale", "catalog": "catalog",
}

// basicMethods need no scope although their family has one (api-reference/common).
var basicMethods = map[string]bool{"user.admin": true, "user.access": true}

// requiredScope is the scope method needs, "" for none.
func requiredScope(method string) string {
	key := strings.ToLower(method)
	if basicMethods[key] {
		return ""
	}
	family, _, _ := strings.Cut(key, ".")
	return scopeOf[family]
}

// caller is who made a call: the webhook, or an application's token.
type caller struct {
	token    string // "" for the webhook
	userID   int64
	clientID string // the application's client_id for token calls; "" for the webhook
}

func webhookCaller() caller { return caller{userID: webhookUser} }

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
	if c.token == "" {
		return
	}
	delete(f, "auth")
	delete(f, "access_token")
}

type accessToken struct {
	userID  int64
	expires time.Time
	expired bool // ExpireTokens
}

type grant struct {
	userID int64
	used   bool
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
	p.grants[tok] = &grant{userID: userID}
	return tok
}

// MemberID is the portal's member_id: 32 hex digits.
func (p *Portal) MemberID() string { return p.memberID }

// Domain is the portal's domain as events and tokens carry it: the host of URL().
func (p *Portal) Domain() string { return hostOf(p.srv.URL) }

// ClientEndpoint is the application's REST base on this portal, URL()+"/rest/".
func (p *Portal) ClientEndpoint() string { return p.srv.URL + "/rest/" }

// ApplicationToken is the application_token of the application installed on the
// portal: the top-level auth[application_token] of its events.
func (p *Portal) ApplicationToken() string { return p.appToken }

// UserToken issues an access token acting as userID: calls made with it act as that
// user (user.admin answers for them). It works on a webhook portal too.
func (p *Portal) UserToken(userID int64) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	tok, _ := p.issueLocked(userID)
	return tok
}

// ExpireTokens makes every access token issued so far answer expired_token from now
// on. Refresh tokens keep working; tokens issued later are good.
func (p *Portal) ExpireTokens() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.tokens {
		t.expired = true
	}
}

// SetAdmins says who user.admin calls an administrator; at first only user 1, the
// webhook's user.
func (p *Portal) SetAdmins(userIDs ...int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.admins = map[int64]bool{}
	for _, id := range userIDs {
		p.admins[id] = true
	}
}

func (p *Portal) isAdmin(userID int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.admins[userID]
}

// SetScopes sets the scopes of the webhook and of the application's tokens (all of
// them, issued or not); at first imbot, im and user.
func (p *Portal) SetScopes(scopes ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scopes = append([]string(nil), scopes...)
}

// scope: the granted scopes, a JSON array of strings (api-reference/common/system/scope.md);
// with full=true every scope there is.
func (p *Portal) scopeList(f bitrix24.Form) any {
	switch strings.ToLower(f.String("full")) {
	case "true", "1", "y":
		return append([]string(nil), allScopes...)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string{}, p.scopes...)
}

// checkScope refuses a known method whose scope the caller lacks: 403
// insufficient_scope, worded as the rest module words it for webhooks and tokens.
func (p *Portal) checkScope(c caller, method string) *bitrix24.Error {
	need := requiredScope(method)
	if need == "" || !p.hasMethod(method) {
		return nil
	}
	p.mu.Lock()
	granted := slices.Contains(p.scopes, need)
	p.mu.Unlock()
	if granted {
		return nil
	}
	desc := "The request requires higher privileges than provided by the webhook token"
	if c.token != "" {
		desc = "The request requires higher privileges than provided by the access token"
	}
	return &bitrix24.Error{Code: "insufficient_scope", Description: desc, HTTPStatus: http.StatusForbidden}
}

// checkToken resolves an access token of this portal.
func (p *Portal) checkToken(tok string) (caller, *bitrix24.Error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.tokens[tok]
	if t == nil {
		return caller{}, errInvalidToken()
	}
	if t.expired || !time.Now().Before(t.expires) {
		return caller{}, &bitrix24.Error{Code: "expired_token", Description: "The access token provided has expired",
			HTTPStatus: http.StatusUnauthorized}
	}
	return caller{token: tok, userID: t.userID, clientID: p.clientID}, nil
}

func (p *Portal) hasToken(tok string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokens[tok] != nil
}

func errInvalidToken() *bitrix24.Error {
	return &bitrix24.Error{Code: "invalid_token", Description: "Unable to get application by token", HTTPStatus: http.StatusUnauthorized}
}

// maxBody caps a request body, as execute does.
const maxBody = 32 << 20

// readBody reads the whole body and puts it back for execute.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, &bitrix24.Error{Code: "INVALID_REQUEST", Description: "Request body too large", HTTPStatus: http.StatusRequestEntityTooLarge})
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, true
}

// authToken finds the access token: the Authorization header ("Bearer …"), else
// auth or access_token in the query, else in the body.
func authToken(r *http.Request, body []byte) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	if q, err := bitrix24.ParseForm([]byte(r.URL.RawQuery)); err == nil {
		if tok := tokenIn(q); tok != "" {
			return tok
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return ""
	}
	if strings.Contains(strings.ToLower(r.Header.Get("Content-Type")), "json") {
		var obj map[string]any
		if json.Unmarshal(body, &obj) != nil {
			return ""
		}
		for _, k := range []string{"auth", "access_token"} {
			if s, ok := obj[k].(string); ok && s != "" {
				return s
			}
		}
		return ""
	}
	f, err := bitrix24.ParseForm(body)
	if err != nil {
		return ""
	}
	return tokenIn(f)
}

func tokenIn(f bitrix24.Form) string {
	for _, k := range []string{"auth", "access_token"} {
		if s, ok := f[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// serveOAuth answers an application's call, /rest/METHOD with a token. Bad
// credentials are answered 401 and cost nothing, as for a webhook.
func (p *Portal) serveOAuth(w http.ResponseWriter, r *http.Request, method string, start time.Time) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	tok := authToken(r, body)
	if tok == "" {
		writeError(w, errNoAuth())
		return
	}
	p.serveWithToken(w, r, tok, method, start)
}

// serveWithToken answers a call whose body is read and whose token is found.
func (p *Portal) serveWithToken(w http.ResponseWriter, r *http.Request, tok, method string, start time.Time) {
	c, err := p.checkToken(tok)
	if err != nil {
		writeError(w, err)
		return
	}
	p.serveAuthed(w, r, c, method, start)
}

// app.info: the application's record (api-reference/common/system/app-info.md). Only
// an application may ask: a webhook gets ACCESS_DENIED, 403 as the rest module's
// AccessException sends it.
func (p *Portal) appInfo(c caller) (any, *bitrix24.Error) {
	if c.token == "" {
		return nil, &bitrix24.Error{Code: "ACCESS_DENIED", Description: "Access denied! Application context required",
			HTTPStatus: http.StatusForbidden}
	}
	out := &phpArray{}
	out.set("ID", 1)
	out.set("CODE", c.clientID)
	out.set("VERSION", 1)
	out.set("STATUS", appStatus)
	out.set("INSTALLED", true)
	out.set("PAYMENT_EXPIRED", "N")
	out.set("DAYS", nil)
	out.set("LANGUAGE_ID", "en")
	out.set("LICENSE", "en_pro100")
	out.set("LICENSE_TYPE", "pro100")
	out.set("LICENSE_FAMILY", "pro")
	return out, nil
}

// hostOf is the host[:port] of a base URL.
func hostOf(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	return u.Host
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
