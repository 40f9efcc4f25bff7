package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"supportbot/bitrix24/b24test"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// press is ONIMCOMMANDADD for a keyboard button pressed by user on message msgID in
// dialogID, built from the fixture.
func press(user int64, dialogID string, msgID int64, command, params string) []byte {
	u := strconv.FormatInt(user, 10)
	m := strconv.FormatInt(msgID, 10)
	return b24test.Event("v1/onimcommandadd-private.form", map[string]string{
		"data[COMMAND][*][COMMAND]":         command,
		"data[COMMAND][*][COMMAND_PARAMS]":  params,
		"data[COMMAND][*][COMMAND_CONTEXT]": "KEYBOARD",
		"data[COMMAND][*][MESSAGE_ID]":      m,
		"data[COMMAND][*][BOT_ID]":          strconv.Itoa(testBotID),
		"data[PARAMS][MESSAGE_ID]":          m,
		"data[PARAMS][MESSAGE]":             "",
		"data[PARAMS][FROM_USER_ID]":        u,
		"data[PARAMS][AUTHOR_ID]":           u,
		"data[PARAMS][DIALOG_ID]":           dialogID,
		"data[PARAMS][LANGUAGE]":            "en",
		"data[USER][ID]":                    u,
		"auth[application_token]":           testToken,
	})
}

// typedCommand is ONIMCOMMANDADD for a registered slash command typed in a group chat.
func (b *runningBot) typedCommand(user, chatID int64, command, params string) []byte {
	b.t.Helper()
	chat, _ := b.portal.Chat(chatID)
	chat.ID = chatID
	id := strconv.FormatInt(nextMessageID.Add(1), 10)
	text := "/" + command
	if params != "" {
		text += " " + params
	}
	fields := groupFields(chat, user, id, text)
	fields["data[COMMAND][*][COMMAND]"] = command
	fields["data[COMMAND][*][COMMAND_PARAMS]"] = params
	fields["data[COMMAND][*][COMMAND_CONTEXT]"] = "TEXTAREA"
	fields["data[COMMAND][*][MESSAGE_ID]"] = id
	fields["data[COMMAND][*][BOT_ID]"] = strconv.Itoa(testBotID)
	fields["auth[application_token]"] = testToken
	return b24test.Event("v1/onimcommandadd-group.form", fields)
}

// openDialogs has the client open n dialogs and returns their chats, in order.
func (b *runningBot) openDialogs(n int) []int64 {
	b.t.Helper()
	for i := 0; i < n; i++ {
		b.mustPost(privateMessage(client, "en", "Question "+strconv.Itoa(i+1)))
	}
	b.portal.WaitCalls(b.t, "imbot.chat.add", n, 10*time.Second)
	waitIdle(b.t, b.dbPath)
	chats := b.chats()
	if len(chats) != n {
		b.t.Fatalf("%d chats, want %d", len(chats), n)
	}
	return chats
}

func chatDialog(id int64) string { return "chat" + strconv.FormatInt(id, 10) }

