package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bot"
	"supportbot/delivery"
	"supportbot/handlers"
	"supportbot/portals"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// desk is the bot as serve wires it — the events route, the bot, the outbox sent to
// the fake portal, the auto-close sweep — over a SQLite file, on a clock the test
// moves. serve runs on the wall clock, so the test wires the same rooms itself and
// runs the scheduled sweep and the dispatcher one step at a time.
type desk struct {
	t      *testing.T
	path   string
	portal *b24test.Portal

	mu  sync.Mutex
	now time.Time

	store    *storage.Store
	location string // the database store opened, for storagetest.Rows
	portalID int64
	bot      *bot.Bot
	config   func(*bot.Config) // changes the bot's configuration before each start
	disp     *delivery.Dispatcher
	stopDisp func()
	srv      *httptest.Server
}

// The defaults: warned after 48 h of silence, closed after 72 h.
const (
	closeAfter   = 72 * time.Hour
	closeWarning = 24 * time.Hour
)

var quiet = slog.New(slog.DiscardHandler)

var deskStart = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// newDesk starts a desk on the engine under test (PostgreSQL's NULLs once made every
// waiting dialog due); config, if given, changes the bot's configuration.
func newDesk(t *testing.T, config ...func(*bot.Config)) *desk {
	d := &desk{t: t, path: storagetest.Location(t, filepath.Join(t.TempDir(), "autoclose.db")), portal: b24test.New(t), now: deskStart}
	if len(config) > 0 {
		d.config = config[0]
	}
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *desk) clock() time.Time { d.mu.Lock(); defer d.mu.Unlock(); return d.now }

// at moves the clock to deskStart+since.
func (d *desk) at(since time.Duration) { d.mu.Lock(); d.now = deskStart.Add(since); d.mu.Unlock() }

// start opens the database and builds every room anew: nothing survives a restart
// but the file.
func (d *desk) start() {
	d.t.Helper()
	ctx := context.Background()
	// The desks of issue 22 (config set) run on the engine under test; auto-close's stay
	// on the file: on PostgreSQL, GREATEST skips the NULL "client spoke last" that
	// SQLite's MAX keeps, and two of them fail there.
	location := d.path
	if d.config != nil {
		location = storagetest.Location(d.t, d.path)
	}
	store, err := storage.Open(ctx, location, storage.WithClock(d.clock))
	if err != nil {
		d.t.Fatal(err)
	}
	portal, err := store.EnsurePortal(ctx, "webhook", "")
	if err != nil {
		d.t.Fatal(err)
	}
	d.store, d.location, d.portalID = store, location, portal.ID
	cfg := bot.Config{Agents: []int64{agentID}, Admins: []int64{client}, MaxActive: 10, Language: "ru",
		AutoCloseAfter: closeAfter, AutoCloseWarning: closeWarning}
	if d.config != nil {
		d.config(&cfg)
	}
	d.bot = bot.New(cfg, nil)
	d.disp = delivery.New(store, delivery.Single(bitrix24.NewClient(d.portal.WebhookURL())), d.bot.Outbox(), nil, nil)
	d.stopDisp = runDispatcher(d.t, d.disp)
	d.srv = httptest.NewServer(handlers.NewServer(handlers.Routes{
		Events: &handlers.Events{Store: store, Bot: d.bot, Auth: portals.Webhook{PortalID: portal.ID, Token: testToken}, Log: quiet},
		DB:     store, Log: quiet,
	}))
}

func (d *desk) stop() {
	if d.store == nil {
		return
	}
	d.srv.Close()
	d.stopDisp()
	if err := d.store.Close(); err != nil {
		d.t.Error(err)
	}
	d.store = nil
}

func (d *desk) restart() { d.t.Helper(); d.stop(); d.start() }

// post sends an event as the portal does and delivers what it caused.
func (d *desk) post(body []byte) {
	d.t.Helper()
	status, resp, err := d.portal.Post(context.Background(), d.srv.URL+"/bitrix/events", body)
	if err != nil || status != http.StatusOK {
		d.t.Fatalf("event answered %d %s: %v", status, resp, err)
	}
	d.deliver()
}

// deliver sends everything due to the fake portal.
func (d *desk) deliver() {
	d.t.Helper()
	drainOutbox(d.t, d.store)
}

// sweep runs the scheduled auto-close once, at the clock's time, and delivers.
func (d *desk) sweep() (warned, closed int) {
	d.t.Helper()
	warned, closed, err := d.bot.AutoClose(context.Background(), d.store)
	if err != nil {
		d.t.Fatal(err)
	}
	d.deliver()
	return warned, closed
}

