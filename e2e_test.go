package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"supportbot/bitrix24/b24test"
	"supportbot/cli"
	"supportbot/config"
	"supportbot/testwait"
)

const (
	testToken  = "831c76b092f9f135d9b6b36c3a720757"
	testBotID  = 567
	client     = 27
	agentID    = 50
	strangerID = 99
)

// runningBot is a running supportbot: the real server on a real port, a SQLite file, and
// the fake portal.
type runningBot struct {
	t      *testing.T
	portal *b24test.Portal
	dbPath string
	url    string
	stop   func()
}

var nextMessageID atomic.Int64

func init() { nextMessageID.Store(90000) }

// startBot runs serve as main does, with the configuration given as environment.
func startBot(t *testing.T, portal *b24test.Portal, dbPath string, env ...string) *runningBot {
	t.Helper()
	// The test's own settings come first: the first of two equal names wins.
	environ := append(env, []string{
		"SUPPORTBOT_HTTP_ADDR=127.0.0.1:0",
		"SUPPORTBOT_DB_PATH=" + dbPath,
		"SUPPORTBOT_BITRIX_WEBHOOK_URL=" + portal.WebhookURL(),
		"SUPPORTBOT_BITRIX_APPLICATION_TOKEN=" + testToken,
		"SUPPORTBOT_SUPPORT_AGENTS=" + strconv.Itoa(agentID),
		"SUPPORTBOT_ACCESS_ADMINS=" + strconv.Itoa(client),
		"SUPPORTBOT_ACCESS_INTEGRATORS=28,29",
	}...)
	return startServe(t, portal, dbPath, environ)
}

// startServe runs serve with exactly environ as the environment.
func startServe(t *testing.T, portal *b24test.Portal, dbPath string, environ []string) *runningBot {
	t.Helper()
	cfg, err := config.LoadFrom(nil, dbEnv(t, environ, ""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- cli.Serve(ctx, cfg, log, started) }()
	var addr string
	select {
	case addr = <-started:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	var once sync.Once
	b := &runningBot{t: t, portal: portal, dbPath: dbPath, url: "http://" + addr}
	b.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve returned %v", err)
			}
		})
	}
	t.Cleanup(b.stop)
	return b
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// post sends an event body and returns the status.
func (b *runningBot) post(body []byte) int {
	b.t.Helper()
	status, resp, err := b.portal.Post(context.Background(), b.url+"/bitrix/events", body)
	if err != nil {
		b.t.Fatal(err)
	}
	if status != http.StatusOK {
		b.t.Logf("status %d: %s", status, resp)
	}
	return status
}

func (b *runningBot) mustPost(body []byte) {
	b.t.Helper()
	if status := b.post(body); status != http.StatusOK {
		b.t.Fatalf("event answered %d", status)
	}
}

// privateMessage is ONIMBOTMESSAGEADD from user in their chat with the bot, built from
// the fixture.
func privateMessage(user int64, lang, text string) []byte {
	id := nextMessageID.Add(1)
	u := strconv.FormatInt(user, 10)
	return b24test.Event("v1/onimbotmessageadd-private.form", map[string]string{
		"data[PARAMS][MESSAGE]":      text,
		"data[PARAMS][MESSAGE_ID]":   strconv.FormatInt(id, 10),
		"data[PARAMS][FROM_USER_ID]": u,
		"data[PARAMS][AUTHOR_ID]":    u,
		"data[PARAMS][DIALOG_ID]":    u,
		"data[PARAMS][LANGUAGE]":     lang,
		"data[USER][ID]":             u,
		"data[USER][NAME]":           "User " + u,
		"auth[application_token]":    testToken,
	})
}

// groupMessage is ONIMBOTMESSAGEADD from user in a group chat, carrying the chat's
// title and entity as the portal knows them.
func (b *runningBot) groupMessage(user, chatID int64, text string) []byte {
	b.t.Helper()
	chat, ok := b.portal.Chat(chatID)
	if !ok {
		b.t.Fatalf("no chat %d on the portal", chatID)
	}
	fields := groupFields(chat, user, strconv.FormatInt(nextMessageID.Add(1), 10), text)
	fields["data[PARAMS][MESSAGE_ORIGINAL]"] = text
	fields["auth[application_token]"] = testToken
	return b24test.Event("v1/onimbotmessageadd-group.form", fields)
}

