package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bot"
)

// cliResult is what one run of a set-up command left.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the built binary once in dir, with only env for configuration.
func runCLI(t *testing.T, dir string, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, dbEnv(t, env, dir)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	return res
}

// storedCommands is how many command IDs the database holds for the portal.
func storedCommands(t *testing.T, path string, portalID int64) int {
	t.Helper()
	cmds, err := storeAt(t, path).Commands(context.Background(), portalID)
	if err != nil {
		t.Fatal(err)
	}
	return len(cmds)
}

// setupEnv configures the binary for one portal's webhook with a v1 bot, as the
// README's v1 alternative does: no application token yet, since the portal reveals
// it only after `register`.
func setupEnv(dir, webhookURL string) []string {
	return []string{
		"SUPPORTBOT_BITRIX_API=v1",
		"SUPPORTBOT_BITRIX_WEBHOOK_URL=" + webhookURL,
		"SUPPORTBOT_HTTP_PUBLIC_URL=https://support.example.com",
		"SUPPORTBOT_DB_PATH=" + filepath.Join(dir, "supportbot.db"),
		"SUPPORTBOT_SUPPORT_AGENTS=50",
		"SUPPORTBOT_ACCESS_ADMINS=1",
	}
}

// TestRegisterTwiceThenUnregister: `register` run twice leaves one bot and one set of
// commands (the second run updates them); `unregister` removes both.
func TestRegisterTwiceThenUnregister(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	dir := t.TempDir()
	env := setupEnv(dir, portal.WebhookURL())

	first := runCLI(t, dir, env, "register")
	if first.code != 0 {
		t.Fatalf("register: exit %d\n%s%s", first.code, first.stdout, first.stderr)
	}
	bots := portal.Bots()
	if len(bots) != 1 {
		t.Fatalf("bots after register: %+v", bots)
	}
	b := bots[0]
	if b.Code != "supportbot" || b.Type != "S" || b.Properties["NAME"] == "" || b.Properties["COLOR"] != "AQUA" {
		t.Errorf("bot registered as %+v", b)
	}
	if !strings.HasPrefix(b.EventHandler, "https://support.example.com/bitrix/events") {
		t.Errorf("event handler %q", b.EventHandler)
	}
	for _, ev := range []string{bitrix24.EventMessageAdd, bitrix24.EventMessageUpdate, bitrix24.EventMessageDelete,
		bitrix24.EventJoinChat, bitrix24.EventBotDelete} {
		if !strings.HasPrefix(b.Events[ev], "https://support.example.com/bitrix/events") {
			t.Errorf("%s handler %q", ev, b.Events[ev])
		}
	}
	wantCommands := bot.Commands()
	checkCommands := func(round string) {
		t.Helper()
		cmds := portal.Commands()
		if len(cmds) != len(wantCommands) {
			t.Fatalf("%s: %d commands on the portal, want %d: %+v", round, len(cmds), len(wantCommands), cmds)
		}
		byName := map[string]b24test.Command{}
		for _, c := range cmds {
			byName[c.Command] = c
		}
		for _, w := range wantCommands {
			c, ok := byName[w.Name]
			switch {
			case !ok:
				t.Errorf("%s: /%s not registered", round, w.Name)
			case c.BotID != b.ID || c.Hidden != w.Hidden || c.Registrations != 1:
				t.Errorf("%s: /%s registered as %+v", round, w.Name, c)
			case c.Lang["ru"].Title == "" || c.Lang["en"].Title == "":
				t.Errorf("%s: /%s lacks a ru or en title: %+v", round, w.Name, c.Lang)
			}
		}
	}
	checkCommands("first run")
	stored := portalsAt(t, filepath.Join(dir, "supportbot.db"))
	if len(stored) != 1 || stored[0].BotID != b.ID {
		t.Fatalf("database holds portals %+v, want one with bot ID %d", stored, b.ID)
	}
	if got := storedCommands(t, filepath.Join(dir, "supportbot.db"), stored[0].ID); got != len(wantCommands) {
		t.Errorf("database holds %d command IDs, want %d", got, len(wantCommands))
	}
	if !strings.Contains(first.stdout, "registered bot") || !strings.Contains(first.stdout, "registered command /new") {
		t.Errorf("register did not say what it did:\n%s", first.stdout)
	}

	portal.Reset()
	second := runCLI(t, dir, append(env, "SUPPORTBOT_BOT_NAME=Helpdesk"), "register")
	if second.code != 0 {
		t.Fatalf("second register: exit %d\n%s%s", second.code, second.stdout, second.stderr)
	}
	if n := len(portal.CallsTo("imbot.register")) + len(portal.CallsTo("imbot.command.register")); n != 0 {
		t.Errorf("second run registered anew %d times; it should update", n)
	}
	if n := len(portal.CallsTo("imbot.update")); n != 1 {
		t.Errorf("second run: %d imbot.update calls, want 1", n)
	}
	if n := len(portal.CallsTo("imbot.command.update")); n != len(wantCommands) {
		t.Errorf("second run: %d imbot.command.update calls, want %d", n, len(wantCommands))
	}
	bots = portal.Bots()
	if len(bots) != 1 || bots[0].ID != b.ID || bots[0].Properties["NAME"] != "Helpdesk" || bots[0].Registrations != 1 {
		t.Fatalf("bots after the second run: %+v", bots)
	}
	checkCommands("second run")
	if !strings.Contains(second.stdout, "updated bot") {
		t.Errorf("second register did not say it updated:\n%s", second.stdout)
	}

	un := runCLI(t, dir, env, "unregister")
	if un.code != 0 {
		t.Fatalf("unregister: exit %d\n%s%s", un.code, un.stdout, un.stderr)
	}
	if bots, cmds := portal.Bots(), portal.Commands(); len(bots) != 0 || len(cmds) != 0 {
		t.Fatalf("after unregister the portal still has bots %+v and commands %+v", bots, cmds)
	}
	if !strings.Contains(un.stdout, "removed bot") {
		t.Errorf("unregister did not say what it did:\n%s", un.stdout)
	}
	if got := storedCommands(t, filepath.Join(dir, "supportbot.db"), portalsAt(t, filepath.Join(dir, "supportbot.db"))[0].ID); got != 0 {
		t.Errorf("database still holds %d command IDs", got)
	}

	// And registering after that starts over with a new bot.
	again := runCLI(t, dir, env, "register")
	if bots := portal.Bots(); again.code != 0 || len(bots) != 1 || len(portal.Commands()) != len(wantCommands) {
		t.Fatalf("register after unregister: exit %d, bots %+v\n%s%s", again.code, bots, again.stdout, again.stderr)
	}
}

