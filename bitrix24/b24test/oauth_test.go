package b24test_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
)

const (
	testClientID     = "app.66a1b2c3d4e5f6.12345678"
	testClientSecret = "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3t"
)

// callToken calls {base}METHOD?auth=TOKEN with a JSON body.
func callToken(t *testing.T, base, method, token string, params any) answer {
	t.Helper()
	b, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, base+method+"?auth="+url.QueryEscape(token), "application/json", string(b))
}

// refresh asks the token endpoint for a new pair.
func refresh(t *testing.T, o *b24test.OAuth, clientID, secret, refreshToken string) answer {
	t.Helper()
	q := url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "client_secret": {secret}, "refresh_token": {refreshToken}}
	resp, err := http.Get(o.URL() + "/oauth/token/?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	return read(resp)
}

func installAuth(t *testing.T, p *b24test.Portal) bitrix24.Auth {
	t.Helper()
	ev, err := bitrix24.Decode(p.InstallEvent())
	if err != nil {
		t.Fatal(err)
	}
	install, ok := ev.(*bitrix24.AppInstall)
	if !ok {
		t.Fatalf("install event is %T", ev)
	}
	return install.Auth
}

func TestAppPortalIdentityAndInstallEvent(t *testing.T) {
	o := b24test.NewOAuth(t, testClientID, testClientSecret)
	p := b24test.NewAppPortal(t, o)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(p.MemberID()) || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(p.ApplicationToken()) {
		t.Fatalf("member_id %q, application_token %q", p.MemberID(), p.ApplicationToken())
	}
	if p.ClientEndpoint() != p.URL()+"/rest/" || "http://"+p.Domain() != p.URL() {
		t.Fatalf("client_endpoint %q, domain %q, URL %q", p.ClientEndpoint(), p.Domain(), p.URL())
	}
	auth := installAuth(t, p)
	want := bitrix24.Auth{ApplicationToken: p.ApplicationToken(), AccessToken: auth.AccessToken, RefreshToken: auth.RefreshToken,
		ExpiresIn: 3600, Scope: "imbot,im,user", Domain: p.Domain(), ServerEndpoint: o.URL() + "/rest/",
		ClientEndpoint: p.ClientEndpoint(), MemberID: p.MemberID(), Status: "F"}
	if auth != want || auth.AccessToken == "" || auth.RefreshToken == "" {
		t.Fatalf("auth\n %+v\nwant\n %+v", auth, want)
	}
	// The installing user is an administrator; the call acts as them.
	wantResult(t, callToken(t, auth.ClientEndpoint, "user.admin", auth.AccessToken, nil), "true")
	wantResult(t, callToken(t, auth.ClientEndpoint, "user.admin.json", auth.AccessToken, nil), "true")
	calls := p.Calls()
	if len(calls) != 2 || calls[0].Auth != auth.AccessToken || calls[0].UserID != 1 || calls[1].Method != "user.admin" {
		t.Fatalf("calls %+v", calls)
	}
	if _, ok := calls[0].Params["auth"]; ok {
		t.Fatalf("the token stayed in Params: %v", calls[0].Params)
	}
	// Webhook calls are recorded as such.
	wantResult(t, callJSON(t, p, "user.admin", nil), "true")
	if c := p.Calls()[2]; c.Auth != "webhook" || c.UserID != 1 {
		t.Fatalf("webhook call %+v", c)
	}
}

