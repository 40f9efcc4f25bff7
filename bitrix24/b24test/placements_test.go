package b24test_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
)

// TestPlacementBind: placement.bind as the rest module answers it: only an
// application's administrator token, with the placement scope, the arguments it
// requires, once per handler; placement.unbind removes it.
func TestPlacementBind(t *testing.T) {
	o := b24test.NewOAuth(t, testClientID, testClientSecret)
	p := b24test.NewAppPortal(t, o)
	p.SetAdmins(1)
	sidebar := map[string]any{"PLACEMENT": "IM_SIDEBAR", "HANDLER": "https://h/bitrix/sidebar", "TITLE": "Support",
		"LANG_ALL": map[string]any{"ru": map[string]string{"TITLE": "Поддержка"}, "en": map[string]string{"TITLE": "Support"}},
		"OPTIONS":  map[string]string{"iconName": "fa-life-ring", "context": "ALL"}}
	admin := p.UserToken(1)
	if a := callToken(t, p.ClientEndpoint(), "placement.bind", admin, sidebar); a.code() != "insufficient_scope" || a.Status != http.StatusForbidden {
		t.Fatalf("without the placement scope: %d %s", a.Status, a.Raw)
	}
	p.SetScopes("imbot", "im", "user", "placement")
	without := func(key string) map[string]any {
		m := map[string]any{}
		for k, v := range sidebar {
			if k != key {
				m[k] = v
			}
		}
		return m
	}
	for _, tt := range []struct {
		name   string
		token  string
		params map[string]any
		code   string
		status int
	}{
		{"through a webhook", "", sidebar, "WRONG_AUTH_TYPE", http.StatusForbidden},
		{"by a user who is no administrator", p.UserToken(27), sidebar, "ACCESS_DENIED", http.StatusForbidden},
		{"with no icon", admin, without("OPTIONS"), "ERROR_ARGUMENT", http.StatusBadRequest},
		{"with no handler", admin, without("HANDLER"), "ERROR_ARGUMENT", http.StatusBadRequest},
		{"in a context that is none", admin, map[string]any{"PLACEMENT": "IM_SIDEBAR", "HANDLER": "https://h/x",
			"OPTIONS": map[string]string{"iconName": "fa-x", "context": "ALL;BOTS"}}, "ERROR_ARGUMENT", http.StatusBadRequest},
	} {
		var a answer
		if tt.token == "" {
			a = callJSON(t, p, "placement.bind", tt.params)
		} else {
			a = callToken(t, p.ClientEndpoint(), "placement.bind", tt.token, tt.params)
		}
		if a.code() != tt.code || a.Status != tt.status {
			t.Errorf("%s: %d %s, want %d %s", tt.name, a.Status, a.Raw, tt.status, tt.code)
		}
	}
	if len(p.Placements()) != 0 {
		t.Fatalf("refused binds bound %+v", p.Placements())
	}
	if a := callToken(t, p.ClientEndpoint(), "placement.bind", admin, sidebar); a.result() != true {
		t.Fatalf("bind: %s", a.Raw)
	}
	again := callToken(t, p.ClientEndpoint(), "placement.bind", admin, sidebar)
	if again.code() != "ERROR_CORE" || !strings.Contains(again.Raw, "Handler already binded") {
		t.Fatalf("second bind: %s", again.Raw)
	}
	got := p.Placements()
	if len(got) != 1 || got[0].ClientID != testClientID || got[0].Handler != "https://h/bitrix/sidebar" || got[0].Binds != 2 ||
		got[0].LangAll["ru"] != "Поддержка" || got[0].LangAll["en"] != "Support" || got[0].Options["iconName"] != "fa-life-ring" {
		t.Fatalf("bound %+v", got)
	}
	if a := callToken(t, p.ClientEndpoint(), "placement.unbind", admin, map[string]string{"PLACEMENT": "IM_SIDEBAR"}); a.Raw == "" ||
		a.Body["result"].(map[string]any)["count"] != json.Number("1") || len(p.Placements()) != 0 {
		t.Fatalf("unbind: %s, left %+v", a.Raw, p.Placements())
	}
}

// TestPlacementOpen: the POST that opens a placement decodes as the fixture does,
// names this portal, and its AUTH_ID acts as the user who opened it.
func TestPlacementOpen(t *testing.T) {
	o := b24test.NewOAuth(t, testClientID, testClientSecret)
	p := b24test.NewAppPortal(t, o)
	p.SetUserName(27, "Анна", "Петрова")
	query, body := p.PlacementOpen(27, "chat1001", map[string]string{"LANG": "ru", "status": "F"})
	pl, err := bitrix24.DecodePlacement(query, body)
	if err != nil {
		t.Fatal(err)
	}
	if pl.Domain != p.Domain() || pl.HTTPS || pl.Lang != "ru" || pl.Status != "F" || pl.MemberID != p.MemberID() ||
		pl.ApplicationToken != p.ApplicationToken() || pl.Placement != "IM_SIDEBAR" || pl.Options.Chat != "chat1001" || pl.AuthExpires != 3600 {
		t.Fatalf("decoded %+v", pl)
	}
	me := callToken(t, p.ClientEndpoint(), "user.current", pl.AuthID, map[string]any{})
	if r, _ := me.result().(map[string]any); r["ID"] != "27" || r["NAME"] != "Анна" || r["LAST_NAME"] != "Петрова" {
		t.Fatalf("user.current with AUTH_ID: %s", me.Raw)
	}
	if r, _ := callJSON(t, p, "user.current", map[string]any{}).result().(map[string]any); r["ID"] != "1" {
		t.Fatalf("user.current through the webhook: %v", r)
	}
	_, dropped := p.PlacementOpen(27, "27", map[string]string{"APPLICATION_TOKEN": b24test.Drop})
	if strings.Contains(string(dropped), "APPLICATION_TOKEN") {
		t.Fatalf("dropped field still there: %s", dropped)
	}

	p.HandlePage("/online/", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "the messenger") })
	resp, err := http.Get(p.URL() + "/online/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(page) != "the messenger" {
		t.Fatalf("portal page: %q", page)
	}
}
