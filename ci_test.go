package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoCompiledFilesCheck: .ci/run's check passes on this tree and fails once a
// compiled binary is tracked, so a built artefact cannot be committed unnoticed.
func TestNoCompiledFilesCheck(t *testing.T) {
	t.Parallel()
	script, err := filepath.Abs(".ci/no-binaries")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", script, ".").CombinedOutput(); err != nil {
		t.Fatalf("the check fails on this tree: %v\n%s", err, out)
	}

	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	if err := os.WriteFile(filepath.Join(repo, "main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", ".")
	git("commit", "-q", "-m", "source only")
	if out, err := exec.Command("bash", script, repo).CombinedOutput(); err != nil {
		t.Fatalf("the check fails on a tree of source only: %v\n%s", err, out)
	}

	// The test binary itself is a real compiled file.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "handlers.test"), self, 0o755); err != nil {
		t.Fatal(err)
	}
	git("add", "-f", "handlers.test")
	git("commit", "-q", "-m", "a built binary")
	out, err := exec.Command("bash", script, repo).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "handlers.test") {
		t.Fatalf("the check passed with a compiled binary tracked: %v\n%s", err, out)
	}
}