func TestOAuthCallsAndErrors(t *testing.T) {
	o := b24test.NewOAuth(t, testClientID, testClientSecret)
	p := b24test.NewAppPortal(t, o)
	tok := p.UserToken(27)
	base := p.ClientEndpoint()

	wantResult(t, callToken(t, base, "imbot.message.add", tok, map[string]any{"DIALOG_ID": "27", "MESSAGE": "hi"}), "5001")
	// The token in a JSON body, a form body, as access_token.
	wantResult(t, do(t, base+"imbot.message.add.json", "application/json", `{"auth":"`+tok+`","DIALOG_ID":"27","MESSAGE":"b"}`), "5002")
	wantResult(t, do(t, base+"imbot.message.add", "application/x-www-form-urlencoded", "DIALOG_ID=27&MESSAGE=c&auth="+tok), "5003")
	wantRaw(t, do(t, base+"scope?access_token="+tok, "", ""), `"result":["imbot","im","user"]`)
	for _, c := range p.Calls() {
		if c.Auth != tok || c.UserID != 27 {
			t.Fatalf("call %+v", c)
		}
	}

	a := do(t, base+"imbot.message.add", "application/json", `{"DIALOG_ID":"27","MESSAGE":"x"}`)
	wantError(t, a, 401, "NO_AUTH_FOUND")
	wantError(t, callToken(t, base, "imbot.message.add", "nosuchtoken", map[string]any{"DIALOG_ID": "27", "MESSAGE": "x"}), 401, "invalid_token")

	p.ExpireTokens()
	a = callToken(t, base, "imbot.message.add", tok, map[string]any{"DIALOG_ID": "27", "MESSAGE": "x"})
	wantError(t, a, 401, "expired_token")
	if d := a.Body["error_description"]; d != "The access token provided has expired" {
		t.Errorf("expired description %q", d)
	}
	if n := len(p.CallsTo("imbot.message.add")); n != 3 || p.Requests() != 4 {
		t.Fatalf("refused calls were recorded or counted: %d calls, %d requests", n, p.Requests())
	}
	// Tokens issued after ExpireTokens work.
	wantResult(t, callToken(t, base, "imbot.message.add", p.UserToken(27), map[string]any{"DIALOG_ID": "27", "MESSAGE": "y"}), "5004")

	// app.info answers for the application; a webhook has no application context.
	a = callToken(t, base, "app.info", p.UserToken(1), nil)
	wantRaw(t, a, `"result":{"ID":1,"CODE":"`+testClientID+`","VERSION":1,"STATUS":"F","INSTALLED":true,"PAYMENT_EXPIRED":"N","DAYS":null,`)
	wantError(t, callJSON(t, p, "app.info", nil), 403, "ACCESS_DENIED")
}

func TestUserAdmin(t *testing.T) {
	o := b24test.NewOAuth(t, testClientID, testClientSecret)
	p := b24test.NewAppPortal(t, o)
	base := p.ClientEndpoint()
	wantResult(t, callJSON(t, p, "user.admin", nil), "true")
	wantResult(t, callToken(t, base, "user.admin", p.UserToken(1), nil), "true")
	wantResult(t, callToken(t, base, "user.admin", p.UserToken(27), nil), "false")
	p.SetAdmins(27, 31)
	wantResult(t, callToken(t, base, "user.admin", p.UserToken(27), nil), "true")
	wantResult(t, callJSON(t, p, "user.admin", nil), "false")
	// Installed by the lowest administrator now.
	auth := installAuth(t, p)
	wantResult(t, callToken(t, base, "user.admin", auth.AccessToken, nil), "true")
	if c := p.Calls(); c[len(c)-1].UserID != 27 {
		t.Fatalf("install token acts as %d", c[len(c)-1].UserID)
	}
	// user.admin needs no scope.
	p.SetScopes()
	wantResult(t, callToken(t, base, "user.admin", p.UserToken(31), nil), "true")
}

