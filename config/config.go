// Package config loads supportbot's settings from defaults, a YAML file,
// SUPPORTBOT_* variables and flags (in rising precedence), and validates them
// once. A new setting needs a field in Config and an entry in keys, no more.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"supportbot/workhours"
)

// Config is the whole configuration; its mapstructure tags are the key names, which TestKeys checks.
type Config struct {
	HTTP struct {
		Addr      string `mapstructure:"addr"`
		PublicURL string `mapstructure:"public_url"`
	} `mapstructure:"http"`
	DB struct {
		URL       string        `mapstructure:"url"`
		Path      string        `mapstructure:"path"`
		Retention time.Duration `mapstructure:"retention"`
	} `mapstructure:"db"`
	Bitrix struct {
		WebhookURL       string        `mapstructure:"webhook_url"` // normalised to end with "/"
		NoPortal         string        `mapstructure:"no_portal"`
		ApplicationToken string        `mapstructure:"application_token"`
		BotID            int64         `mapstructure:"bot_id"` // 0 = take it from the database
		ClientID         string        `mapstructure:"client_id"`
		RatePerSecond    float64       `mapstructure:"rate_per_second"`
		Burst            int           `mapstructure:"burst"`
		API              string        `mapstructure:"api"`
		Events           string        `mapstructure:"events"`
		PollInterval     time.Duration `mapstructure:"poll_interval"`
	} `mapstructure:"bitrix"`
	Bot struct {
		Name     string `mapstructure:"name"`
		Language string `mapstructure:"language"`
		Code     string `mapstructure:"code"`
		Color    string `mapstructure:"color"`
	} `mapstructure:"bot"`
	Support struct {
		Agents   []int64 `mapstructure:"agents"`
		Hours    string  `mapstructure:"hours"`    // workhours syntax; empty = always open
		Timezone string  `mapstructure:"timezone"` // IANA name of the hours' zone
	} `mapstructure:"support"`
	SLA struct {
		FirstResponse time.Duration `mapstructure:"first_response"` // working time; 0 = no target
		Reply         time.Duration `mapstructure:"reply"`
	} `mapstructure:"sla"`
	Access struct {
		Admins      []int64 `mapstructure:"admins"`
		Integrators []int64 `mapstructure:"integrators"`
	} `mapstructure:"access"`
	Portal struct {
		Plan string `mapstructure:"plan"`
	} `mapstructure:"portal"`
	Dialogs struct {
		MaxActive        int           `mapstructure:"max_active"`
		AutoCloseAfter   time.Duration `mapstructure:"auto_close_after"`
		AutoCloseWarning time.Duration `mapstructure:"auto_close_warning"`
		RatingWindow     time.Duration `mapstructure:"rating_window"`
	} `mapstructure:"dialogs"`
	App struct {
		ClientID     string `mapstructure:"client_id"`
		ClientSecret string `mapstructure:"client_secret"`
		OAuthURL     string `mapstructure:"oauth_url"` // normalised to end with "/"
	} `mapstructure:"app"`
	Log struct {
		Level  string `mapstructure:"level"`
		Format string `mapstructure:"format"`
	} `mapstructure:"log"`
	Delivery struct {
		MaxAge time.Duration `mapstructure:"max_age"`
	} `mapstructure:"delivery"`
}

// Key describes one configuration key: the keys table is the one place they are written down.
type Key struct {
	Name        string // "bitrix.webhook_url"
	Default     any    // nil when there is none; otherwise of the field's Go type
	Env         string // "SUPPORTBOT_BITRIX_WEBHOOK_URL"
	Flag        string // "bitrix.webhook_url" (the flag is named exactly like the key)
	Description string
	Secret      bool     // never logged, never echoed in errors
	List        bool     // comma-separated in the environment and on the command line
	OneOf       []string // the values allowed, when only some are
	Min         any      // the least allowed, of the field's type
	Max         any      // the most allowed, of the field's type
}

// DefaultText is the default as the usage and the README show it: "72h", strings quoted.
func (k Key) DefaultText() string {
	switch d := k.Default.(type) {
	case time.Duration:
		if d == 0 {
			return "0"
		}
		return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
	case string:
		return fmt.Sprintf("%q", d)
	}
	return fmt.Sprint(k.Default)
}