// groupFields are the data[PARAMS] and data[USER] of a message by user in chat.
func groupFields(chat b24test.Chat, user int64, messageID, text string) map[string]string {
	u := strconv.FormatInt(user, 10)
	c := strconv.FormatInt(chat.ID, 10)
	return map[string]string{
		"data[PARAMS][MESSAGE]":          text,
		"data[PARAMS][MESSAGE_ID]":       messageID,
		"data[PARAMS][FROM_USER_ID]":     u,
		"data[PARAMS][AUTHOR_ID]":        u,
		"data[PARAMS][DIALOG_ID]":        "chat" + c,
		"data[PARAMS][CHAT_ID]":          c,
		"data[PARAMS][TO_CHAT_ID]":       c,
		"data[PARAMS][CHAT_TITLE]":       chat.Title,
		"data[PARAMS][CHAT_ENTITY_TYPE]": chat.EntityType,
		"data[PARAMS][CHAT_ENTITY_ID]":   chat.EntityID,
		"data[PARAMS][LANGUAGE]":         "en",
		"data[USER][ID]":                 u,
	}
}

// waitMessage waits for a bot message to dialogID, newer than the first skip ones,
// that contains want, and returns it with the new count.
func (b *runningBot) waitMessage(dialogID string, skip int, want string) (b24test.Message, int) {
	b.t.Helper()
	var found b24test.Message
	n := 0
	testwait.For(b.t, fmt.Sprintf("a message to %s containing %q", dialogID, want), func() bool {
		msgs := b.portal.Messages(dialogID)
		for i := skip; i < len(msgs); i++ {
			if strings.Contains(msgs[i].Text, want) {
				found, n = msgs[i], i+1
				return true
			}
		}
		return false
	})
	return found, n
}