// wantSweep sweeps at deskStart+since and checks what it did.
func (d *desk) wantSweep(since time.Duration, warned, closed int) {
	d.t.Helper()
	d.at(since)
	if w, c := d.sweep(); w != warned || c != closed {
		d.t.Fatalf("sweep at +%v: warned %d, closed %d; want %d, %d", since, w, c, warned, closed)
	}
}

// open has the client ask a question and returns the new dialog's chat.
func (d *desk) open(question string) int64 {
	d.t.Helper()
	before := len(dialogChats(d.portal))
	d.post(privateMessage(client, "en", question))
	chats := dialogChats(d.portal)
	if len(chats) != before+1 {
		d.t.Fatalf("%d chats after a question, want %d", len(chats), before+1)
	}
	return chats[len(chats)-1]
}

// say posts user's message in a dialog's chat and returns its ID.
func (d *desk) say(user, chatID int64, text string) int64 {
	d.t.Helper()
	chat, ok := d.portal.Chat(chatID)
	if !ok {
		d.t.Fatalf("no chat %d", chatID)
	}
	id := nextMessageID.Add(1)
	fields := groupFields(chat, user, strconv.FormatInt(id, 10), text)
	fields["auth[application_token]"] = testToken
	d.post(b24test.Event("v1/onimbotmessageadd-group.form", fields))
	return id
}

// unsay deletes message id in a dialog's chat.
func (d *desk) unsay(user, chatID, id int64) {
	d.t.Helper()
	chat, _ := d.portal.Chat(chatID)
	fields := groupFields(chat, user, strconv.FormatInt(id, 10), "deleted")
	fields["data[PARAMS][ID]"] = strconv.FormatInt(id, 10)
	fields["auth[application_token]"] = testToken
	d.post(b24test.Event("v1/onimbotmessagedelete-group.form", fields))
}

// press is user pressing a button of message msgID in a dialog's chat.
func (d *desk) press(user, chatID, msgID int64, btn bitrix24.Button) {
	d.t.Helper()
	chat, _ := d.portal.Chat(chatID)
	m := strconv.FormatInt(msgID, 10)
	fields := groupFields(chat, user, m, "")
	fields["data[COMMAND][*][COMMAND]"] = btn.Command
	fields["data[COMMAND][*][COMMAND_PARAMS]"] = btn.CommandParams
	fields["data[COMMAND][*][COMMAND_CONTEXT]"] = "KEYBOARD"
	fields["data[COMMAND][*][MESSAGE_ID]"] = m
	fields["data[COMMAND][*][BOT_ID]"] = strconv.Itoa(testBotID)
	fields["auth[application_token]"] = testToken
	d.post(b24test.Event("v1/onimcommandadd-group.form", fields))
}

// botSaid are the bot's messages in a chat containing text.
func (d *desk) botSaid(chatID int64, text string) []b24test.Message {
	return slices.DeleteFunc(d.portal.Messages(chatDialog(chatID)), func(m b24test.Message) bool { return !strings.Contains(m.Text, text) })
}

const (
	warningText = "closes automatically in 24 hours"
	closedText  = "was closed automatically: no reply for 3 days"
)

// dialog is dialog №n as the database has it now.
func (d *desk) dialog(n int) storage.Dialog {
	d.t.Helper()
	var dl storage.Dialog
	err := d.store.View(context.Background(), func(tx *storage.Tx) (err error) {
		dl, err = tx.DialogByNumber(d.portalID, n)
		return err
	})
	if err != nil {
		d.t.Fatal(err)
	}
	return dl
}