// TestEscalateAccessRequest: the access request goes only to the client's main chat;
// the client's press is recorded, announced in the dialog and disables the buttons;
// anyone else's press, or a second one, changes nothing.
func TestEscalateAccessRequest(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "escalate.db"))
	chats := b.openDialogs(4)
	d3 := chatDialog(chats[2])
	before3 := len(portal.Messages(d3))
	before27 := len(portal.Messages("27"))
	portal.Reset()

	b.mustPost(b.groupMessage(agentID, chats[2], "/escalate"))
	waitIdle(t, b.dbPath)
	adds := portal.CallsTo("imbot.message.add")
	if len(adds) != 1 {
		t.Fatalf("%d imbot.message.add after /escalate, want 1", len(adds))
	}
	req := adds[0]
	if req.Params.String("DIALOG_ID") != "27" {
		t.Fatalf("access request sent to %q", req.Params.String("DIALOG_ID"))
	}
	if got := len(portal.Messages(d3)); got != before3 {
		t.Fatalf("%d messages went to dialog 3's chat", got-before3)
	}
	msgs := portal.Messages("27")
	if len(msgs) != before27+1 {
		t.Fatalf("main chat got %d messages", len(msgs)-before27)
	}
	request := msgs[len(msgs)-1]
	if !strings.Contains(request.Text, "#3") || !strings.Contains(request.Text, "[chat="+strconv.FormatInt(chats[2], 10)+"]") {
		t.Errorf("request does not name dialog 3 with a link: %s", request.Text)
	}
	buttons := request.Buttons()
	if len(buttons) != 2 || buttons[0].Text != "Grant access" || buttons[1].Text != "Decline" {
		t.Fatalf("buttons %+v", buttons)
	}
	if dialogNumbered(t, b.dbPath, 3).EscalatedAt.IsZero() {
		t.Error("dialog 3 not marked escalated")
	}

	// A second /escalate while the request waits sends no second request.
	b.mustPost(b.typedCommand(agentID, chats[2], "escalate", ""))
	b.waitMessage(d3, before3, "already waiting for the client's answer")
	waitIdle(t, b.dbPath)
	toClient := 0
	for _, c := range portal.CallsTo("imbot.message.add") {
		if c.Params.String("DIALOG_ID") == "27" {
			toClient++
		}
	}
	if toClient != 1 {
		t.Fatalf("%d messages to the client after two /escalate", toClient)
	}
	if n := len(accessRequests(t, b.dbPath, 3)); n != 1 {
		t.Fatalf("%d access requests", n)
	}

	grant, decline := buttons[0], buttons[1]
	snapshot := func() string { return state(t, b.dbPath, "access", "dialogs") }
	// Someone else presses Grant: nothing changes.
	before := snapshot()
	portal.Reset()
	b.mustPost(press(28, "27", request.ID, grant.Command, grant.CommandParams))
	waitIdle(t, b.dbPath)
	if after := snapshot(); after != before || len(portal.Calls()) != 0 {
		t.Fatalf("another user's press changed something (%d calls)", len(portal.Calls()))
	}

	// The client grants.
	b.mustPost(press(client, "27", request.ID, grant.Command, grant.CommandParams))
	waitIdle(t, b.dbPath)
	if r := accessRequests(t, b.dbPath, 3); len(r) != 1 || r[0] != storage.AccessGranted+" 27 decided" {
		t.Fatal("the decision is not recorded with who and when")
	}
	b.waitMessage(d3, before3, "granted technical support access")
	updates := portal.CallsTo("imbot.message.update")
	if len(updates) != 1 || updates[0].Params.String("MESSAGE_ID") != strconv.FormatInt(request.ID, 10) {
		t.Fatalf("request message not updated: %+v", updates)
	}
	updated := portal.Messages("27")[len(msgs)-1]
	if len(updated.Buttons()) != 0 || !strings.Contains(updated.Text, "access granted") {
		t.Fatalf("updated request %q still has %d buttons", updated.Text, len(updated.Buttons()))
	}

	// Pressing again, or Decline afterwards, changes nothing.
	before = snapshot()
	portal.Reset()
	b.mustPost(press(client, "27", request.ID, grant.Command, grant.CommandParams))
	b.mustPost(press(client, "27", request.ID, decline.Command, decline.CommandParams))
	waitIdle(t, b.dbPath)
	if after := snapshot(); after != before || len(portal.Calls()) != 0 {
		t.Fatalf("a second press changed something (%d calls)", len(portal.Calls()))
	}
}

