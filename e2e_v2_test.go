package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bitrix24/b24test/botv2"
	"supportbot/bot"
	"supportbot/storage"
	"supportbot/testwait"
)

// fetchEnv configures the binary as the README's guide does: an inbound webhook and
// nothing else: no public address, no application token. The rate is raised only to
// keep the tests quick; the portal is polled at the default interval, as the docs ask.
func fetchEnv(dir, webhookURL string) []string {
	return []string{
		"SUPPORTBOT_BITRIX_WEBHOOK_URL=" + webhookURL,
		"SUPPORTBOT_DB_PATH=" + filepath.Join(dir, "supportbot.db"),
		"SUPPORTBOT_SUPPORT_AGENTS=" + strconv.Itoa(agentID),
		"SUPPORTBOT_ACCESS_ADMINS=" + strconv.Itoa(client),
		"SUPPORTBOT_BITRIX_RATE_PER_SECOND=50",
		"SUPPORTBOT_BITRIX_BURST=100",
	}
}

// fetchPortal is a fake portal that speaks imbot.v2, with a bot registered on it
// through `supportbot register` in fetch mode; output is what register printed.
func fetchPortal(t *testing.T, dir string) (portal *b24test.Portal, fake *botv2.Fake, env []string, output string) {
	t.Helper()
	portal = b24test.New(t)
	portal.SetRateLimit(50, 100) // as fetchEnv configures the bot
	fake = botv2.Attach(portal)
	env = fetchEnv(dir, portal.WebhookURL())
	res := runCLI(t, dir, append(env, "SUPPORTBOT_LOG_LEVEL=debug"), "register")
	if res.code != 0 {
		t.Fatalf("register: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if bots := fake.Bots(); len(bots) != 1 || bots[0].EventMode != "fetch" || bots[0].Type != "supervisor" {
		t.Fatalf("bots after register: %+v", bots)
	}
	return portal, fake, env, res.stdout + res.stderr
}

// startFetch runs serve in this process on env, as main does.
func startFetch(t *testing.T, portal *b24test.Portal, env []string) *runningBot {
	t.Helper()
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SUPPORTBOT_DB_PATH="); ok {
			path = v
		}
	}
	return startServe(t, portal, path, append([]string{"SUPPORTBOT_HTTP_ADDR=127.0.0.1:0"}, env...))
}

// inBatchAndAlone runs test twice, in parallel: with a portal that runs imbot.v2
// methods inside batch, and with one that refuses them there, whose calls go alone.
func inBatchAndAlone(t *testing.T, test func(*testing.T, botv2.BatchMode)) {
	t.Parallel()
	for name, mode := range map[string]botv2.BatchMode{"batch": botv2.BatchRuns, "single": botv2.BatchNotAllowed} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, mode)
		})
	}
}

// v2Chats counts the dialogs' chats the portal has: those Chat.add created (a call
// refused inside batch created none).
func v2Chats(portal *b24test.Portal) (n int) {
	for _, c := range portal.Chats() {
		if strings.Contains(c.Description, "SUPPORTBOT_QUESTION") {
			n++
		}
	}
	return n
}

// TestFetchModeStory plays the story with no public URL and no application token:
// every event is fetched from the portal's queue, every reply goes through imbot.v2.
// A client opens five dialogs, the sixth is refused, "all chats" lists them with
// unread counts, a rename reaches the chat, an agent escalates and the access request
// lands in the main chat, the client's press is handled, and /close frees a place.
func TestFetchModeStory(t *testing.T) { inBatchAndAlone(t, fetchModeStory) }

