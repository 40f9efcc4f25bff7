package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/config"
	"supportbot/setup"
	"supportbot/storage"
	"supportbot/testwait"
)

// The hardening issue's findings, each against the fake portal and a real SQLite file.

// TestChatThatCannotBeCreated (finding 1): while the portal refuses to create chats,
// the client's questions are withdrawn, not left active without a chat: the client is
// told, with the question, they do not count towards the limit, no list shows them,
// and once the portal works the client asks again.
func TestChatThatCannotBeCreated(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "nochat.db"))
	refuse := func(bitrix24.Form) (any, *bitrix24.Error) {
		return nil, &bitrix24.Error{Code: "NO_AUTH_FOUND", Description: "Wrong authorization data", HTTPStatus: 401}
	}
	portal.Handle("imbot.chat.add", refuse)
	for i := range 5 {
		b.mustPost(privateMessage(client, "en", fmt.Sprintf("Question %d that must not be lost", i)))
	}
	waitIdle(t, b.dbPath)
	notices := 0
	for _, m := range portal.Messages("27") {
		if strings.Contains(m.Text, "withdrawn") && strings.Contains(m.Text, "that must not be lost") {
			notices++
		}
	}
	if notices != 5 {
		t.Fatalf("%d notices with the question for 5 withdrawn questions:\n%v", notices, portal.Messages("27"))
	}
	if n := countDialogs(t, b.dbPath, storage.Dialog.Active); n != 0 {
		t.Fatalf("%d dialogs without a chat still count as active", n)
	}
	// An answer that is not an ID withdraws the dialog too.
	portal.Handle("imbot.chat.add", func(bitrix24.Form) (any, *bitrix24.Error) { return "not an ID", nil })
	b.mustPost(privateMessage(client, "en", "Sixth"))
	waitIdle(t, b.dbPath)
	// The portal works again: the client asks, within the limit of five.
	portal.Handle("imbot.chat.add", nil)
	for i := range 5 {
		b.mustPost(privateMessage(client, "en", fmt.Sprintf("Again %d", i)))
	}
	portal.WaitCalls(t, "imbot.chat.add", 11, 10*time.Second)
	waitIdle(t, b.dbPath)
	if n := len(dialogChats(portal)); n != 5 {
		t.Fatalf("%d chats created once the portal works, want 5", n)
	}
	b.mustPost(privateMessage(client, "en", "all chats"))
	list, _ := b.waitMessage("27", 0, "Your questions")
	if !strings.Contains(list.Text, "Your questions[/b]: 5") || strings.Contains(list.Text, "being created") {
		t.Errorf("the list shows withdrawn questions:\n%s", list.Text)
	}
}