func TestRefreshRotation(t *testing.T) {
	o := b24test.NewOAuth(t, testClientID, testClientSecret)
	p := b24test.NewAppPortal(t, o)
	auth := installAuth(t, p)
	p.ExpireTokens()
	wantError(t, callToken(t, p.ClientEndpoint(), "scope", auth.AccessToken, nil), 401, "expired_token")

	before := time.Now().Unix()
	a := refresh(t, o, testClientID, testClientSecret, auth.RefreshToken)
	if a.Status != 200 {
		t.Fatalf("refresh: %d %s", a.Status, a.Raw)
	}
	keys := regexp.MustCompile(`"([a-z_]+)":`).FindAllStringSubmatch(a.Raw, -1)
	var order []string
	for _, k := range keys {
		order = append(order, k[1])
	}
	if strings.Join(order, ",") != "access_token,client_endpoint,domain,expires,expires_in,member_id,refresh_token,scope,server_endpoint,status,user_id" {
		t.Fatalf("refresh answer keys %v: %s", order, a.Raw)
	}
	access, _ := a.Body["access_token"].(string)
	newRefresh, _ := a.Body["refresh_token"].(string)
	expires, _ := a.Body["expires"].(json.Number).Int64()
	if access == "" || access == auth.AccessToken || newRefresh == "" || newRefresh == auth.RefreshToken ||
		a.Body["client_endpoint"] != p.ClientEndpoint() || a.Body["member_id"] != p.MemberID() ||
		a.Body["server_endpoint"] != o.URL()+"/rest/" || a.Body["domain"] != strings.TrimPrefix(o.URL(), "http://") ||
		a.Body["expires_in"] != json.Number("3600") || a.Body["scope"] != "imbot,im,user" || a.Body["status"] != "F" ||
		a.Body["user_id"] != json.Number("1") || expires < before+3599 || expires > time.Now().Unix()+3600 {
		t.Fatalf("refresh answer %s", a.Raw)
	}
	wantResult(t, callToken(t, p.ClientEndpoint(), "user.admin", access, nil), "true")

	// The refresh token used is spent; a wrong secret or client is refused.
	a = refresh(t, o, testClientID, testClientSecret, auth.RefreshToken)
	if a.Status != 400 || a.code() != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %s", a.Status, a.Raw)
	}
	for _, bad := range []struct{ id, secret string }{{testClientID, "wrong"}, {"app.other", testClientSecret}} {
		a = refresh(t, o, bad.id, bad.secret, newRefresh)
		if a.Status != 401 || a.code() != "invalid_client" {
			t.Fatalf("wrong client: %d %s", a.Status, a.Raw)
		}
	}
	if a = refresh(t, o, testClientID, testClientSecret, "unknown"); a.Status != 400 || a.code() != "invalid_grant" {
		t.Fatalf("unknown refresh token: %d %s", a.Status, a.Raw)
	}
	if o.RefreshesFor(p.MemberID()) != 1 {
		t.Fatalf("refreshes for the portal %d", o.RefreshesFor(p.MemberID()))
	}
	// The new refresh token still works after the failures.
	if a = refresh(t, o, testClientID, testClientSecret, newRefresh); a.Status != 200 {
		t.Fatalf("second refresh: %d %s", a.Status, a.Raw)
	}
	if o.RefreshesFor(p.MemberID()) != 2 || o.RefreshesFor("nobody") != 0 {
		t.Fatalf("refreshes %d", o.RefreshesFor(p.MemberID()))
	}
}

// Twenty renewals with the same refresh token at once, behind a slow server: one
// wins, the rest get invalid_grant — what a client without single-flight would see.
func TestRefreshDelayConcurrent(t *testing.T) {
	o := b24test.NewOAuth(t, testClientID, testClientSecret)
	p := b24test.NewAppPortal(t, o)
	auth := installAuth(t, p)
	o.SetRefreshDelay(150 * time.Millisecond)
	start := time.Now()
	answers := make([]answer, 20)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			q := url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "client_secret": {testClientSecret},
				"refresh_token": {auth.RefreshToken}}
			resp, err := http.Get(o.URL() + "/oauth/token/?" + q.Encode())
			if err != nil {
				t.Error(err)
				return
			}
			answers[i] = read(resp)
		})
	}
	wg.Wait()
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("answered in %v", d)
	}
	ok, grant := 0, 0
	for _, a := range answers {
		switch {
		case a.Status == 200:
			ok++
		case a.Status == 400 && strings.Contains(a.Raw, `"invalid_grant"`):
			grant++
		default:
			t.Fatalf("answer %d %s", a.Status, a.Raw)
		}
	}
	if ok != 1 || grant != 19 || o.RefreshesFor(p.MemberID()) != 1 {
		t.Fatalf("%d renewed, %d invalid_grant, %d refreshes", ok, grant, o.RefreshesFor(p.MemberID()))
	}
}

// Two portals of one application: each knows only its own tokens, and renews only its
// own refresh tokens.
func TestTwoPortalsKeepTokensApart(t *testing.T) {
	o := b24test.NewOAuth(t, testClientID, testClientSecret)
	a, b := b24test.NewAppPortal(t, o), b24test.NewAppPortal(t, o)
	if a.MemberID() == b.MemberID() || a.Domain() == b.Domain() || a.ApplicationToken() == b.ApplicationToken() {
		t.Fatal("two portals share an identity")
	}
	tokA, tokB := installAuth(t, a), installAuth(t, b)
	wantError(t, callToken(t, b.ClientEndpoint(), "user.admin", tokA.AccessToken, nil), 401, "invalid_token")
	wantResult(t, callToken(t, a.ClientEndpoint(), "user.admin", tokA.AccessToken, nil), "true")

	wantResult(t, callToken(t, b.ClientEndpoint(), "imbot.message.add", tokB.AccessToken, map[string]any{"DIALOG_ID": "9", "MESSAGE": "b"}), "5001")
	if len(b.AllMessages()) != 1 || len(a.AllMessages()) != 0 {
		t.Fatalf("a %v, b %v", a.AllMessages(), b.AllMessages())
	}

	// Renewals are counted per portal.
	if r := refresh(t, o, testClientID, testClientSecret, tokB.RefreshToken); r.Status != 200 || r.Body["member_id"] != b.MemberID() {
		t.Fatalf("refresh b: %d %s", r.Status, r.Raw)
	}
	if o.RefreshesFor(b.MemberID()) != 1 || o.RefreshesFor(a.MemberID()) != 0 {
		t.Fatalf("refreshes a %d, b %d", o.RefreshesFor(a.MemberID()), o.RefreshesFor(b.MemberID()))
	}
}