// dialogChats returns the chat IDs the portal created, by title number order.
func dialogChats(p *b24test.Portal) []int64 {
	var ids []int64
	for _, c := range p.Chats() {
		if c.EntityType == "SUPPORTBOT_QUESTION" {
			ids = append(ids, c.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestStory plays SPEC §2–4 end to end: five dialogs, the refused sixth, the list with
// unread counts, an agent's answer and the client's reply, a rename, and a stranger.
func TestStory(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "story.db"))

	questions := []string{"открыть новый", "Как настроить CRM?", "/new Экспорт сделок", "open new", "Открыть новый Права доступа"}
	for _, q := range questions {
		b.mustPost(privateMessage(client, "ru", q))
	}
	adds := portal.WaitCalls(t, "imbot.chat.add", 5, 10*time.Second)
	var titles []string
	for _, c := range adds {
		titles = append(titles, c.Params.String("TITLE"))
	}
	slices.Sort(titles) // chats are created in whatever order the requests arrive
	for i, got := range titles {
		if want := fmt.Sprintf("Вопрос в поддержку — №%d", i+1); got != want {
			t.Errorf("chat %d title %q, want %q", i+1, got, want)
		}
	}
	for i, c := range adds {
		if got := c.Params.String("ENTITY_TYPE"); got != "SUPPORTBOT_QUESTION" {
			t.Errorf("entity type %q", got)
		}
		users := c.Params.Group("USERS")
		if users.String("0") != "27" || users.String("1") != "50" {
			t.Errorf("chat %d users %v", i+1, users)
		}
		if c.Params.String("BOT_ID") != strconv.Itoa(testBotID) {
			t.Errorf("chat %d BOT_ID %q", i+1, c.Params.String("BOT_ID"))
		}
	}
	_, seen := b.waitMessage("27", 0, "№5")
	waitIdle(t, b.dbPath)
	chats := b.chats()
	if len(chats) != 5 {
		t.Fatalf("portal has %d dialog chats", len(chats))
	}
	// Each dialog got its greeting, and the question typed with the command is in it.
	greeting, _ := b.waitMessage("chat"+strconv.FormatInt(chats[2], 10), 0, "Обращение №3")
	if !strings.Contains(greeting.Text, "Экспорт сделок") {
		t.Errorf("greeting of №3: %q", greeting.Text)
	}

	// The sixth is refused with the list of active dialogs, and no chat is created.
	b.mustPost(privateMessage(client, "ru", "открыть новый"))
	refusal, seen := b.waitMessage("27", seen, "максимальное число")
	for n := 1; n <= 5; n++ {
		if !strings.Contains(refusal.Text, fmt.Sprintf("№%d", n)) {
			t.Errorf("refusal does not list №%d: %s", n, refusal.Text)
		}
	}
	if got := len(portal.CallsTo("imbot.chat.add")); got != 5 {
		t.Fatalf("%d chats after the refused sixth", got)
	}

	// "все чаты" lists all five with unread counts, and a button per dialog.
	b.mustPost(privateMessage(client, "ru", "все чаты"))
	list, seen := b.waitMessage("27", seen, "Ваши обращения")
	if !strings.Contains(list.Text, "обращения[/b]: 5, непрочитанных сообщений: 0") || strings.Count(list.Text, "непрочитанных: 0") != 5 {
		t.Errorf("list: %s", list.Text)
	}
	opens := 0
	for _, btn := range list.Buttons() {
		if btn.Command == "open" {
			opens++
		}
	}
	if opens != 5 {
		t.Errorf("%d open buttons", opens)
	}

	// An agent answers in dialog 2: its unread count is 1.
	b.mustPost(b.groupMessage(agentID, chats[1], "Откройте Настройки → CRM"))
	b.mustPost(privateMessage(client, "en", "all chats"))
	list, seen = b.waitMessage("27", seen, "Your questions")
	if !strings.Contains(list.Text, "unread messages: 1") || !strings.Contains(list.Text, "#2 · Вопрос в поддержку — №2 · active · unread: 1") {
		t.Errorf("list after the agent's answer: %s", list.Text)
	}
	// The client's message there clears it.
	b.mustPost(b.groupMessage(client, chats[1], "Спасибо!"))
	b.mustPost(privateMessage(client, "en", "all chats"))
	list, seen = b.waitMessage("27", seen, "Your questions")
	if !strings.Contains(list.Text, "unread messages: 0") {
		t.Errorf("list after the client's reply: %s", list.Text)
	}

	// A rename reaches imbot.chat.updateTitle.
	b.mustPost(privateMessage(client, "ru", "переименовать 2 Настройка CRM [b]срочно[/b]"))
	upd := portal.WaitCalls(t, "imbot.chat.updateTitle", 1, 10*time.Second)[0]
	if upd.Params.String("CHAT_ID") != strconv.FormatInt(chats[1], 10) || upd.Params.String("TITLE") != "Настройка CRM [b]срочно[/b]" {
		t.Errorf("updateTitle %v", upd.Params)
	}
	renamed, seen := b.waitMessage("27", seen, "переименовано")
	if strings.Contains(renamed.Text, "[b]срочно") {
		t.Errorf("the title reached a message unescaped: %q", renamed.Text)
	}
	if c, _ := portal.Chat(chats[1]); c.Title != "Настройка CRM [b]срочно[/b]" {
		t.Errorf("portal title %q", c.Title)
	}

	// Someone who is neither admin nor integrator is refused and nothing is created.
	waitIdle(t, b.dbPath)
	before := state(t, b.dbPath, "dialogs", "messages", "unread")
	b.mustPost(privateMessage(strangerID, "ru", "открыть новый"))
	b.mustPost(privateMessage(strangerID, "ru", "У меня вопрос"))
	b.waitMessage("99", 0, "администраторы и интеграторы")
	if got := len(portal.CallsTo("imbot.chat.add")); got != 5 {
		t.Errorf("%d chats after the stranger", got)
	}
	if after := state(t, b.dbPath, "dialogs", "messages", "unread"); after != before {
		t.Errorf("the stranger changed dialogs:\n%s\n%s", before, after)
	}
	_ = seen
}

// TestConcurrentOpenNew: 50 simultaneous "open new" from one client give exactly the
// limit of dialogs.
func TestConcurrentOpenNew(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "race.db"))
	var wg sync.WaitGroup
	statuses := make([]int, 50)
	for i := range statuses {
		body := privateMessage(client, "ru", "открыть новый")
		wg.Go(func() {
			status, _, err := b24test.Post(context.Background(), b.url+"/bitrix/events", body)
			if err != nil {
				t.Error(err)
			}
			statuses[i] = status
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("request %d answered %d", i, s)
		}
	}
	if n := countDialogs(t, b.dbPath, anyDialog); n != 5 {
		t.Fatalf("%d dialogs, want 5", n)
	}
	portal.WaitCalls(t, "imbot.chat.add", 5, 10*time.Second)
	b.waitMessage("27", 0, "максимальное число")
	waitIdle(t, b.dbPath)
	if got := len(portal.CallsTo("imbot.chat.add")); got != 5 {
		t.Fatalf("%d chats created", got)
	}
}

// TestEventRoute checks the statuses of POST /bitrix/events.
func TestEventRoute(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "route.db"))
	b.mustPost(privateMessage(client, "ru", "Первый вопрос"))
	waitIdle(t, b.dbPath)
	parts := []string{"portals", "dialogs", "messages", "unread", "events", "outbox"}
	before := state(t, b.dbPath, parts...)

	// A wrong token: 401, nothing changes. The fixture whose top-level token differs
	// from the copy under data[BOT] is refused: only the top-level one counts.
	if s := b.post(b24test.Fixture("v1/onimbotmessageadd-private.form")); s != http.StatusUnauthorized {
		t.Errorf("fixture with the wrong top-level token: %d", s)
	}
	wrong := b24test.Event("v1/onimbotmessageadd-private.form", map[string]string{
		"data[PARAMS][MESSAGE]": "открыть новый", "data[PARAMS][FROM_USER_ID]": "27", "auth[application_token]": "x" + testToken[1:],
	})
	if s := b.post(wrong); s != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", s)
	}
	noToken := b24test.Event("v1/onimbotmessageadd-private.form", map[string]string{"auth[application_token]": b24test.Drop})
	if s := b.post(noToken); s != http.StatusUnauthorized {
		t.Errorf("no token: %d", s)
	}
	if after := state(t, b.dbPath, parts...); after != before {
		t.Errorf("a refused event changed the database:\n%s\n%s", before, after)
	}
	if p := portalsAt(t, b.dbPath)[0]; p.EventsRefusedAt.IsZero() {
		t.Error("the refusals are not remembered for doctor")
	}

	// Over 1 MiB: 413.
	huge := privateMessage(client, "ru", strings.Repeat("я", 600_000))
	if s := b.post(huge); s != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %d", s)
	}
	// Garbage: 400.
	for _, body := range []string{"", "%%%", "event=ONIMBOTMESSAGEADD&data[PARAMS=1", "data[a]=1", "event=ONIMBOTMESSAGEADD&auth[application_token]=" + testToken} {
		if s := b.post([]byte(body)); s != http.StatusBadRequest {
			t.Errorf("garbage %q: %d", body, s)
		}
	}
	// Unknown events: 200, ignored.
	unknown := "event=ONIMBOTSOMETHING&auth%5Bapplication_token%5D=" + testToken
	if s := b.post([]byte(unknown)); s != http.StatusOK {
		t.Errorf("unknown event: %d", s)
	}
	if after := state(t, b.dbPath, parts...); after != before {
		t.Errorf("rejected events changed the database:\n%s\n%s", before, after)
	}

	// The same event twice creates one dialog.
	ev := privateMessage(client, "ru", "Второй вопрос")
	b.mustPost(ev)
	b.mustPost(ev)
	portal.WaitCalls(t, "imbot.chat.add", 2, 10*time.Second)
	waitIdle(t, b.dbPath)
	if n := countDialogs(t, b.dbPath, anyDialog); n != 2 {
		t.Errorf("%d dialogs after a duplicate", n)
	}
	if got := len(portal.CallsTo("imbot.chat.add")); got != 2 {
		t.Errorf("%d chats after a duplicate", got)
	}

	// Health and readiness.
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(b.url + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
}

