package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

const (
	webhookSecret = "s3cr3tw3bh00k"
	tokenSecret   = "t0k3n-s3cr3t"
	webhookURL    = "https://portal.bitrix24.ru/rest/1/" + webhookSecret
	tokenMessage  = "bitrix.application_token is required for events posted to http.public_url: they could not be verified"
)

// sample is a non-default value for one key, spelled for each source.
type sample struct {
	str  string // environment value and flag value
	yaml string // YAML literal
	want any    // the resulting field value
}

// samples must cover every key (TestSamplesCoverKeys), so that adding a key
// without a way to set it from all three sources fails the tests below.
var samples = map[string]sample{
	"http.addr":                  {"127.0.0.1:9090", `"127.0.0.1:9090"`, "127.0.0.1:9090"},
	"http.public_url":            {"https://bot.example.com/", `https://bot.example.com/`, "https://bot.example.com/"},
	"db.url":                     {"postgres://bot:pgs3cret@db.example.com/support", `postgres://bot:pgs3cret@db.example.com/support`, "postgres://bot:pgs3cret@db.example.com/support"},
	"db.path":                    {"/var/lib/supportbot/bot.db", `/var/lib/supportbot/bot.db`, "/var/lib/supportbot/bot.db"},
	"bitrix.webhook_url":         {webhookURL, webhookURL, webhookURL + "/"},
	"bitrix.no_portal":           {"dry-run", `dry-run`, "dry-run"},
	"bitrix.application_token":   {tokenSecret, tokenSecret, tokenSecret},
	"bitrix.bot_id":              {"42", `42`, int64(42)},
	"bitrix.client_id":           {"local.abc123", `local.abc123`, "local.abc123"},
	"bitrix.rate_per_second":     {"5", `5`, 5.0},
	"bitrix.burst":               {"250", `250`, 250},
	"bot.name":                   {"Helpdesk", `Helpdesk`, "Helpdesk"},
	"bot.language":               {"en", `en`, "en"},
	"bot.code":                   {"helpdesk_bot", `helpdesk_bot`, "helpdesk_bot"},
	"bot.color":                  {"GREEN", `GREEN`, "GREEN"},
	"app.client_id":              {"local.64f0", `local.64f0`, "local.64f0"},
	"app.client_secret":          {"appS3cretValue", `appS3cretValue`, "appS3cretValue"},
	"app.oauth_url":              {"https://oauth.example.com/", `https://oauth.example.com/`, "https://oauth.example.com/"},
	"support.agents":             {"7, 8,9", `[7, 8, 9]`, []int64{7, 8, 9}},
	"access.admins":              {"1", `[1]`, []int64{1}},
	"access.integrators":         {"3,4", `["3", 4]`, []int64{3, 4}},
	"portal.plan":                {"free", `free`, "free"},
	"dialogs.max_active":         {"3", `3`, 3},
	"dialogs.auto_close_after":   {"48h", `48h`, 48 * time.Hour},
	"dialogs.auto_close_warning": {"12h", `12h`, 12 * time.Hour},
	"dialogs.rating_window":      {"72h", `72h`, 72 * time.Hour},
	"log.level":                  {"debug", `debug`, "debug"},
	"log.format":                 {"json", `json`, "json"},
	"delivery.max_age":           {"48h", `48h`, 48 * time.Hour},
	"bitrix.api":                 {"v1", `v1`, "v1"},
	"bitrix.events":              {"webhook", `webhook`, "webhook"},
	"bitrix.poll_interval":       {"30s", `30s`, 30 * time.Second},
	"db.retention":               {"168h", `"168h"`, 168 * time.Hour},
	"support.hours":              {"Mon-Fri 09:00-13:00, 14:00-18:00; Sat 10:00-14:00", `"Mon-Fri 09:00-13:00, 14:00-18:00; Sat 10:00-14:00"`, "Mon-Fri 09:00-13:00, 14:00-18:00; Sat 10:00-14:00"},
	"support.timezone":           {"Europe/Moscow", `Europe/Moscow`, "Europe/Moscow"},
	"sla.first_response":         {"30m", `30m`, 30 * time.Minute},
	"sla.reply":                  {"2h", `2h`, 2 * time.Hour},
}

// fieldOf finds a key's field through the mapstructure tags, independently
// of the package's own lookup.
func fieldOf(t *testing.T, c *Config, name string) reflect.Value {
	t.Helper()
	sec, key, _ := strings.Cut(name, ".")
	rv := reflect.ValueOf(c).Elem()
	for i := range rv.NumField() {
		if rv.Type().Field(i).Tag.Get("mapstructure") != sec {
			continue
		}
		s := rv.Field(i)
		for j := range s.NumField() {
			if s.Type().Field(j).Tag.Get("mapstructure") == key {
				return s.Field(j)
			}
		}
	}
	t.Fatalf("no field for key %s", name)
	return reflect.Value{}
}

func sampleConfig(t *testing.T, omit ...string) Config {
	t.Helper()
	c := defaultConfig()
	for name, s := range samples {
		if !slices.Contains(omit, name) {
			fieldOf(t, &c, name).Set(reflect.ValueOf(s.want))
		}
	}
	return c
}

func defaultConfig() Config {
	var c Config
	c.HTTP.Addr = ":8080"
	c.DB.Path = "supportbot.db"
	c.Bitrix.RatePerSecond, c.Bitrix.Burst = 2, 50
	c.Bot.Name, c.Bot.Language, c.Bot.Code, c.Bot.Color = "Поддержка", "ru", "supportbot", "AQUA"
	c.Portal.Plan = "commercial"
	c.Dialogs.MaxActive = 5
	c.Dialogs.AutoCloseAfter, c.Dialogs.AutoCloseWarning, c.Dialogs.RatingWindow = 72*time.Hour, 24*time.Hour, 7*24*time.Hour
	c.App.OAuthURL = "https://oauth.bitrix.info/"
	c.Log.Level, c.Log.Format = "info", "text"
	c.Delivery.MaxAge, c.DB.Retention = 24*time.Hour, 720*time.Hour
	c.Bitrix.API, c.Bitrix.Events, c.Bitrix.PollInterval = "v2", "fetch", 5*time.Second
	c.Support.Timezone = "UTC"
	c.Bitrix.NoPortal = "local"
	return c
}

// writeFile writes a config file into a fresh temporary directory.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load binds every flag on a fresh FlagSet, parses args (plus --config when
// file is not empty) and loads with env as the whole environment.
func load(t *testing.T, file string, env []string, args ...string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BindFlags(fs)
	if file != "" {
		args = append(args, "--config="+writeFile(t, file))
	}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return LoadFrom(fs, env)
}