func fetchModeStory(t *testing.T, batch botv2.BatchMode) {
	dir := t.TempDir()
	portal, fake, env, _ := fetchPortal(t, dir)
	fake.SetBatch(batch)
	b := startFetch(t, portal, env)

	for _, q := range []string{"open new", "How do I set up the CRM?", "open new Deal export", "open new", "open new Access rights"} {
		fake.Message(client, "27", q)
	}
	_, seen := b.waitMessage("27", 0, "#5")
	waitIdle(t, b.dbPath)
	chats := b.chats()
	if len(chats) != 5 || v2Chats(portal) != 5 {
		t.Fatalf("%d dialogs, %d chats created", len(chats), v2Chats(portal))
	}
	for _, c := range portal.CallsTo("imbot.v2.Chat.add") {
		f := c.Params.Group("fields")
		if !strings.HasPrefix(f.String("title"), "Support question — #") || !strings.Contains(f.String("description"), "SUPPORTBOT_QUESTION") ||
			f.Group("userIds").String("0") != "27" || f.Group("userIds").String("1") != strconv.Itoa(agentID) || c.Params.String("botToken") == "" {
			t.Errorf("Chat.add %v", c.Params)
		}
	}
	greeting, _ := b.waitMessage(chatDialog(chats[2]), 0, "Question #3")
	if !strings.Contains(greeting.Text, "Deal export") {
		t.Errorf("greeting of #3: %q", greeting.Text)
	}

	// The sixth is refused with the list of the five, and no chat is created.
	fake.Message(client, "27", "open new")
	refusal, seen := b.waitMessage("27", seen, "maximum of 5")
	for n := 1; n <= 5; n++ {
		if !strings.Contains(refusal.Text, fmt.Sprintf("#%d", n)) {
			t.Errorf("refusal does not list #%d: %s", n, refusal.Text)
		}
	}

	// An agent answers in dialog 2: "all chats" shows its unread message.
	fake.Message(agentID, chatDialog(chats[1]), "Open Settings → CRM")
	fake.Message(client, "27", "all chats")
	list, seen := b.waitMessage("27", seen, "Your questions")
	if !strings.Contains(list.Text, "unread messages: 1") || !strings.Contains(list.Text, "#2 · Support question — #2 · active · unread: 1") ||
		strings.Count(list.Text, "unread: 0") != 4 {
		t.Errorf("list: %s", list.Text)
	}

	// A rename reaches the chat through Chat.update.
	fake.Message(client, "27", "rename 2 CRM setup [b]urgent[/b]")
	upd := portal.WaitCalls(t, "imbot.v2.Chat.update", 1, 10*time.Second)[0]
	if upd.Params.String("dialogId") != chatDialog(chats[1]) || upd.Params.Group("fields").String("title") != "CRM setup [b]urgent[/b]" {
		t.Errorf("Chat.update %v", upd.Params)
	}
	// The fake records a call before it runs it: the title follows.
	testwait.For(t, "the portal's new title", func() bool {
		c, _ := portal.Chat(chats[1])
		return c.Title == "CRM setup [b]urgent[/b]"
	})
	_, seen = b.waitMessage("27", seen, "renamed")

	// An agent escalates dialog 3: the access request lands in the client's main chat.
	before3 := len(portal.Messages(chatDialog(chats[2])))
	fake.Command(agentID, chatDialog(chats[2]), "escalate", "")
	request, seen := b.waitMessage("27", seen, "[chat="+strconv.FormatInt(chats[2], 10)+"]")
	buttons := request.Buttons()
	if len(buttons) != 2 || buttons[0].Text != "Grant access" {
		t.Fatalf("access request buttons %+v", buttons)
	}
	// The client presses Grant.
	fake.Press(client, "27", request.ID, buttons[0].Command, buttons[0].CommandParams)
	b.waitMessage(chatDialog(chats[2]), before3, "granted technical support access")
	waitIdle(t, b.dbPath)
	if r := accessRequests(t, b.dbPath, 3); len(r) != 1 || !strings.HasPrefix(r[0], storage.AccessGranted+" ") {
		t.Fatalf("access requests %+v", r)
	}

	// /close in dialog 1 frees a place: the client's next question opens dialog 6.
	fake.Command(agentID, chatDialog(chats[0]), "close", "")
	testwait.For(t, "dialog 1 resolved", func() bool { return dialogNumbered(t, b.dbPath, 1).Status == storage.StatusResolved })
	fake.Message(client, "27", "open new")
	b.waitMessage("27", seen, "#6")
	if got := v2Chats(portal); got != 6 {
		t.Errorf("%d chats after /close and a new question", got)
	}

	// With no token configured, nothing posted to the event route is believed.
	if status := b.post(privateMessage(client, "en", "open new")); status != http.StatusUnauthorized {
		t.Errorf("a posted event answered %d with no token configured", status)
	}
	// Every event was confirmed, none posted to an address the bot does not have.
	testwait.For(t, "the queue confirmed", func() bool { return fake.Pending() == 0 })
	if n := len(portal.CallsTo("imbot.message.add")); n != 0 {
		t.Errorf("%d v1 calls from a v2 bot", n)
	}
	batched := 0
	for _, c := range portal.CallsTo("imbot.v2.Chat.Message.send") {
		if c.Batched {
			batched++
		}
	}
	b.stop()
	refused := !portalAt(t, b.dbPath).BatchRefusedAt.IsZero()
	if batch == botv2.BatchRuns && (batched == 0 || refused) || batch != botv2.BatchRuns && !refused {
		t.Errorf("%d sends inside batch; the refusal stored: %v", batched, refused)
	}
	// doctor tells which way the replies go.
	res := runCLI(t, dir, env, "doctor")
	if said := strings.Contains(res.stdout, "refused imbot.v2 methods inside batch"); said != refused || !said && !strings.Contains(res.stdout, "replies go in batch") {
		t.Errorf("doctor, with the refusal stored %v:\n%s", refused, res.stdout)
	}
}