// TestLongDataIsPaged (finding 2): sixty dialogs with the longest titles, one renamed
// with the pencil to 200,000 characters, and a 20,000-character question: every
// message the portal gets is within its limits, the list is paged, and the "More"
// button shows the next page.
func TestLongDataIsPaged(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "long.db"), "SUPPORTBOT_DIALOGS_MAX_ACTIVE=100")
	b.mustPost(privateMessage(client, "en", strings.Repeat("[b]", 6667)))
	for i := range 59 {
		b.mustPost(privateMessage(client, "en", "q"+strconv.Itoa(i)))
	}
	portal.WaitCalls(t, "imbot.chat.add", 60, 20*time.Second)
	waitIdle(t, b.dbPath)
	chats := b.chats()
	long := strings.Repeat("[", 200000)
	for _, c := range chats[:3] {
		chat, _ := portal.Chat(c)
		chat.Title = long
		fields := groupFields(chat, client, strconv.FormatInt(nextMessageID.Add(1), 10), "renamed with the pencil")
		fields["auth[application_token]"] = testToken
		b.mustPost(b24test.Event("v1/onimbotmessageadd-group.form", fields))
	}
	// The rest get the longest title a command allows, of brackets, which escaping
	// doubles.
	err := storeAt(t, b.dbPath).Update(context.Background(), func(tx *storage.Tx) error {
		for _, d := range dialogsAt(t, b.dbPath)[3:] {
			if err := tx.RenameDialog(d.ID, strings.Repeat("[", 255), false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.mustPost(privateMessage(client, "en", "all chats"))
	first, seen := b.waitMessage("27", 0, "showing 1–20 of 60")
	var more *b24test.Message
	for _, btn := range first.Buttons() {
		if btn.Text == "More" {
			b.mustPost(press(client, "27", first.ID, btn.Command, btn.CommandParams))
			m, _ := b.waitMessage("27", seen, "showing 21–40 of 60")
			more = &m
		}
	}
	if more == nil {
		t.Fatal("no More button on a list of 60")
	}
	waitIdle(t, b.dbPath)
	for _, c := range portal.Calls() {
		for _, m := range append([]bitrix24.Form{c.Params}, batchCommands(c)...) {
			if n := utf8.RuneCountInString(m.String("MESSAGE")); n > bitrix24.MaxMessage {
				t.Fatalf("%s with a message of %d characters", c.Method, n)
			}
		}
	}
	if d := dialogNumbered(t, b.dbPath, 1); utf8.RuneCountInString(d.Title) > 255 {
		t.Errorf("a title from the pencil kept %d characters", utf8.RuneCountInString(d.Title))
	}
}

// batchCommands are the sub-commands' parameters of a recorded batch call.
func batchCommands(c b24test.Call) []bitrix24.Form {
	var out []bitrix24.Form
	cmds := c.Params.Group("cmd")
	for _, k := range cmds.Keys() {
		_, query, _ := strings.Cut(cmds.String(k), "?")
		if f, err := bitrix24.ParseForm([]byte(query)); err == nil {
			out = append(out, f)
		}
	}
	return out
}

// TestPressAgainIsAnswered (finding 3): pressing "All chats" on the same message a
// second time, later, is a new event and gets a second answer; the same press
// delivered twice is answered once.
func TestPressAgainIsAnswered(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "press.db"))
	b.openDialogs(1)
	b.mustPost(privateMessage(client, "en", "help"))
	help, seen := b.waitMessage("27", 0, "Support")
	pressAt := func(ts int64) []byte {
		body := string(press(client, "27", help.ID, "chats", ""))
		return []byte(strings.Replace(body, "ts=", "ts="+strconv.FormatInt(ts, 10)+"&old_ts=", 1))
	}
	now := time.Now().Unix()
	b.mustPost(pressAt(now))
	b.mustPost(pressAt(now)) // the same press, delivered twice
	_, seen = b.waitMessage("27", seen, "Your questions")
	b.mustPost(pressAt(now + 5)) // pressed again
	b.waitMessage("27", seen, "Your questions")
	waitIdle(t, b.dbPath)
	lists := 0
	for _, m := range portal.Messages("27") {
		if strings.Contains(m.Text, "Your questions") {
			lists++
		}
	}
	if lists != 2 {
		t.Fatalf("%d lists for two presses (one delivered twice)", lists)
	}
}

// TestEntityClaimCannotTakeADialog (finding 4): while a dialog's chat is being
// created, a stranger's chat whose events claim the dialog's entity gets nothing: the
// client's link goes to the chat the portal created, and the stranger's words stay
// out of the transcript.
func TestEntityClaimCannotTakeADialog(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "claim.db"))
	b.openDialogs(1)
	portal.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultSlow}, SlowDelay: time.Second,
		Methods: []string{"imbot.chat.add"}})
	b.mustPost(privateMessage(client, "en", "Second question"))
	portal.WaitCalls(t, "imbot.chat.add", 2, 10*time.Second) // it runs; its answer is held
	d2 := dialogNumbered(t, b.dbPath, 2)
	stranger := b24test.Chat{ID: 6666, Title: "my own chat", EntityType: "SUPPORTBOT_QUESTION", EntityID: fmt.Sprintf("question|%d", d2.ID)}
	fields := groupFields(stranger, strangerID, strconv.FormatInt(nextMessageID.Add(1), 10), "the stranger's words")
	fields["auth[application_token]"] = testToken
	b.mustPost(b24test.Event("v1/onimbotmessageadd-group.form", fields))
	portal.InjectFaults(b24test.FaultPlan{})
	waitIdle(t, b.dbPath)
	real := dialogNumbered(t, b.dbPath, 2).ChatID
	if real == 6666 || real == 0 {
		t.Fatalf("dialog 2 is bound to chat %d", real)
	}
	open, _ := b.waitMessage("27", 0, "Question #2 is open")
	if !strings.Contains(open.Text, "[chat="+strconv.FormatInt(real, 10)+"]") {
		t.Errorf("the client's link: %s", open.Text)
	}
	view(t, b.dbPath, func(tx *storage.Tx) error {
		tr, err := tx.Transcript(d2.ID)
		for _, m := range tr {
			if m.Text == "the stranger's words" {
				t.Error("the stranger's message entered the transcript")
			}
		}
		return err
	})
}