// TestAutoCloseWarnsThenCloses: after an agent's answer the client is warned once,
// 48 h in, with a button to keep the dialog open, and the dialog is closed once, 72 h
// in, though the bot restarts in between and sweeps many times; the close says it was
// automatic, asks for no rating, and the client's next message reopens the dialog.
func TestAutoCloseWarnsThenCloses(t *testing.T) {
	t.Parallel()
	d := newDesk(t)
	chat := d.open("How do I export deals?")
	d.say(agentID, chat, "Settings → Export.")
	mainChat := len(d.portal.Messages("27"))

	d.wantSweep(closeAfter-closeWarning-time.Millisecond, 0, 0)
	d.wantSweep(closeAfter-closeWarning, 1, 0)
	warnings := d.botSaid(chat, warningText)
	if len(warnings) != 1 {
		t.Fatalf("%d warnings in the chat", len(warnings))
	}
	w := warnings[0]
	if !strings.Contains(w.Text, "[USER=27]") || !strings.Contains(w.Text, "#1") {
		t.Errorf("the warning does not name the client and the question: %s", w.Text)
	}
	if b := w.Buttons(); len(b) != 1 || b[0].Text != "Keep it open" || b[0].Command != "keep" {
		t.Fatalf("warning's buttons %+v", b)
	}
	d.wantSweep(closeAfter-closeWarning, 0, 0)

	d.restart()
	d.wantSweep(closeAfter-closeWarning+time.Hour, 0, 0)
	d.wantSweep(closeAfter-time.Millisecond, 0, 0)
	if d.dialog(1).Status != storage.StatusActive {
		t.Fatal("closed before its time")
	}
	d.wantSweep(closeAfter, 0, 1)
	d.wantSweep(closeAfter, 0, 0)
	d.restart()
	d.wantSweep(closeAfter+time.Hour, 0, 0)

	if got := d.dialog(1).Status; got != storage.StatusResolved {
		t.Fatalf("dialog 1 is %s", got)
	}
	if n := len(d.botSaid(chat, warningText)); n != 1 {
		t.Errorf("%d warnings in all", n)
	}
	closes := d.botSaid(chat, closedText)
	if len(closes) != 1 || !strings.Contains(closes[0].Text, "write here and it opens again") || len(closes[0].Buttons()) != 0 {
		t.Fatalf("close messages %+v", closes)
	}
	// No rating, nor any notice like an agent's close, in the client's main chat.
	if got := d.portal.Messages("27"); len(got) != mainChat {
		t.Fatalf("the main chat got %+v", got[mainChat:])
	}
	for _, m := range d.portal.AllMessages() {
		for _, b := range m.Buttons() {
			if b.Command == "rate" {
				t.Fatalf("a rating request after the auto-close: %s", m.Text)
			}
		}
	}
	life := storagetest.Rows(t, d.location, `SELECT kind FROM dialog_events WHERE dialog_id = $1 ORDER BY id`, d.dialog(1).ID)
	// The answer also made its author the dialog's owner (issue 22).
	if want := "opened client_message agent_answer owner auto_closed"; strings.Join(life, " ") != want {
		t.Errorf("life %v, want %s", life, want)
	}

	d.say(client, chat, "Sorry, one more thing")
	if d.dialog(1).Status != storage.StatusActive || len(d.botSaid(chat, "active again")) != 1 {
		t.Fatal("the client's message did not reopen the auto-closed dialog")
	}
}

// TestClientMessageCancelsAutoClose: the client's message after the warning ends the
// countdown: no close however long the agents then stay silent, nor a second warning;
// the next agent answer starts a countdown of its own, from that answer.
func TestClientMessageCancelsAutoClose(t *testing.T) {
	t.Parallel()
	d := newDesk(t)
	chat := d.open("The import fails")
	d.say(agentID, chat, "Which file?")
	d.wantSweep(closeAfter-closeWarning, 1, 0)
	d.at(50 * time.Hour)
	d.say(client, chat, "Still looking for it")

	d.wantSweep(closeAfter, 0, 0)
	d.restart()
	d.wantSweep(10*closeAfter, 0, 0)
	if d.dialog(1).Status != storage.StatusActive || len(d.botSaid(chat, warningText)) != 1 {
		t.Fatal("the client's message did not cancel the countdown")
	}

	answered := 10 * closeAfter
	d.say(agentID, chat, "Send it when you find it")
	d.wantSweep(answered+closeAfter-closeWarning-time.Millisecond, 0, 0)
	d.wantSweep(answered+closeAfter-closeWarning, 1, 0)
	d.wantSweep(answered+closeAfter, 0, 1)
}

