package main

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bitrix24/b24test/botv2"
	"supportbot/bot"
	"supportbot/config"
	"supportbot/setup"
	"supportbot/storage"
	"supportbot/testwait"
)

const (
	appClientID     = "local.6741a1b2c3d4e5.12345678"
	appClientSecret = "Xy7secretOfTheApplication0123456789abcdefGHIJ"
)

// startApp runs serve in app mode for the application whose OAuth server is o.
func startApp(t *testing.T, o *b24test.OAuth, any *b24test.Portal, dbPath string) *runningBot {
	t.Helper()
	return startServe(t, any, dbPath, appEnv(o, dbPath))
}

// appEnv runs the application with v1 bots, as applications installed before imbot.v2 do.
func appEnv(o *b24test.OAuth, dbPath string) []string {
	return []string{
		"SUPPORTBOT_BITRIX_API=v1",
		"SUPPORTBOT_HTTP_ADDR=127.0.0.1:0",
		"SUPPORTBOT_HTTP_PUBLIC_URL=https://support.example.com",
		"SUPPORTBOT_DB_PATH=" + dbPath,
		"SUPPORTBOT_APP_CLIENT_ID=" + appClientID,
		"SUPPORTBOT_APP_CLIENT_SECRET=" + appClientSecret,
		"SUPPORTBOT_APP_OAUTH_URL=" + o.URL() + "/",
	}
}

// appMessage is ONIMBOTMESSAGEADD in user's chat with the bot, as portal p sends it to
// the application (its member_id, application token, the user's access token).
func appMessage(p *b24test.Portal, user int64, text string, set ...string) []byte {
	id := nextMessageID.Add(1)
	u := strconv.FormatInt(user, 10)
	fields := map[string]string{
		"data[PARAMS][MESSAGE]":      text,
		"data[PARAMS][MESSAGE_ID]":   strconv.FormatInt(id, 10),
		"data[PARAMS][FROM_USER_ID]": u,
		"data[PARAMS][AUTHOR_ID]":    u,
		"data[PARAMS][DIALOG_ID]":    u,
		"data[PARAMS][LANGUAGE]":     "en",
		"data[USER][ID]":             u,
		"data[USER][NAME]":           "User " + u,
	}
	for i := 0; i+1 < len(set); i += 2 {
		fields[set[i]] = set[i+1]
	}
	return p.AppEvent("v1/onimbotmessageadd-private.form", user, fields)
}

func postTo(t *testing.T, b *runningBot, from *b24test.Portal, body []byte) int {
	t.Helper()
	status, resp, err := from.Post(context.Background(), b.url+"/bitrix/events", body)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK {
		t.Logf("status %d: %s", status, resp)
	}
	return status
}

// waitFor polls cond for up to 10 s.
func questionTitles(p *b24test.Portal) []string {
	var titles []string
	for _, id := range dialogChats(p) {
		c, _ := p.Chat(id)
		titles = append(titles, c.Title)
	}
	slices.Sort(titles)
	return titles
}

