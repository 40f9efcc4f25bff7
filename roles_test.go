package main

import (
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"supportbot/bitrix24/b24test"
	"supportbot/bot"
	"supportbot/storage"
	"supportbot/testwait"
)

// waitText waits for a message to dialogID on portal p containing want.
func waitText(t *testing.T, p *b24test.Portal, dialogID, want string) b24test.Message {
	t.Helper()
	var found b24test.Message
	testwait.For(t, "a message to "+dialogID+" containing "+strconv.Quote(want), func() bool {
		for _, m := range p.Messages(dialogID) {
			if strings.Contains(m.Text, want) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// members are the users with a role on a portal.
func members(t *testing.T, path string, portalID int64, role string) (ids []int64) {
	t.Helper()
	view(t, path, func(tx *storage.Tx) (err error) {
		ids, err = tx.Members(portalID, role)
		return err
	})
	return ids
}

// TestRolesPerPortal: in app mode each portal's administrator names its own agents;
// an agent of portal A has no agent power on portal B; someone who does not
// administer the portal cannot change roles; role lists in the configuration stop
// the start.
func TestRolesPerPortal(t *testing.T) {
	t.Parallel()
	o := b24test.NewOAuth(t, appClientID, appClientSecret)
	pa, pb := b24test.NewAppPortal(t, o), b24test.NewAppPortal(t, o)
	pa.SetAdmins(1)
	pb.SetAdmins(1)
	dbPath := filepath.Join(t.TempDir(), "roles.db")
	b := startApp(t, o, pa, dbPath)
	for _, p := range []*b24test.Portal{pa, pb} {
		if status := postTo(t, b, p, p.InstallEvent()); status != http.StatusOK {
			t.Fatalf("ONAPPINSTALL answered %d", status)
		}
	}
	testwait.For(t, "both registrations", func() bool {
		return len(pa.Commands()) == len(bot.Commands()) && len(pb.Commands()) == len(bot.Commands())
	})

	// A's administrator names two agents, by ID and by mention.
	postTo(t, b, pa, appMessage(pa, 1, "/agents add 50 [USER=51]Anna Petrova[/USER]"))
	waitText(t, pa, "1", "Support agents (2): #50, #51")
	if got := members(t, dbPath, portalOf(t, dbPath, pa).ID, storage.RoleAgent); !slices.Equal(got, []int64{50, 51}) {
		t.Fatalf("A's agents %v", got)
	}
	// On A, 50 is an agent; on B, the same user ID is nobody in particular.
	postTo(t, b, pa, appMessage(pa, 50, "/queue"))
	waitText(t, pa, "50", "The queue is empty")
	postTo(t, b, pb, appMessage(pb, 50, "/queue"))
	waitText(t, pb, "50", "Only support agents can use this command.")
	if got := members(t, dbPath, portalOf(t, dbPath, pb).ID, storage.RoleAgent); len(got) != 0 {
		t.Fatalf("B's agents %v", got)
	}

	// Someone who does not administer A cannot change its roles.
	postTo(t, b, pa, appMessage(pa, 28, "/agents add 28"))
	postTo(t, b, pa, appMessage(pa, 50, "/agents remove 51"))
	waitText(t, pa, "28", "Only the portal's administrators manage who is who.")
	waitText(t, pa, "50", "Only the portal's administrators manage who is who.")
	if got := members(t, dbPath, portalOf(t, dbPath, pa).ID, storage.RoleAgent); !slices.Equal(got, []int64{50, 51}) {
		t.Fatalf("A's agents after refused changes %v", got)
	}
	// The administrator removes one.
	postTo(t, b, pa, appMessage(pa, 1, "/agents remove 51"))
	waitText(t, pa, "1", "Support agents (1): #50")

	// Role lists in the configuration do not start an application.
	dir := t.TempDir()
	res := runCLI(t, dir, append(appEnv(o, filepath.Join(dir, "x.db")), "SUPPORTBOT_SUPPORT_AGENTS=50"), "serve")
	if res.code == 0 || !strings.Contains(res.stderr, "not used in app mode") {
		t.Fatalf("serve with support.agents in app mode: exit %d\n%s", res.code, res.stderr)
	}
	doctor := runCLI(t, dir, append(appEnv(o, filepath.Join(dir, "x.db")), "SUPPORTBOT_ACCESS_ADMINS=1"), "doctor")
	if doctor.code == 0 || !strings.Contains(doctor.stdout, "✗ people: support.agents, access.admins and access.integrators") {
		t.Fatalf("doctor with access.admins in app mode: exit %d\n%s", doctor.code, doctor.stdout)
	}
}

// TestEscalateAddsSecondLine: /escalate adds the portal's second line to the
// dialog's chat and tells them there; the access request still goes only to the
// client's main chat; the client's answer is announced to them by name.
func TestEscalateAddsSecondLine(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "second-line.db"))
	b.mustPost(privateMessage(client, "en", "/tech add 70 71"))
	b.waitMessage("27", 0, "Second line (2): #70, #71")
	chats := b.openDialogs(2)
	d2 := chatDialog(chats[1])
	for _, c := range portal.CallsTo("imbot.chat.add") {
		if users := c.Params.Group("USERS"); users.String("2") != "" {
			t.Fatalf("the second line is in a new dialog's chat: %v", users)
		}
	}
	portal.Reset()
	before27 := len(portal.Messages("27"))

	b.mustPost(b.groupMessage(agentID, chats[1], "/escalate"))
	waitIdle(t, b.dbPath)
	adds := portal.CallsTo("imbot.chat.user.add")
	if len(adds) != 1 || adds[0].Params.String("CHAT_ID") != strconv.FormatInt(chats[1], 10) ||
		adds[0].Params.Group("USERS").String("0") != "70" || adds[0].Params.Group("USERS").String("1") != "71" {
		t.Fatalf("second line added by %+v", adds)
	}
	joined, _ := b.waitMessage(d2, 0, "The second line joins the question")
	if !strings.Contains(joined.Text, "[USER=70]") || !strings.Contains(joined.Text, "[USER=71]") {
		t.Errorf("the second line is not named: %s", joined.Text)
	}
	// The request with its buttons is in the main chat and nowhere else.
	for _, id := range chats {
		for _, m := range portal.Messages(chatDialog(id)) {
			if len(m.Buttons()) > 0 {
				t.Fatalf("buttons in dialog chat %d: %s", id, m.Text)
			}
		}
	}
	if n := len(portal.Messages("27")); n != before27+1 || len(portal.Messages("27")[before27].Buttons()) != 2 {
		t.Fatalf("the main chat got %d messages", n-before27)
	}
	request := portal.Messages("27")[before27]
	grant := request.Buttons()[0]
	b.mustPost(press(client, "27", request.ID, grant.Command, grant.CommandParams))
	announced, _ := b.waitMessage(d2, 0, "granted technical support access")
	if !strings.Contains(announced.Text, "[USER=70]") {
		t.Errorf("the answer is not announced to the second line: %s", announced.Text)
	}
}

// TestRolesSeededOnce: in webhook mode the configuration's lists become the portal's
// roles on its first event; a change made in the chat then survives a restart with
// the same configuration.
func TestRolesSeededOnce(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	path := filepath.Join(t.TempDir(), "seed.db")
	b := startBot(t, portal, path)
	b.mustPost(privateMessage(client, "en", "/agents"))
	_, seen := b.waitMessage("27", 0, "Support agents (1): #50")
	b.mustPost(privateMessage(client, "en", "/agents remove 50"))
	_, seen = b.waitMessage("27", seen, "Support agents: nobody yet.")
	b.stop()

	b = startBot(t, portal, path)
	b.mustPost(privateMessage(client, "en", "/agents"))
	b.waitMessage("27", seen, "Support agents: nobody yet.")
	if got := members(t, path, portalAt(t, path).ID, storage.RoleAgent); len(got) != 0 {
		t.Fatalf("agents after the restart: %v", got)
	}
	if got := members(t, path, portalAt(t, path).ID, storage.RoleClient); !slices.Equal(got, []int64{27, 28, 29}) {
		t.Errorf("clients seeded: %v", got)
	}
}

// TestRemovedAgentLeavesTheChats: an agent the administrator removes is taken out of
// the chats of the open dialogs, and no longer reads the clients' questions, and one
// added joins them; a resolved dialog's chat is left as it is. The second line joins
// and leaves only the dialogs handed to it, and a client's role moves nobody.
func TestRemovedAgentLeavesTheChats(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "leave.db"))
	b.mustPost(privateMessage(client, "en", "/agents add 51"))
	b.waitMessage("27", 0, "Support agents (2)")
	chats := b.openDialogs(2)
	b.mustPost(b.groupMessage(agentID, chats[1], "/resolve"))
	b.waitMessage("27", 0, "#2 as resolved")
	for _, id := range chats {
		if c, _ := portal.Chat(id); !slices.Contains(c.Users, agentID) {
			t.Fatalf("agent %d is not in chat %d: %v", agentID, id, c.Users)
		}
	}
	// An agent added now joins the open dialog, whose question they are to answer.
	b.mustPost(privateMessage(client, "en", "/agents add 52"))
	b.waitMessage("27", 0, "Support agents (3)")
	waitIdle(t, b.dbPath)
	if c, _ := portal.Chat(chats[0]); !slices.Contains(c.Users, 52) {
		t.Errorf("the new agent is not in the open dialog's chat: %v", c.Users)
	}
	if c, _ := portal.Chat(chats[1]); slices.Contains(c.Users, 52) {
		t.Errorf("the new agent joined a resolved dialog's chat: %v", c.Users)
	}

	b.mustPost(privateMessage(client, "en", "/agents remove "+strconv.Itoa(agentID)))
	b.waitMessage("27", 0, "Support agents (2): #51, #52")
	waitIdle(t, b.dbPath)
	if c, _ := portal.Chat(chats[0]); slices.Contains(c.Users, agentID) || !slices.Contains(c.Users, 51) {
		t.Errorf("the open dialog's chat has %v after agent %d was removed", c.Users, agentID)
	}
	if c, _ := portal.Chat(chats[1]); !slices.Contains(c.Users, agentID) {
		t.Errorf("the resolved dialog's chat lost agent %d: %v", agentID, c.Users)
	}
	if calls := portal.CallsTo("imbot.chat.user.delete"); len(calls) != 1 {
		t.Errorf("%d removals, want the one open dialog's", len(calls))
	}

	// The second line leaves only the dialogs handed to it; a client removed leaves
	// nothing.
	b.mustPost(privateMessage(client, "en", "Question 3")) // open, and not handed to the second line
	portal.WaitCalls(t, "imbot.chat.add", 3, 10*time.Second)
	waitIdle(t, b.dbPath)
	b.mustPost(privateMessage(client, "en", "/tech add 70"))
	b.waitMessage("27", 0, "Second line (1): #70")
	b.mustPost(b.groupMessage(51, chats[0], "/escalate"))
	waitIdle(t, b.dbPath)
	if c, _ := portal.Chat(chats[0]); !slices.Contains(c.Users, 70) {
		t.Fatalf("the second line did not join the escalated dialog: %v", c.Users)
	}
	b.mustPost(privateMessage(client, "en", "/tech remove 70"))
	b.mustPost(privateMessage(client, "en", "/clients add 80"))
	b.mustPost(privateMessage(client, "en", "/clients remove 80"))
	b.waitMessage("27", 0, "Clients besides the administrators (3): #27, #28, #29")
	waitIdle(t, b.dbPath)
	if c, _ := portal.Chat(chats[0]); slices.Contains(c.Users, 70) {
		t.Errorf("the second line stayed in the escalated dialog's chat: %v", c.Users)
	}
	calls := portal.CallsTo("imbot.chat.user.delete")
	if len(calls) != 2 || calls[1].Params.String("USER_ID") != "70" || calls[1].Params.String("CHAT_ID") != strconv.FormatInt(chats[0], 10) {
		t.Errorf("removals: %+v, want agent %d's and then the second line's from the escalated chat only", calls, agentID)
	}
}