// TestFetchQueuedWhileStopped: 100 events queued while the bot is stopped are each
// processed exactly once when it starts, their replies delivered, the offset confirmed.
func TestFetchQueuedWhileStopped(t *testing.T) { inBatchAndAlone(t, fetchQueuedWhileStopped) }

func fetchQueuedWhileStopped(t *testing.T, batch botv2.BatchMode) {
	dir := t.TempDir()
	portal, fake, env, _ := fetchPortal(t, dir)
	fake.SetBatch(batch)
	env = append(env, "SUPPORTBOT_DIALOGS_MAX_ACTIVE=100")
	var last int64
	for i := range 100 {
		last = fake.Message(client, "27", fmt.Sprintf("open new question %03d", i))
	}
	b := startFetch(t, portal, env)
	testwait.Within(t, 60*time.Second, "100 dialogs", func() bool { return countDialogs(t, b.dbPath, anyDialog) == 100 })
	waitIdleWithin(t, 60*time.Second, b.dbPath)
	testwait.For(t, "the queue confirmed", func() bool { return fake.Pending() == 0 })
	if got := fake.Confirmed(); got != last+1 {
		t.Errorf("confirmed up to %d, want %d", got, last+1)
	}
	if got := v2Chats(portal); got != 100 {
		t.Errorf("%d chats for 100 questions", got)
	}
	seen := map[string]int{}
	for _, m := range portal.Messages("27") {
		if strings.HasPrefix(m.Text, "Question #") && strings.Contains(m.Text, " is open") {
			seen["reply"]++
		}
	}
	if seen["reply"] != 100 {
		t.Errorf("%d replies in the main chat, want 100", seen["reply"])
	}
	b.stop()
	if stored := portalAt(t, b.dbPath).FetchOffset; stored != last+1 {
		t.Errorf("stored offset %d, want %d", stored, last+1)
	}
}

// TestFetchKillNine: the binary is killed with SIGKILL at random points while it
// works through a stream of fetched events, and restarted each time. Every event's
// effect exists exactly once: no dialog twice, no transcript line twice, none missing.
func TestFetchKillNine(t *testing.T) { inBatchAndAlone(t, fetchKillNine) }