func mustLoad(t *testing.T, file string, env []string, args ...string) *Config {
	t.Helper()
	c, err := load(t, file, env, args...)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return c
}

// yamlOf renders name -> YAML literal as the nested file layout.
func yamlOf(values map[string]string) string {
	bySection := map[string][]string{}
	var order []string
	for _, k := range Keys() {
		v, ok := values[k.Name]
		if !ok {
			continue
		}
		sec, key, _ := strings.Cut(k.Name, ".")
		if _, seen := bySection[sec]; !seen {
			order = append(order, sec)
		}
		bySection[sec] = append(bySection[sec], fmt.Sprintf("  %s: %s\n", key, v))
	}
	var b strings.Builder
	for _, sec := range order {
		b.WriteString(sec + ":\n")
		for _, line := range bySection[sec] {
			b.WriteString(line)
		}
	}
	return b.String()
}

// Webhook mode and app mode exclude each other, so a configuration that sets every
// key at once is invalid: whole-sample loads leave out one of the two.
var (
	webhookMode = []string{"app.client_id"}      // every sample but app mode's switch
	appMode     = []string{"bitrix.webhook_url"} // every sample but the webhook
)

func sampleYAML(omit ...string) string {
	m := map[string]string{}
	for name, s := range samples {
		if !slices.Contains(omit, name) {
			m[name] = s.yaml
		}
	}
	return yamlOf(m)
}

func sampleEnv(omit ...string) []string {
	var env []string
	for _, k := range Keys() {
		if !slices.Contains(omit, k.Name) {
			env = append(env, k.Env+"="+samples[k.Name].str)
		}
	}
	return env
}

func sampleFlags(omit ...string) []string {
	var args []string
	for _, k := range Keys() {
		if !slices.Contains(omit, k.Name) {
			args = append(args, "--"+k.Flag+"="+samples[k.Name].str)
		}
	}
	return args
}

func TestKeys(t *testing.T) {
	t.Parallel()
	ks := Keys()
	names, envs, flags := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, k := range ks {
		if names[k.Name] || envs[k.Env] || flags[k.Flag] {
			t.Errorf("duplicate key, env or flag: %+v", k)
		}
		names[k.Name], envs[k.Env], flags[k.Flag] = true, true, true
		if want := "SUPPORTBOT_" + strings.ToUpper(strings.ReplaceAll(k.Name, ".", "_")); k.Env != want {
			t.Errorf("%s: Env = %q, want %q", k.Name, k.Env, want)
		}
		if k.Flag != k.Name {
			t.Errorf("%s: Flag = %q, want the key name", k.Name, k.Flag)
		}
		if k.Description == "" {
			t.Errorf("%s: no description", k.Name)
		}
		var c Config
		f := fieldOf(t, &c, k.Name)
		if k.Default != nil && reflect.TypeOf(k.Default) != f.Type() {
			t.Errorf("%s: Default is %T, field is %s", k.Name, k.Default, f.Type())
		}
		if k.List != (f.Kind() == reflect.Slice) {
			t.Errorf("%s: List = %v for a %s field", k.Name, k.List, f.Type())
		}
		wantSecret := k.Name == "bitrix.webhook_url" || k.Name == "bitrix.application_token" || k.Name == "app.client_secret" || k.Name == "db.url"
		if k.Secret != wantSecret {
			t.Errorf("%s: Secret = %v", k.Name, k.Secret)
		}
	}

	// Every Config field is covered by exactly one key, and nothing else.
	fieldNames := map[string]bool{}
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		sec := ct.Field(i)
		if sec.Tag.Get("mapstructure") == "" {
			t.Errorf("Config.%s has no mapstructure tag", sec.Name)
		}
		for j := range sec.Type.NumField() {
			f := sec.Type.Field(j)
			if f.Tag.Get("mapstructure") == "" {
				t.Errorf("%s.%s has no mapstructure tag", sec.Name, f.Name)
			}
			fieldNames[sec.Tag.Get("mapstructure")+"."+f.Tag.Get("mapstructure")] = true
		}
	}
	if len(fieldNames) != len(ks) {
		t.Errorf("%d fields, %d keys", len(fieldNames), len(ks))
	}
	for name := range fieldNames {
		if !names[name] {
			t.Errorf("field %s has no key", name)
		}
	}
	for name := range names {
		if !fieldNames[name] {
			t.Errorf("key %s has no field", name)
		}
	}

	// Table order, as in the SPEC.
	if ks[0].Name != "http.addr" || ks[len(ks)-1].Name != "delivery.max_age" {
		t.Errorf("keys are not in table order: first %s, last %s", ks[0].Name, ks[len(ks)-1].Name)
	}

	// Keys returns a copy.
	ks[0].Name, ks[0].Default = "mutated", "mutated"
	if k := Keys()[0]; k.Name != "http.addr" || k.Default != ":8080" {
		t.Errorf("Keys() shares its backing array: %+v", k)
	}
}

func TestSamplesCoverKeys(t *testing.T) {
	t.Parallel()
	if len(samples) != len(Keys()) {
		t.Errorf("%d samples for %d keys", len(samples), len(Keys()))
	}
	for _, k := range Keys() {
		s, ok := samples[k.Name]
		if !ok {
			t.Errorf("no sample for %s", k.Name)
			continue
		}
		if reflect.DeepEqual(s.want, k.Default) {
			t.Errorf("sample for %s equals its default, so it proves nothing", k.Name)
		}
	}
}

