package main

import (
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/cli"
	"supportbot/config"
	"supportbot/setup"
	"supportbot/storage"
	"supportbot/testwait"
)

// installedApp is serve in app mode (v1 bots) with portal p installed: user 1
// administers it and has named agentID an agent; client administers it too.
func installedApp(t *testing.T) (b *runningBot, p *b24test.Portal, dbPath string) {
	t.Helper()
	o := b24test.NewOAuth(t, appClientID, appClientSecret)
	p = b24test.NewAppPortal(t, o)
	p.SetAdmins(1, client)
	dbPath = filepath.Join(t.TempDir(), "app.db")
	b = startApp(t, o, p, dbPath)
	if status := postTo(t, b, p, p.InstallEvent()); status != http.StatusOK {
		t.Fatalf("ONAPPINSTALL answered %d", status)
	}
	testwait.For(t, "the registration", func() bool { return len(p.Bots()) == 1 })
	if status := postTo(t, b, p, appMessage(p, 1, "/agents add "+strconv.Itoa(agentID))); status != http.StatusOK {
		t.Fatal("the administrator could not name an agent")
	}
	waitIdle(t, dbPath)
	return b, p, dbPath
}

// TestForgedEventsInAppMode: the application token every user of the portal can read
// in the sidebar's opening does not make an event. A user with no role (99), holding
// it and their own AUTH_ID, forges ONIMBOTMESSAGEADD as an agent (/queue), a client
// (all chats) and an administrator (/agents add 99): with no user token, a made-up
// one, their own token or another application's token for the user they claim, each
// is refused with 401 and nothing changes. ONAPPUNINSTALL and ONIMBOTDELETE while the
// application and its bot live are refused too, and the portal keeps working. The
// same user writing as themselves is taken, and is no agent.
func TestForgedEventsInAppMode(t *testing.T) {
	t.Parallel()
	b, p, dbPath := installedApp(t)
	if status := postTo(t, b, p, appMessage(p, client, "How do I print invoices?")); status != http.StatusOK {
		t.Fatal("the client's question refused")
	}
	testwait.For(t, "the dialog", func() bool { return len(dialogChats(p)) == 1 })
	waitIdle(t, dbPath)
	portal := portalOf(t, dbPath, p)
	before := state(t, dbPath, "dialogs", "messages", "unread", "outbox", "events")
	sent := func() int { return len(p.CallsTo("imbot.message.add")) }
	sentBefore := sent()

	const attacker = 99
	otherApp := "local.0000000000aaaa.11111111"
	tokens := map[string]func(claimed int64) string{
		"no user token":                 func(int64) string { return b24test.Drop },
		"a made-up user token":          func(int64) string { return "a98b9d690000071b000008440000001b0000071d8a2" },
		"the attacker's own AUTH_ID":    func(int64) string { return p.UserToken(attacker) },
		"another application's token":   func(claimed int64) string { return p.OtherAppToken(claimed, otherApp) },
		"another application's, own ID": func(int64) string { return p.OtherAppToken(attacker, otherApp) },
	}
	for how, token := range tokens {
		for _, forged := range []struct {
			as   int64
			text string
		}{{agentID, "/queue"}, {client, "all chats"}, {1, "/agents add " + strconv.Itoa(attacker)}} {
			body := appMessage(p, forged.as, forged.text, "auth[access_token]", token(forged.as))
			if status := postTo(t, b, p, body); status != http.StatusUnauthorized {
				t.Errorf("%q as user %d with %s: answered %d, want 401", forged.text, forged.as, how, status)
			}
		}
	}
	// The attacker's own token, claiming another user only in the message's fields.
	body := appMessage(p, attacker, "/queue", "data[PARAMS][FROM_USER_ID]", strconv.Itoa(agentID), "data[USER][ID]", strconv.Itoa(agentID))
	if status := postTo(t, b, p, body); status != http.StatusUnauthorized {
		t.Errorf("the attacker's token and an agent's ID in the message: %d, want 401", status)
	}
	// The application and its bot live: their removal is a forgery.
	uninstall := p.AppEvent("app/onappinstall.form", attacker, map[string]string{"event": "ONAPPUNINSTALL", "data[CLEAN]": "1"})
	if status := postTo(t, b, p, uninstall); status != http.StatusUnauthorized {
		t.Errorf("ONAPPUNINSTALL while the application lives: %d, want 401", status)
	}
	botDelete := p.AppEvent("v1/onimbotdelete.form", attacker, map[string]string{"data[BOT_ID]": strconv.FormatInt(portal.BotID, 10)})
	if status := postTo(t, b, p, botDelete); status != http.StatusUnauthorized {
		t.Errorf("ONIMBOTDELETE while the bot lives: %d, want 401", status)
	}

	waitIdle(t, dbPath)
	if after := state(t, dbPath, "dialogs", "messages", "unread", "outbox", "events"); after != before {
		t.Errorf("forged events changed the database:\n%s\nthen\n%s", before, after)
	}
	if n := sent() - sentBefore; n != 0 {
		t.Errorf("%d messages sent in answer to forgeries: %+v", n, p.CallsTo("imbot.message.add")[sentBefore:])
	}
	if got := members(t, dbPath, portal.ID, storage.RoleAgent); !slices.Equal(got, []int64{agentID}) {
		t.Errorf("agents after the forgeries: %v", got)
	}
	if now := portalOf(t, dbPath, p); now.UninstalledAt.After(now.InstalledAt) || now.BotDeleted() {
		t.Errorf("the portal stopped: %+v", now)
	}

	// The attacker as themselves: taken, and told they are no agent.
	if status := postTo(t, b, p, appMessage(p, attacker, "Hello")); status != http.StatusOK {
		t.Fatalf("the user's own message answered %d", status)
	}
	waitText(t, p, strconv.Itoa(attacker), "administrators and integrators")
	// The client, genuinely: still answered.
	if status := postTo(t, b, p, appMessage(p, client, "all chats")); status != http.StatusOK {
		t.Fatal("the client's genuine event refused")
	}
	waitText(t, p, strconv.Itoa(client), "#1")
}