func fetchKillNine(t *testing.T, batch botv2.BatchMode) {
	dir := t.TempDir()
	portal, fake, env, _ := fetchPortal(t, dir)
	fake.SetBatch(batch)
	env = append(env, "SUPPORTBOT_DIALOGS_MAX_ACTIVE=100", "SUPPORTBOT_HTTP_ADDR=127.0.0.1:0")
	const dialogs, lines = 20, 40
	for i := range dialogs {
		fake.Message(client, "27", fmt.Sprintf("open new Q%02d", i))
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	path := filepath.Join(dir, "supportbot.db")
	queueLines := func() {
		// The dialogs' chats exist: now a stream of lines into each of them.
		for _, id := range chatsByNumber(t, path, 0) {
			for l := range lines {
				fake.Message(client, chatDialog(id), fmt.Sprintf("line %d of chat %d", l, id))
			}
		}
	}
	// A slow portal: every poll and reply takes a while, so kills land mid-page.
	portal.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultSlow}, SlowDelay: 100 * time.Millisecond})
	p := startBinary(t, dir, env)
	kills, killsInStream := 0, 0
	queued := false
	for kills < 30 && killsInStream < 4 {
		if queued {
			time.Sleep(time.Duration(20+rng.IntN(250)) * time.Millisecond)
		} else {
			time.Sleep(time.Duration(50+rng.IntN(600)) * time.Millisecond)
		}
		if !queued && len(chatsByNumber(t, path, 0)) == dialogs {
			queueLines()
			queued = true
			continue
		}
		if queued && fake.Pending() == 0 {
			break
		}
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		kills++
		if queued {
			killsInStream++
		}
		p = startBinary(t, dir, env)
	}
	if !queued {
		testwait.Within(t, 60*time.Second, "the dialogs' chats", func() bool { return len(chatsByNumber(t, path, 0)) == dialogs })
		queueLines()
	}
	testwait.Within(t, 60*time.Second, "the queue confirmed", func() bool { return fake.Pending() == 0 })
	waitIdleWithin(t, 60*time.Second, path)
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	t.Logf("%d kills, %d of them while lines streamed", kills, killsInStream)
	if kills == 0 {
		t.Fatal("the bot was never killed")
	}
	if n := countDialogs(t, path, anyDialog); n != dialogs {
		t.Errorf("%d dialogs for %d questions", n, dialogs)
	}
	stored := transcriptLines(t, path)
	for i := range dialogs {
		if q := fmt.Sprintf("Q%02d", i); stored[q] != 1 {
			t.Errorf("question %s stored %d times", q, stored[q])
		}
	}
	for _, id := range chatsByNumber(t, path, 0) {
		for l := range lines {
			if line := fmt.Sprintf("line %d of chat %d", l, id); stored[line] != 1 {
				t.Errorf("%q stored %d times", line, stored[line])
			}
		}
	}
	if n := v2Chats(portal); n < dialogs {
		t.Errorf("%d chats created for %d dialogs", n, dialogs)
	}
}