// TestAppModeTwoPortals: two portals install the application; each gets its own bot
// and commands, registered with its own OAuth tokens; events signed with the other
// portal's application token are refused; dialogs are numbered per portal; an
// administrator known only to user.admin may open dialogs; a forged installation is
// refused; and after the portal expires the tokens, replies still arrive, through one
// refresh whose new refresh token is stored.
func TestAppModeTwoPortals(t *testing.T) {
	t.Parallel()
	o := b24test.NewOAuth(t, appClientID, appClientSecret)
	pa, pb := b24test.NewAppPortal(t, o), b24test.NewAppPortal(t, o)
	// Who may ask is who administers each portal (user.admin): no list applies to both.
	pa.SetAdmins(1, client)
	pb.SetAdmins(1, 7, client)
	dbPath := filepath.Join(t.TempDir(), "app.db")
	b := startApp(t, o, pa, dbPath)

	// A stranger's installation claim with a made-up refresh token is not believed.
	forged := b24test.Event("app/onappinstall.form", map[string]string{
		"auth[member_id]": "0123456789abcdef0123456789abcdef", "auth[refresh_token]": "made-up",
		"auth[application_token]": "made-up", "auth[client_endpoint]": "https://evil.example/rest/",
	})
	if status := postTo(t, b, pa, forged); status != http.StatusUnauthorized {
		t.Fatalf("forged installation answered %d, want 401", status)
	}
	// Portal A's refresh token presented as portal B's installation: the OAuth server
	// says whose it is.
	claim := strings.Replace(string(pa.InstallEvent()), "member_id%5D="+pa.MemberID(), "member_id%5D="+pb.MemberID(), 1)
	claim = strings.Replace(claim, "member_id]="+pa.MemberID(), "member_id]="+pb.MemberID(), 1)
	if status := postTo(t, b, pa, []byte(claim)); status != http.StatusUnauthorized {
		t.Fatalf("installation claiming another portal answered %d, want 401", status)
	}
	if n := len(installations(t, dbPath)); n != 0 {
		t.Fatalf("%d portals stored from forged installations", n)
	}

	for _, p := range []*b24test.Portal{pa, pb} {
		if status := postTo(t, b, p, p.InstallEvent()); status != http.StatusOK {
			t.Fatalf("ONAPPINSTALL answered %d", status)
		}
	}
	wantCommands := len(bot.Commands())
	for name, p := range map[string]*b24test.Portal{"A": pa, "B": pb} {
		testwait.For(t, "portal "+name+"'s registration", func() bool {
			return len(p.Bots()) == 1 && len(p.Commands()) == wantCommands
		})
		bots := p.Bots()
		if bots[0].ClientID != appClientID || bots[0].Code != "supportbot" || bots[0].Type != "S" ||
			bots[0].Events["ONIMBOTMESSAGEADD"] != "https://support.example.com/bitrix/events" {
			t.Errorf("portal %s: bot registered as %+v", name, bots[0])
		}
		for _, c := range p.CallsTo("imbot.register") {
			if c.Auth == "webhook" || c.Auth == "" {
				t.Errorf("portal %s: registered through the webhook, not the app's token: %+v", name, c)
			}
		}
	}
	for _, p := range []*b24test.Portal{pa, pb} {
		testwait.For(t, "ONAPPUNINSTALL bound", func() bool {
			return p.AppHandler(appClientID, "ONAPPUNINSTALL") == "https://support.example.com/bitrix/events"
		})
	}
	if n := len(slices.DeleteFunc(installations(t, dbPath), func(p storage.Portal) bool { return p.BotID == 0 })); n != 2 {
		t.Fatalf("%d installed portals with a bot in the database, want 2", n)
	}

	// A third portal installs the application without the imbot scope: the portal
	// refuses the registration, and doctor says so, next to the two that work.
	pc := b24test.NewAppPortal(t, o)
	pc.SetScopes("im", "user")
	if status := postTo(t, b, pc, pc.InstallEvent()); status != http.StatusOK {
		t.Fatalf("ONAPPINSTALL answered %d", status)
	}
	testwait.For(t, "portal C's refusal", func() bool {
		return slices.ContainsFunc(outboxAt(t, dbPath), func(e storage.OutboxRow) bool {
			return e.Kind == bitrix24.KindRegisterBot && e.State == storage.OutboxFailed
		})
	})
	cfg, err := config.LoadFrom(nil, dbEnv(t, appEnv(o, dbPath), ""))
	if err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	if (&setup.Doctor{Config: cfg, Out: &report}).Run(t.Context()) {
		t.Error("doctor passed with portal C's bot unregistered")
	}
	for _, want := range []string{
		"✓ portal " + pa.Domain() + ": installed; bot ID 567",
		"✓ portal " + pb.Domain() + ": installed; bot ID 567",
		"✗ portal " + pc.Domain() + ": installed, but the portal refused to register the bot: insufficient_scope",
	} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("doctor did not report %q:\n%s", want, report.String())
		}
	}

	// The other portal's application token: 401, and nothing is created.
	if status := postTo(t, b, pa, appMessage(pa, client, "question from A", "auth[application_token]", pb.ApplicationToken())); status != http.StatusUnauthorized {
		t.Fatalf("event with portal B's token for portal A answered %d, want 401", status)
	}
	// A member_id nobody installed: 401.
	if status := postTo(t, b, pa, appMessage(pa, client, "q", "auth[member_id]", "ffffffffffffffffffffffffffffffff")); status != http.StatusUnauthorized {
		t.Fatalf("event from an unknown portal answered %d, want 401", status)
	}
	if n := countDialogs(t, dbPath, anyDialog); n != 0 {
		t.Fatalf("%d dialogs created by refused events", n)
	}

	// Each portal's administrator names an agent: with none, no question opens.
	for _, p := range []*b24test.Portal{pa, pb} {
		postTo(t, b, p, appMessage(p, 1, "/agents add "+strconv.Itoa(agentID)))
		waitText(t, p, "1", "Support agents (1)")
	}
	// The same user ID on both portals: two dialogs on A, one on B, numbered apart.
	for i, p := range []*b24test.Portal{pa, pa, pb} {
		if status := postTo(t, b, p, appMessage(p, client, "question "+strconv.Itoa(i))); status != http.StatusOK {
			t.Fatalf("message %d answered %d", i, status)
		}
	}
	// On B, user 7 is an administrator as well.
	if status := postTo(t, b, pb, appMessage(pb, 7, "admin's question")); status != http.StatusOK {
		t.Fatal("admin's message refused")
	}
	testwait.For(t, "the dialog chats", func() bool { return len(questionTitles(pa)) == 2 && len(questionTitles(pb)) == 2 })
	if got := questionTitles(pa); !slices.Equal(got, []string{"Support question — #1", "Support question — #2"}) {
		t.Errorf("portal A's dialogs: %q", got)
	}
	if got := questionTitles(pb); !slices.Equal(got, []string{"Support question — #1", "Support question — #2"}) {
		t.Errorf("portal B's dialogs: %q", got)
	}
	for _, p := range []*b24test.Portal{pa, pb} {
		for _, c := range p.CallsTo("imbot.chat.add") {
			if c.Auth == "webhook" || c.Auth == "" {
				t.Errorf("imbot.chat.add without the app's token: %+v", c)
			}
		}
	}
	if n := len(pb.CallsTo("user.admin")); n == 0 {
		t.Error("user.admin was never asked")
	}
	if n := countDialogs(t, dbPath, func(d storage.Dialog) bool { return d.PortalID == portalOf(t, dbPath, pa).ID }); n != 2 {
		t.Errorf("portal A has %d dialogs in the database, want 2", n)
	}

	// Both portals number their chats alike, so the same chat ID names a dialog on
	// each: an agent's answer in B's chat raises only B's unread count.
	waitIdle(t, dbPath)
	chatsA, chatsB := chatsByNumber(t, dbPath, portalOf(t, dbPath, pa).ID), chatsByNumber(t, dbPath, portalOf(t, dbPath, pb).ID)
	if !slices.Contains(chatsA, chatsB[0]) {
		t.Fatalf("B's chat %d is no chat of A's (%v): the test needs the same ID on both", chatsB[0], chatsA)
	}
	chat, _ := pb.Chat(chatsB[0])
	if status := postTo(t, b, pb, appMessage(pb, 1, "/agents add "+strconv.Itoa(agentID))); status != http.StatusOK {
		t.Fatal("B's administrator could not name an agent")
	}
	answer := pb.AppEvent("v1/onimbotmessageadd-group.form", agentID,
		groupFields(chat, agentID, strconv.FormatInt(nextMessageID.Add(1), 10), "Try Settings → CRM"))
	if status := postTo(t, b, pb, answer); status != http.StatusOK {
		t.Fatal("agent's answer refused")
	}
	lists := map[*b24test.Portal]string{}
	waitIdle(t, dbPath)
	for _, p := range []*b24test.Portal{pa, pb} {
		sent := len(p.Messages(strconv.Itoa(client)))
		if status := postTo(t, b, p, appMessage(p, client, "all chats")); status != http.StatusOK {
			t.Fatal("all chats refused")
		}
		testwait.For(t, "the list", func() bool { return len(p.Messages(strconv.Itoa(client))) > sent })
		lists[p] = p.Messages(strconv.Itoa(client))[sent].Text
	}
	if !strings.Contains(lists[pa], "unread messages: 0") || strings.Count(lists[pa], "· active ·") != 2 {
		t.Errorf("portal A's list (two dialogs, nothing unread):\n%s", lists[pa])
	}
	if !strings.Contains(lists[pb], "unread messages: 1") || !strings.Contains(lists[pb], "#1 · Support question — #1 · active · unread: 1") {
		t.Errorf("portal B's list (one unread in #1):\n%s", lists[pb])
	}

	// The portal expires every token: the next reply still arrives, after one refresh,
	// and the new refresh token is on disk at once.
	before, beforeB := o.RefreshesFor(pa.MemberID()), o.RefreshesFor(pb.MemberID())
	oldRefresh := portalOf(t, dbPath, pa).RefreshToken
	pa.ExpireTokens()
	sent := len(pa.Messages(strconv.Itoa(client)))
	if status := postTo(t, b, pa, appMessage(pa, client, "all chats")); status != http.StatusOK {
		t.Fatal("message after expiry refused")
	}
	testwait.For(t, "the list after the tokens expired", func() bool { return len(pa.Messages(strconv.Itoa(client))) > sent })
	if got := o.RefreshesFor(pa.MemberID()) - before; got != 1 {
		t.Errorf("%d refreshes after expiry, want 1", got)
	}
	newRefresh := portalOf(t, dbPath, pa).RefreshToken
	if newRefresh == "" || newRefresh == oldRefresh {
		t.Errorf("refresh token on disk not replaced: %q → %q", oldRefresh, newRefresh)
	}
	if got := o.RefreshesFor(pb.MemberID()) - beforeB; got != 0 {
		t.Errorf("portal B's tokens were refreshed %d times; only A's expired", got)
	}

	// Portal A removes the application (its tokens die with it): its events are
	// refused from then on, B's not.
	pa.Uninstall()
	uninstall := pa.AppEvent("app/onappinstall.form", 1, map[string]string{"event": "ONAPPUNINSTALL", "data[CLEAN]": "0"})
	if status := postTo(t, b, pa, uninstall); status != http.StatusOK {
		t.Fatalf("ONAPPUNINSTALL answered %d", status)
	}
	if status := postTo(t, b, pa, appMessage(pa, client, "all chats")); status != http.StatusUnauthorized {
		t.Errorf("event after uninstall answered %d, want 401", status)
	}
	if status := postTo(t, b, pb, appMessage(pb, client, "all chats")); status != http.StatusOK {
		t.Errorf("portal B's event after A's uninstall answered %d", status)
	}
	// Bitrix24 deletes an application's bots with it; installing again registers the
	// bot and its commands anew and brings A back.
	if _, err := bitrix24.NewClient(pa.ClientEndpoint(), bitrix24.WithTokens(bitrix24.StaticToken(pa.UserToken(1)))).
		Call(t.Context(), "imbot.unregister", map[string]any{"BOT_ID": 567}); err != nil {
		t.Fatal(err)
	}
	if status := postTo(t, b, pa, pa.InstallEvent()); status != http.StatusOK {
		t.Fatalf("reinstall answered %d", status)
	}
	testwait.For(t, "portal A's new registration", func() bool {
		return len(pa.Bots()) == 1 && len(pa.Commands()) == wantCommands
	})
	if status := postTo(t, b, pa, appMessage(pa, client, "all chats")); status != http.StatusOK {
		t.Errorf("event after reinstall answered %d", status)
	}
}

