package handlers

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"supportbot/bitrix24"
	"supportbot/localportal"
)

// messengerServer is the local portal's routes on a test server, the application
// installed on it (its token), a fetch-mode bot registered, and a chat of users 1
// and 3 titled title, made through the portal's REST API as the bot makes them.
func messengerServer(t *testing.T, title string) (srv *httptest.Server, dialog string) {
	t.Helper()
	srv = httptest.NewUnstartedServer(nil)
	log := slog.New(slog.DiscardHandler)
	lp, err := localportal.Open(filepath.Join(t.TempDir(), "p.json"), "http://"+srv.Listener.Addr().String(), log)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = NewServer(Routes{Messenger: &Messenger{Portal: lp, Log: log}, Log: log})
	srv.Start()
	t.Cleanup(func() { srv.Close(); lp.Close() })
	var install []byte
	if err := lp.Install(func(_ string, body []byte) (int, error) { install = body; return http.StatusOK, nil }, "unused"); err != nil {
		t.Fatal(err)
	}
	form, _ := bitrix24.ParseForm(install)
	tok := form.Group("auth").String("access_token")
	call := func(method, body string) map[string]any {
		resp, err := http.Post(srv.URL+"/rest/"+method+"?auth="+tok, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Result map[string]any }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", method, resp.StatusCode, err)
		}
		return out.Result
	}
	botID := call("imbot.v2.Bot.register", `{"fields":{"code":"supportbot","type":"supervisor","eventMode":"fetch","properties":{"name":"Support"}}}`)["bot"].(map[string]any)["id"]
	quoted, _ := json.Marshal(title)
	chat := call("imbot.v2.Chat.add", `{"botId":`+string(must(json.Marshal(botID)))+`,"fields":{"title":`+string(quoted)+`,"userIds":[1,3]}}`)
	return srv, chat["chat"].(map[string]any)["dialogId"].(string)
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// postForm posts one of the page's forms as the page's browser does.
func postForm(t *testing.T, srv *httptest.Server, form string, values url.Values, site string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/local/"+form, strings.NewReader(values.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if site != "" {
		req.Header.Set("Sec-Fetch-Site", site)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func getPage(t *testing.T, srv *httptest.Server, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := noRedirects.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// TestMessengerEscapes: what people write and name shows as text, under a policy
// that runs no script but the page's own and lets nobody frame it.
func TestMessengerEscapes(t *testing.T) {
	t.Parallel()
	srv, dialog := messengerServer(t, "<script>alert(1)</script>")
	resp := postForm(t, srv, "send", url.Values{"as": {"1"}, "chat": {dialog}, "text": {`<img src=x onerror=alert(1)> [url=javascript:alert(2)]x[/url]`}}, "same-origin")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("send: %d", resp.StatusCode)
	}
	status, h, page := getPage(t, srv, "/?as=1&chat="+dialog)
	if status != http.StatusOK {
		t.Fatalf("page: %d", status)
	}
	for _, bad := range []string{"<img src=x", "<script>alert", `href="javascript:`} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %s", bad)
		}
	}
	for _, want := range []string{"&lt;img src=x onerror=alert(1)&gt;", "&lt;script&gt;alert(1)&lt;/script&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'nonce-", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
}

// TestMessengerRefuses: forms from other sites, other people's chats, oversized forms
// and other host names are refused, and nothing is written.
func TestMessengerRefuses(t *testing.T) {
	t.Parallel()
	srv, dialog := messengerServer(t, "Question")
	if resp := postForm(t, srv, "send", url.Values{"as": {"1"}, "chat": {dialog}, "text": {"from elsewhere"}}, "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a form from another site: %d", resp.StatusCode)
	}
	resp := postForm(t, srv, "send", url.Values{"as": {"6"}, "chat": {dialog}, "text": {"a stranger"}}, "same-origin")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "notice=") {
		t.Errorf("a stranger's message: %d %s", resp.StatusCode, loc)
	}
	if resp := postForm(t, srv, "send", url.Values{"as": {"1"}, "chat": {dialog}, "text": {strings.Repeat("x", 300<<10)}}, ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an oversized form: %d", resp.StatusCode)
	}
	if status, _, page := getPage(t, srv, "/?as=6&chat="+dialog); status != http.StatusNotFound || strings.Contains(page, "Question") {
		t.Errorf("a stranger's view of the chat: %d", status)
	}
	_, _, page := getPage(t, srv, "/?as=1&chat="+dialog)
	for _, text := range []string{"from elsewhere", "a stranger", "xxxxxxxx"} {
		if strings.Contains(page, text) {
			t.Errorf("%q was written", text)
		}
	}
	// The sidebar may be framed by the portal's own address only: another name for
	// it is sent there.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/?as=1", nil)
	req.Host = "localhost.localdomain"
	r, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if loc := r.Header.Get("Location"); r.StatusCode != http.StatusFound || loc != srv.URL+"/?as=1" {
		t.Errorf("another host name: %d %s", r.StatusCode, loc)
	}
}