// TestAgentOpensPastLimit: at the limit the client is refused, an agent's /new in one
// of the dialogs opens a sixth.
func TestAgentOpensPastLimit(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "past.db"))
	chats := b.openDialogs(5)
	b.mustPost(privateMessage(client, "en", "open new"))
	b.waitMessage("27", 0, "maximum of 5")
	if n := countDialogs(t, b.dbPath, anyDialog); n != 5 {
		t.Fatalf("%d dialogs", n)
	}
	b.mustPost(b.groupMessage(agentID, chats[0], "/new Follow-up: permissions for the sales team"))
	adds := portal.WaitCalls(t, "imbot.chat.add", 6, 10*time.Second)
	users := adds[5].Params.Group("USERS")
	if users.String("0") != "27" {
		t.Fatalf("sixth chat is not the client's: %v", users)
	}
	waitIdle(t, b.dbPath)
	if n := countDialogs(t, b.dbPath, func(d storage.Dialog) bool { return d.ClientID == 27 && d.Active() }); n != 6 {
		t.Fatalf("%d active dialogs, want 6", n)
	}
	b.waitMessage("27", 0, "Support opened question #6 for you")
	b.waitMessage(chatDialog(chats[0]), 0, "Opened question #6 for the client")
	six := b.chats()[5]
	b.waitMessage(chatDialog(six), 0, "Follow-up: permissions for the sales team")
}

// TestCloseRateReopen: /close frees a place, the resolved dialog stays in the list
// under resolved, the rating is stored; the client's message in a resolved dialog
// reopens it under the limit and gets the limit message at it.
func TestCloseRateReopen(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "close.db"))
	chats := b.openDialogs(5)

	b.mustPost(b.typedCommand(agentID, chats[1], "close", ""))
	notice, seen := b.waitMessage("27", 0, "marked your question #2 as resolved")
	b.waitMessage(chatDialog(chats[1]), 0, "Question #2 is resolved")
	if dialogNumbered(t, b.dbPath, 2).Status != storage.StatusResolved {
		t.Fatal("dialog 2 not resolved")
	}
	// A place is free: the client opens a sixth dialog.
	b.mustPost(privateMessage(client, "en", "One more question"))
	portal.WaitCalls(t, "imbot.chat.add", 6, 10*time.Second)
	_, seen = b.waitMessage("27", seen, "Question #6 is open")
	// The resolved dialog is listed under resolved.
	b.mustPost(privateMessage(client, "en", "all chats"))
	list, seen := b.waitMessage("27", seen, "Your questions")
	resolvedAt := strings.Index(list.Text, "[b]Resolved[/b]")
	line := strings.Index(list.Text, "#2 · Support question — #2 · resolved")
	if resolvedAt < 0 || line < resolvedAt {
		t.Fatalf("dialog 2 is not listed under resolved: %s", list.Text)
	}

	// The rating press is stored, and the buttons turn into the answer.
	var helped, notHelped *string
	for _, btn := range notice.Buttons() {
		p := btn.CommandParams
		if strings.Contains(p, " up") {
			helped = &p
		} else if strings.Contains(p, " down") {
			notHelped = &p
		}
	}
	if helped == nil || notHelped == nil {
		t.Fatalf("rating buttons %+v", notice.Buttons())
	}
	b.mustPost(press(client, "27", notice.ID, "rate", *notHelped))
	waitIdle(t, b.dbPath)
	var ratings []storage.Rating
	view(t, b.dbPath, func(tx *storage.Tx) (err error) {
		ratings, err = tx.Ratings(dialogNumbered(t, b.dbPath, 2).ID)
		return err
	})
	if len(ratings) != 1 || ratings[0].Helped || ratings[0].UserID != 27 {
		t.Fatal("rating not stored")
	}
	if m := portal.Messages("27"); !strings.Contains(m[indexOf(m, notice.ID)].Text, "didn't help") {
		t.Error("rating message not updated")
	}

	// At the limit (five active again), the client's message in resolved №2 gets the
	// limit message there, and №2 stays resolved.
	b.mustPost(b.groupMessage(client, chats[1], "Actually, one more thing"))
	b.waitMessage(chatDialog(chats[1]), 0, "you already have 5 others open")
	if dialogNumbered(t, b.dbPath, 2).Status != storage.StatusResolved {
		t.Fatal("dialog 2 reopened past the limit")
	}
	// Under the limit it reopens.
	b.mustPost(b.groupMessage(agentID, chats[4], "/resolve"))
	b.waitMessage("27", seen, "#5 as resolved")
	b.mustPost(b.groupMessage(client, chats[1], "Still there?"))
	b.waitMessage(chatDialog(chats[1]), 0, "active again")
	if dialogNumbered(t, b.dbPath, 2).Status != storage.StatusActive {
		t.Fatal("dialog 2 not reopened")
	}
	// /reopen by an agent.
	b.mustPost(b.groupMessage(agentID, chats[4], "/reopen"))
	b.waitMessage(chatDialog(chats[4]), 0, "Question #5 is active again")
}