// TestRegisterV2TwiceThenUnregister: registering through imbot.v2 twice leaves one
// bot and one set of commands; --rotate-token gives it a new token; unregister
// removes both. The bot's token shows in no output and no log line.
func TestRegisterV2TwiceThenUnregister(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, fake, env, first := fetchPortal(t, dir)
	if !strings.Contains(first, "registered bot") || !strings.Contains(first, "no public address needed") {
		t.Errorf("first register said:\n%s", first)
	}
	env = append(env, "SUPPORTBOT_LOG_LEVEL=debug")
	outputs := []string{first}
	run := func(args ...string) cliResult {
		t.Helper()
		res := runCLI(t, dir, env, args...)
		outputs = append(outputs, res.stdout+res.stderr)
		if res.code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, res.code, res.stdout, res.stderr)
		}
		return res
	}
	second := run("register")
	if !strings.Contains(second.stdout, "updated bot") {
		t.Errorf("second register did not update:\n%s", second.stdout)
	}
	bots := fake.Bots()
	if len(bots) != 1 {
		t.Fatalf("%d bots after two registers", len(bots))
	}
	if cmds := fake.Commands(); len(cmds) != len(bot.Commands()) {
		t.Fatalf("%d commands after two registers, want %d", len(cmds), len(bot.Commands()))
	}
	names := map[string]bool{}
	for _, c := range fake.Commands() {
		names[c.Name] = true
		if c.Titles["ru"] == "" || c.Titles["en"] == "" {
			t.Errorf("command %s titles %v", c.Name, c.Titles)
		}
	}
	if !names["new"] || fake.Commands()[0].BotID != bots[0].ID {
		t.Errorf("commands %+v", fake.Commands())
	}
	token := portalAt(t, filepath.Join(dir, "supportbot.db")).BotToken
	if token == "" || len(token) > 40 || bots[0].Token != token {
		t.Fatalf("stored token %q, the portal's %q", token, bots[0].Token)
	}

	run("register", "--rotate-token")
	rotated := portalAt(t, filepath.Join(dir, "supportbot.db")).BotToken
	if rotated == token || fake.Bots()[0].Token != rotated || len(fake.Bots()) != 1 {
		t.Fatalf("token not rotated: %q → %q (portal %q)", token, rotated, fake.Bots()[0].Token)
	}
	run("doctor")

	run("unregister")
	if bots, cmds := fake.Bots(), fake.Commands(); len(bots) != 0 || len(cmds) != 0 {
		t.Fatalf("after unregister: %d bots, %d commands", len(bots), len(cmds))
	}
	// The tokens went over the wire, never into what a person or a log sees.
	for _, out := range outputs {
		for _, secret := range []string{token, rotated} {
			if strings.Contains(out, secret) {
				t.Fatalf("a bot token is in the output:\n%s", out)
			}
		}
	}
	if stored := portalAt(t, filepath.Join(dir, "supportbot.db")); stored.BotToken != "" || stored.BotID != 0 {
		t.Errorf("after unregister the database keeps bot %d, token set %v", stored.BotID, stored.BotToken != "")
	}
}

// portalAt is the only portal the database at path knows.
func portalAt(t *testing.T, path string) storage.Portal {
	t.Helper()
	list := portalsAt(t, path)
	if len(list) != 1 {
		t.Fatalf("%d portals", len(list))
	}
	return list[0]
}

// transcriptLines counts each text in every dialog's transcript.
func transcriptLines(t *testing.T, path string) map[string]int {
	t.Helper()
	out := map[string]int{}
	view(t, path, func(tx *storage.Tx) error {
		for _, d := range dialogsAt(t, path) {
			tr, err := tx.Transcript(d.ID)
			if err != nil {
				return err
			}
			for _, m := range tr {
				out[m.Text]++
			}
		}
		return nil
	})
	return out
}