// TestKeepItOpen: the warning's button, pressed by the dialog's client, starts the
// countdown again and turns the button into the answer; anyone else's press changes
// nothing; pressed after the close, it reopens the dialog.
func TestKeepItOpen(t *testing.T) {
	t.Parallel()
	d := newDesk(t)
	pressedByAgent := d.open("Where are my invoices?")
	kept := d.open("How do I add a user?")
	d.say(agentID, pressedByAgent, "In CRM → Invoices.")
	d.say(agentID, kept, "Employees → Invite.")
	d.wantSweep(closeAfter-closeWarning, 2, 0)

	d.at(60 * time.Hour)
	calls := len(d.portal.Calls())
	w1 := d.botSaid(pressedByAgent, warningText)[0]
	d.press(agentID, pressedByAgent, w1.ID, w1.Buttons()[0])
	if n := len(d.portal.Calls()); n != calls {
		t.Fatalf("an agent's press made %d calls", n-calls)
	}
	w2 := d.botSaid(kept, warningText)[0]
	d.press(client, kept, w2.ID, w2.Buttons()[0])
	w2 = d.botSaid(kept, warningText)[0]
	if len(w2.Buttons()) != 0 || !strings.Contains(w2.Text, "The question stays open.") {
		t.Fatalf("the warning after the press: %q %+v", w2.Text, w2.Buttons())
	}

	// Only the dialog the agent pressed in closes at 72 h; the other's countdown
	// started again at the press, 60 h in.
	d.wantSweep(closeAfter, 0, 1)
	if d.dialog(1).Status != storage.StatusResolved || d.dialog(2).Status != storage.StatusActive {
		t.Fatal("the agent's press kept dialog 1 open, or the client's did not keep dialog 2")
	}
	pressed := 60 * time.Hour
	d.wantSweep(pressed+closeAfter-closeWarning-time.Millisecond, 0, 0)
	d.wantSweep(pressed+closeAfter-closeWarning, 1, 0)
	d.wantSweep(pressed+closeAfter, 0, 1)
	if n := len(d.botSaid(kept, warningText)); n != 2 {
		t.Fatalf("%d warnings in dialog 2, want the first and the one after the press", n)
	}

	// Pressed after the close, the button reopens the dialog, as writing there would,
	// and the countdown starts from the press.
	late := 200 * time.Hour
	d.at(late)
	d.press(client, pressedByAgent, w1.ID, w1.Buttons()[0])
	if d.dialog(1).Status != storage.StatusActive || len(d.botSaid(pressedByAgent, "active again")) != 1 {
		t.Fatal("a press after the close did not reopen the dialog")
	}
	d.wantSweep(late+closeAfter-closeWarning-time.Millisecond, 0, 0)
	d.wantSweep(late+closeAfter-closeWarning, 1, 0)
}

// TestWaitingDialogNeverAutoClosed: only a dialog an agent answered last is closed. One
// whose client spoke last (waiting for an agent), one where nobody has written, one
// handed to technical support, one where an agent only typed a command, and one whose
// only answer the agent deleted stay open, however long nobody answers.
func TestWaitingDialogNeverAutoClosed(t *testing.T) {
	t.Parallel()
	d := newDesk(t)
	unanswered := d.open("Is the API down?")
	answeredThenAsked := d.open("Export to Excel?")
	d.say(agentID, answeredThenAsked, "Use the list menu.")
	d.say(client, answeredThenAsked, "There is no such menu")
	d.post(privateMessage(client, "en", "open new"))
	escalated := d.open("Our webhooks stopped")
	d.say(agentID, escalated, "/escalate")
	renamed := d.open("Billing question")
	d.say(agentID, renamed, "/rename Billing")
	takenBack := d.open("Can I merge two deals?")
	d.unsay(agentID, takenBack, d.say(agentID, takenBack, "Wrong chat, sorry"))
	answered := d.open("Reset my password")
	d.say(agentID, answered, "Done.")

	d.wantSweep(100*closeAfter, 1, 0)
	d.wantSweep(100*closeAfter+closeWarning, 0, 1)
	for n, want := range []string{storage.StatusActive, storage.StatusActive, storage.StatusActive, storage.StatusActive,
		storage.StatusActive, storage.StatusActive, storage.StatusResolved} {
		if got := d.dialog(n + 1).Status; got != want {
			t.Errorf("dialog %d is %s, want %s", n+1, got, want)
		}
	}
	for _, chat := range []int64{unanswered, answeredThenAsked, escalated, renamed, takenBack} {
		if n := len(d.botSaid(chat, warningText)); n != 0 {
			t.Errorf("chat %d got %d warnings", chat, n)
		}
	}
}

// TestOverdueWarningComesFirst: a bot that was down when the warning was due warns
// when it is back and closes only a whole warning period later, so the client always
// has the time the warning promises.
func TestOverdueWarningComesFirst(t *testing.T) {
	t.Parallel()
	d := newDesk(t)
	chat := d.open("Can I change the portal's address?")
	d.say(agentID, chat, "Yes, in the settings.")
	d.stop()
	back := 7 * 24 * time.Hour
	d.at(back)
	d.start()
	d.wantSweep(back, 1, 0)
	d.wantSweep(back+closeWarning-time.Millisecond, 0, 0)
	d.wantSweep(back+closeWarning, 0, 1)
}