func TestBindFlags(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	BindFlags(fs)
	if fs.Lookup("config") == nil {
		t.Error("no --config flag")
	}
	for _, k := range Keys() {
		f := fs.Lookup(k.Flag)
		if f == nil {
			t.Errorf("no flag --%s", k.Flag)
			continue
		}
		// The defaults live in Keys alone (and the usage text names them).
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "[]" {
			t.Errorf("--%s has default %q", k.Flag, f.DefValue)
		}
		if !strings.Contains(f.Usage, k.Env) {
			t.Errorf("--%s usage %q does not name %s", k.Flag, f.Usage, k.Env)
		}
	}
	if err := fs.Parse([]string{"--bitrix.burst=abc"}); err == nil {
		t.Error("--bitrix.burst=abc parsed")
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		load func() (*Config, error)
	}{
		{"nil flag set", func() (*Config, error) { return LoadFrom(nil, nil) }},
		{"unparsed flag set", func() (*Config, error) {
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			BindFlags(fs)
			return LoadFrom(fs, []string{"PATH=/bin", "HOME=/root"})
		}},
		{"flag set without our flags", func() (*Config, error) {
			return LoadFrom(pflag.NewFlagSet("other", pflag.ContinueOnError), nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := tc.load()
			if err != nil {
				t.Fatal(err)
			}
			if want := defaultConfig(); !reflect.DeepEqual(*c, want) {
				t.Errorf("got  %+v\nwant %+v", *c, want)
			}
			if !c.DryRun() || c.FreePlan() || c.SlogLevel() != slog.LevelInfo {
				t.Errorf("DryRun %v FreePlan %v SlogLevel %v", c.DryRun(), c.FreePlan(), c.SlogLevel())
			}
		})
	}
}

// TestEverySource sets every key from each source alone, with a FlagSet
// that has all flags bound: unset flags must not hide the file or the
// environment.
func TestEverySource(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name string
		omit []string
	}{{"webhook mode", webhookMode}, {"app mode", appMode}} {
		for _, tc := range []struct {
			name string
			file string
			env  []string
			args []string
		}{
			{name: "file", file: sampleYAML(mode.omit...)},
			{name: "env", env: sampleEnv(mode.omit...)},
			{name: "flags", args: sampleFlags(mode.omit...)},
			// --log.level is set to its sample value; every other flag is unset.
			{name: "file with one flag set", file: sampleYAML(mode.omit...), args: []string{"--log.level=debug"}},
		} {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				c := mustLoad(t, tc.file, tc.env, tc.args...)
				want := sampleConfig(t, mode.omit...)
				if !reflect.DeepEqual(*c, want) {
					t.Errorf("got  %+v\nwant %+v", *c, want)
				}
				if c.DryRun() || !c.FreePlan() || c.SlogLevel() != slog.LevelDebug {
					t.Errorf("DryRun %v FreePlan %v SlogLevel %v", c.DryRun(), c.FreePlan(), c.SlogLevel())
				}
				if c.AppMode() != (mode.name == "app mode") {
					t.Errorf("AppMode %v", c.AppMode())
				}
			})
		}
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	type layer struct{ file, env, flag string }
	for _, tc := range []struct {
		key  string
		in   layer // how each source spells its value
		want [4]any
	}{
		{"http.addr", layer{`":1001"`, ":1002", ":1003"}, [4]any{":8080", ":1001", ":1002", ":1003"}},
		{"bitrix.rate_per_second", layer{`1.5`, "2.5", "3.5"}, [4]any{2.0, 1.5, 2.5, 3.5}},
		{"bitrix.bot_id", layer{`11`, "12", "13"}, [4]any{int64(0), int64(11), int64(12), int64(13)}},
		{"support.agents", layer{`[1, 2]`, "3,4", "5"}, [4]any{[]int64(nil), []int64{1, 2}, []int64{3, 4}, []int64{5}}},
	} {
		k := Keys()[slices.IndexFunc(Keys(), func(k Key) bool { return k.Name == tc.key })]
		// Every subset of {file, env, flag}; the highest present wins.
		for mask := range 8 {
			useFile, useEnv, useFlag := mask&1 != 0, mask&2 != 0, mask&4 != 0
			name := fmt.Sprintf("%s/file=%v,env=%v,flag=%v", tc.key, useFile, useEnv, useFlag)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var file string
				var env, args []string
				want := tc.want[0]
				if useFile {
					file = yamlOf(map[string]string{tc.key: tc.in.file})
					want = tc.want[1]
				}
				if useEnv {
					env = []string{k.Env + "=" + tc.in.env}
					want = tc.want[2]
				}
				if useFlag {
					args = []string{"--" + k.Flag + "=" + tc.in.flag}
					want = tc.want[3]
				}
				c := mustLoad(t, file, env, args...)
				if got := fieldOf(t, c, tc.key).Interface(); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", tc.key, got, want)
				}
			})
		}
	}
}

