package bot

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// members are the users with a role on the harness's portal.
func (h *harness) members(role string) (ids []int64) {
	h.t.Helper()
	err := h.store.View(context.Background(), func(tx *storage.Tx) (err error) {
		ids, err = tx.Members(h.portal.ID, role)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return ids
}

// answer is the one message an event queued, with its keyboard's JSON.
func (h *harness) answer(ev bitrix24.Event) (string, string) {
	h.t.Helper()
	h.process(ev)
	sent := h.sent()
	if kinds(sent) != bitrix24.KindSendMessage {
		h.t.Fatalf("queued %s, want one message", kinds(sent))
	}
	return text(h.t, sent[0]), keyboard(h.t, sent[0])
}

// TestNoAgentsIsSaidAloud: the administrator who removes the last agent is told that
// nobody answers now; a question asked then opens no dialog (a chat of the client
// and the bot alone) and the client hears why, in their language, with the question
// kept for later; once there is an agent again, questions open.
func TestNoAgentsIsSaidAloud(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "/agents"))
	h.sent()
	list, _ := h.answer(h.private(admin, "/agents remove 50"))
	if !strings.Contains(list, "Support agents: nobody yet.") || !strings.Contains(list, textsEN.NoAgentsLeft) {
		t.Fatalf("the last agent removed: %q", list)
	}

	answer, kb := h.answer(h.private(admin, "How do I export deals?"))
	if answer != textsEN.NoAgents || !strings.Contains(kb, `"ACTION":"PUT"`) || !strings.Contains(kb, "How do I export deals?") {
		t.Fatalf("a question with no agents: %q %s", answer, kb)
	}
	ru := h.private(admin, "открыть новый")
	ru.Message.Language = "ru"
	if answer, kb := h.answer(ru); answer != textsRU.NoAgents || kb != "null" {
		t.Fatalf("open new with no agents, in Russian: %q %s", answer, kb)
	}
	var r PageResult
	h.page(func(tx *storage.Tx, p storage.Portal) (err error) {
		r, err = h.bot.PageOpenNew(tx, p, Viewer{UserID: admin}, "en", "from the page", "page-1")
		return err
	})
	if r.Refusal != plain(textsEN.NoAgents) || r.Number != 0 || len(h.sent()) != 0 {
		t.Fatalf("the page's Open new with no agents: %+v", r)
	}

	h.process(h.private(admin, "/agents add 51"))
	if list := text(t, h.sent()[0]); strings.Contains(list, textsEN.NoAgentsLeft) {
		t.Fatalf("warned with an agent: %q", list)
	}
	h.process(h.private(admin, "How do I export deals?"))
	sent := h.sent()
	if kinds(sent) != "create_chat,send_message,send_message" {
		t.Fatalf("a question with an agent queued %s", kinds(sent))
	}
	if users := act(t, sent[0]).(bitrix24.CreateChat).Users; fmt.Sprint(users) != "[27 51]" {
		t.Fatalf("the chat's users %v", users)
	}
}