// TestSetupFailsClearly: a webhook without the imbot scope, a portal that refuses with
// insufficient_scope, an unreachable portal and a URL that is no Bitrix24 portal make
// register and unregister exit non-zero with a message that says what to do.
func TestSetupFailsClearly(t *testing.T) {
	t.Parallel()
	noScope := b24test.New(t)
	noScope.SetScopes("im", "user")

	refuses := b24test.New(t)
	refuses.Handle("imbot.bot.list", func(bitrix24.Form) (any, *bitrix24.Error) {
		return nil, &bitrix24.Error{Code: "insufficient_scope", HTTPStatus: http.StatusForbidden,
			Description: "The request requires higher privileges than provided by the webhook token"}
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "http://" + ln.Addr().String() + "/rest/1/secret/"
	ln.Close()

	notBitrix := b24test.New(t)
	notBitrix.HandleHTTP("scope", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("<html><body>Not Found</body></html>"))
	})

	cases := []struct {
		name, webhook string
		want          string
	}{
		{"no imbot scope", noScope.WebhookURL(), "lacks the imbot scope"},
		{"insufficient_scope", refuses.WebhookURL(), "lacks the imbot scope"},
		{"unreachable", unreachable, "cannot reach the portal"},
		{"not a portal", notBitrix.WebhookURL(), "not like a Bitrix24 REST API"},
		{"wrong secret", notBitrix.URL() + "/rest/1/0123456789abcdef/", "the portal did not accept the webhook"},
	}
	for _, tc := range cases {
		for _, command := range []string{"register", "unregister"} {
			t.Run(tc.name+"/"+command, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				res := runCLI(t, dir, setupEnv(dir, tc.webhook), command)
				if res.code == 0 {
					t.Fatalf("exit 0\n%s%s", res.stdout, res.stderr)
				}
				if !strings.Contains(res.stderr, command+": ") || !strings.Contains(res.stderr, tc.want) {
					t.Errorf("stderr %q, want it to say %q", res.stderr, tc.want)
				}
				if strings.Contains(res.stderr, "secret") || strings.Contains(res.stdout, "/rest/1/") {
					t.Errorf("the webhook URL leaked:\n%s%s", res.stdout, res.stderr)
				}
			})
		}
	}
	for _, p := range []*b24test.Portal{noScope, refuses, notBitrix} {
		if len(p.Bots()) != 0 || slices.ContainsFunc(p.Calls(), func(c b24test.Call) bool { return c.Method == "imbot.register" }) {
			t.Errorf("a failing portal got a bot: %+v", p.Bots())
		}
	}
}

