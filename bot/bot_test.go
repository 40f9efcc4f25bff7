package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

const (
	admin      = 27
	integrator = 28
	agent      = 50
	stranger   = 99
	botID      = 567
)

// harness runs the bot over a real SQLite file, one event per transaction, as the
// handler does.
type harness struct {
	t      *testing.T
	store  *storage.Store
	bot    *Bot
	portal storage.Portal
	nextID int64
	seen   int // outbox entries already returned by sent()
}

func newHarness(t *testing.T, mutate ...func(*Config)) *harness {
	t.Helper()
	store := storagetest.Open(t)
	portal, err := store.EnsurePortal(context.Background(), "test", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Agents: []int64{agent}, Admins: []int64{admin}, Integrators: []int64{integrator}, MaxActive: 5, Language: "ru"}
	for _, m := range mutate {
		m(&cfg)
	}
	return &harness{t: t, store: store, bot: New(cfg, nil), portal: portal, nextID: 1000}
}

func (h *harness) process(ev bitrix24.Event) Outcome {
	h.t.Helper()
	var out Outcome
	err := h.store.Update(context.Background(), func(tx *storage.Tx) (err error) {
		out, err = h.bot.Take(tx, Arrival{PortalID: h.portal.ID, Event: ev})
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// private is a message from user in their main chat with the bot.
func (h *harness) private(user int64, text string) *bitrix24.MessageAdd {
	h.nextID++
	return &bitrix24.MessageAdd{
		Envelope: bitrix24.Envelope{Type: bitrix24.EventMessageAdd},
		BotID:    botID,
		Message: bitrix24.Message{ID: h.nextID, Chat: fmt.Sprint(user), ChatType: "P", FromUserID: user,
			Text: text, Language: "en"},
		User: bitrix24.User{ID: user, Name: fmt.Sprintf("User %d", user)},
	}
}

// group is a message from user in group chat chatID.
func (h *harness) group(user, chatID int64, title, text string) *bitrix24.MessageAdd {
	h.nextID++
	return &bitrix24.MessageAdd{
		Envelope: bitrix24.Envelope{Type: bitrix24.EventMessageAdd},
		BotID:    botID,
		Message: bitrix24.Message{ID: h.nextID, Chat: bitrix24.GroupChat(chatID), ChatID: chatID, ChatType: "C",
			FromUserID: user, Text: text, ChatTitle: title, Language: "en"},
		User: bitrix24.User{ID: user, Name: fmt.Sprintf("User %d", user)},
	}
}

func (h *harness) press(user int64, dialogID string, chatID int64, name, params string) *bitrix24.CommandAdd {
	h.nextID++
	chatType := "P"
	if chatID != 0 {
		chatType = "C"
	}
	return &bitrix24.CommandAdd{
		Envelope: bitrix24.Envelope{Type: bitrix24.EventCommandAdd},
		Command:  bitrix24.Command{ID: 1, BotID: botID, Name: name, Params: params, Context: bitrix24.ContextKeyboard, MessageID: 500},
		Message:  bitrix24.Message{ID: 500, Chat: dialogID, ChatID: chatID, ChatType: chatType, FromUserID: user, Language: "en"},
		User:     bitrix24.User{ID: user},
	}
}

// sent returns the outbox entries queued since the last call, with the answers
// that only read written now, as the dispatcher writes them just before sending.
func (h *harness) sent() []storage.OutboxRow {
	h.t.Helper()
	out := h.rawSent()
	for i, e := range out {
		if e.Answer == "" {
			continue
		}
		a, err := h.bot.WriteAnswer(context.Background(), h.store, e.Answer, e.PortalID, act(h.t, e))
		if err == nil {
			out[i].Kind, out[i].Action, err = bitrix24.EncodeAction(a)
		}
		if err != nil {
			h.t.Fatal(err)
		}
	}
	return out
}

// rawSent returns the outbox entries queued since the last call, as queued.
func (h *harness) rawSent() []storage.OutboxRow {
	h.t.Helper()
	all, err := h.store.Outbox(context.Background(), h.portal.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	out := all[h.seen:]
	h.seen = len(all)
	return out
}

// createChats plays the portal's side: every pending imbot.chat.add gets a chat.
// oneDialog opens a dialog for client with question and gives it its chat, the outbox
// read: the chat's ID.
func (h *harness) oneDialog(client int64, question string) int64 {
	h.t.Helper()
	h.process(h.private(client, question))
	chats := h.createChats()
	h.sent()
	for _, c := range chats {
		return c
	}
	h.t.Fatal("no dialog opened")
	return 0
}

func (h *harness) createChats() map[int]int64 {
	h.t.Helper()
	chats := map[int]int64{}
	all, _ := h.store.Outbox(context.Background(), h.portal.ID)
	err := h.store.Update(context.Background(), func(tx *storage.Tx) error {
		for _, e := range all {
			if e.Kind != bitrix24.KindCreateChat || e.State != storage.OutboxPending {
				continue
			}
			d, err := tx.Dialog(e.EffectRef)
			if err != nil {
				return err
			}
			chat := 2000 + int64(d.Number)
			if _, err := tx.CompleteOutbox(e.ID, json.RawMessage(fmt.Sprint(chat))); err != nil {
				return err
			}
			if err := tx.SetDialogChat(d.ID, chat); err != nil {
				return err
			}
			chats[d.Number] = chat
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return chats
}

// act is an outbox entry's action as the bot wrote it.
func act(t *testing.T, e storage.OutboxRow) bitrix24.Action {
	t.Helper()
	a, err := bitrix24.DecodeAction(e.Kind, e.Action)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// text is the text of a message the entry sends or updates.
func text(t *testing.T, e storage.OutboxRow) string {
	t.Helper()
	switch a := act(t, e).(type) {
	case bitrix24.SendMessage:
		return a.Text
	case bitrix24.UpdateMessage:
		return a.Text
	}
	t.Fatalf("%s is not a message", e.Kind)
	return ""
}

// sentTo is where a message the entry sends goes.
func sentTo(t *testing.T, e storage.OutboxRow) string {
	t.Helper()
	a, ok := act(t, e).(bitrix24.SendMessage)
	if !ok {
		t.Fatalf("%s does not send a message", e.Kind)
	}
	return a.To
}

// keyboard is the JSON of the keyboard a message the entry sends carries.
func keyboard(t *testing.T, e storage.OutboxRow) string {
	t.Helper()
	a, ok := act(t, e).(bitrix24.SendMessage)
	if !ok {
		t.Fatalf("%s does not send a message", e.Kind)
	}
	b, _ := json.Marshal(a.Keyboard)
	return string(b)
}

func kinds(list []storage.OutboxRow) string {
	var s []string
	for _, e := range list {
		s = append(s, e.Kind)
	}
	return strings.Join(s, ",")
}

func TestQuestionInMainChatOpensDialog(t *testing.T) {
	h := newHarness(t)
	if out := h.process(h.private(admin, "How do I [USER=all] export deals?")); out != Processed {
		t.Fatalf("outcome %v", out)
	}
	sent := h.sent()
	if kinds(sent) != "create_chat,send_message,send_message" {
		t.Fatalf("queued %s", kinds(sent))
	}
	add := act(t, sent[0]).(bitrix24.CreateChat)
	if add.Title != "Support question — #1" {
		t.Errorf("title %q", add.Title)
	}
	if fmt.Sprint(add.Users) != "[27 50]" {
		t.Errorf("users %v", add.Users)
	}
	if add.EntityType != EntityType || !strings.HasPrefix(add.EntityID, "question|") {
		t.Errorf("entity %s %s", add.EntityType, add.EntityID)
	}
	if p, _ := h.store.Portal(context.Background(), h.portal.ID); p.BotID != botID {
		t.Errorf("bot ID %d: the bot's ID is learnt from the event", p.BotID)
	}
	greeting, answer := sent[1], sent[2]
	if greeting.AwaitsDialog == 0 || answer.AwaitsDialog == 0 || greeting.Lane != sent[0].Lane || answer.Lane != outbox.ClientLane(27).String() {
		t.Errorf("greeting %+v answer %+v", greeting, answer)
	}
	if got := sentTo(t, greeting); got != bitrix24.AwaitedChat {
		t.Errorf("greeting goes to %q, want the awaited chat", got)
	}
	// The question is quoted in the greeting with its BB-code neutralised.
	if msg := text(t, greeting); strings.Contains(msg, "[USER=all]") || !strings.Contains(msg, "export deals?") {
		t.Errorf("greeting %q", msg)
	}
	if got := sentTo(t, answer); got != "27" {
		t.Errorf("answer goes to %q", got)
	}
	// The question is the first message of the transcript.
	h.store.Update(context.Background(), func(tx *storage.Tx) error {
		d, err := tx.DialogByNumber(h.portal.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		tr, _ := tx.Transcript(d.ID)
		if len(tr) != 1 || tr[0].Text != "How do I [USER=all] export deals?" || tr[0].AuthorRole != storage.RoleClient {
			t.Errorf("transcript %+v", tr)
		}
		return nil
	})
}

func TestLimitAndRefusals(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 5; i++ {
		h.process(h.private(integrator, "open new"))
	}
	if got := strings.Count(kinds(h.sent()), "create_chat"); got != 5 {
		t.Fatalf("%d chats for five requests", got)
	}
	h.process(h.private(integrator, "/new one more"))
	sent := h.sent()
	if kinds(sent) != "send_message" {
		t.Fatalf("sixth request queued %s", kinds(sent))
	}
	msg := text(t, sent[0])
	for n := 1; n <= 5; n++ {
		if !strings.Contains(msg, fmt.Sprintf("#%d", n)) {
			t.Errorf("limit message does not list #%d: %s", n, msg)
		}
	}
	for _, who := range []int64{stranger} {
		h.process(h.private(who, "open new"))
		h.process(h.private(who, "I have a question"))
		sent := h.sent()
		if kinds(sent) != "send_message,send_message" || !strings.Contains(text(t, sent[0]), "administrators and integrators") {
			t.Fatalf("stranger got %s: %s", kinds(sent), text(t, sent[0]))
		}
	}
}

func TestFreePlanRefusesClients(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.FreePlan = true })
	h.process(h.private(admin, "Question"))
	h.process(h.private(admin, "all chats"))
	for _, e := range h.sent() {
		if e.Kind != bitrix24.KindSendMessage || !strings.Contains(text(t, e), "commercial") {
			t.Fatalf("free plan: %s %s", e.Kind, e.Action)
		}
	}
}

func TestUnreadRenameAndReopenFlow(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "first"))
	h.process(h.private(admin, "second"))
	chats := h.createChats()
	h.sent()

	// An agent answers in dialog 2: one unread.
	h.process(h.group(agent, chats[2], "Support question — #2", "Here is how"))
	h.process(h.private(admin, "all chats"))
	list := text(t, h.sent()[0])
	if !strings.Contains(list, "unread messages: 1") || !strings.Contains(list, "#2 · Support question — #2 · active · unread: 1") {
		t.Fatalf("list: %s", list)
	}
	// The client answers there: read.
	h.process(h.group(admin, chats[2], "Support question — #2", "Thanks"))
	h.process(h.private(admin, "all chats"))
	if list := text(t, h.sent()[0]); !strings.Contains(list, "unread messages: 0") {
		t.Fatalf("list after answer: %s", list)
	}

	// Opening from the list marks read too.
	h.process(h.group(agent, chats[1], "", "Answer 1"))
	h.process(h.press(admin, "27", 0, cmdOpen, "1"))
	sent := h.sent()
	if len(sent) != 1 || !strings.Contains(keyboard(t, sent[0]), `"ACTION_VALUE":"chat2001"`) {
		t.Fatalf("open: %s", sent[0].Action)
	}
	h.process(h.private(admin, "all chats"))
	if list := text(t, h.sent()[0]); !strings.Contains(list, "unread messages: 0") {
		t.Fatalf("list after open: %s", list)
	}

	// Rename from the main chat, with BB-code in the title.
	h.process(h.private(admin, "rename 2 [URL=http://evil]Billing[/URL]"))
	sent = h.sent()
	if kinds(sent) != "rename_chat,send_message" || act(t, sent[0]).(bitrix24.RenameChat).Title != "[URL=http://evil]Billing[/URL]" {
		t.Fatalf("rename queued %s %s", kinds(sent), sent[0].Action)
	}
	if msg := text(t, sent[1]); strings.Contains(msg, "[URL=") {
		t.Fatalf("title reached a message unescaped: %q", msg)
	}
	// While our rename is pending, an event's older title is not taken.
	h.process(h.group(admin, chats[2], "Support question — #2", "still here"))
	h.store.Update(context.Background(), func(tx *storage.Tx) error {
		d, _ := tx.DialogByNumber(h.portal.ID, 2)
		if d.Title != "[URL=http://evil]Billing[/URL]" {
			t.Errorf("title reverted to %q", d.Title)
		}
		return tx.TitleSent(d.ID)
	})
	h.sent()
	// A rename in the Bitrix24 UI arrives as CHAT_TITLE.
	h.process(h.group(agent, chats[2], "Renamed in UI", "ok"))
	h.process(h.private(admin, "all chats"))
	if list := text(t, h.sent()[0]); !strings.Contains(list, "Renamed in UI") {
		t.Fatalf("UI rename not picked up: %s", list)
	}

	// Someone else's dialog cannot be renamed by a client.
	h.process(h.private(integrator, "rename 1 Mine now"))
	if sent := h.sent(); kinds(sent) != "send_message" || !strings.Contains(text(t, sent[0]), "not among yours") {
		t.Fatalf("foreign rename: %s", kinds(sent))
	}
}

func TestClientWritingInResolvedDialog(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxActive = 2 })
	h.process(h.private(admin, "one"))
	h.process(h.private(admin, "two"))
	chats := h.createChats()
	h.store.Update(context.Background(), func(tx *storage.Tx) error {
		d, _ := tx.DialogByNumber(h.portal.ID, 1)
		return tx.SetDialogStatus(d.ID, storage.StatusResolved)
	})
	h.process(h.private(admin, "three")) // takes the freed place
	h.createChats()
	h.sent()
	h.process(h.group(admin, chats[1], "", "one more thing"))
	sent := h.sent()
	if len(sent) != 1 || !strings.Contains(text(t, sent[0]), "resolved") || sentTo(t, sent[0]) != "chat2001" {
		t.Fatalf("at the limit: %s %s", kinds(sent), sent[0].Action)
	}
	h.store.Update(context.Background(), func(tx *storage.Tx) error {
		d, _ := tx.DialogByNumber(h.portal.ID, 3)
		return tx.SetDialogStatus(d.ID, storage.StatusResolved)
	})
	h.process(h.group(admin, chats[1], "", "again"))
	if sent := h.sent(); len(sent) != 1 || !strings.Contains(text(t, sent[0]), "active again") {
		t.Fatalf("under the limit: %s", sent[0].Action)
	}
}

func TestDuplicateEventProcessedOnce(t *testing.T) {
	h := newHarness(t)
	ev := h.private(admin, "question")
	if h.process(ev) != Processed || h.process(ev) != Duplicate {
		t.Fatal("duplicate not detected")
	}
	// The same message as a typed command (ONIMCOMMANDADD) shares the key.
	msg := h.private(admin, "/chats")
	cmd := &bitrix24.CommandAdd{
		Envelope: bitrix24.Envelope{Type: bitrix24.EventCommandAdd},
		Command:  bitrix24.Command{Name: "chats", Context: bitrix24.ContextTextarea, MessageID: msg.Message.ID},
		Message:  msg.Message, User: msg.User,
	}
	if h.process(cmd) != Processed || h.process(msg) != Duplicate {
		t.Fatal("typed command and its message both processed")
	}
	if got := strings.Count(kinds(h.sent()), "create_chat"); got != 1 {
		t.Fatalf("%d dialogs", got)
	}
}

func TestTranscriptEditsAndDeletes(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "q"))
	chats := h.createChats()
	ev := h.group(agent, chats[1], "", "first answer")
	h.process(ev)
	// Someone else's edit or deletion of the agent's message changes nothing.
	forged := &bitrix24.MessageUpdate{Envelope: bitrix24.Envelope{Type: bitrix24.EventMessageUpdate}, Message: ev.Message, User: bitrix24.User{ID: admin}}
	forged.Message.Text = "rewritten by someone else"
	h.process(forged)
	h.process(&bitrix24.MessageDelete{Envelope: bitrix24.Envelope{Type: bitrix24.EventMessageDelete}, Message: ev.Message, User: bitrix24.User{ID: admin}})
	h.store.View(context.Background(), func(tx *storage.Tx) error {
		d, _ := tx.DialogByNumber(h.portal.ID, 1)
		tr, _ := tx.Transcript(d.ID)
		if len(tr) != 2 || tr[1].Text != "first answer" || !tr[1].EditedAt.IsZero() || !tr[1].DeletedAt.IsZero() {
			t.Errorf("another user changed the agent's message: %+v", tr)
		}
		return nil
	})
	edit := &bitrix24.MessageUpdate{Envelope: bitrix24.Envelope{Type: bitrix24.EventMessageUpdate}, Message: ev.Message, User: ev.User}
	edit.Message.Text = "edited answer"
	h.process(edit)
	del := &bitrix24.MessageDelete{Envelope: bitrix24.Envelope{Type: bitrix24.EventMessageDelete}, Message: ev.Message, User: ev.User}
	h.process(del)
	h.store.Update(context.Background(), func(tx *storage.Tx) error {
		d, _ := tx.DialogByNumber(h.portal.ID, 1)
		tr, _ := tx.Transcript(d.ID)
		if len(tr) != 2 || tr[1].Text != "edited answer" || tr[1].EditedAt.IsZero() || tr[1].DeletedAt.IsZero() {
			t.Errorf("transcript %+v", tr)
		}
		if n, _ := tx.Unread(d.ID); n != 0 {
			t.Errorf("a deleted message counts as unread: %d", n)
		}
		return nil
	})
}

// TestEntityClaimBindsNothing: a chat whose events claim a dialog's entity while the
// dialog's chat is being created is not bound to it. What was written there enters
// the transcript only if the portal's answer to the bot's own call names that chat.
func TestEntityClaimBindsNothing(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "q1"))
	h.process(h.private(admin, "q2"))
	h.sent()
	claim := func(user, chatID int64, dialog storage.Dialog, text string) {
		ev := h.group(user, chatID, "Support question", text)
		ev.Message.ChatEntityType, ev.Message.ChatEntityID = EntityType, fmt.Sprintf("question|%d", dialog.ID)
		h.process(ev)
	}
	var d1, d2 storage.Dialog
	h.store.View(context.Background(), func(tx *storage.Tx) error {
		d1, _ = tx.DialogByNumber(h.portal.ID, 1)
		d2, _ = tx.DialogByNumber(h.portal.ID, 2)
		return nil
	})
	claim(stranger, 6666, d2, "stranger's words") // a stranger's own chat
	claim(admin, 3001, d1, "written before the answer came")
	if sent := h.sent(); len(sent) != 0 {
		t.Fatalf("claims got answers: %s", kinds(sent))
	}
	// The portal answers: dialog 1's chat is 3001, dialog 2's is 3002.
	h.store.Update(context.Background(), func(tx *storage.Tx) error {
		all, _ := h.store.Outbox(context.Background(), h.portal.ID)
		for _, e := range all {
			if e.Kind == bitrix24.KindCreateChat {
				chat := int64(3001)
				if e.EffectRef == d2.ID {
					chat = 3002
				}
				if err := h.bot.Outbox().Settle(tx, h.bot.Outbox().Read(e), chat, false); err != nil {
					return err
				}
			}
		}
		return nil
	})
	h.store.View(context.Background(), func(tx *storage.Tx) error {
		if _, err := tx.DialogByChat(h.portal.ID, 6666); err == nil {
			t.Error("the stranger's chat took dialog 2 over")
		}
		tr1, _ := tx.Transcript(d1.ID)
		if len(tr1) != 2 || tr1[1].Text != "written before the answer came" || tr1[1].AuthorRole != storage.RoleClient {
			t.Errorf("dialog 1's transcript %+v: the message from its own chat is missing", tr1)
		}
		tr2, _ := tx.Transcript(d2.ID)
		for _, m := range tr2 {
			if m.Text == "stranger's words" {
				t.Errorf("the stranger's message entered dialog 2's transcript")
			}
		}
		return nil
	})
}

