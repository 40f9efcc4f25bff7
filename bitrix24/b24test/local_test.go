package b24test_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"supportbot/bitrix24/b24test"
)

// localApp serves a local portal and its OAuth server on one test server, as the
// local portal does on the bot's listener.
func localApp(t *testing.T, restore *b24test.State) (*b24test.OAuth, *b24test.Portal, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	var o *b24test.OAuth
	var p *b24test.Portal
	if restore == nil {
		o, p = b24test.NewLocalApp(base, testClientID, testClientSecret)
		p.SetScopes("imbot", "im", "user", "placement")
	} else {
		o, p = b24test.RestoreLocalApp(base, testClientSecret, *restore)
	}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/oauth/") {
			o.ServeHTTP(w, r)
			return
		}
		p.ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(func() { srv.Close(); p.Close() })
	return o, p, base
}

// TestLocalAppState: a local portal served at a base URL works as a test portal (the
// application's tokens, their renewal, bots, placements, chats, messages), and one
// restored from its State, written as JSON, has all of it: the tokens issued before
// still work and renew.
func TestLocalAppState(t *testing.T) {
	t.Parallel()
	o, p, base := localApp(t, nil)
	if p.URL() != base || p.ClientEndpoint() != base+"/rest/" || o.URL() != base {
		t.Fatalf("URLs: %s %s %s", p.URL(), p.ClientEndpoint(), o.URL())
	}
	auth := installAuth(t, p)
	if auth.ClientEndpoint != base+"/rest/" {
		t.Errorf("the installation's endpoint: %s", auth.ClientEndpoint)
	}
	if a := callToken(t, auth.ClientEndpoint, "imbot.register", auth.AccessToken, map[string]any{"CODE": "bot", "TYPE": "S",
		"EVENT_HANDLER": "https://bot.example.com/e", "PROPERTIES": map[string]string{"NAME": "Bot"}}); a.Status != http.StatusOK {
		t.Fatalf("imbot.register: %s", a.Raw)
	}
	if a := callToken(t, auth.ClientEndpoint, "placement.bind", auth.AccessToken, map[string]any{"PLACEMENT": "IM_SIDEBAR",
		"HANDLER": "https://bot.example.com/s", "OPTIONS": map[string]string{"iconName": "fa-life-ring"}}); a.Status != http.StatusOK {
		t.Fatalf("placement.bind: %s", a.Raw)
	}
	a := callToken(t, auth.ClientEndpoint, "imbot.chat.add", auth.AccessToken, map[string]any{"TITLE": "Question", "USERS": []int{1, 3}})
	chat, _ := a.result().(json.Number).Int64()
	if a := callToken(t, auth.ClientEndpoint, "imbot.message.add", auth.AccessToken, map[string]any{"DIALOG_ID": "chat" + a.result().(json.Number).String(),
		"MESSAGE": "[b]hi[/b]", "KEYBOARD": []map[string]string{{"TEXT": "Help", "COMMAND": "help"}}}); a.Status != http.StatusOK {
		t.Fatalf("imbot.message.add: %s", a.Raw)
	}
	id, ok := p.AddUserMessage("chat"+strconv.FormatInt(chat, 10), 3, "an answer")
	if !ok {
		t.Fatal("AddUserMessage refused")
	}
	if _, ok := p.AddUserMessage("chat999", 3, "nowhere"); ok {
		t.Error("a message in a chat the portal lacks")
	}
	if _, ok := p.EditUserMessage(id, 1, "not theirs", false); ok {
		t.Error("someone else's message edited")
	}
	if m, ok := p.EditUserMessage(id, 3, "an answer, corrected", false); !ok || m.Text != "an answer, corrected" || m.AuthorID != 3 {
		t.Errorf("edited: %+v %v", m, ok)
	}

	raw, err := json.Marshal(p.State())
	if err != nil {
		t.Fatal(err)
	}
	var st b24test.State
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	o2, p2, base2 := localApp(t, &st)
	if p2.MemberID() != p.MemberID() || p2.ApplicationToken() != p.ApplicationToken() {
		t.Error("the portal's identity changed")
	}
	for name, pair := range map[string][2]any{
		"bots": {p.Bots(), p2.Bots()}, "commands": {p.Commands(), p2.Commands()}, "placements": {p.Placements(), p2.Placements()},
		"chats": {p.Chats(), p2.Chats()},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("%s: %+v, restored %+v", name, pair[0], pair[1])
		}
	}
	before, after := p.AllMessages(), p2.AllMessages()
	if len(after) != len(before) || after[0].Text != "[b]hi[/b]" || len(after[0].Buttons()) != 1 || after[1].Text != "an answer, corrected" ||
		!after[1].Date.Equal(before[1].Date) {
		t.Errorf("messages: %+v, restored %+v", before, after)
	}
	// The token the application holds works on the restored portal, and renews there.
	if a := callToken(t, base2+"/rest/", "user.current", auth.AccessToken, nil); a.Status != http.StatusOK {
		t.Errorf("the application's token after the restore: %s", a.Raw)
	}
	if a := refresh(t, o2, testClientID, testClientSecret, auth.RefreshToken); a.Status != http.StatusOK || a.Body["access_token"] == "" {
		t.Errorf("renewal after the restore: %s", a.Raw)
	}
	if id2, _ := p2.AddUserMessage("chat"+strconv.FormatInt(chat, 10), 1, "next"); id2 != id+1 {
		t.Errorf("the next message is %d after %d", id2, id)
	}
}