// accessRequests lists dialog №n's access requests, oldest first, as "status
// decided_by decided|undecided".
func accessRequests(t *testing.T, path string, n int) []string {
	t.Helper()
	return storagetest.Rows(t, storagetest.Location(t, path), `SELECT status, COALESCE(decided_by, 0),
		CASE WHEN decided_at IS NULL THEN 'undecided' ELSE 'decided' END FROM access_requests WHERE dialog_id = $1 ORDER BY id`,
		dialogNumbered(t, path, n).ID)
}

func indexOf(msgs []b24test.Message, id int64) int {
	for i, m := range msgs {
		if m.ID == id {
			return i
		}
	}
	return -1
}

// TestNonAgentsRefused: /close, /escalate, /new for others and /queue by non-agents
// change nothing.
func TestNonAgentsRefused(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "refuse.db"))
	chats := b.openDialogs(5)
	snapshot := func() string {
		return state(t, b.dbPath, "access", "ratings") + strconv.Itoa(countDialogs(t, b.dbPath, func(d storage.Dialog) bool {
			return d.Active() && d.EscalatedAt.IsZero()
		}))
	}
	before := snapshot()
	for _, who := range []int64{client, strangerID, 28} {
		for _, cmd := range []string{"/close", "/resolve", "/escalate", "/reopen", "/queue", "/new for the client"} {
			b.mustPost(b.groupMessage(who, chats[0], cmd))
		}
		b.mustPost(b.typedCommand(who, chats[0], "escalate", ""))
		b.mustPost(privateMessage(who, "en", "/queue"))
	}
	waitIdle(t, b.dbPath)
	if after := snapshot(); after != before {
		t.Fatalf("non-agents changed state:\n%s\n%s", before, after)
	}
	if n := len(portal.CallsTo("imbot.chat.add")); n != 5 {
		t.Fatalf("%d chats", n)
	}
	for _, c := range portal.CallsTo("imbot.message.add") {
		if c.Params.Group("KEYBOARD").String("BUTTONS", "0", "COMMAND") == "access" {
			t.Fatal("an access request was sent")
		}
	}
	b.waitMessage("99", 0, "Only support agents")
	b.waitMessage(chatDialog(chats[0]), 0, "Only support agents")
}