// TestRolesAreBounded: no ID beyond what Bitrix24 gives a user is taken; a role
// takes no more than its bound (the list is left as it was, and the administrator is
// told why); the list comes a page at a time, with a button to the next, however
// long it is.
func TestRolesAreBounded(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "/agents"))
	h.sent()
	for _, ids := range []string{"9223372036854775807", "2147483648", "[USER=9223372036854775807]x[/USER]"} {
		if answer, _ := h.answer(h.private(admin, "/agents add "+ids)); answer != textsEN.RolesUsage("agents") {
			t.Errorf("/agents add %s: %q", ids, answer)
		}
	}
	if got := h.members(storage.RoleAgent); fmt.Sprint(got) != "[50]" {
		t.Fatalf("agents after absurd IDs: %v", got)
	}
	h.answer(h.private(admin, "/agents add 2147483647"))

	// Agents: up to 100 (50 and 2147483647 are two of them).
	add := func(command string, from, n int) string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprint(from + i)
		}
		answer, _ := h.answer(h.private(admin, command+" add "+strings.Join(ids, " ")))
		return answer
	}
	add("/agents", 1000, 98)
	if n := len(h.members(storage.RoleAgent)); n != 100 {
		t.Fatalf("%d agents", n)
	}
	if answer := add("/agents", 2000, 1); answer != textsEN.RolesFull(100, 100) {
		t.Fatalf("the 101st agent: %q", answer)
	}
	if answer := add("/agents", 1000, 5); !strings.HasPrefix(answer, "Support agents (100): ") {
		t.Fatalf("agents already there, added again: %q", answer)
	}
	if n := len(h.members(storage.RoleAgent)); n != 100 {
		t.Fatalf("%d agents after a refusal", n)
	}

	// Clients: up to 1000 (27 and 28 are two of them), listed 100 a page.
	for i := range 10 {
		add("/clients", 10000+100*i, min(100, 998-100*i))
	}
	if answer := add("/clients", 20000, 1); answer != textsEN.RolesFull(1000, 1000) {
		t.Fatalf("the 1001st client: %q", answer)
	}
	seen := map[string]bool{}
	next := ""
	for p := 1; ; p++ {
		var answer, kb string
		if p == 1 {
			answer, kb = h.answer(h.private(admin, "/clients"))
		} else {
			answer, kb = h.answer(h.press(admin, "27", 0, cmdClients, next))
		}
		if n := len([]rune(answer)); n > 2000 {
			t.Fatalf("page %d: %d characters", p, n)
		}
		if !strings.HasPrefix(answer, "Clients besides the administrators (1000): ") ||
			!strings.Contains(answer, fmt.Sprintf("showing %d–%d of 1000", 100*p-99, 100*p)) {
			t.Fatalf("page %d: %q", p, answer)
		}
		for _, f := range strings.FieldsFunc(answer, func(r rune) bool { return r == ' ' || r == ',' || r == '\n' }) {
			if strings.HasPrefix(f, "#") {
				seen[f] = true
			}
		}
		if p == 10 {
			if kb != "null" {
				t.Fatalf("the last page has a keyboard: %s", kb)
			}
			break
		}
		want := fmt.Sprintf(`"COMMAND":"%s","COMMAND_PARAMS":"%d"`, cmdClients, p+1)
		if !strings.Contains(kb, want) {
			t.Fatalf("page %d: keyboard %s, want %s", p, kb, want)
		}
		next = fmt.Sprint(p + 1)
	}
	if len(seen) != 1000 {
		t.Fatalf("the pages list %d clients", len(seen))
	}
}

// TestRolesFollowAChatBeingCreated: an agent added while a dialog's chat is still
// being created (asked for without them) joins it once it exists: the addition
// waits for the chat, in its dialog's lane, after the chat's creation.
func TestRolesFollowAChatBeingCreated(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "How do I export deals?"))
	h.sent() // the chat's creation, not answered yet
	h.process(h.private(admin, "/agents add 52"))
	var add storage.OutboxRow
	for _, e := range h.rawSent() {
		if e.Kind == bitrix24.KindAddUsers {
			add = e
		}
	}
	if add.ID == 0 || add.AwaitsDialog == 0 || add.Lane != outbox.DialogLane(add.AwaitsDialog).String() {
		t.Fatalf("the new agent's joining: %+v", add)
	}
	users := act(t, add).(bitrix24.AddUsers)
	if users.Chat != bitrix24.AwaitedChat || len(users.Users) != 1 || users.Users[0] != 52 {
		t.Fatalf("joins %s with %v", users.Chat, users.Users)
	}
	chats := h.createChats()
	due, err := h.store.DueOutbox(context.Background(), h.portal.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range due {
		if e.ID == add.ID {
			if got := h.bot.Outbox().Read(e).Action.(bitrix24.AddUsers); got.Chat != bitrix24.GroupChat(chats[1]) {
				t.Errorf("the joining names %s once the chat is %d", got.Chat, chats[1])
			}
			return
		}
	}
	t.Errorf("the joining is not due once the chat exists: %+v", due)
}