// TestV2WebhookMode: with bitrix.events webhook the v2 bot is registered with the
// event URL, the portal posts its events there (camelCase, every scalar a string),
// the application token is checked like v1's, and the replies go through imbot.v2.
func TestV2WebhookMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	portal := b24test.New(t)
	portal.SetRateLimit(50, 100)
	fake := botv2.Attach(portal)
	env := append(fetchEnv(dir, portal.WebhookURL()), "SUPPORTBOT_BITRIX_EVENTS=webhook",
		"SUPPORTBOT_HTTP_PUBLIC_URL=https://support.example.com")
	if res := runCLI(t, dir, env, "register"); res.code != 0 || !strings.Contains(res.stdout, "events go to https://support.example.com/bitrix/events") {
		t.Fatalf("register: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if bots := fake.Bots(); len(bots) != 1 || bots[0].EventMode != "webhook" || bots[0].WebhookURL != "https://support.example.com/bitrix/events" {
		t.Fatalf("bots %+v", bots)
	}
	b := startFetch(t, portal, append(env, "SUPPORTBOT_BITRIX_APPLICATION_TOKEN="+portal.ApplicationToken()))
	b.mustPost(fake.Form(fake.MessageEvent(client, "27", "open new Printing from CRM")))
	b.waitMessage("27", 0, "Question #1 is open")
	waitIdle(t, b.dbPath)
	if n := v2Chats(portal); n != 1 {
		t.Fatalf("%d chats", n)
	}
	// A forged body, with another token, is refused.
	forged := strings.ReplaceAll(string(fake.Form(fake.MessageEvent(client, "27", "open new"))), portal.ApplicationToken(), "forged-token")
	if status := b.post([]byte(forged)); status != http.StatusUnauthorized {
		t.Errorf("a forged v2 event answered %d", status)
	}
	if n := countDialogs(t, b.dbPath, anyDialog); n != 1 {
		t.Errorf("%d dialogs after a forged event", n)
	}
	// A rotation in webhook mode changes the events' token too: register says what to do,
	// and doctor notices events refused for their token.
	b.stop()
	if res := runCLI(t, dir, append(env, "SUPPORTBOT_BITRIX_APPLICATION_TOKEN="+portal.ApplicationToken()), "doctor"); !strings.Contains(res.stdout,
		"events posted with another application token were refused") || !strings.Contains(res.stdout, "`supportbot token`") {
		t.Errorf("doctor after a refused event: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if res := runCLI(t, dir, env, "register", "--rotate-token"); res.code != 0 ||
		!strings.Contains(res.stdout, "the events' application token changes") || !strings.Contains(res.stdout, "`supportbot token`") {
		t.Errorf("register --rotate-token in webhook mode: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// TestRotateTokenCrashSafe: `register --rotate-token` stores the new token as pending
// before Bot.update, which takes the old one's access at once. A crash right after
// Bot.update (simulated: the pending token stored, the portal given it, nothing
// more) is completed by the next register, and by the running bot's poller.
func TestRotateTokenCrashSafe(t *testing.T) {
	t.Parallel()
	for _, by := range []string{"register", "serve"} {
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			portal, fake, env, _ := fetchPortal(t, dir)
			path := filepath.Join(dir, "supportbot.db")
			before := portalAt(t, path)
			const pending = "0123456789abcdef0123456789abcdef"
			store := storeAt(t, path)
			if err := store.Update(t.Context(), func(tx *storage.Tx) error { return tx.SetPendingToken(before.ID, pending) }); err != nil {
				t.Fatal(err)
			}
			_, err := bitrix24.Perform(t.Context(), bitrix24.NewClient(portal.WebhookURL()), bitrix24.V2,
				bitrix24.UpdateBot{BotID: before.BotID, Profile: bitrix24.BotProfile{Code: "supportbot", Name: "Support", EventMode: "fetch"}, NewToken: pending},
				bitrix24.Context{BotID: before.BotID, BotToken: before.BotToken})
			if err != nil {
				t.Fatal(err)
			}
			switch by {
			case "register":
				if res := runCLI(t, dir, env, "register"); res.code != 0 || !strings.Contains(res.stdout, "completed a token rotation") {
					t.Fatalf("register after an interrupted rotation: exit %d\n%s%s", res.code, res.stdout, res.stderr)
				}
			case "serve":
				b := startFetch(t, portal, env)
				fake.Message(client, "27", "open new")
				b.waitMessage("27", 0, "Question #1 is open")
				b.stop()
			}
			after := portalAt(t, path)
			if after.BotToken != pending || after.PendingToken != "" || after.BotID != before.BotID || len(fake.Bots()) != 1 {
				t.Fatalf("after: bot %d (was %d), token adopted %v, pending left %v, %d bots", after.BotID, before.BotID,
					after.BotToken == pending, after.PendingToken != "", len(fake.Bots()))
			}
		})
	}
}

// TestTokenNotNeededInFetchMode: `supportbot token` in fetch mode would wait for ever
// for an event no portal posts; it says the token is not needed and exits 0.
func TestTokenNotNeededInFetchMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	portal := b24test.New(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildBinary(t), "token")
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "SUPPORTBOT_HTTP_ADDR=127.0.0.1:0"},
		fetchEnv(dir, portal.WebhookURL())...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "not needed: in fetch mode") {
		t.Fatalf("token in fetch mode: %v\n%s", err, out)
	}
}