// keys is in the order of the SPEC's table, as is the README's made from it.
var keys = buildKeys([]Key{
	{Name: "http.addr", Default: ":8080", Description: "listen address"},
	{Name: "http.public_url", Description: "the public URL Bitrix24 posts events to (v1, v2 webhook mode, app mode; fetch mode needs none)"},
	{Name: "db.url", Secret: true, Description: "PostgreSQL, for several replicas: `postgres://user:password@host:5432/db`; empty = the SQLite file db.path"},
	{Name: "db.path", Default: "supportbot.db", Description: "SQLite database file"},
	{Name: "db.retention", Default: 30 * 24 * time.Hour, Min: time.Hour, Description: "how long delivered actions and the keys of processed events are kept"},
	{Name: "bitrix.webhook_url", Secret: true, Description: "inbound webhook base, `https://PORTAL/rest/USER_ID/SECRET/`; empty (and no `app.client_id`) = the local portal: a Bitrix24 stand-in inside the process, with a messenger page at `/`"},
	{Name: "bitrix.no_portal", Default: "local", OneOf: []string{"local", "dry-run"}, Description: "with no portal configured: `local` runs the local portal; `dry-run` logs the calls to Bitrix24 instead (the intake benchmark measures the bot alone so)"},
	{Name: "bitrix.application_token", Secret: true, Description: "application token that every posted event must carry; required for v1 and v2 webhook mode, not for fetch"},
	{Name: "bitrix.bot_id", Min: int64(0), Description: "the registered bot's ID; unset or 0 = the one `register` stored in the database"},
	{Name: "bitrix.client_id", Description: "`CLIENT_ID` used when the bot is registered through a webhook"},
	{Name: "bitrix.rate_per_second", Default: float64(2), Description: "the portal's REST limit: requests per second (Enterprise: 5)"},
	{Name: "bitrix.burst", Default: 50, Min: 1, Description: "the portal's REST limit: burst size (Enterprise: 250)"},
	{Name: "bot.name", Default: "Поддержка", Description: "the bot's display name"},
	{Name: "bot.language", Default: "ru", OneOf: []string{"ru", "en"}, Description: "fallback language: `ru` or `en`"},
	{Name: "bot.code", Default: "supportbot", Description: "the bot's `CODE` in `imbot.register`: latin letters, digits, `_` and `-`"},
	{Name: "bot.color", Default: "AQUA", OneOf: []string{"RED", "GREEN", "MINT", "LIGHT_BLUE", "DARK_BLUE", "PURPLE", "AQUA", "PINK", "LIME", "BROWN", "AZURE", "KHAKI", "SAND", "MARENGO", "GRAY", "GRAPHITE"},
		Description: "the bot's avatar colour: `RED`, `GREEN`, `MINT`, `LIGHT_BLUE`, `DARK_BLUE`, `PURPLE`, `AQUA`, `PINK`, `LIME`, `BROWN`, `AZURE`, `KHAKI`, `SAND`, `MARENGO`, `GRAY` or `GRAPHITE`"},
	{Name: "support.agents", Description: "agent user IDs: seed the portal's agents once (then `/agents`); webhook mode only"},
	{Name: "access.admins", Description: "admin user IDs: may open dialogs and manage the roles; webhook mode only"},
	{Name: "access.integrators", Description: "integrator user IDs, allowed to open dialogs: seed the portal's clients once; webhook mode only"},
	{Name: "portal.plan", Default: "commercial", OneOf: []string{"commercial", "free"}, Description: "the portal's plan: `commercial` or `free`"},
	{Name: "dialogs.max_active", Default: 5, Min: 1, Description: "active dialogs per client"},
	{Name: "dialogs.auto_close_after", Default: 72 * time.Hour, Min: time.Duration(0), Description: "an agent answered and the client has been silent this long: the dialog is resolved; 0 = never"},
	{Name: "dialogs.auto_close_warning", Default: 24 * time.Hour, Min: time.Duration(0), Description: "how long before the auto-close the client is warned, with a button to keep it open"},
	{Name: "dialogs.rating_window", Default: 7 * 24 * time.Hour, Min: time.Minute, Description: "how long after a resolve the client's rating is recorded"},
	{Name: "support.hours", Description: "working hours, e.g. `Mon-Fri 09:00-13:00, 14:00-18:00; Sat 10:00-14:00; holidays 2027-01-01..2027-01-08, 2027-05-09` (README, Owners and response targets); empty = always open"},
	{Name: "support.timezone", Default: "UTC", Description: "IANA time zone of `support.hours`, e.g. `Europe/Moscow`"},
	{Name: "sla.first_response", Default: time.Duration(0), Min: time.Duration(0), Description: "target for the first answer of a dialog (or of a reopened one), in working time; a reminder at 80 %, the miss recorded; 0 = no target"},
	{Name: "sla.reply", Default: time.Duration(0), Min: time.Duration(0), Description: "target for answering a client who writes again, in working time; 0 = no target"},
	{Name: "app.client_id", Description: "OAuth `client_id` of a local or marketplace application; set = app mode: portals install the app and each gets its own bot"},
	{Name: "app.client_secret", Secret: true, Description: "OAuth `client_secret` of the application; required in app mode"},
	{Name: "app.oauth_url", Default: "https://oauth.bitrix.info/", Description: "Bitrix24's OAuth server, where app-mode tokens are refreshed"},
	{Name: "log.level", Default: "info", OneOf: []string{"debug", "info", "warn", "error"}, Description: "log level: `debug`, `info`, `warn` or `error`"},
	{Name: "log.format", Default: "text", OneOf: []string{"text", "json"}, Description: "log format: `text` or `json`"},
	{Name: "bitrix.api", Default: "v2", OneOf: []string{"v2", "v1"}, Description: "chat-bot API for `register`: `v2` (imbot.v2) or `v1` (for bots registered that way)"},
	{Name: "bitrix.events", Default: "fetch", OneOf: []string{"fetch", "webhook"}, Description: "v2 event delivery: `fetch` (poll the portal: no public URL) or `webhook` (needs `http.public_url`)"},
	{Name: "bitrix.poll_interval", Default: 5 * time.Second, Min: 5 * time.Second, Max: time.Minute,
		Description: "fetch mode: the wait between polls when no events are queued (5s–60s; the docs ask for 5–30 s)"},
	{Name: "delivery.max_age", Default: 24 * time.Hour, Min: time.Minute, Description: "an action still failing after this long is given up (logged, counted)"},
})