// TestDoctorReportsEachBrokenPiece: a configuration broken in every place doctor
// checks gets one ✗ line per broken piece, each with what to fix, and exit 1; the same
// installation repaired passes.
func TestDoctorReportsEachBrokenPiece(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	portal.SetScopes("im", "user") // the webhook was created without imbot
	dir := t.TempDir()
	broken := []string{
		"SUPPORTBOT_DB_URL=", // a db.path in no directory: SQLite's mistake
		"SUPPORTBOT_BITRIX_API=v1",
		"SUPPORTBOT_BITRIX_WEBHOOK_URL=" + portal.WebhookURL(), // and no application token
		"SUPPORTBOT_DB_PATH=" + filepath.Join(dir, "no-such-dir", "supportbot.db"),
		"SUPPORTBOT_DIALOGS_MAX_ACTIVE=0",
		"SUPPORTBOT_BOT_COLOR=TEAL",
		// http.public_url left out, support.agents and access.* empty
	}
	res := runCLI(t, dir, broken, "doctor")
	if res.code == 0 {
		t.Fatalf("doctor passed a broken configuration:\n%s", res.stdout)
	}
	for _, want := range []string{
		"✗ configuration: bitrix.application_token is required",
		"fix: run `supportbot register`, then `supportbot token`",
		"✗ configuration: dialogs.max_active must be >= 1",
		`✗ configuration: bot.color must be "RED", "GREEN",`, `"GRAPHITE", got "TEAL"`,
		"✗ database: ",
		"✗ public URL: http.public_url is not set",
		"! people: support.agents is empty",
		"! people: access.admins and access.integrators are empty",
		"✗ webhook: the webhook lacks the imbot scope",
		"fix: the webhook lacks the imbot scope. In Bitrix24 open Developer resources",
		"some checks failed",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("doctor did not report %q:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout+res.stderr, "/rest/1/") {
		t.Errorf("doctor printed the webhook URL:\n%s", res.stdout)
	}

	// Scope given, but no bot registered yet.
	portal.SetScopes("imbot", "im", "user")
	// A database file not there yet: SQLite's, whatever the tests run on.
	env := append(setupEnv(dir, portal.WebhookURL()), "SUPPORTBOT_BITRIX_APPLICATION_TOKEN="+portal.ApplicationToken(), "SUPPORTBOT_DB_URL=")
	res = runCLI(t, dir, env, "doctor")
	if res.code == 0 || !strings.Contains(res.stdout, "✓ webhook: reachable, with the imbot scope") ||
		!strings.Contains(res.stdout, "✗ bot: no bot is registered") || !strings.Contains(res.stdout, "fix: run `supportbot register`") {
		t.Errorf("doctor before register: exit %d\n%s", res.code, res.stdout)
	}
	if !strings.Contains(res.stdout, "! database: ") {
		t.Errorf("doctor did not say the database is not there yet:\n%s", res.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "supportbot.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("doctor created the database: %v", err)
	}

	// Registered, then removed by hand in Bitrix24.
	if reg := runCLI(t, dir, env, "register"); reg.code != 0 {
		t.Fatalf("register: %s%s", reg.stdout, reg.stderr)
	}
	res = runCLI(t, dir, env, "doctor")
	if res.code != 0 || !strings.Contains(res.stdout, "✓ bot: ") || !strings.Contains(res.stdout, "✓ commands: all") ||
		!strings.Contains(res.stdout, "all checks passed") {
		t.Fatalf("doctor after register: exit %d\n%s", res.code, res.stdout)
	}
	id := portal.Bots()[0].ID
	if _, err := bitrix24.NewClient(portal.WebhookURL()).Call(t.Context(), "imbot.unregister",
		map[string]any{"BOT_ID": id, "CLIENT_ID": portal.Bots()[0].ClientID}); err != nil {
		t.Fatal(err)
	}
	res = runCLI(t, dir, env, "doctor")
	if res.code == 0 || !strings.Contains(res.stdout, "is not on the portal (removed in Bitrix24?)") {
		t.Errorf("doctor after the bot was removed: exit %d\n%s", res.code, res.stdout)
	}
}

// freeAddr is a local address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestTokenCommand: step 5 of the guide. `supportbot token` prints a one-time code and
// waits for the message holding it, from the webhook's portal; it prints that event's
// application token and exits 0. Anyone else's POST to the public URL is ignored.
func TestTokenCommand(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cmd := exec.Command(buildBinary(t), "token")
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "SUPPORTBOT_HTTP_ADDR=" + addr},
		setupEnv(dir, portal.WebhookURL())...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var code string
	select {
	case line := <-lines:
		m := regexp.MustCompile(`write this code to the bot in Bitrix24: (\d{6})$`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("first line %q", line)
		}
		code = m[1]
	case <-time.After(20 * time.Second):
		t.Fatal("token printed no code")
	}

	post := func(text, domain, token string) {
		t.Helper()
		body := b24test.Event("v1/onimbotmessageadd-private.form", map[string]string{
			"data[PARAMS][MESSAGE]": text, "auth[domain]": domain, "auth[application_token]": token})
		if status, _, err := portal.Post(t.Context(), "http://"+addr+"/bitrix/events", body); err != nil || status != http.StatusOK {
			t.Fatalf("post: %v %d", err, status)
		}
	}
	post("hello", portal.Domain(), "attacker1")                   // no code
	post("code "+code, "evil.bitrix24.com", "attacker2")          // another portal
	post("my code is "+code, portal.Domain(), "0f9e8d7c6b5a4938") // the one
	var out []string
	for line := range lines {
		out = append(out, line)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("token: %v\n%s", err, strings.Join(out, "\n"))
	}
	text := strings.Join(out, "\n")
	if !strings.Contains(text, "application token: 0f9e8d7c6b5a4938") || strings.Contains(text, "attacker") {
		t.Fatalf("token printed:\n%s", text)
	}
}

// TestHealthcheckCommand: the image's HEALTHCHECK passes against a running server and
// fails when nothing answers.
func TestHealthcheckCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startBinary(t, dir, []string{"SUPPORTBOT_HTTP_ADDR=127.0.0.1:0"})
	if res := runCLI(t, dir, []string{"SUPPORTBOT_HTTP_ADDR=" + p.addr}, "healthcheck"); res.code != 0 {
		t.Fatalf("healthcheck of a running server: exit %d %s", res.code, res.stderr)
	}
	res := runCLI(t, dir, []string{"SUPPORTBOT_HTTP_ADDR=" + freeAddr(t)}, "healthcheck")
	if res.code == 0 || !strings.Contains(res.stderr, "not healthy") {
		t.Fatalf("healthcheck with no server: exit %d %s", res.code, res.stderr)
	}
}

