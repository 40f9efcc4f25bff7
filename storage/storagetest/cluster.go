package storagetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Cluster is a throwaway PostgreSQL cluster of the test's own, for the tests that
// stop, restart or terminate the server — never the shared one of PostgresEnv. It
// needs the server's binaries (/usr/lib/postgresql/*/bin): without them the test is
// skipped, saying so, or fails under CI=true. As root, the server runs as the
// postgres user (initdb refuses root).
type Cluster struct {
	URL  string // postgres://… of the cluster's postgres database
	bin  string
	dir  string
	port int
}

// NewCluster initialises and starts a cluster in a temporary directory on a free
// port; it is stopped and removed when the test ends.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: CI must run the tests that restart a server")
		}
		t.Skip("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: install postgresql to run this test")
	}
	sort.Slice(bins, func(i, j int) bool { return versionOf(bins[i]) < versionOf(bins[j]) })
	dir, err := os.MkdirTemp("", "supportbot-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{bin: filepath.Dir(bins[len(bins)-1]), dir: dir, port: freePort(t)}
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, the cluster needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		c.run(t, false, "pg_ctl", "-D", c.data(), "-m", "immediate", "stop")
		os.RemoveAll(dir)
	})
	c.run(t, true, "initdb", "-D", c.data(), "-A", "trust", "-U", "postgres")
	c.Start(t)
	return c
}

func versionOf(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// Start starts the stopped cluster and waits until it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	c.run(t, true, "pg_ctl", "-D", c.data(), "-w", "-l", filepath.Join(c.dir, "log"), "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", c.port, c.dir), "start")
}

// Stop stops the cluster at once, as a crash would (every session cut, nothing
// checkpointed); connections are refused until Start.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	c.run(t, true, "pg_ctl", "-D", c.data(), "-w", "-m", "immediate", "stop")
}

func (c *Cluster) run(t testing.TB, must bool, tool string, args ...string) {
	t.Helper()
	argv := append([]string{filepath.Join(c.bin, tool)}, args...)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		quoted := make([]string, len(argv))
		for i, a := range argv {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		cmd = exec.Command("su", "postgres", "-s", "/bin/sh", "-c", "cd / && "+strings.Join(quoted, " "))
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	if out, err := cmd.CombinedOutput(); err != nil && must {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
