package bitrix24

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestDecodePlacementFixture: the IM_SIDEBAR opening as the documentation shows it.
func TestDecodePlacementFixture(t *testing.T) {
	p, err := DecodePlacement(readFixture(t, "app/placement-im-sidebar.query"), readFixture(t, "app/placement-im-sidebar.form"))
	if err != nil {
		t.Fatal(err)
	}
	want := Placement{
		Domain: "xxx.bitrix24.com", HTTPS: true, Lang: "de", AppSID: "99c80eff6378726287350416ee5fef0",
		AuthID: "6061e72600631fcd00005a4b00000001f0f1076700000000f69dd5fc643d9ce2fdbc1", AuthExpires: 3600,
		RefreshID:      "50e00aa340631fcd00005a4b00000001f0f1071111116580a5b83c2de639ef28c12",
		ServerEndpoint: "https://oauth.bitrix.info/rest/", ApplicationToken: "ec1b2074a9d3f5c81b6e40d27a95cf38",
		Scope: "im,placement", MemberID: "da45a03b265ed12127f8a258d793cc5d", Status: "L", Placement: PlacementIMSidebar,
		Options: PlacementOptions{Chat: "chat2", URI: "/online/"},
	}
	if p != want {
		t.Fatalf("decoded\n%+v\nwant\n%+v", p, want)
	}
	if p.Origin() != "https://xxx.bitrix24.com" {
		t.Errorf("origin %q", p.Origin())
	}
	if s := p.LogValue().String(); strings.Contains(s, p.AuthID) || strings.Contains(s, p.ApplicationToken) || strings.Contains(s, p.RefreshID) {
		t.Errorf("a secret in the log value: %s", s)
	}
}

func TestDecodePlacementRefuses(t *testing.T) {
	query := string(readFixture(t, "app/placement-im-sidebar.query"))
	body := string(readFixture(t, "app/placement-im-sidebar.form"))
	for _, tt := range []struct {
		name, query, body string
		ok                bool
		check             func(Placement) bool
	}{
		{"options not JSON", query, strings.Replace(body, "PLACEMENT_OPTIONS=%7B", "PLACEMENT_OPTIONS=%7Bx", 1), false, nil},
		{"a group where a value is due", query, body + "&AUTH_ID[x]=1", false, nil},
		{"an overlong token", query, body + "&APPLICATION_TOKEN=" + strings.Repeat("a", 600), false, nil},
		{"negative expiry", query, body + "&AUTH_EXPIRES=-1", false, nil},
		{"malformed escape", "%zz", body, false, nil},
		{"a dialog ID that is none", query, strings.Replace(body, "chat2", "chat2%3Cscript%3E", 1), true,
			func(p Placement) bool { return p.Options.Chat == "" }},
		{"a private chat", query, strings.Replace(body, "chat2", "27", 1), true,
			func(p Placement) bool { return p.Options.Chat == "27" }},
		{"a domain that is none", strings.Replace(query, "xxx.bitrix24.com", "evil.com%2F%3Fx%3D", 1), body, true,
			func(p Placement) bool { return p.Domain == "" && p.Origin() == "" }},
		{"http", strings.Replace(query, "PROTOCOL=1", "PROTOCOL=0", 1), body, true,
			func(p Placement) bool { return p.Origin() == "http://xxx.bitrix24.com" }},
		{"nothing at all", "", "", true, func(p Placement) bool { return p == Placement{} }},
	} {
		p, err := DecodePlacement([]byte(tt.query), []byte(tt.body))
		switch {
		case !tt.ok && (err == nil || !errors.Is(err, ErrMalformed)):
			t.Errorf("%s: %v, want ErrMalformed", tt.name, err)
		case tt.ok && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.ok && !tt.check(p):
			t.Errorf("%s: decoded %+v", tt.name, p)
		}
	}
}

func FuzzDecodePlacement(f *testing.F) {
	f.Add(readFixture(f, "app/placement-im-sidebar.query"), readFixture(f, "app/placement-im-sidebar.form"))
	f.Add([]byte("DOMAIN=a.b:1&PROTOCOL=0"), []byte(`PLACEMENT_OPTIONS={"dialogId":"chat1","URI":1}&AUTH_EXPIRES=9`))
	f.Fuzz(func(t *testing.T, query, body []byte) {
		p, err := DecodePlacement(query, body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if p.Options.Chat != "" && !chatPattern.MatchString(p.Options.Chat) {
			t.Fatalf("dialog ID %q", p.Options.Chat)
		}
		if o := p.Origin(); o != "" && strings.ContainsAny(o[8:], "/?#@ ;'\"") {
			t.Fatalf("origin %q", o)
		}
		_ = p.LogValue()
	})
}

// TestBindPlacementRender: placement.bind as the documentation of IM_SIDEBAR shows it,
// the same through both APIs, made before the bot is known.
func TestBindPlacementRender(t *testing.T) {
	a := BindPlacement{Placement: PlacementIMSidebar, Handler: "https://h/bitrix/sidebar", Icon: "fa-life-ring", Context: "ALL", Color: "AQUA",
		Titles: []PlacementTitle{{"ru", "Поддержка"}, {"en", "Support"}}}
	want := `{"HANDLER":"https://h/bitrix/sidebar","LANG_ALL":{"en":{"TITLE":"Support"},"ru":{"TITLE":"Поддержка"}},` +
		`"OPTIONS":{"color":"AQUA","context":"ALL","extranet":"N","iconName":"fa-life-ring","role":"USER"},"PLACEMENT":"IM_SIDEBAR","TITLE":"Поддержка"}`
	for name, w := range map[string]Wire{"v1": V1, "v2": V2} {
		call, err := w.Render(a, Context{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, _ := json.Marshal(call.Params)
		if call.Method != "placement.bind" || string(got) != want {
			t.Errorf("%s: %s %s\nwant placement.bind %s", name, call.Method, got, want)
		}
		if id := w.ResultID(a, json.RawMessage("true")); id != 0 {
			t.Errorf("%s: result ID %d", name, id)
		}
	}
	if _, err := V1.Render(BindPlacement{Placement: PlacementIMSidebar, Handler: "h"}, Context{}); err == nil {
		t.Error("rendered without a title and an icon, which the portal requires")
	}
	kind, data, err := EncodeAction(a)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeAction(kind, data)
	if err != nil || back.(BindPlacement).Handler != a.Handler || len(back.(BindPlacement).Titles) != 2 || !back.Repeatable() {
		t.Fatalf("round trip: %#v %v", back, err)
	}
}

// TestCurrentUser reads user.current's answer, whose ID is a string.
func TestCurrentUser(t *testing.T) {
	for raw, want := range map[string]User{
		`{"ID":"3","ACTIVE":true,"NAME":"John","LAST_NAME":"Smith","UF_DEPARTMENT":[1]}`: {ID: 3, Name: "John Smith", FirstName: "John", LastName: "Smith"},
		`{"ID":27,"NAME":"","LAST_NAME":""}`:                                             {ID: 27},
	} {
		u, err := CurrentUser(t.Context(), answer(raw))
		if err != nil || u != want {
			t.Errorf("%s: %+v %v", raw, u, err)
		}
	}
	for _, raw := range []string{`{"ID":"0"}`, `[]`, `{"ID":"x"}`, `true`} {
		if u, err := CurrentUser(t.Context(), answer(raw)); err == nil {
			t.Errorf("%s: %+v", raw, u)
		}
	}
}

// answer is a Caller that answers every call with raw.
type answer string

func (a answer) Call(context.Context, string, any) (json.RawMessage, error) {
	return json.RawMessage(a), nil
}
