package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"supportbot/config"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite README.md's configuration table from config.Keys()")

const (
	tableBegin = "<!-- config-table:begin (generated from config.Keys(): go test -run TestREADMEConfigTable -update-readme) -->"
	tableEnd   = "<!-- config-table:end -->"
)

// configTable renders the configuration reference from the code.
func configTable() string {
	var b strings.Builder
	b.WriteString("| key | environment | default | meaning |\n| --- | --- | --- | --- |\n")
	for _, k := range config.Keys() {
		def := "—"
		if k.Default != nil {
			def = "`" + strings.Trim(k.DefaultText(), `"`) + "`"
		}
		desc := k.Description
		if k.Secret {
			desc += " (secret: never logged)"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", k.Name, k.Env, def, desc)
	}
	return b.String()
}

// TestREADMEConfigTable: the README's configuration table is the one the code
// describes, key for key, both ways.
func TestREADMEConfigTable(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	begin, end := strings.Index(readme, tableBegin), strings.Index(readme, tableEnd)
	if begin < 0 || end < begin {
		t.Fatal("README.md has no configuration table markers")
	}
	current := readme[begin+len(tableBegin) : end]
	want := "\n" + configTable()
	if *updateReadme {
		readme = readme[:begin+len(tableBegin)] + want + readme[end:]
		if err := os.WriteFile("README.md", []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	// Every key in the README exists in the code, and the other way round.
	inReadme := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+\\.[a-z_]+)` \\|").FindAllStringSubmatch(current, -1) {
		inReadme[m[1]] = true
	}
	inCode := map[string]bool{}
	for _, k := range config.Keys() {
		inCode[k.Name] = true
		if !inReadme[k.Name] {
			t.Errorf("key %s is missing from README.md", k.Name)
		}
	}
	for k := range inReadme {
		if !inCode[k] {
			t.Errorf("README.md lists %s, which the code does not know", k)
		}
	}
	if current != want {
		t.Errorf("README.md's configuration table is out of date: run go test -run TestREADMEConfigTable -update-readme")
	}
}

// TestDockerfileBuildsLikeCI: the image's binary comes from the build CI checks.
func TestDockerfileBuildsLikeCI(t *testing.T) {
	t.Parallel()
	docker, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	build, err := os.ReadFile(".ci/build")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(docker), "sh .ci/build") || !strings.Contains(string(ci), "sh .ci/build") {
		t.Error("the Dockerfile and .ci/run must both build with .ci/build")
	}
	if !strings.Contains(string(build), "CGO_ENABLED=0 go build") {
		t.Error(".ci/build does not make a static build")
	}
	for _, want := range []string{"USER 65532", "VOLUME /data", "HEALTHCHECK", "supportbot\", \"healthcheck\"", "SUPPORTBOT_DB_PATH=/data/"} {
		if !strings.Contains(string(docker), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