func TestLanguageFallback(t *testing.T) {
	h := newHarness(t)
	ev := h.private(admin, "помощь")
	ev.Message.Language = "de"
	h.process(ev)
	if msg := text(t, h.sent()[0]); !strings.Contains(msg, "Поддержка") {
		t.Fatalf("fallback language not Russian: %s", msg)
	}
}

func TestBotDeleteStopsSending(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "q"))
	h.process(&bitrix24.BotDelete{Envelope: bitrix24.Envelope{Type: bitrix24.EventBotDelete}, BotID: botID})
	due, err := h.store.DuePortals(context.Background())
	if err != nil || len(due) != 0 {
		t.Fatalf("due after bot deletion: %d %v", len(due), err)
	}
}

// TestPencilRenameOnlyByTheChatsPeople: a title that comes with a message (the
// pencil) is the dialog's new title only when the client or support wrote it: an
// event proves who wrote it, not that they are in the chat it names. And "/rename"
// in a dialog takes a title that begins with a number.
func TestPencilRenameOnlyByTheChatsPeople(t *testing.T) {
	h := newHarness(t)
	chats := map[int]int64{1: h.oneDialog(admin, "first")}
	h.process(h.group(stranger, chats[1], "Pay at evil.example", "your account is suspended"))
	h.process(h.private(admin, "all chats"))
	if list := text(t, h.sent()[0]); strings.Contains(list, "evil.example") {
		t.Fatalf("a stranger renamed the dialog: %s", list)
	}
	h.process(h.group(admin, chats[1], "Printing invoices", "thanks"))
	h.process(h.private(admin, "all chats"))
	if list := text(t, h.sent()[0]); !strings.Contains(list, "Printing invoices") {
		t.Fatalf("the client's rename was not taken: %s", list)
	}
	// An agent renames another dialog from inside this one: its client does not see
	// the other dialog's title; the agent hears it in their own chat.
	h.process(h.private(integrator, "theirs"))
	theirs := h.createChats()[2]
	h.sent()
	h.process(h.group(agent, chats[1], "", "rename 2 Merger with ACME"))
	for _, e := range h.sent() {
		if e.Kind != bitrix24.KindSendMessage {
			continue
		}
		if to := sentTo(t, e); strings.Contains(text(t, e), "ACME") && to != bitrix24.UserChat(agent) {
			t.Errorf("dialog 2's new title went to %s (dialog 1 is %s, 2 is %s)", to, bitrix24.GroupChat(chats[1]), bitrix24.GroupChat(theirs))
		}
	}
	// Inside a dialog the number may be left out, so a number that names none of the
	// author's dialogs is the title's first word.
	h.process(h.group(admin, chats[1], "", "/rename 2024 budget report"))
	h.sent()
	h.process(h.private(admin, "all chats"))
	if list := text(t, h.sent()[0]); !strings.Contains(list, "2024 budget report") {
		t.Fatalf("a title beginning with a number: %s", list)
	}
}