// TestQueue: /queue lists active dialogs waiting for an answer, longest waiting first,
// with the agents' unread counts.
func TestQueue(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "queue.db"))
	chats := b.openDialogs(4)
	// Every dialog starts with the client's question: answer them all, so the queue
	// is decided by what follows.
	for _, c := range chats {
		b.mustPost(b.groupMessage(agentID, c, "Hello, looking into it"))
	}
	step := func() { time.Sleep(15 * time.Millisecond) }
	b.mustPost(b.groupMessage(client, chats[2], "waiting longest 1")) // №3
	step()
	b.mustPost(b.groupMessage(client, chats[0], "then 1")) // №1
	step()
	b.mustPost(b.groupMessage(client, chats[2], "waiting longest 2"))
	b.mustPost(b.groupMessage(client, chats[2], "waiting longest 3"))
	step()
	b.mustPost(b.groupMessage(client, chats[3], "latest")) // №4
	b.mustPost(b.groupMessage(client, chats[1], "answered below"))
	b.mustPost(b.groupMessage(agentID, chats[1], "answer")) // №2 is not waiting

	b.mustPost(privateMessage(agentID, "en", "/queue"))
	msg, _ := b.waitMessage("50", 0, "Waiting for an answer")
	lines := strings.Split(msg.Text, "\n")
	if len(lines) != 4 {
		t.Fatalf("queue:\n%s", msg.Text)
	}
	want := []struct {
		number string
		unread string
	}{{"#3", "new messages: 3"}, {"#1", "new messages: 1"}, {"#4", "new messages: 1"}}
	for i, w := range want {
		l := lines[i+1]
		if !strings.HasPrefix(l, w.number+" ·") || !strings.Contains(l, w.unread) || !strings.Contains(l, "waiting 0 min") {
			t.Errorf("line %d: %q, want %s with %s", i+1, l, w.number, w.unread)
		}
	}
	if !strings.Contains(msg.Text, "Waiting for an answer[/b]: 3") {
		t.Errorf("header: %s", lines[0])
	}
}

// TestCommandsSameEitherWay: a slash command typed as text and the same command
// arriving as ONIMCOMMANDADD get the same answer.
func TestCommandsSameEitherWay(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "same.db"))
	chats := b.openDialogs(2)
	b.mustPost(b.groupMessage(agentID, chats[0], "An answer"))

	b.mustPost(privateMessage(client, "en", "/chats"))
	asText, seen := b.waitMessage("27", 0, "Your questions")
	id := strconv.FormatInt(nextMessageID.Add(1), 10)
	b.mustPost(b24test.Event("v1/onimcommandadd-private.form", map[string]string{
		"data[COMMAND][*][COMMAND]":        "chats",
		"data[COMMAND][*][COMMAND_PARAMS]": "",
		"data[COMMAND][*][MESSAGE_ID]":     id,
		"data[COMMAND][*][BOT_ID]":         strconv.Itoa(testBotID),
		"data[PARAMS][MESSAGE_ID]":         id,
		"data[PARAMS][MESSAGE]":            "/chats",
		"data[PARAMS][FROM_USER_ID]":       "27",
		"data[PARAMS][AUTHOR_ID]":          "27",
		"data[PARAMS][DIALOG_ID]":          "27",
		"data[USER][ID]":                   "27",
		"auth[application_token]":          testToken,
	}))
	asCommand, _ := b.waitMessage("27", seen, "Your questions")
	if asText.Text != asCommand.Text {
		t.Fatalf("text:\n%s\ncommand:\n%s", asText.Text, asCommand.Text)
	}
}

// TestBotDeleted: after ONIMBOTDELETE nothing more is sent to the portal; events are
// still stored.
func TestBotDeleted(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "deleted.db"))
	b.openDialogs(1)
	b.mustPost(b24test.Event("v1/onimbotdelete.form", map[string]string{"auth[application_token]": testToken}))
	portal.Reset()
	b.mustPost(privateMessage(client, "en", "Anyone there?"))
	if n := countDialogs(t, b.dbPath, anyDialog); n != 2 {
		t.Fatalf("%d dialogs: the data must stay", n)
	}
	// The new dialog's calls wait in the outbox, and none of them is due: the
	// dispatcher sends nothing but what is due.
	due, err := storeAt(t, b.dbPath).DuePortals(context.Background())
	if err != nil || len(due) != 0 || countOutbox(t, b.dbPath, storage.OutboxPending) == 0 {
		t.Fatalf("after the bot was deleted: %d due (%v), %d pending", len(due), err, countOutbox(t, b.dbPath, storage.OutboxPending))
	}
	if n := len(portal.Calls()); n != 0 {
		t.Fatalf("%d calls after the bot was deleted", n)
	}
}
