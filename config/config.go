// Package config loads supportbot's settings from defaults, an optional YAML
// file, SUPPORTBOT_* environment variables and command-line flags (in rising
// precedence), and validates them once at start-up so that the rest of the
// program can trust every value.
//
// Keys is the single list of settings; everything else here is derived from
// it, so a new setting needs a field in Config and an entry in Keys, nothing
// more.
package config

import (
	"log/slog"
	"net/url"
	"reflect"
	"strings"
)

// Config is the whole configuration. The mapstructure tags are the key names
// ("section.key"); TestKeys checks them against Keys.
type Config struct {
	HTTP    HTTP    `mapstructure:"http"`
	DB      DB      `mapstructure:"db"`
	Bitrix  Bitrix  `mapstructure:"bitrix"`
	Bot     Bot     `mapstructure:"bot"`
	Support Support `mapstructure:"support"`
	Access  Access  `mapstructure:"access"`
	Portal  Portal  `mapstructure:"portal"`
	Dialogs Dialogs `mapstructure:"dialogs"`
	App     App     `mapstructure:"app"`
	Log     Log     `mapstructure:"log"`
}

// HTTP is the inbound side: where the server listens and how the portal
// reaches it.
type HTTP struct {
	Addr      string `mapstructure:"addr"`       // http.addr
	PublicURL string `mapstructure:"public_url"` // http.public_url
}

// DB is the SQLite store.
type DB struct {
	Path string `mapstructure:"path"` // db.path
}

// Bitrix is the portal connection.
type Bitrix struct {
	WebhookURL       string  `mapstructure:"webhook_url"`       // bitrix.webhook_url, normalised to end with "/"
	ApplicationToken string  `mapstructure:"application_token"` // bitrix.application_token
	BotID            int64   `mapstructure:"bot_id"`            // bitrix.bot_id; 0 = take it from the database
	ClientID         string  `mapstructure:"client_id"`         // bitrix.client_id
	RatePerSecond    float64 `mapstructure:"rate_per_second"`   // bitrix.rate_per_second
	Burst            int     `mapstructure:"burst"`             // bitrix.burst
}

// Bot is how the bot presents itself.
type Bot struct {
	Name     string `mapstructure:"name"`     // bot.name
	Language string `mapstructure:"language"` // bot.language: "ru" | "en"
	Code     string `mapstructure:"code"`     // bot.code
	Color    string `mapstructure:"color"`    // bot.color
}

// Support lists the people who answer clients.
type Support struct {
	Agents []int64 `mapstructure:"agents"` // support.agents
}

// Access lists the people, besides clients, who may open dialogs.
type Access struct {
	Admins      []int64 `mapstructure:"admins"`      // access.admins
	Integrators []int64 `mapstructure:"integrators"` // access.integrators
}

// Portal describes the customer's Bitrix24 plan, which limits what the bot
// may do there.
type Portal struct {
	Plan string `mapstructure:"plan"` // portal.plan: "commercial" | "free"
}

// Dialogs bounds the work one client can create.
type Dialogs struct {
	MaxActive int `mapstructure:"max_active"` // dialogs.max_active
}

// App is the OAuth application, for app mode: portals install it, and every call
// to a portal uses that portal's tokens.
type App struct {
	ClientID     string `mapstructure:"client_id"`     // app.client_id
	ClientSecret string `mapstructure:"client_secret"` // app.client_secret
	OAuthURL     string `mapstructure:"oauth_url"`     // app.oauth_url, normalised to end with "/"
}

// Log configures the process logger.
type Log struct {
	Level  string `mapstructure:"level"`  // log.level
	Format string `mapstructure:"format"` // log.format: "text" | "json"
}

// DryRun reports that no portal is configured (no webhook URL, no application):
// outbound calls are then logged instead of sent, so `supportbot serve` works
// without a portal.
func (c *Config) DryRun() bool { return c.Bitrix.WebhookURL == "" && !c.AppMode() }

// AppMode reports that the bot runs as an OAuth application installed on portals,
// rather than on one portal's inbound webhook.
func (c *Config) AppMode() bool { return c.App.ClientID != "" }

// FreePlan reports portal.plan == "free"; free portals lack features the bot
// would otherwise use, so callers branch on this rather than on the string.
func (c *Config) FreePlan() bool { return c.Portal.Plan == "free" }

// WebhookMemberID names the webhook-mode portal by the webhook's host, so
// pointing the bot at another portal never mixes the two portals' dialogs.
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

// SlogLevel parses Log.Level. A Config that passed Validate always parses;
// anything else falls back to Info, so a logger can still be built in order
// to report the validation error itself.
func (c *Config) SlogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Log.Level)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// LogValue lets the whole configuration be logged at start-up, which is the
// quickest way to see which source won, without leaking the two secrets: the
// webhook URL embeds the REST secret in its path, so only its scheme and
// host are shown, and the application token is shown as "set" or "".
//
// It has a value receiver so that both Config and *Config are redacted.
func (c Config) LogValue() slog.Value {
	rv := reflect.ValueOf(c)
	var groups []slog.Attr // one per section; keys lists each section's keys together
	for _, k := range keys {
		sec, name, _ := strings.Cut(k.Name, ".")
		v := rv.FieldByIndex(fields[k.Name].Index).Interface()
		if k.Secret {
			v = redact(v.(string))
		}
		if n := len(groups); n == 0 || groups[n-1].Key != sec {
			groups = append(groups, slog.Group(sec))
		}
		g := &groups[len(groups)-1]
		g.Value = slog.GroupValue(append(g.Value.Group(), slog.Any(name, v))...)
	}
	return slog.GroupValue(groups...)
}

// redact keeps just enough of a secret to tell which portal is configured,
// and whether a value is set at all.
func redact(s string) string {
	if s == "" {
		return ""
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		return u.Scheme + "://" + u.Host + "/…"
	}
	return "set"
}