// Keys lists every configuration key in table order; it returns a copy.
func Keys() []Key { return slices.Clone(keys) }

// fields maps each key to its Config field (Index from Config down); TestKeys checks them.
var fields = func() map[string]reflect.StructField {
	out := make(map[string]reflect.StructField)
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		sec := ct.Field(i)
		for j := range sec.Type.NumField() {
			f := sec.Type.Field(j)
			f.Index = []int{i, j}
			out[sec.Tag.Get("mapstructure")+"."+f.Tag.Get("mapstructure")] = f
		}
	}
	return out
}()

// buildKeys names a variable after the whole key: names hold "_", so it cannot be split back.
func buildKeys(ks []Key) []Key {
	for i, k := range ks {
		ks[i].Env = "SUPPORTBOT_" + strings.ToUpper(strings.ReplaceAll(k.Name, ".", "_"))
		ks[i].Flag, ks[i].List = k.Name, fields[k.Name].Type.Kind() == reflect.Slice
	}
	return ks
}

// isSection reports whether name is a section ("http", "bitrix", ...).
func isSection(name string) bool {
	return slices.ContainsFunc(keys, func(k Key) bool { return strings.HasPrefix(k.Name, name+".") })
}

// DryRun reports that no portal is configured: serve runs the local portal, or, with
// bitrix.no_portal "dry-run", logs the calls it would make.
func (c *Config) DryRun() bool { return c.Bitrix.WebhookURL == "" && !c.AppMode() }

// AppMode reports that the bot runs as an OAuth application installed on portals.
func (c *Config) AppMode() bool { return c.App.ClientID != "" }

// FreePlan reports portal.plan == "free": free portals lack some features.
func (c *Config) FreePlan() bool { return c.Portal.Plan == "free" }

// Pushed: the portal posts events to http.public_url (v1, v2 webhook), so they need the token.
func (c *Config) Pushed() bool { return c.Bitrix.API == "v1" || c.Bitrix.Events == "webhook" }

