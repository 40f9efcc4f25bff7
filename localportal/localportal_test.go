package localportal

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
)

// served is a local portal served on a test server, as serve does on the bot's
// listener, with its state in a temporary file.
func served(t *testing.T, path string) (*Portal, *httptest.Server) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	lp, err := Open(path, base, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = lp.REST()
	srv.Start()
	t.Cleanup(func() { srv.Close(); lp.Close() })
	return lp, srv
}

// registerBot registers a fetch-mode bot through the portal's REST API with the
// application's token, as the bot does when the portal installs the application.
func registerBot(t *testing.T, lp *Portal) {
	t.Helper()
	tok := lp.portal.UserToken(1)
	resp, err := http.Post(lp.Base()+"/rest/imbot.v2.Bot.register?auth="+tok, "application/json",
		strings.NewReader(`{"fields":{"code":"supportbot","type":"supervisor","eventMode":"fetch","properties":{"name":"Support"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !lp.v2.Fetching() {
		t.Fatalf("Bot.register: %d", resp.StatusCode)
	}
}

// TestStateSurvivesRestart: what the portal holds (the people's messages, chats and
// renames, the bot, its queued events, tokens, reading marks) is on disk before it
// is answered, and a portal opened from the file has all of it.
func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "supportbot.portal.json")
	lp, _ := served(t, path)
	if err := lp.Send(1, "1", "before the bot"); err != ErrNotReady {
		t.Fatalf("a message before the bot is registered: %v", err)
	}
	registerBot(t, lp)
	onDisk(t, path, `"Code": "supportbot"`) // written before the call was answered
	if err := lp.Send(1, "1", "How do I export deals?"); err != nil {
		t.Fatal(err)
	}
	onDisk(t, path, "How do I export deals?", `"type": "ONIMBOTV2MESSAGEADD"`)
	chat := lp.portal.AddChat(chatWith(1, 3))
	dialog := bitrix24.GroupChat(chat)
	if err := lp.Rename(1, dialog, "  Export   of deals "); err != nil {
		t.Fatal(err)
	}
	onDisk(t, path, `"Title": "Export of deals"`)
	if err := lp.Send(3, dialog, "/help"); err != nil { // not registered: a message
		t.Fatal(err)
	}
	if _, err := lp.Read(3, dialog); err != nil {
		t.Fatal(err)
	}
	before, pending := lp.portal.State(), lp.v2.Pending()
	if pending != 2 {
		t.Fatalf("%d events queued", pending)
	}
	if matches, _ := filepath.Glob(path + ".*.tmp"); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}

	// Another process opens the file: it was written without a Save of its own.
	again, err := Open(path, lp.Base(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	after := again.portal.State()
	if len(after.Messages) != len(before.Messages) || after.Messages[0].Text != "How do I export deals?" || after.Messages[0].AuthorID != 1 {
		t.Errorf("messages: %+v", after.Messages)
	}
	if c, ok := again.portal.Chat(chat); !ok || c.Title != "Export of deals" {
		t.Errorf("the renamed chat: %+v", c)
	}
	if again.v2.Pending() != pending || !again.v2.Fetching() || again.BotName() != "Support" {
		t.Errorf("queued %d, fetching %v, bot %q", again.v2.Pending(), again.v2.Fetching(), again.BotName())
	}
	if len(after.Tokens) != len(before.Tokens) || after.AppToken != before.AppToken || after.MemberID != before.MemberID {
		t.Error("the application's tokens changed")
	}
	chats, _ := again.Chats(3)
	if len(chats) != 2 || chats[1].Unread != 0 {
		t.Errorf("agent's chats after reading: %+v", chats)
	}
	chats, _ = again.Chats(1)
	if len(chats) != 2 || chats[1].Unread != 1 {
		t.Errorf("client's chats: %+v", chats)
	}
	// The next event and message continue the sequences.
	if err := again.Send(1, "1", "and one more"); err != nil {
		t.Fatal(err)
	}
	if n := again.portal.State().Messages; n[len(n)-1].ID != before.Messages[len(before.Messages)-1].ID+1 {
		t.Errorf("message IDs restart: %+v", n[len(n)-1])
	}
}

// onDisk checks that the state file holds each of texts now.
func onDisk(t *testing.T, path string, texts ...string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range texts {
		if !strings.Contains(string(raw), text) {
			t.Errorf("the state file lacks %s", text)
		}
	}
}

func chatWith(users ...int64) b24test.Chat {
	return b24test.Chat{Title: "Support question — #1", Users: users}
}

// TestOpenRefuses: a state file of another address or shape is refused, not misread.
func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "p.json")
	lp, err := Open(path, "http://localhost:8080", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lp.Close()
	if _, err := Open(path, "http://localhost:9090", slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "http://localhost:8080") {
		t.Errorf("a portal that moved: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"Version": 99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, "http://localhost:8080", slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a state file of another version was read")
	}
	if _, err := Open(filepath.Join(dir, "q.json"), "ftp://x", slog.New(slog.DiscardHandler)); err == nil {
		t.Error("an ftp base")
	}
}

// TestActionsCheckWho: nobody acts outside their chats or on others' messages.
func TestActionsCheckWho(t *testing.T) {
	t.Parallel()
	lp, _ := served(t, filepath.Join(t.TempDir(), "p.json"))
	registerBot(t, lp)
	chat := bitrix24.GroupChat(lp.portal.AddChat(chatWith(1, 3)))
	if err := lp.Send(1, chat, "mine"); err != nil {
		t.Fatal(err)
	}
	id := lp.portal.State().Messages[0].ID
	for name, err := range map[string]error{
		"a stranger writes in the chat":   lp.Send(6, chat, "hi"),
		"someone writes in another's bot": lp.Send(6, "1", "hi"),
		"a stranger reads":                func() error { _, err := lp.Read(6, chat); return err }(),
		"a stranger renames":              lp.Rename(6, chat, "x"),
		"nobody of the portal":            lp.Send(99, "99", "hi"),
		"an agent edits the client's":     lp.Edit(3, chat, id, "changed", false),
		"an agent deletes the client's":   lp.Edit(3, chat, id, "", true),
		"an empty message":                lp.Send(1, chat, "   "),
		"a message too long":              lp.Send(1, chat, strings.Repeat("я", maxText+1)),
		"the private chat renamed":        lp.Rename(1, "1", "x"),
	} {
		if err == nil {
			t.Errorf("%s: done", name)
		}
	}
	if m := lp.portal.State().Messages; len(m) != 1 || m[0].Text != "mine" {
		t.Errorf("messages: %+v", m)
	}
	if err := lp.Edit(1, chat, id, "mine, edited", false); err != nil {
		t.Fatal(err)
	}
	if err := lp.Edit(1, chat, id, "", true); err != nil {
		t.Fatal(err)
	}
	if m := lp.portal.State().Messages[0]; !m.Deleted || m.Text != "" {
		t.Errorf("deleted: %+v", m)
	}
	if n := lp.v2.Pending(); n != 3 { // the message, its edit, its deletion
		t.Errorf("%d events", n)
	}
}

// TestAddresses: where the portal is reached and where its state lies.
func TestAddresses(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{":8080": "http://localhost:8080", "0.0.0.0:8080": "http://localhost:8080", "[::]:9090": "http://localhost:9090",
		"127.0.0.1:8081": "http://127.0.0.1:8081", "[::1]:8082": "http://[::1]:8082"} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := BaseURL(tcp); got != want {
			t.Errorf("BaseURL(%s) = %s, want %s", addr, got, want)
		}
	}
	for db, want := range map[string]string{"supportbot.db": "supportbot.portal.json", "/data/bot.sqlite": "/data/bot.portal.json", "": "supportbot.portal.json", "x": "x.portal.json"} {
		if got := StatePath(db); got != want {
			t.Errorf("StatePath(%q) = %s, want %s", db, got, want)
		}
	}
}