// TestEditBackIsRecorded (finding 6): a message edited to A, then B, then A again
// reads A.
func TestEditBackIsRecorded(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "edit.db"))
	chats := b.openDialogs(1)
	chat, _ := portal.Chat(chats[0])
	id := strconv.FormatInt(nextMessageID.Add(1), 10)
	fields := groupFields(chat, client, id, "first")
	fields["auth[application_token]"] = testToken
	b.mustPost(b24test.Event("v1/onimbotmessageadd-group.form", fields))
	ts := time.Now().Unix()
	for i, text := range []string{"A", "B", "A"} {
		fields := groupFields(chat, client, id, text)
		fields["auth[application_token]"] = testToken
		fields["ts"] = strconv.FormatInt(ts+int64(i), 10)
		b.mustPost(b24test.Event("v1/onimbotmessageupdate-group.form", fields))
	}
	view(t, b.dbPath, func(tx *storage.Tx) error {
		tr, err := tx.Transcript(dialogNumbered(t, b.dbPath, 1).ID)
		if last := tr[len(tr)-1]; last.Text != "A" {
			t.Errorf("after A → B → A the transcript reads %q", last.Text)
		}
		return err
	})
}

// TestPortalTextsRedacted (finding 7): a proxy that echoes the request path puts the
// webhook secret into the portal's error_description; it reaches neither the log,
// nor the outbox's last error, nor doctor's report.
func TestPortalTextsRedacted(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	secret := portal.WebhookURL()
	echo := func(bitrix24.Form) (any, *bitrix24.Error) {
		return nil, &bitrix24.Error{Code: "ACCESS_DENIED", Description: "denied for " + secret + "imbot.chat.add.json", HTTPStatus: 403}
	}
	portal.Handle("imbot.chat.add", echo)
	portal.Handle("scope", echo)
	dir := t.TempDir()
	env := []string{
		"SUPPORTBOT_HTTP_ADDR=127.0.0.1:0",
		"SUPPORTBOT_BITRIX_WEBHOOK_URL=" + secret,
		"SUPPORTBOT_BITRIX_APPLICATION_TOKEN=" + testToken,
		"SUPPORTBOT_HTTP_PUBLIC_URL=https://support.example.com",
		"SUPPORTBOT_ACCESS_ADMINS=27",
		"SUPPORTBOT_SUPPORT_AGENTS=50",
		"SUPPORTBOT_LOG_LEVEL=debug",
	}
	p := startBinary(t, dir, env)
	if s, _, err := b24test.Post(context.Background(), p.url()+"/bitrix/events", privateMessage(27, "en", "a question")); err != nil || s != http.StatusOK {
		t.Fatalf("event: %d %v", s, err)
	}
	dbPath := filepath.Join(dir, "supportbot.db")
	testwait.For(t, "the refusal to be recorded", func() bool { return countOutbox(t, dbPath, storage.OutboxFailed) > 0 })
	hidden := strings.TrimSuffix(secret[strings.Index(secret, "/rest/"):], "/")
	for _, e := range outboxAt(t, dbPath) {
		if strings.Contains(e.LastError, hidden) {
			t.Errorf("the secret is in the outbox's last error: %q", e.LastError)
		}
	}
	if strings.Contains(p.logs(), hidden) {
		t.Errorf("the secret reached the log:\n%s", p.logs())
	}
	cfg, _ := config.LoadFrom(nil, dbEnv(t, append(env, "SUPPORTBOT_DB_PATH="+dbPath), ""))
	var report strings.Builder
	(&setup.Doctor{Config: cfg, Out: &report, Client: setup.Patient(bitrix24.NewClient(secret))}).Run(t.Context())
	if strings.Contains(report.String(), hidden) || !strings.Contains(report.String(), "ACCESS_DENIED") {
		t.Errorf("doctor's report:\n%s", report.String())
	}
}

// TestFreePlanOneRule (finding 8): on a free plan a user who is both an agent and an
// administrator is refused a question of their own however they ask it.
func TestFreePlanOneRule(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "free.db"), "SUPPORTBOT_PORTAL_PLAN=free",
		"SUPPORTBOT_SUPPORT_AGENTS=27")
	b.mustPost(privateMessage(client, "en", "A question by plain text"))
	b.mustPost(privateMessage(client, "en", "/new A question by command"))
	waitIdle(t, b.dbPath)
	refusals := 0
	for _, m := range portal.Messages("27") {
		if strings.Contains(m.Text, "commercial") {
			refusals++
		}
	}
	if refusals != 2 || countDialogs(t, b.dbPath, anyDialog) != 0 {
		t.Fatalf("%d refusals, %d dialogs: plain text and /new must be treated alike", refusals, countDialogs(t, b.dbPath, anyDialog))
	}
}