// WebhookMemberID names the webhook-mode portal by its host: another portal's dialogs never mix in.
func (c *Config) WebhookMemberID() string {
	if c.DryRun() {
		return "dry-run"
	}
	if u, err := url.Parse(c.Bitrix.WebhookURL); err == nil && u.Host != "" {
		return "webhook:" + u.Host
	}
	return "webhook"
}

// HandlerURL is where Bitrix24 posts events: http.public_url + /bitrix/events.
func (c *Config) HandlerURL() string {
	return strings.TrimRight(c.HTTP.PublicURL, "/") + "/bitrix/events"
}

// SlogLevel parses Log.Level; one Validate refuses gives Info, so a logger can report that error.
func (c *Config) SlogLevel() (l slog.Level) {
	_ = l.UnmarshalText([]byte(c.Log.Level))
	return l
}

// LogValue logs the configuration without its secrets: of the webhook URL (its path holds the
// REST secret) only scheme and host, other secrets as "set" or "". It serves *Config as well.
func (c Config) LogValue() slog.Value {
	rv := reflect.ValueOf(c)
	var groups []slog.Attr // one per section; keys lists each section's keys together
	for _, k := range keys {
		sec, name, _ := strings.Cut(k.Name, ".")
		v := rv.FieldByIndex(fields[k.Name].Index).Interface()
		if s, _ := v.(string); k.Secret && s != "" {
			v = "set"
			if k.Name == "db.url" {
				v = RedactDBURL(s)
			} else if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
				v = u.Scheme + "://" + u.Host + "/…"
			}
		}
		if n := len(groups); n == 0 || groups[n-1].Key != sec {
			groups = append(groups, slog.Group(sec))
		}
		g := &groups[len(groups)-1]
		g.Value = slog.GroupValue(append(g.Value.Group(), slog.Any(name, v))...)
	}
	return slog.GroupValue(groups...)
}

// WorkingHours is support.hours in support.timezone; nil (always open) when the hours
// are empty. Validate has reported any error.
func (c *Config) WorkingHours() (*workhours.Schedule, error) {
	return workhours.Parse(c.Support.Hours, c.Support.Timezone)
}

// ErrTokenRequired: without the token the bot would accept forged events from anyone.
var ErrTokenRequired = errors.New("bitrix.application_token is required for events posted to http.public_url: they could not be verified")