// TestDoctorWarnsOfOldEvents: how long the portal keeps unconfirmed imbot.v2 events
// is not written; doctor warns when the oldest waiting one is over an hour old.
func TestDoctorWarnsOfOldEvents(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, fake, env, _ := fetchPortal(t, dir)
	fake.Age(2 * time.Hour)
	fake.Message(client, "27", "open new")
	res := runCLI(t, dir, env, "doctor")
	if !strings.Contains(res.stdout, "the portal may drop events kept this long") || !strings.Contains(res.stdout, "supportbot_fetch_lag_seconds > 3600") {
		t.Fatalf("doctor with a 2 h old event waiting:\n%s", res.stdout)
	}
}

// TestRegisterRecoversExistingCommands: a portal that answers COMMAND_ALREADY_EXISTS
// for a command the bot has (not the docs' idempotent answer), with a database that
// lost the commands' IDs: register finds them with Command.list and updates them.
func TestRegisterRecoversExistingCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	portal, fake, env, _ := fetchPortal(t, dir)
	path := filepath.Join(dir, "supportbot.db")
	p := portalAt(t, path)
	before := fake.Commands()
	if err := storeAt(t, path).Update(t.Context(), func(tx *storage.Tx) error { return tx.DeleteCommands(p.ID) }); err != nil {
		t.Fatal(err)
	}
	fake.RefuseExistingCommands()
	res := runCLI(t, dir, env, "register")
	if res.code != 0 || !strings.Contains(res.stdout, "registered before, and updated it") {
		t.Fatalf("register: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if n := storedCommands(t, path, p.ID); n != len(before) || len(fake.Commands()) != len(before) ||
		len(portal.CallsTo("imbot.v2.Command.update")) != len(before) {
		t.Fatalf("%d stored, %d on the portal (%d before), %d updated", n, len(fake.Commands()), len(before),
			len(portal.CallsTo("imbot.v2.Command.update")))
	}
}

// TestPressOnForeignMessageAnsweredAnew: the portal refuses to update a message that
// is not the bot's own (ACCESS_DENIED); a press that would update one is answered
// with a new message instead.
func TestPressOnForeignMessageAnsweredAnew(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	portal, fake, env, _ := fetchPortal(t, dir)
	b := startFetch(t, portal, env)
	question := fake.Message(client, "27", "open new Printing")
	_, seen := b.waitMessage("27", 0, "#1")
	waitIdle(t, b.dbPath)
	fake.Command(agentID, chatDialog(b.chats()[0]), "close", "")
	notice, seen := b.waitMessage("27", seen, "resolved")
	buttons := notice.Buttons()
	if len(buttons) == 0 {
		t.Fatalf("no rating buttons: %+v", notice)
	}
	// The press names the client's own message, which the bot may not update.
	fake.Press(client, "27", fake.MessageID(question), buttons[0].Command, buttons[0].CommandParams)
	b.waitMessage("27", seen, "Your rating: 👍 helped")
	if n := len(portal.CallsTo("imbot.v2.Chat.Message.update")); n != 1 {
		t.Errorf("%d updates tried", n)
	}
}