func TestAppEvent(t *testing.T) {
	o := b24test.NewOAuth(t, testClientID, testClientSecret)
	p := b24test.NewAppPortal(t, o)
	body := p.AppEvent("v1/onimbotmessageadd-private.form", 27, map[string]string{"data[PARAMS][MESSAGE]": "hi"})
	ev, err := bitrix24.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	msg, ok := ev.(*bitrix24.MessageAdd)
	if !ok || msg.Message.Text != "hi" || msg.BotID != 567 {
		t.Fatalf("event %T %+v", ev, ev)
	}
	auth := msg.Auth
	if auth.MemberID != p.MemberID() || auth.Domain != p.Domain() || auth.ClientEndpoint != p.ClientEndpoint() ||
		auth.ServerEndpoint != o.URL()+"/rest/" || auth.ApplicationToken != p.ApplicationToken() || auth.UserID != 27 ||
		auth.Scope != "imbot,im,user" || auth.ExpiresIn != 3600 || auth.Expires < time.Now().Unix()+3500 {
		t.Fatalf("auth %+v", auth)
	}
	wantResult(t, callToken(t, auth.ClientEndpoint, "user.admin", auth.AccessToken, nil), "false")
	// The bot's copy: the portal's values, a token acting as the bot.
	f, err := bitrix24.ParseForm(body)
	if err != nil {
		t.Fatal(err)
	}
	botAuth := f.Group("data", "BOT", "567")
	if botAuth.String("member_id") != p.MemberID() || botAuth.String("application_token") != p.ApplicationToken() ||
		botAuth.String("client_id") != testClientID || botAuth.String("user_id") != "567" ||
		botAuth.String("AUTH", "access_token") != botAuth.String("access_token") || botAuth.String("AUTH", "domain") != p.Domain() {
		t.Fatalf("bot copy %v", botAuth)
	}
	wantResult(t, callToken(t, p.ClientEndpoint(), "user.admin", botAuth.String("access_token"), nil), "false")
	calls := p.Calls()
	if calls[0].UserID != 27 || calls[1].UserID != 567 {
		t.Fatalf("calls act as %d and %d", calls[0].UserID, calls[1].UserID)
	}
	// Events without a user_id get one; set still wins.
	ev, err = bitrix24.Decode(p.AppEvent("v1/onimbotdelete.form", 31, map[string]string{"auth[domain]": "elsewhere"}))
	if err != nil {
		t.Fatal(err)
	}
	if a := ev.Head().Auth; a.UserID != 31 || a.Domain != "elsewhere" || a.MemberID != p.MemberID() {
		t.Fatalf("delete auth %+v", a)
	}
	ev, err = bitrix24.Decode(p.AppEvent("app/onappinstall.form", 1, nil))
	if err != nil {
		t.Fatal(err)
	}
	if a := ev.Head().Auth; a.UserID != 1 || a.MemberID != p.MemberID() || a.RefreshToken == "" {
		t.Fatalf("install auth %+v", a)
	}
}

// The leaky bucket and fault injection apply to token calls; refused tokens cost
// nothing.
func TestOAuthCallsThrottledAndFaulted(t *testing.T) {
	o := b24test.NewOAuth(t, testClientID, testClientSecret)
	p := b24test.NewAppPortal(t, o)
	p.SetRateLimit(0.001, 1)
	tok := p.UserToken(1)
	wantError(t, callToken(t, p.ClientEndpoint(), "scope", "bad", nil), 401, "invalid_token")
	wantResult(t, callToken(t, p.ClientEndpoint(), "user.admin", tok, nil), "true")
	wantQueryLimit(t, callToken(t, p.ClientEndpoint(), "user.admin", tok, nil))
	if p.Requests() != 2 || p.LimitRejections() != 1 {
		t.Fatalf("requests %d, rejections %d", p.Requests(), p.LimitRejections())
	}
	p.SetRateLimit(0, 0)
	p.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultServerError}})
	if a := callToken(t, p.ClientEndpoint(), "user.admin", tok, nil); a.Status != 500 {
		t.Fatalf("fault: %d %s", a.Status, a.Raw)
	}
}

