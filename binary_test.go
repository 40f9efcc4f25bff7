package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"supportbot/testwait"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// TestMain removes the one binary the tests share once they are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinary builds supportbot once per test run, as `go build` would for a user;
// every test that runs the binary shares that one build.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "supportbot-bin")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		binPath = filepath.Join(dir, "supportbot")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	return binPath
}

// process is the binary running in its own directory.
type process struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	log  strings.Builder
	done chan error
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startBinary runs the binary in dir with env and waits until it listens.
func startBinary(t *testing.T, dir string, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Dir = dir
	// Only what the test gives: no SUPPORTBOT_* from the machine running the tests.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, dbEnv(t, env, dir)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				addrCh <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case p.addr = <-addrCh:
	case err := <-p.done:
		t.Fatalf("supportbot exited before listening: %v\n%s", err, p.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("supportbot did not start:\n%s", p.logs())
	}
	return p
}

func (p *process) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *process) url() string {
	return "http://" + strings.Replace(p.addr, "[::]", "127.0.0.1", 1)
}

// TestRunOnFreshMachine: with no configuration at all, the binary starts on
// ./supportbot.db with the local portal beside it (./supportbot.portal.json), says so
// with the address to open, shows the messenger page there, answers a question
// written on it, and stops cleanly on SIGTERM.
func TestRunOnFreshMachine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The README's first command: the embedded SQLite default, whatever the tests run on.
	p := startBinary(t, dir, []string{"SUPPORTBOT_HTTP_ADDR=127.0.0.1:0", "SUPPORTBOT_DB_URL="})
	for _, name := range []string{"supportbot.db", "supportbot.portal.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("no %s in the working directory: %v", name, err)
		}
	}
	if !strings.Contains(p.logs(), "local trial") || !strings.Contains(p.logs(), "open "+p.url()) {
		t.Errorf("the log does not say it is a local trial, with the address to open:\n%s", p.logs())
	}
	get := func(path string) string {
		resp, err := http.Get(p.url() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return string(body)
	}
	get("/healthz")
	if page := get("/"); !strings.Contains(page, "Who are you?") || !strings.Contains(page, "Anna Petrova") {
		t.Fatalf("the messenger page:\n%s", page)
	}
	// The application installs itself and registers its bot: the chat with it has its name.
	testwait.For(t, "the bot on the page", func() bool { return strings.Contains(get("/?as=1"), "<span class=\"title\">Поддержка</span>") })
	req, _ := http.NewRequest(http.MethodPost, p.url()+"/local/send", strings.NewReader("as=1&chat=1&text=How+do+I+export+deals%3F"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the question: %d", resp.StatusCode)
	}
	testwait.For(t, "the bot's answer on the page", func() bool { return strings.Contains(get("/?as=1"), "Question #1 is open") })
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15 s of SIGTERM")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %v", d)
	}
}

func TestVersionCommand(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(buildBinary(t), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "supportbot ") {
		t.Fatalf("version: %q %v", out, err)
	}
}