// TestQueueInADialogGoesToTheAgent: /queue names other clients and their questions.
// Typed in a dialog, whose client reads along, it goes to the agent's own chat with
// the bot, as /stats does; the dialog only hears where it went.
func TestQueueInADialogGoesToTheAgent(t *testing.T) {
	h := newHarness(t)
	for _, q := range []struct { // №1 the integrator's, №2 the administrator's
		who  int64
		text string
	}{{integrator, "Secret merger: how to hide deals from staff?"}, {admin, "my question"}} {
		h.process(h.private(q.who, q.text))
	}
	chats := h.createChats()
	h.process(h.private(integrator, "rename 1 Merger with ACME"))
	h.sent()
	h.process(h.group(agent, chats[2], "", "/queue"))
	toAgent := false
	for _, e := range h.sent() {
		if e.Kind != "send_message" {
			continue
		}
		switch to, msg := sentTo(t, e), text(t, e); {
		case to == bitrix24.GroupChat(chats[2]) && strings.Contains(msg, "ACME"):
			t.Errorf("the queue went into client %d's dialog: %q", admin, msg)
		case to == bitrix24.UserChat(agent) && strings.Contains(msg, "ACME"):
			toAgent = true
		}
	}
	if !toAgent {
		t.Error("the queue did not reach the agent's own chat")
	}
}

// TestSentencesThatBeginLikeACommand: "rename" and "open new" are also words people
// begin sentences with. A question "Rename of a deal stage fails…" opens a dialog; an
// agent's answer "Open new tab…" is a message, not a new dialog for the client; a
// client's "rename button is missing…" in their dialog renames nothing.
func TestSentencesThatBeginLikeACommand(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "Rename of a deal stage fails with an error, what do I do?"))
	if got := kinds(h.sent()); !strings.Contains(got, "create_chat") {
		t.Fatalf("the question opened no dialog: %s", got)
	}
	chats := h.createChats()
	h.sent()
	h.process(h.group(agent, chats[1], "", "Open new tab in the browser and reload the report"))
	if got := kinds(h.sent()); strings.Contains(got, "create_chat") {
		t.Errorf("an agent's answer opened a new dialog for the client: %s", got)
	}
	h.process(h.group(admin, chats[1], "", "rename button is missing in the report too"))
	h.sent()
	h.process(h.private(admin, "all chats"))
	if list := text(t, h.sent()[0]); strings.Contains(list, "button is missing") {
		t.Errorf("the client's sentence renamed the dialog: %s", list)
	}
}