func TestScopes(t *testing.T) {
	o := b24test.NewOAuth(t, testClientID, testClientSecret)
	p := b24test.NewAppPortal(t, o)
	wantRaw(t, callJSON(t, p, "scope", nil), `"result":["imbot","im","user"]`)
	p.SetScopes("im", "user")
	wantRaw(t, callJSON(t, p, "scope", nil), `"result":["im","user"]`)

	a := callJSON(t, p, "imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "x"})
	wantError(t, a, 403, "insufficient_scope")
	if d := a.Body["error_description"]; d != "The request requires higher privileges than provided by the webhook token" {
		t.Errorf("webhook description %q", d)
	}
	a = callToken(t, p.ClientEndpoint(), "imbot.register", p.UserToken(1), registration("x", "https://x.example/e", "X"))
	wantError(t, a, 403, "insufficient_scope")
	if d := a.Body["error_description"]; d != "The request requires higher privileges than provided by the access token" {
		t.Errorf("token description %q", d)
	}
	if len(p.AllMessages()) != 0 || len(p.Bots()) != 0 || len(p.CallsTo("imbot.message.add")) != 1 {
		t.Fatalf("a refused call ran, or was not recorded")
	}
	// Per command inside a batch, with the empty description batch.md shows.
	a = callJSON(t, p, "batch", map[string]any{"cmd": map[string]any{"a": "imbot.message.add?DIALOG_ID=27&MESSAGE=x", "b": "scope"}})
	wantRaw(t, a, `"result":{"b":["im","user"]},"result_error":{"a":{"error":"insufficient_scope","error_description":""}}`)
	// Methods the portal does not know are still not found; unscoped ones still run.
	wantError(t, callJSON(t, p, "imbot.no.such", nil), 404, "ERROR_METHOD_NOT_FOUND")
	p.Handle("custom.method", func(bitrix24.Form) (any, *bitrix24.Error) { return "ok", nil })
	wantResult(t, callJSON(t, p, "custom.method", nil), `"ok"`)
	p.SetScopes("imbot")
	wantResult(t, callJSON(t, p, "imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "x"}), "5001")
	p.Handle("user.current", func(bitrix24.Form) (any, *bitrix24.Error) { return map[string]any{"ID": "1"}, nil })
	wantError(t, callJSON(t, p, "user.current", nil), 403, "insufficient_scope")
}

// TestOtherAppTokenAndUninstall: another application's token acts as its user and
// app.info names that application; Uninstall kills every token and refresh token of
// the application under test (invalid_token, invalid_grant), not the other's, and a
// new installation works again.
func TestOtherAppTokenAndUninstall(t *testing.T) {
	o := b24test.NewOAuth(t, testClientID, testClientSecret)
	p := b24test.NewAppPortal(t, o)
	base := p.ClientEndpoint()
	const other = "local.0000000000aaaa.11111111"
	mine, theirs := p.UserToken(27), p.OtherAppToken(27, other)
	if got := callToken(t, base, "app.info", theirs, nil).result().(map[string]any)["CODE"]; got != other {
		t.Fatalf("app.info with another application's token: CODE %v", got)
	}
	if got := callToken(t, base, "app.info", mine, nil).result().(map[string]any)["CODE"]; got != testClientID {
		t.Fatalf("app.info with the application's token: CODE %v", got)
	}
	wantResult(t, callToken(t, base, "user.admin", theirs, nil), "false")
	auth := installAuth(t, p)
	p.Uninstall()
	wantError(t, callToken(t, base, "app.info", mine, nil), http.StatusUnauthorized, "invalid_token")
	wantError(t, callToken(t, base, "app.info", auth.AccessToken, nil), http.StatusUnauthorized, "invalid_token")
	if a := refresh(t, o, testClientID, testClientSecret, auth.RefreshToken); a.code() != "invalid_grant" {
		t.Fatalf("the refresh token after Uninstall: %d %s", a.Status, a.Raw)
	}
	if got := callToken(t, base, "app.info", theirs, nil).result().(map[string]any)["CODE"]; got != other {
		t.Fatalf("the other application's token after Uninstall: CODE %v", got)
	}
	again := installAuth(t, p)
	if a := refresh(t, o, testClientID, testClientSecret, again.RefreshToken); a.Status != http.StatusOK {
		t.Fatalf("a new installation's refresh: %d %s", a.Status, a.Raw)
	}
}