// TestRestartKeepsState: dialogs, unread counts and marks survive a restart on the
// same file.
func TestRestartKeepsState(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	dbPath := filepath.Join(t.TempDir(), "restart.db")
	b := startBot(t, portal, dbPath)
	for _, q := range []string{"Вопрос один", "Вопрос два", "Вопрос три"} {
		b.mustPost(privateMessage(client, "ru", q))
	}
	portal.WaitCalls(t, "imbot.chat.add", 3, 10*time.Second)
	b.waitMessage("27", 0, "№3")
	waitIdle(t, dbPath)
	chats := b.chats()
	b.mustPost(b.groupMessage(agentID, chats[0], "Ответ 1"))
	b.mustPost(b.groupMessage(agentID, chats[0], "Ответ 2"))
	b.mustPost(b.groupMessage(agentID, chats[2], "Ответ 3"))
	b.mustPost(b.groupMessage(client, chats[2], "Спасибо"))
	b.mustPost(privateMessage(client, "ru", "переименовать 1 Импорт"))
	portal.WaitCalls(t, "imbot.chat.updateTitle", 1, 10*time.Second)
	b.mustPost(privateMessage(client, "en", "all chats"))
	before, seen := b.waitMessage("27", 0, "Your questions")
	waitIdle(t, dbPath)
	kept := state(t, dbPath, "dialogs", "messages", "unread")
	b.stop()

	b2 := startBot(t, portal, dbPath)
	if after := state(t, dbPath, "dialogs", "messages", "unread"); after != kept {
		t.Errorf("state changed across the restart:\n%s\n%s", kept, after)
	}
	b2.mustPost(privateMessage(client, "en", "all chats"))
	after, _ := b2.waitMessage("27", seen, "Your questions")
	if after.Text != before.Text {
		t.Errorf("list changed across the restart:\n%s\n%s", before.Text, after.Text)
	}
	if !strings.Contains(after.Text, "#1 · Импорт · active · unread: 2") || !strings.Contains(after.Text, "unread messages: 2") {
		t.Errorf("list after restart: %s", after.Text)
	}
	// Numbering continues.
	b2.mustPost(privateMessage(client, "ru", "Вопрос четыре"))
	adds := portal.WaitCalls(t, "imbot.chat.add", 4, 10*time.Second)
	if got := adds[3].Params.String("TITLE"); got != "Вопрос в поддержку — №4" {
		t.Errorf("fourth title %q", got)
	}
}