// TestReplicasSweepOnce: two bots on one database (as replicas will be) sweeping at
// the same moment warn each client once and close each dialog once between them.
func TestReplicasSweepOnce(t *testing.T) {
	t.Parallel()
	d := newDesk(t)
	const dialogs = 5
	var chats []int64
	for i := range dialogs {
		chats = append(chats, d.open("Question "+strconv.Itoa(i+1)))
		d.say(agentID, chats[i], "An answer")
	}
	other, err := storage.Open(context.Background(), d.path, storage.WithClock(d.clock))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	replica := bot.New(bot.Config{Agents: []int64{agentID}, Admins: []int64{client}, MaxActive: 5,
		AutoCloseAfter: closeAfter, AutoCloseWarning: closeWarning}, nil)

	race := func() (warned, closed int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, r := range []struct {
			bot   *bot.Bot
			store *storage.Store
		}{{d.bot, d.store}, {replica, other}, {d.bot, d.store}, {replica, other}} {
			wg.Go(func() {
				w, c, err := r.bot.AutoClose(context.Background(), r.store)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				warned, closed = warned+w, closed+c
				mu.Unlock()
			})
		}
		wg.Wait()
		d.deliver()
		return warned, closed
	}
	d.at(closeAfter - closeWarning)
	if w, c := race(); w != dialogs || c != 0 {
		t.Fatalf("warned %d, closed %d; want %d, 0", w, c, dialogs)
	}
	d.at(closeAfter)
	if w, c := race(); w != 0 || c != dialogs {
		t.Fatalf("warned %d, closed %d; want 0, %d", w, c, dialogs)
	}
	for _, chat := range chats {
		if w, c := len(d.botSaid(chat, warningText)), len(d.botSaid(chat, closedText)); w != 1 || c != 1 {
			t.Errorf("chat %d: %d warnings, %d closes", chat, w, c)
		}
	}
}

// TestAutoCloseSpeaksClientsLanguage: the warning and the close are in the client's
// language, whatever the agents write in, and the client's name in the warning is
// escaped.
func TestAutoCloseSpeaksClientsLanguage(t *testing.T) {
	t.Parallel()
	d := newDesk(t)
	d.post(b24test.Event("v1/onimbotmessageadd-private.form", map[string]string{
		"data[PARAMS][MESSAGE]":      "Как выгрузить сделки?",
		"data[PARAMS][MESSAGE_ID]":   strconv.FormatInt(nextMessageID.Add(1), 10),
		"data[PARAMS][FROM_USER_ID]": "27",
		"data[PARAMS][AUTHOR_ID]":    "27",
		"data[PARAMS][DIALOG_ID]":    "27",
		"data[PARAMS][LANGUAGE]":     "ru",
		"data[USER][ID]":             "27",
		"data[USER][NAME]":           "Иван [USER=all]",
		"auth[application_token]":    testToken,
	}))
	chat := dialogChats(d.portal)[0]
	d.say(agentID, chat, "Settings → Export.")
	d.wantSweep(closeAfter-closeWarning, 1, 0)
	w := d.botSaid(chat, "закроется автоматически через 24 часа")
	if len(w) != 1 || w[0].Buttons()[0].Text != "Оставить открытым" {
		t.Fatalf("no Russian warning: %+v", d.portal.Messages(chatDialog(chat)))
	}
	if strings.Contains(w[0].Text, "[USER=all]") || !strings.Contains(w[0].Text, "[USER=27]Иван") {
		t.Errorf("the client's name is not escaped in the warning: %s", w[0].Text)
	}
	d.wantSweep(closeAfter, 0, 1)
	if c := d.botSaid(chat, "закрыто автоматически: ответа не было 3 дня"); len(c) != 1 {
		t.Fatalf("no Russian close: %+v", d.portal.Messages(chatDialog(chat)))
	}
}

// TestAgentReopenRestartsCountdown: an agent's /reopen of an auto-closed dialog starts
// a new countdown from the reopening, instead of closing it again at once.
func TestAgentReopenRestartsCountdown(t *testing.T) {
	t.Parallel()
	d := newDesk(t)
	chat := d.open("Can I undo an import?")
	d.say(agentID, chat, "No, but you can delete the records.")
	d.wantSweep(closeAfter-closeWarning, 1, 0)
	d.wantSweep(closeAfter, 0, 1)
	reopened := closeAfter + 8*time.Hour
	d.at(reopened)
	d.say(agentID, chat, "/reopen")
	if d.dialog(1).Status != storage.StatusActive {
		t.Fatal("/reopen did not reopen")
	}
	d.wantSweep(reopened, 0, 0)
	d.wantSweep(reopened+closeAfter-closeWarning-time.Millisecond, 0, 0)
	d.wantSweep(reopened+closeAfter-closeWarning, 1, 0)
	d.wantSweep(reopened+closeAfter, 0, 1)
}