// TestOwnerLeavesSupport: someone whose support roles are taken away owns no dialog
// any more. A second-line engineer given a dialog with /assign (not escalated) is in
// its chat for that, and leaves it with the role; an agent who took a dialog leaves
// with theirs. Either way the dialog is released and told, in its client's
// language. An agent who keeps the second line keeps the dialogs they own.
func TestOwnerLeavesSupport(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "/tech add 70"))
	h.process(h.private(admin, "/agents add 52"))
	h.process(h.private(admin, "First question"))
	h.process(h.private(admin, "Second question"))
	h.process(h.private(admin, "Third question"))
	chats := h.createChats()
	h.process(h.group(agent, chats[1], "Q1", "/assign 70"))
	h.process(h.group(52, chats[2], "Q2", "/take"))
	h.process(h.group(agent, chats[3], "Q3", "/assign 52"))
	h.process(h.private(admin, "/tech add 52")) // 52 keeps the second line, losing the agents' role below
	h.sent()
	owners := func() map[int]int64 {
		out := map[int]int64{}
		err := h.store.View(context.Background(), func(tx *storage.Tx) error {
			for n := range 3 {
				d, err := tx.DialogByNumber(h.portal.ID, n+1)
				if err != nil {
					return err
				}
				out[d.Number] = d.Owner
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := owners(); got[1] != 70 || got[2] != 52 || got[3] != 52 {
		t.Fatalf("owners before: %v", got)
	}

	// 70 leaves the second line: out of the dialog given to it, which is released.
	h.process(h.private(admin, "/tech remove 70"))
	var removed []string
	var told []string
	for _, e := range h.sent() {
		switch a := act(t, e).(type) {
		case bitrix24.RemoveUser:
			removed = append(removed, fmt.Sprint(a.Chat, "-", a.User))
		case bitrix24.SendMessage:
			if a.To != "27" {
				told = append(told, fmt.Sprint(a.To, ": ", a.Text))
			}
		}
	}
	if fmt.Sprint(removed) != fmt.Sprintf("[chat%d-70]", chats[1]) {
		t.Errorf("removed %v, want 70 from the dialog given to it", removed)
	}
	if len(told) != 1 || !strings.HasPrefix(told[0], fmt.Sprintf("chat%d: #70 no longer works in support: question #1 ", chats[1])) {
		t.Errorf("the dialog was told %q", told)
	}
	// 52 stops being an agent but stays second line: out of the dialog that is not
	// its own, kept in the two it owns (taken, and given).
	h.process(h.private(admin, "/agents remove 52"))
	removed = removed[:0]
	for _, e := range h.sent() {
		if a, ok := act(t, e).(bitrix24.RemoveUser); ok {
			removed = append(removed, fmt.Sprint(a.Chat, "-", a.User))
		}
	}
	if got := owners(); got[1] != 0 || got[2] != 52 || got[3] != 52 {
		t.Errorf("owners after: %v", got)
	}
	if fmt.Sprint(removed) != fmt.Sprintf("[chat%d-52]", chats[1]) {
		t.Errorf("removed %v: 52 keeps the second line and the dialogs it owns, and leaves the other", removed)
	}
	// Out of support altogether: both released.
	h.process(h.private(admin, "/tech remove 52"))
	h.sent()
	if got := owners(); got[2] != 0 || got[3] != 0 {
		t.Errorf("owners once 52 left support: %v", got)
	}
}

// TestAssignedSecondLineLeavesWithTheDialog: the second line is in a dialog that is
// not escalated only while it owns it. Given one with /assign it joins its chat; when
// an agent takes it, or it releases it, it leaves; an agent who owned a dialog stays,
// being in every dialog's chat anyway.
func TestAssignedSecondLineLeavesWithTheDialog(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "/tech add 70"))
	h.process(h.private(admin, "A question"))
	chat := h.createChats()[1]
	h.sent()
	changes := func() (out []string) {
		for _, e := range h.sent() {
			switch a := act(t, e).(type) {
			case bitrix24.AddUsers:
				out = append(out, fmt.Sprint("add ", a.Users))
			case bitrix24.RemoveUser:
				out = append(out, fmt.Sprint("remove ", a.User))
			}
		}
		return out
	}
	h.process(h.group(agent, chat, "Q", "/assign 70"))
	if got := changes(); fmt.Sprint(got) != "[add [70]]" {
		t.Fatalf("assigned: %v", got)
	}
	h.process(h.group(agent, chat, "Q", "/take"))
	if got := changes(); fmt.Sprint(got) != "[remove 70]" {
		t.Fatalf("taken by an agent: %v", got)
	}
	h.process(h.group(agent, chat, "Q", "/assign 70"))
	h.sent()
	h.process(h.group(70, chat, "Q", "/release"))
	if got := changes(); fmt.Sprint(got) != "[remove 70]" {
		t.Fatalf("released by the second line: %v", got)
	}
	h.process(h.group(agent, chat, "Q", "/take"))
	h.process(h.group(agent, chat, "Q", "/release"))
	if got := changes(); len(got) != 0 {
		t.Errorf("an agent's release moved %v", got)
	}
	h.process(h.private(admin, "/tech remove 70"))
	if got := changes(); len(got) != 0 {
		t.Errorf("the second line, in no dialog now, was moved: %v", got)
	}
}

// TestRolesInADialogAnswerPrivately: /agents is the main chat's command. Typed in a
// dialog, whose client reads along, the list of people goes to the administrator's
// own chat with the bot.
func TestRolesInADialogAnswerPrivately(t *testing.T) {
	h := newHarness(t)
	h.process(h.group(admin, h.oneDialog(admin, "a question"), "", "/agents"))
	sent := h.sent()
	if len(sent) != 1 || sentTo(t, sent[0]) != bitrix24.UserChat(admin) || !strings.Contains(text(t, sent[0]), "#50") {
		t.Fatalf("the agents' list went to %s: %s", sentTo(t, sent[0]), text(t, sent[0]))
	}
}