// TestKeptWhileTheRoleCannotBeTold: the portal does not answer user.admin in time when
// an administrator's first question arrives. The question is kept (200 once on disk),
// nothing is created and no refusal is sent; once the portal answers, it is applied:
// the dialog opens and the administrator hears so, never that only administrators
// may write.
func TestKeptWhileTheRoleCannotBeTold(t *testing.T) {
	t.Parallel()
	b, p, dbPath := installedApp(t)
	release := make(chan struct{})
	var once bool
	stop := func() {
		if !once {
			once = true
			close(release)
		}
	}
	t.Cleanup(stop) // before the portal closes: its handler holds the answer
	p.Handle("user.admin", func(bitrix24.Form) (any, *bitrix24.Error) {
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
		return nil, &bitrix24.Error{Code: "INTERNAL_SERVER_ERROR", Description: "late", HTTPStatus: http.StatusInternalServerError}
	})
	status, answer, err := p.Post(t.Context(), b.url+"/bitrix/events", appMessage(p, client, "Printing from CRM fails"))
	if err != nil || status != http.StatusOK || !strings.Contains(answer, "kept") {
		t.Fatalf("the question answered %d %s %v, want 200 kept", status, answer, err)
	}
	if n := metricValue(t, b.url, "supportbot_kept_events"); n != 1 {
		t.Fatalf("%v events kept", n)
	}
	if n := countDialogs(t, dbPath, anyDialog); n != 0 {
		t.Fatalf("%d dialogs before the role was known", n)
	}
	waitIdle(t, dbPath)
	if msgs := p.Messages(strconv.Itoa(client)); len(msgs) != 0 {
		t.Fatalf("the administrator was answered before the role was known: %+v", msgs)
	}
	p.Handle("user.admin", nil) // the portal answers again
	stop()
	waitText(t, p, strconv.Itoa(client), "Question #1 is open")
	waitIdle(t, dbPath)
	if n := countDialogs(t, dbPath, anyDialog); n != 1 {
		t.Errorf("%d dialogs", n)
	}
	for _, m := range p.Messages(strconv.Itoa(client)) {
		if strings.Contains(m.Text, "administrators and integrators") {
			t.Errorf("the administrator was refused: %q", m.Text)
		}
	}
	if n := metricValue(t, b.url, "supportbot_kept_events"); n != 0 {
		t.Errorf("%v events still kept", n)
	}
}

// TestV2WebhookRefusedInAppMode: imbot.v2's webhook mode cannot prove an event's
// author to an application, so serve refuses to start with it and doctor says why.
func TestV2WebhookRefusedInAppMode(t *testing.T) {
	t.Parallel()
	o := b24test.NewOAuth(t, appClientID, appClientSecret)
	dbPath := filepath.Join(t.TempDir(), "app.db")
	env := append([]string{"SUPPORTBOT_BITRIX_API=v2", "SUPPORTBOT_BITRIX_EVENTS=webhook"}, appEnv(o, dbPath)...)
	cfg, err := config.LoadFrom(nil, dbEnv(t, env, ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Serve(t.Context(), cfg, quiet, nil); err == nil || !strings.Contains(err.Error(), "bitrix.events=webhook") {
		t.Fatalf("serve: %v, want the refusal of v2 webhook mode", err)
	}
	var report strings.Builder
	if (&setup.Doctor{Config: cfg, Out: &report}).Run(t.Context()) {
		t.Error("doctor passed")
	}
	if !strings.Contains(report.String(), "✗ configuration: bitrix.events=webhook with bitrix.api=v2 cannot be used in app mode") {
		t.Errorf("doctor did not say why:\n%s", report.String())
	}
}