func TestLists(t *testing.T) {
	t.Parallel()
	const key = "support.agents"
	for _, tc := range []struct {
		name    string
		file    string // YAML literal for support.agents
		env     string // SUPPORTBOT_SUPPORT_AGENTS, if not empty
		args    []string
		want    []int64
		wantErr []string
	}{
		{name: "env comma list with spaces", env: "7, 8,9", want: []int64{7, 8, 9}},
		{name: "env single", env: " 7 ", want: []int64{7}},
		{name: "env empty entry", env: "7,,8", wantErr: []string{`support.agents (from env SUPPORTBOT_SUPPORT_AGENTS): "" is not an integer`}},
		{name: "env not a number", env: "7,x", wantErr: []string{"support.agents (from env SUPPORTBOT_SUPPORT_AGENTS)", `"x" is not an integer`}},
		{name: "env zero", env: "0", wantErr: []string{"support.agents: 0 is not a user ID"}},
		{name: "env negative", env: "7,-5", wantErr: []string{"support.agents: -5 is not a user ID"}},
		{name: "yaml list", file: `[7, 8]`, want: []int64{7, 8}},
		{name: "yaml string", file: `"7,8"`, want: []int64{7, 8}},
		{name: "yaml number", file: `7`, want: []int64{7}},
		{name: "yaml mixed", file: `["7", 8]`, want: []int64{7, 8}},
		{name: "yaml empty list", file: `[]`, want: []int64{}},
		{name: "yaml fraction", file: `[7.5]`, wantErr: []string{"support.agents (from file", `"7.5" is not an integer`}},
		{name: "yaml mapping", file: `{a: 1}`, wantErr: []string{"support.agents (from file", "got unconvertible type 'map[string]interface {}'"}},
		{name: "flag comma list", args: []string{"--support.agents=7,8"}, want: []int64{7, 8}},
		{name: "flag repeated", args: []string{"--support.agents=7", "--support.agents=8"}, want: []int64{7, 8}},
		{name: "flag repeated lists", args: []string{"--support.agents", "7, 8", "--support.agents=9"}, want: []int64{7, 8, 9}},
		{name: "flag bad entry", args: []string{"--support.agents=7,x"}, wantErr: []string{"support.agents (from flag --support.agents)", `"x" is not an integer`}},
		{name: "flag clears file", file: `[7]`, args: []string{"--support.agents="}, want: []int64{}},
		{name: "env overrides file", file: `[7]`, env: "8", want: []int64{8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var file string
			if tc.file != "" {
				file = yamlOf(map[string]string{key: tc.file})
			}
			var env []string
			if tc.env != "" {
				env = []string{"SUPPORTBOT_SUPPORT_AGENTS=" + tc.env}
			}
			c, err := load(t, file, env, tc.args...)
			if tc.wantErr != nil {
				assertErr(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Support.Agents, tc.want) {
				t.Errorf("agents = %v, want %v", c.Support.Agents, tc.want)
			}
		})
	}
}

func assertErr(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestScalarConversion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		file    map[string]string
		env     []string
		check   func(*Config) bool
		wantErr []string
		notErr  []string
	}{
		{name: "env nested key with underscores", env: []string{"SUPPORTBOT_BITRIX_RATE_PER_SECOND=5"},
			check: func(c *Config) bool { return c.Bitrix.RatePerSecond == 5.0 }},
		{name: "env fraction", env: []string{"SUPPORTBOT_BITRIX_RATE_PER_SECOND=0.5"},
			check: func(c *Config) bool { return c.Bitrix.RatePerSecond == 0.5 }},
		{name: "env int", env: []string{"SUPPORTBOT_BITRIX_BURST=abc"},
			wantErr: []string{`bitrix.burst (from env SUPPORTBOT_BITRIX_BURST): "abc" is not an integer`},
			notErr:  []string{"bitrix.burst must be"}}, // reported once, not also as out of range
		{name: "env float", env: []string{"SUPPORTBOT_BITRIX_RATE_PER_SECOND=fast"},
			wantErr: []string{`bitrix.rate_per_second (from env SUPPORTBOT_BITRIX_RATE_PER_SECOND): "fast" is not a number`}},
		{name: "env int with fraction", env: []string{"SUPPORTBOT_DIALOGS_MAX_ACTIVE=2.5"},
			wantErr: []string{"dialogs.max_active", `"2.5" is not an integer`}},
		{name: "every problem at once", env: []string{"SUPPORTBOT_BITRIX_BURST=abc", "SUPPORTBOT_DIALOGS_MAX_ACTIVE=0", "SUPPORTBOT_BOT_LANGUAGE=de"},
			wantErr: []string{"bitrix.burst", "dialogs.max_active must be >= 1", `bot.language must be "ru" or "en"`}},
		{name: "yaml integral float", file: map[string]string{"bitrix.burst": `50.0`},
			check: func(c *Config) bool { return c.Bitrix.Burst == 50 }},
		{name: "yaml fraction for int", file: map[string]string{"bitrix.burst": `2.5`},
			wantErr: []string{"bitrix.burst (from file", `"2.5" is not an integer`}},
		{name: "yaml quoted float", file: map[string]string{"bitrix.rate_per_second": `"3.5"`},
			check: func(c *Config) bool { return c.Bitrix.RatePerSecond == 3.5 }},
		{name: "yaml number as string", file: map[string]string{"bitrix.client_id": `12345`},
			check: func(c *Config) bool { return c.Bitrix.ClientID == "12345" }},
		{name: "yaml list for string", file: map[string]string{"bot.name": `[a, b]`},
			wantErr: []string{"bot.name (from file", "expected type 'string', got unconvertible type '[]interface {}'"}},
		{name: "yaml list for secret", file: map[string]string{"bitrix.webhook_url": "[" + webhookURL + "]"},
			wantErr: []string{"bitrix.webhook_url (from file", "got unconvertible type '[]interface {}'"}, notErr: []string{webhookSecret}},
		{name: "yaml null value is unset", file: map[string]string{"http.addr": `~`},
			check: func(c *Config) bool { return c.HTTP.Addr == ":8080" }},
		{name: "env leading zero is decimal, not octal", env: []string{"SUPPORTBOT_BITRIX_BOT_ID=010"},
			check: func(c *Config) bool { return c.Bitrix.BotID == 10 }},
		{name: "env hex is no integer", env: []string{"SUPPORTBOT_BITRIX_BOT_ID=0x10"},
			wantErr: []string{`bitrix.bot_id (from env SUPPORTBOT_BITRIX_BOT_ID): "0x10" is not an integer`}},
		{name: "yaml bool for int", file: map[string]string{"bitrix.burst": `true`},
			wantErr: []string{"bitrix.burst (from file", `"true" is not an integer`}},
		{name: "yaml bool as string", file: map[string]string{"bot.name": `true`},
			check: func(c *Config) bool { return c.Bot.Name == "true" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var file string
			if tc.file != nil {
				file = yamlOf(tc.file)
			}
			c, err := load(t, file, tc.env)
			if tc.wantErr != nil {
				assertErr(t, err, tc.wantErr...)
				for _, n := range tc.notErr {
					if strings.Contains(err.Error(), n) {
						t.Errorf("error %q contains %q", err, n)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected config %+v", *c)
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	t.Run("unknown SUPPORTBOT_ variables are ignored", func(t *testing.T) {
		t.Parallel()
		c := mustLoad(t, "", []string{"SUPPORTBOT_NOPE=1", "SUPPORTBOT_DIALOG_MAX_ACTIVE=x", "PATH=/bin", "NOEQUALS"})
		if !reflect.DeepEqual(*c, defaultConfig()) {
			t.Errorf("got %+v", *c)
		}
	})
	t.Run("empty variable counts as unset", func(t *testing.T) {
		t.Parallel()
		c := mustLoad(t, yamlOf(map[string]string{"http.addr": `":1001"`}), []string{"SUPPORTBOT_HTTP_ADDR="})
		if c.HTTP.Addr != ":1001" {
			t.Errorf("http.addr = %q", c.HTTP.Addr)
		}
	})
	t.Run("first duplicate wins, as in os.Getenv", func(t *testing.T) {
		t.Parallel()
		c := mustLoad(t, "", []string{"SUPPORTBOT_HTTP_ADDR=:1", "SUPPORTBOT_HTTP_ADDR=:2"})
		if c.HTTP.Addr != ":1" {
			t.Errorf("http.addr = %q", c.HTTP.Addr)
		}
	})
	t.Run("empty flag overrides env", func(t *testing.T) {
		t.Parallel()
		c := mustLoad(t, "", []string{"SUPPORTBOT_BITRIX_WEBHOOK_URL=" + webhookURL}, "--bitrix.webhook_url=")
		if !c.DryRun() {
			t.Errorf("webhook_url = %q, want dry-run", c.Bitrix.WebhookURL)
		}
	})
}

func TestUnknownFileKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		file    string
		wantErr []string
		check   func(*Config) bool
	}{
		{name: "typo in section", file: "dialog:\n  max_active: 3\n",
			wantErr: []string{"unknown key dialog.max_active", "did you mean dialogs.max_active?"}},
		{name: "typo in key", file: "bitrix:\n  webhook: x\n",
			wantErr: []string{"unknown key bitrix.webhook"}},
		{name: "all unknown keys are named", file: "bitrix:\n  burst: 5\n  rate: 3\nfoo: 1\n",
			wantErr: []string{"unknown key bitrix.rate", "unknown key foo"}},
		{name: "unknown keys are reported with every other problem",
			file:    "dialog:\n  max_active: 3\nbot:\n  language: de\nbitrix:\n  webhook_url: " + webhookURL + "\n  api: v1\n  aplication_token: x\n",
			wantErr: []string{"unknown key dialog.max_active", `bot.language must be "ru" or "en"`, "did you mean bitrix.application_token?", tokenMessage}},
		{name: "section as a value", file: "bitrix: 5\n",
			wantErr: []string{"bitrix must be a mapping"}},
		{name: "top level list", file: "- a\n- b\n",
			wantErr: []string{"config file", "cannot unmarshal !!seq into map"}},
		{name: "invalid yaml", file: "bitrix: [\n",
			wantErr: []string{"config file"}},
		{name: "duplicate key", file: "bitrix:\n  burst: 5\n  burst: 6\n",
			wantErr: []string{"config file"}},
		{name: "section with every key commented out keeps defaults", file: "bitrix:\n  # webhook_url: x\nlog:\n  level: warn\n",
			check: func(c *Config) bool {
				return c.Bitrix.RatePerSecond == 2 && c.Bitrix.Burst == 50 && c.Log.Level == "warn" && c.Log.Format == "text"
			}},
		{name: "empty file", file: "# nothing yet\n",
			check: func(c *Config) bool { return reflect.DeepEqual(*c, defaultConfig()) }},
		{name: "keys are case-insensitive, as in viper", file: "Bitrix:\n  Burst: 7\n",
			check: func(c *Config) bool { return c.Bitrix.Burst == 7 }},
		{name: "sibling defaults survive a partial section", file: "bitrix:\n  burst: 7\n",
			check: func(c *Config) bool { return c.Bitrix.Burst == 7 && c.Bitrix.RatePerSecond == 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(t, tc.file, nil)
			if tc.wantErr != nil {
				assertErr(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected config %+v", *c)
			}
		})
	}
}

func TestConfigPath(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	present := writeFile(t, "bot:\n  name: FromFile\n")
	for _, tc := range []struct {
		name     string
		args     []string
		env      []string
		wantErr  []string
		wantName string
	}{
		{name: "--config missing", args: []string{"--config=" + missing}, wantErr: []string{missing, "no such file"}},
		{name: "--config empty", args: []string{"--config="}, wantErr: []string{"empty path"}},
		{name: "SUPPORTBOT_CONFIG missing", env: []string{"SUPPORTBOT_CONFIG=" + missing}, wantErr: []string{missing}},
		{name: "SUPPORTBOT_CONFIG present", env: []string{"SUPPORTBOT_CONFIG=" + present}, wantName: "FromFile"},
		{name: "--config wins over SUPPORTBOT_CONFIG", args: []string{"--config=" + present},
			env: []string{"SUPPORTBOT_CONFIG=" + missing}, wantName: "FromFile"},
		{name: "--config with env override", args: []string{"--config=" + present},
			env: []string{"SUPPORTBOT_BOT_NAME=FromEnv"}, wantName: "FromEnv"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(t, "", tc.env, tc.args...)
			if tc.wantErr != nil {
				assertErr(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Bot.Name != tc.wantName {
				t.Errorf("bot.name = %q, want %q", c.Bot.Name, tc.wantName)
			}
		})
	}
}

// TestDefaultFile cannot run in parallel: it changes the working directory.
func TestDefaultFile(t *testing.T) {
	for _, tc := range []struct {
		name     string
		content  *string
		wantErr  string
		wantName string
	}{
		{name: "present", content: ptr("bot:\n  name: Discovered\n"), wantName: "Discovered"},
		{name: "absent", wantName: "Поддержка"},
		{name: "present but invalid", content: ptr("bot:\n  nmae: x\n"), wantErr: "unknown key bot.nmae"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.content != nil {
				if err := os.WriteFile(filepath.Join(dir, "supportbot.yaml"), []byte(*tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			t.Chdir(dir)
			c, err := LoadFrom(nil, nil)
			if tc.wantErr != "" {
				assertErr(t, err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Bot.Name != tc.wantName {
				t.Errorf("bot.name = %q, want %q", c.Bot.Name, tc.wantName)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func validConfig() Config {
	c := defaultConfig()
	c.Bitrix.WebhookURL = webhookURL + "/"
	c.Bitrix.ApplicationToken = tokenSecret
	return c
}

func TestValidate(t *testing.T) {
	t.Parallel()
	sample := sampleConfig(t, webhookMode...)
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantErr []string // empty: valid
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "defaults (dry-run) are valid", mutate: func(c *Config) { *c = defaultConfig() }},
		{name: "dry-run with a token is valid", mutate: func(c *Config) { c.Bitrix.WebhookURL = "" }},
		{name: "full sample is valid", mutate: func(c *Config) { *c = sample }},
		{name: "v1 webhook without token", mutate: func(c *Config) { c.Bitrix.ApplicationToken, c.Bitrix.API = "", "v1" },
			wantErr: []string{tokenMessage}},
		{name: "v2 webhook events without token", mutate: func(c *Config) { c.Bitrix.ApplicationToken, c.Bitrix.Events = "", "webhook" },
			wantErr: []string{tokenMessage}},
		// Fetched events come from the portal the bot asked: no token to check.
		{name: "v2 fetch without token is valid", mutate: func(c *Config) { c.Bitrix.ApplicationToken, c.Bitrix.Events = "", "fetch" }},
		{name: "db.url not postgres", mutate: func(c *Config) { c.DB.URL = "mysql://db/x" }, wantErr: []string{"db.url must be a postgres:// URL"}},
		{name: "webhook not http", mutate: func(c *Config) { c.Bitrix.WebhookURL = "ftp://portal/rest/1/" + webhookSecret },
			wantErr: []string{"bitrix.webhook_url must be an absolute http(s) URL"}},
		{name: "webhook without scheme", mutate: func(c *Config) { c.Bitrix.WebhookURL = "portal.bitrix24.ru/rest/1/" + webhookSecret },
			wantErr: []string{"bitrix.webhook_url must be an absolute http(s) URL"}},
		{name: "webhook without host", mutate: func(c *Config) { c.Bitrix.WebhookURL = "https:///rest/1/" + webhookSecret },
			wantErr: []string{"bitrix.webhook_url must be an absolute http(s) URL with a host"}},
		{name: "webhook unparsable", mutate: func(c *Config) { c.Bitrix.WebhookURL = "https://por tal/" + webhookSecret },
			wantErr: []string{"bitrix.webhook_url is not a valid URL"}},
		{name: "webhook with query", mutate: func(c *Config) { c.Bitrix.WebhookURL = webhookURL + "/?x=1" },
			wantErr: []string{"bitrix.webhook_url must not have a query or fragment"}},
		{name: "public url without scheme", mutate: func(c *Config) { c.HTTP.PublicURL = "bot.example.com" },
			wantErr: []string{`http.public_url "bot.example.com" must be an absolute http(s) URL`}},
		{name: "public url not http", mutate: func(c *Config) { c.HTTP.PublicURL = "ftp://bot.example.com" },
			wantErr: []string{"http.public_url"}},
		{name: "empty addr", mutate: func(c *Config) { c.HTTP.Addr = "" }, wantErr: []string{"http.addr is empty"}},
		{name: "addr without port", mutate: func(c *Config) { c.HTTP.Addr = "8080" }, wantErr: []string{`http.addr "8080" is not host:port`}},
		{name: "empty db path", mutate: func(c *Config) { c.DB.Path = "" }, wantErr: []string{"db.path is empty"}},
		{name: "negative bot id", mutate: func(c *Config) { c.Bitrix.BotID = -1 }, wantErr: []string{"bitrix.bot_id must be >= 0"}},
		{name: "zero rate", mutate: func(c *Config) { c.Bitrix.RatePerSecond = 0 }, wantErr: []string{"bitrix.rate_per_second must be a number > 0"}},
		{name: "negative rate", mutate: func(c *Config) { c.Bitrix.RatePerSecond = -1 }, wantErr: []string{"bitrix.rate_per_second"}},
		{name: "NaN rate", mutate: func(c *Config) { c.Bitrix.RatePerSecond = math.NaN() }, wantErr: []string{"bitrix.rate_per_second"}},
		{name: "infinite rate", mutate: func(c *Config) { c.Bitrix.RatePerSecond = math.Inf(1) }, wantErr: []string{"bitrix.rate_per_second"}},
		{name: "zero burst", mutate: func(c *Config) { c.Bitrix.Burst = 0 }, wantErr: []string{"bitrix.burst must be >= 1"}},
		{name: "empty bot name", mutate: func(c *Config) { c.Bot.Name = "" }, wantErr: []string{"bot.name is empty"}},
		{name: "bot code with spaces", mutate: func(c *Config) { c.Bot.Code = "support bot" }, wantErr: []string{`bot.code "support bot"`}},
		{name: "unknown colour", mutate: func(c *Config) { c.Bot.Color = "ORANGE" }, wantErr: []string{`bot.color must be "RED", "GREEN", "MINT", "LIGHT_BLUE", "DARK_BLUE", "PURPLE", "AQUA", "PINK", "LIME", "BROWN", "AZURE", "KHAKI", "SAND", "MARENGO", "GRAY" or "GRAPHITE", got "ORANGE"`}},
		{name: "app mode is valid", mutate: func(c *Config) {
			c.Bitrix.WebhookURL, c.App.ClientID, c.App.ClientSecret, c.HTTP.PublicURL = "", "local.1", "s", "https://bot.example.com"
		}},
		{name: "app without secret", mutate: func(c *Config) {
			c.Bitrix.WebhookURL, c.App.ClientID, c.HTTP.PublicURL = "", "local.1", "https://bot.example.com"
		}, wantErr: []string{"app.client_secret is required when app.client_id is set"}},
		{name: "app and webhook", mutate: func(c *Config) {
			c.App.ClientID, c.App.ClientSecret, c.HTTP.PublicURL = "local.1", "s", "https://bot.example.com"
		}, wantErr: []string{"app.client_id and bitrix.webhook_url are both set"}},
		{name: "app without public url", mutate: func(c *Config) {
			c.Bitrix.WebhookURL, c.App.ClientID, c.App.ClientSecret = "", "local.1", "s"
		}, wantErr: []string{"http.public_url is required in app mode"}},
		{name: "bad oauth url", mutate: func(c *Config) { c.App.OAuthURL = "oauth.bitrix.info" }, wantErr: []string{"app.oauth_url"}},
		{name: "unknown language", mutate: func(c *Config) { c.Bot.Language = "de" }, wantErr: []string{`bot.language must be "ru" or "en", got "de"`}},
		{name: "zero agent", mutate: func(c *Config) { c.Support.Agents = []int64{1, 0} }, wantErr: []string{"support.agents: 0 is not a user ID"}},
		{name: "negative admin", mutate: func(c *Config) { c.Access.Admins = []int64{-1} }, wantErr: []string{"access.admins: -1 is not a user ID"}},
		{name: "zero integrator", mutate: func(c *Config) { c.Access.Integrators = []int64{0} }, wantErr: []string{"access.integrators: 0 is not a user ID"}},
		{name: "absurd agent", mutate: func(c *Config) { c.Support.Agents = []int64{math.MaxInt64} }, wantErr: []string{"support.agents: 9223372036854775807 is not a user ID"}},
		{name: "unknown plan", mutate: func(c *Config) { c.Portal.Plan = "enterprise" }, wantErr: []string{`portal.plan must be "commercial" or "free"`}},
		{name: "zero max active", mutate: func(c *Config) { c.Dialogs.MaxActive = 0 }, wantErr: []string{"dialogs.max_active must be >= 1"}},
		{name: "polls faster than the docs ask", mutate: func(c *Config) { c.Bitrix.PollInterval = time.Second }, wantErr: []string{"bitrix.poll_interval must be >= 5s, got 1s"}},
		{name: "polls too seldom", mutate: func(c *Config) { c.Bitrix.PollInterval = 2 * time.Minute }, wantErr: []string{"bitrix.poll_interval must be <= 1m, got 2m"}},
		{name: "warning as long as the auto-close", mutate: func(c *Config) { c.Dialogs.AutoCloseWarning = c.Dialogs.AutoCloseAfter },
			wantErr: []string{"dialogs.auto_close_warning must be shorter than dialogs.auto_close_after"}},
		{name: "working hours with holidays", mutate: func(c *Config) {
			c.Support.Hours, c.Support.Timezone = "Mon-Fri 09:00-18:00; holidays 2027-01-01", "Europe/Berlin"
		}},
		{name: "bad working hours", mutate: func(c *Config) { c.Support.Hours = "Mon-Fri 9-18" },
			wantErr: []string{`support.hours or support.timezone: invalid working hours: clause 1 "Mon-Fri 9-18": range "9-18": time "9": write HH:MM`}},
		{name: "unknown time zone", mutate: func(c *Config) { c.Support.Timezone = "Mars/Olympus" },
			wantErr: []string{`time zone "Mars/Olympus": unknown`}},
		{name: "negative target", mutate: func(c *Config) { c.SLA.Reply = -time.Minute }, wantErr: []string{"sla.reply must be >= 0"}},
		{name: "auto-close off needs no shorter warning", mutate: func(c *Config) { c.Dialogs.AutoCloseAfter = 0 }},
		{name: "unknown log level", mutate: func(c *Config) { c.Log.Level = "verbose" }, wantErr: []string{`log.level must be "debug", "info", "warn" or "error", got "verbose"`}},
		{name: "empty log level", mutate: func(c *Config) { c.Log.Level = "" }, wantErr: []string{"log.level must be"}},
		{name: "unknown log format", mutate: func(c *Config) { c.Log.Format = "xml" }, wantErr: []string{`log.format must be "text" or "json"`}},
		{name: "every problem is named", mutate: func(c *Config) {
			c.Bitrix.ApplicationToken, c.Bitrix.API = "", "v1"
			c.Bitrix.Burst = 0
			c.Dialogs.MaxActive = 0
			c.Log.Format = "xml"
		}, wantErr: []string{tokenMessage, "bitrix.burst", "dialogs.max_active", "log.format"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tc.mutate(&c)
			err := c.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			assertErr(t, err, tc.wantErr...)
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tc.wantErr) {
				t.Errorf("%d problems reported, want %d: %v", n, len(tc.wantErr), err)
			}
			if strings.Contains(err.Error(), webhookSecret) || strings.Contains(err.Error(), tokenSecret) {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestWebhookWithoutTokenMessage(t *testing.T) {
	t.Parallel()
	_, err := load(t, "", []string{"SUPPORTBOT_BITRIX_WEBHOOK_URL=" + webhookURL, "SUPPORTBOT_BITRIX_API=v1"})
	if err == nil || err.Error() != tokenMessage {
		t.Fatalf("error = %v, want exactly %q", err, tokenMessage)
	}
}

func TestWebhookNormalised(t *testing.T) {
	t.Parallel()
	for _, in := range []string{webhookURL, webhookURL + "/"} {
		c := validConfig()
		c.Bitrix.WebhookURL = in
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.Bitrix.WebhookURL != webhookURL+"/" {
			t.Errorf("%q normalised to %q", in, c.Bitrix.WebhookURL)
		}
	}
}

func TestSlogLevel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn,
		"error": slog.LevelError, "WARN": slog.LevelWarn, "bogus": slog.LevelInfo,
	} {
		var c Config
		c.Log.Level = in
		if got := c.SlogLevel(); got != want {
			t.Errorf("SlogLevel(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestLogValueRedactsSecrets(t *testing.T) {
	t.Parallel()
	c := sampleConfig(t)
	for _, tc := range []struct {
		name    string
		handler func(*bytes.Buffer) slog.Handler
		value   any
		want    []string
	}{
		{"text, value", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }, c,
			[]string{"config.bitrix.webhook_url=https://portal.bitrix24.ru/…", "config.bitrix.application_token=set", "config.http.addr=127.0.0.1:9090"}},
		{"text, pointer", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }, &c,
			[]string{"config.bitrix.webhook_url=https://portal.bitrix24.ru/…", "config.bitrix.application_token=set"}},
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }, c,
			[]string{`"webhook_url":"https://portal.bitrix24.ru/…"`, `"application_token":"set"`, `"agents":[7,8,9]`}},
		{"dry-run", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }, defaultConfig(),
			[]string{`config.bitrix.webhook_url=""`, `config.bitrix.application_token=""`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			slog.New(tc.handler(&buf)).Info("loaded", "config", tc.value)
			out := buf.String()
			for _, secret := range []string{webhookSecret, tokenSecret, "/rest/1", "appS3cretValue"} {
				if strings.Contains(out, secret) {
					t.Errorf("log contains %q: %s", secret, out)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("log lacks %q: %s", w, out)
				}
			}
			if strings.HasPrefix(tc.name, "text") {
				for _, k := range Keys() {
					if !strings.Contains(out, "config."+k.Name+"=") {
						t.Errorf("log lacks key %s: %s", k.Name, out)
					}
				}
			}
		})
	}
}

// TestLoadConcurrent checks that loads share no state: each goroutine must
// see only its own environment (run with -race).
func TestLoadConcurrent(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for i := 1; i <= 32; i++ {
		wg.Go(func() {
			env := []string{fmt.Sprintf("SUPPORTBOT_BITRIX_BURST=%d", i), fmt.Sprintf("SUPPORTBOT_SUPPORT_AGENTS=%d,%d", i, i+1)}
			c, err := LoadFrom(nil, env)
			if err != nil {
				t.Error(err)
				return
			}
			if c.Bitrix.Burst != i || !slices.Equal(c.Support.Agents, []int64{int64(i), int64(i + 1)}) {
				t.Errorf("goroutine %d got burst %d agents %v", i, c.Bitrix.Burst, c.Support.Agents)
			}
		})
	}
	wg.Wait()
}

// TestLoadUsesProcessEnvironment checks Load(fs) == LoadFrom(fs, os.Environ())
// without changing the environment.
func TestLoadUsesProcessEnvironment(t *testing.T) {
	t.Parallel()
	c1, err1 := Load(nil)
	c2, err2 := LoadFrom(nil, os.Environ())
	if !reflect.DeepEqual(c1, c2) || fmt.Sprint(err1) != fmt.Sprint(err2) {
		t.Errorf("Load = %+v, %v; LoadFrom = %+v, %v", c1, err1, c2, err2)
	}
}

// TestNullSectionWithOtherSources: a section whose keys are all commented out
// hides neither the environment nor the flags for that section.
func TestNullSectionWithOtherSources(t *testing.T) {
	t.Parallel()
	for range 20 { // settings are built from maps: repeat to catch an order dependence
		c := mustLoad(t, "bitrix:\n  # burst: 1\n", []string{"SUPPORTBOT_BITRIX_BURST=7"}, "--bitrix.rate_per_second=3")
		if c.Bitrix.Burst != 7 || c.Bitrix.RatePerSecond != 3 || c.Bitrix.BotID != 0 {
			t.Fatalf("bitrix = %+v", c.Bitrix)
		}
	}
}

// TestDecodeHook decodes through viper, as LoadFrom does, into a type of its
// own: no key has a duration yet, and a list hook should not depend on one.
func TestDecodeHook(t *testing.T) {
	t.Parallel()
	type target struct {
		After time.Duration `mapstructure:"after"`
		IDs   []int64       `mapstructure:"ids"`
	}
	for _, tc := range []struct {
		name    string
		key     string
		in      any
		want    target
		wantErr string
	}{
		{name: "duration", key: "after", in: "72h", want: target{After: 72 * time.Hour}},
		{name: "duration with spaces", key: "after", in: " 1h30m ", want: target{After: 90 * time.Minute}},
		{name: "duration value", key: "after", in: 5 * time.Second, want: target{After: 5 * time.Second}},
		{name: "duration without unit", key: "after", in: "72", wantErr: "time: missing unit in duration"},
		{name: "duration as a YAML number", key: "after", in: 72, wantErr: `72 is not a duration such as "72h"`},
		{name: "duration not a duration", key: "after", in: "soon", wantErr: "time: invalid duration"},
		{name: "duration list", key: "after", in: []any{"1h"}, wantErr: "got unconvertible type '[]interface {}'"},
		{name: "list comma-separated", key: "ids", in: "7, 8,9", want: target{IDs: []int64{7, 8, 9}}},
		{name: "list from a repeated flag", key: "ids", in: []string{"7", " 8", "9"}, want: target{IDs: []int64{7, 8, 9}}},
		{name: "list from YAML", key: "ids", in: []any{7, "8", 9.0}, want: target{IDs: []int64{7, 8, 9}}},
		{name: "list of one YAML number", key: "ids", in: 7, want: target{IDs: []int64{7}}},
		{name: "list blank", key: "ids", in: " ", want: target{IDs: []int64{}}},
		{name: "list from an emptied flag", key: "ids", in: []string{}, want: target{IDs: []int64{}}},
		{name: "list empty entry", key: "ids", in: "7,,8", wantErr: `"" is not an integer`},
		{name: "list bad entry", key: "ids", in: "7,x", wantErr: `"x" is not an integer`},
		{name: "list fraction", key: "ids", in: []any{7.5}, wantErr: `"7.5" is not an integer`},
		{name: "list entry out of range", key: "ids", in: []any{uint64(1 << 63)}, wantErr: `"9223372036854775808" is not an integer`},
		{name: "list of mappings", key: "ids", in: map[string]any{"a": 1}, wantErr: "got unconvertible type 'map[string]interface {}'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := viper.New()
			v.Set(tc.key, tc.in)
			var got target
			err := v.UnmarshalExact(&got, viper.DecodeHook(decodeHook))
			if tc.wantErr != "" {
				assertErr(t, err, "'"+tc.key, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestWebhookMemberID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"dry-run", func(*Config) {}, "dry-run"},
		{"webhook", func(c *Config) { c.Bitrix.WebhookURL = webhookURL + "/" }, "webhook:portal.bitrix24.ru"},
		{"webhook with a port", func(c *Config) { c.Bitrix.WebhookURL = "https://b24.example.com:8443/rest/1/x/" }, "webhook:b24.example.com:8443"},
		{"webhook without host", func(c *Config) { c.Bitrix.WebhookURL = "https:///rest/1/x/" }, "webhook"},
		{"webhook unparsable", func(c *Config) { c.Bitrix.WebhookURL = "https://por tal/" }, "webhook"},
		{"app mode", func(c *Config) { c.App.ClientID = "local.1" }, "webhook"},
	} {
		c := defaultConfig()
		tc.mutate(&c)
		if got := c.WebhookMemberID(); got != tc.want {
			t.Errorf("%s: WebhookMemberID() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestHandlerURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://bot.example.com":      "https://bot.example.com/bitrix/events",
		"https://bot.example.com/":     "https://bot.example.com/bitrix/events",
		"https://bot.example.com/sb//": "https://bot.example.com/sb/bitrix/events",
		"":                             "/bitrix/events",
	} {
		var c Config
		c.HTTP.PublicURL = in
		if got := c.HandlerURL(); got != want {
			t.Errorf("HandlerURL() with %q = %q, want %q", in, got, want)
		}
	}
}

// TestBadListReportedOnce: a list with a bad entry keeps its default, rather
// than zeros that Validate would report as user IDs.
func TestBadListReportedOnce(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"support:\n  agents: [1, x, 2.5]\n", "support:\n  agents: \"1,x\"\n"} {
		c, err := load(t, file, nil)
		assertErr(t, err, "support.agents (from file", `"x" is not an integer`)
		if n := strings.Count(err.Error(), "\n") + 1; n != 1 || c.Support.Agents != nil {
			t.Errorf("%q: agents %v, %d problems: %v", file, c.Support.Agents, n, err)
		}
	}
}

// TestRedactDBURL: of db.url only the host is ever shown, read as libpq reads the
// string; where a password could have been taken for a host, port or database (an
// unescaped "/" or "@" in it), still only the host, or nothing.
func TestRedactDBURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want, secret string }{
		{"postgres://bot:pgs3cret@db.example.com:5432/support", "postgres://db.example.com/…", "pgs3cret"},
		{"postgres://hostile:12/PW@host", "postgres://host/…", "12"},
		{"postgres://hostile:12/PW@host/db", "postgres://host/…", "hostile"},
		{"postgresql://u:a@b/c@d@db1:5432,db2/app?sslmode=require", "postgresql://db1,db2/…", "a@b"},
		{"postgres://db.example.com/app?password=s3cret&user=bot", "postgres://db.example.com/…", "s3cret"},
		{"postgres://u:p@[::1]:5432/app", "postgres://[::1]/…", "u:p"},
		{"postgres://u:p%40ss/x@", "set", "p%40ss"},
		{"postgres://u:pw w@host/db", "postgres://host/…", "pw w"},
		{"host=db.internal port=5432 user=bot password='se cr\\'et' dbname=app", "host=db.internal", "se cr"},
		{"password=s3cret hostaddr=10.0.0.7", "host=10.0.0.7", "s3cret"},
		{"password='unterminated host=x", "set", "unterminated"},
		{"not a connection string", "set", "connection"},
	} {
		got := RedactDBURL(c.in)
		if got != c.want || strings.Contains(got, c.secret) {
			t.Errorf("RedactDBURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	var buf bytes.Buffer
	var cfg Config
	cfg.DB.URL = "postgres://hostile:12/PW@host"
	slog.New(slog.NewTextHandler(&buf, nil)).Info("loaded", "config", cfg)
	if out := buf.String(); strings.Contains(out, "hostile") || !strings.Contains(out, "config.db.url=postgres://host/…") {
		t.Errorf("logged %s", out)
	}
}