// Validate returns one error naming every problem, so that a configuration can be fixed in
// one edit rather than one restart per mistake; the messages never contain a secret. It
// also makes bitrix.webhook_url and app.oauth_url end in "/", as method names follow.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	check := func(bad bool, format string, args ...any) {
		if bad {
			add(format, args...)
		}
	}
	_, _, addrErr := net.SplitHostPort(c.HTTP.Addr)
	check(c.HTTP.Addr == "", `http.addr is empty: the server needs a listen address such as ":8080"`)
	check(c.HTTP.Addr != "" && addrErr != nil, `http.addr %q is not host:port (e.g. ":8080" or "127.0.0.1:8080")`, c.HTTP.Addr)
	reason := checkHTTPURL(c.HTTP.PublicURL)
	check(c.HTTP.PublicURL != "" && reason != "", "http.public_url %q %s", c.HTTP.PublicURL, reason)
	check(c.DB.Path == "" && c.DB.URL == "", "db.path is empty")
	check(c.DB.URL != "" && !strings.HasPrefix(c.DB.URL, "postgres://") && !strings.HasPrefix(c.DB.URL, "postgresql://"), "db.url must be a postgres:// URL")

	if c.Bitrix.WebhookURL != "" {
		u, _ := url.Parse(c.Bitrix.WebhookURL)
		switch reason := checkHTTPURL(c.Bitrix.WebhookURL); {
		case reason != "":
			add("bitrix.webhook_url %s (expected https://PORTAL/rest/USER_ID/SECRET/)", reason)
		case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
			add("bitrix.webhook_url must not have a query or fragment: method names are appended to it")
		case !strings.HasSuffix(c.Bitrix.WebhookURL, "/"):
			c.Bitrix.WebhookURL += "/"
		}
		if c.Bitrix.ApplicationToken == "" && c.Pushed() {
			errs = append(errs, ErrTokenRequired)
		}
	}
	check(!(c.Bitrix.RatePerSecond > 0) || math.IsInf(c.Bitrix.RatePerSecond, 0), "bitrix.rate_per_second must be a number > 0, got %v", c.Bitrix.RatePerSecond)
	check(c.Bot.Code == "" || strings.IndexFunc(c.Bot.Code, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) >= 0, "bot.code %q: use latin letters, digits, _ and -", c.Bot.Code)
	if c.App.ClientID != "" {
		check(c.App.ClientSecret == "", "app.client_secret is required when app.client_id is set: tokens could not be refreshed")
		check(c.Bitrix.WebhookURL != "", "app.client_id and bitrix.webhook_url are both set: run either as an application (app.*) or on one portal's webhook (bitrix.webhook_url)")
		check(c.HTTP.PublicURL == "", "http.public_url is required in app mode: the bot is registered with its event URL when a portal installs the app")
	}
	if reason := checkHTTPURL(c.App.OAuthURL); reason != "" {
		add("app.oauth_url %q %s", c.App.OAuthURL, reason)
	} else if !strings.HasSuffix(c.App.OAuthURL, "/") {
		c.App.OAuthURL += "/"
	}
	check(c.Bot.Name == "", "bot.name is empty: the portal requires a display name")
	if _, err := c.WorkingHours(); err != nil {
		add("support.hours or support.timezone: %v", err)
	}
	check(c.Dialogs.AutoCloseAfter > 0 && c.Dialogs.AutoCloseWarning >= c.Dialogs.AutoCloseAfter, "dialogs.auto_close_warning must be shorter than dialogs.auto_close_after")
	// The auto-close sweep runs at most once a second and keeps each period to a tenth
	// (bot.AutoCloseSweep): shorter periods than ten seconds it could not keep.
	const autoCloseFloor = 10 * time.Second
	if ac := c.Dialogs; ac.AutoCloseAfter > 0 && ac.AutoCloseWarning < ac.AutoCloseAfter {
		check(ac.AutoCloseAfter-ac.AutoCloseWarning < autoCloseFloor, "dialogs.auto_close_after - dialogs.auto_close_warning (the silence before the warning) is %s: "+
			"it must be at least %s, as the auto-close sweep runs at most once a second", ac.AutoCloseAfter-ac.AutoCloseWarning, autoCloseFloor)
		check(ac.AutoCloseWarning > 0 && ac.AutoCloseWarning < autoCloseFloor, "dialogs.auto_close_warning is %s: it must be 0 (no warning) or at least %s, "+
			"as the auto-close sweep runs at most once a second", ac.AutoCloseWarning, autoCloseFloor)
	}

	for _, k := range keys { // the bounds the keys table gives
		v := reflect.ValueOf(c).Elem().FieldByIndex(fields[k.Name].Index)
		if s, _ := v.Interface().(string); k.OneOf != nil && !slices.Contains(k.OneOf, s) {
			n := len(k.OneOf) - 1
			quoted := strings.Trim(fmt.Sprintf("%q", k.OneOf[:n]), "[]")
			add("%s must be %s or %q, got %q", k.Name, strings.ReplaceAll(quoted, `" "`, `", "`), k.OneOf[n], s)
		}
		if k.Min != nil && v.CanInt() && v.Int() < reflect.ValueOf(k.Min).Int() {
			add("%s must be >= %s, got %s", k.Name, Key{Default: k.Min}.DefaultText(), Key{Default: v.Interface()}.DefaultText())
		}
		if k.Max != nil && v.CanInt() && v.Int() > reflect.ValueOf(k.Max).Int() {
			add("%s must be <= %s, got %s", k.Name, Key{Default: k.Max}.DefaultText(), Key{Default: v.Interface()}.DefaultText())
		}
		ids, _ := v.Interface().([]int64) // the lists are all of user IDs, which Bitrix24 keeps as 32-bit numbers
		for _, id := range ids {
			check(id <= 0 || id > math.MaxInt32, "%s: %d is not a user ID (must be 1 to %d)", k.Name, id, math.MaxInt32)
		}
	}
	return errors.Join(errs...)
}

// checkHTTPURL returns why s is not an absolute http(s) URL, or "", never quoting s (a secret).
func checkHTTPURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "is not a valid URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an absolute http(s) URL"
	case u.Host == "":
		return "must be an absolute http(s) URL with a host"
	}
	return ""
}