// TestLostDatabase: the CLIENT_ID `register` generated lives in the database. With the
// database gone, register and unregister refuse clearly (they never claim to have
// removed what they could not), and the printed CLIENT_ID, configured, sets it right.
func TestLostDatabase(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	dir := t.TempDir()
	// The database is lost by removing its file: on SQLite whatever the tests run on.
	env := append(setupEnv(dir, portal.WebhookURL()), "SUPPORTBOT_DB_URL=")
	first := runCLI(t, dir, env, "register")
	if first.code != 0 {
		t.Fatalf("register: %s%s", first.stdout, first.stderr)
	}
	m := regexp.MustCompile(`generated CLIENT_ID ([0-9a-f]{32}).*bitrix\.client_id`).FindStringSubmatch(first.stdout)
	if m == nil {
		t.Fatalf("register did not print the CLIENT_ID to keep:\n%s", first.stdout)
	}
	for _, f := range []string{"supportbot.db", "supportbot.db-wal", "supportbot.db-shm"} {
		os.Remove(filepath.Join(dir, f))
	}
	for _, command := range []string{"register", "unregister"} {
		res := runCLI(t, dir, env, command)
		if res.code == 0 || !strings.Contains(res.stderr, "registered with another CLIENT_ID") {
			t.Errorf("%s without the database: exit %d\n%s%s", command, res.code, res.stdout, res.stderr)
		}
	}
	if len(portal.Bots()) != 1 {
		t.Fatalf("bots %+v", portal.Bots())
	}
	res := runCLI(t, dir, append(env, "SUPPORTBOT_BITRIX_CLIENT_ID="+m[1]), "register")
	if res.code != 0 || !strings.Contains(res.stdout, "updated bot") || len(portal.Bots()) != 1 {
		t.Fatalf("register with the CLIENT_ID configured: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}