// installations are the portals that have the application installed.
func installations(t *testing.T, path string) []storage.Portal {
	t.Helper()
	list, err := storeAt(t, path).Installations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// portalOf is the stored portal of a fake one.
func portalOf(t *testing.T, path string, p *b24test.Portal) storage.Portal {
	t.Helper()
	stored, err := storeAt(t, path).PortalByMemberID(context.Background(), p.MemberID())
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// TestAppModeV2Fetch: an application registers its bot through imbot.v2 with its
// OAuth token (no bot token), in fetch mode, and polls the portal's queue; a bot
// event posted to it instead is refused. Fetched events carry no user token, so the
// administrator recognised is the one who installed the application.
func TestAppModeV2Fetch(t *testing.T) {
	t.Parallel()
	o := b24test.NewOAuth(t, appClientID, appClientSecret)
	p := b24test.NewAppPortal(t, o)
	p.SetAdmins(7, 8) // 7 installs the application; neither is in access.admins
	fake := botv2.Attach(p)
	dbPath := filepath.Join(t.TempDir(), "app-v2.db")
	// The first of two equal names wins: v2 over appEnv's v1.
	b := startServe(t, p, dbPath, append([]string{"SUPPORTBOT_BITRIX_API=v2"}, appEnv(o, dbPath)...))
	if status := postTo(t, b, p, p.InstallEvent()); status != http.StatusOK {
		t.Fatalf("ONAPPINSTALL answered %d", status)
	}
	testwait.For(t, "the v2 registration", func() bool { return len(fake.Bots()) == 1 && len(fake.Commands()) == len(bot.Commands()) })
	reg := fake.Bots()[0]
	if !reg.App || reg.Token != "" || reg.EventMode != "fetch" || reg.Type != "supervisor" {
		t.Fatalf("registered %+v", reg)
	}
	for _, c := range p.CallsTo("imbot.v2.Bot.register") {
		if c.Auth == "webhook" || c.Params.String("fields", "botToken") != "" {
			t.Errorf("registered through %s with a bot token: %+v", c.Auth, c.Params)
		}
	}
	if len(p.CallsTo("imbot.register")) != 0 {
		t.Error("a v1 registration as well")
	}
	// The portal's events are fetched: one posted with the application token (which
	// every user can read in the sidebar) is forged, even with a user's genuine token.
	for _, body := range [][]byte{appMessage(p, 7, "open new Forged"), p.AppEvent("v2/webhook/onimbotv2messageadd.form", 7,
		map[string]string{"auth[application_token]": p.ApplicationToken(), "auth[member_id]": p.MemberID()})} {
		if status := postTo(t, b, p, body); status != http.StatusUnauthorized {
			t.Errorf("an event posted to a fetch portal answered %d, want 401", status)
		}
	}

	fake.Message(7, "7", "/agents add 50") // with no agent, no question opens
	b.waitMessage("7", 0, "Support agents (1)")
	fake.Message(7, "7", "open new Printing from CRM")
	b.waitMessage("7", 0, "Question #1 is open")
	fake.Message(8, "8", "open new")
	b.waitMessage("8", 0, "administrators and integrators")
	waitIdle(t, dbPath)
	if n := countDialogs(t, dbPath, anyDialog); n != 1 {
		t.Errorf("%d dialogs", n)
	}
	if got := len(p.CallsTo("imbot.v2.Chat.add")); got != 1 {
		t.Errorf("%d chats created", got)
	}
	testwait.For(t, "the queue confirmed", func() bool { return fake.Pending() == 0 })
}
