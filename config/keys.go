package config

import (
	"reflect"
	"slices"
	"strings"
)

// envPrefix starts every environment variable the bot reads, so that its
// settings cannot collide with variables meant for other programs.
const envPrefix = "SUPPORTBOT_"

// Key describes one configuration key. The list returned by Keys is the only
// place where keys, defaults, environment names and flag names are written
// down: loading, flag registration, logging and the README table are all
// derived from it, so they cannot drift apart.
type Key struct {
	Name        string // "bitrix.webhook_url"
	Default     any    // nil when there is none; otherwise of the field's Go type
	Env         string // "SUPPORTBOT_BITRIX_WEBHOOK_URL"
	Flag        string // "bitrix.webhook_url" (the flag is named exactly like the key)
	Description string
	Secret      bool // never logged, never echoed in errors
	List        bool // comma-separated in the environment and on the command line
}

// keys is written in the order of the SPEC's configuration table, because
// the README table is generated from it and should read the same way.
// Env, Flag and List are filled in by buildKeys rather than typed by hand.
var keys = buildKeys([]Key{
	{Name: "http.addr", Default: ":8080", Description: "listen address"},
	{Name: "http.public_url", Description: "the public URL Bitrix24 posts events to (used by `register`)"},
	{Name: "db.path", Default: "supportbot.db", Description: "SQLite database file"},
	{Name: "bitrix.webhook_url", Secret: true, Description: "inbound webhook base, `https://PORTAL/rest/USER_ID/SECRET/`; empty = dry-run (outbound calls are logged, not sent)"},
	{Name: "bitrix.application_token", Secret: true, Description: "application token that every event must carry; required unless dry-run"},
	{Name: "bitrix.bot_id", Description: "the registered bot's ID; unset or 0 = the one `register` stored in the database"},
	{Name: "bitrix.client_id", Description: "`CLIENT_ID` used when the bot is registered through a webhook"},
	{Name: "bitrix.rate_per_second", Default: float64(2), Description: "the portal's REST limit: requests per second (Enterprise: 5)"},
	{Name: "bitrix.burst", Default: 50, Description: "the portal's REST limit: burst size (Enterprise: 250)"},
	{Name: "bot.name", Default: "Поддержка", Description: "the bot's display name"},
	{Name: "bot.language", Default: "ru", Description: "fallback language: `ru` or `en`"},
	{Name: "bot.code", Default: "supportbot", Description: "the bot's `CODE` in `imbot.register`: latin letters, digits, `_` and `-`"},
	{Name: "bot.color", Default: "AQUA", Description: "the bot's avatar colour: `RED`, `GREEN`, `MINT`, `LIGHT_BLUE`, `DARK_BLUE`, `PURPLE`, `AQUA`, `PINK`, `LIME`, `BROWN`, `AZURE`, `KHAKI`, `SAND`, `MARENGO`, `GRAY` or `GRAPHITE`"},
	{Name: "support.agents", Description: "agent user IDs (positive integers)"},
	{Name: "access.admins", Description: "admin user IDs, allowed to open dialogs"},
	{Name: "access.integrators", Description: "integrator user IDs, allowed to open dialogs"},
	{Name: "portal.plan", Default: "commercial", Description: "the portal's plan: `commercial` or `free`"},
	{Name: "dialogs.max_active", Default: 5, Description: "active dialogs per client"},
	{Name: "app.client_id", Description: "OAuth `client_id` of a local or marketplace application; set = app mode: portals install the app and each gets its own bot"},
	{Name: "app.client_secret", Secret: true, Description: "OAuth `client_secret` of the application; required in app mode"},
	{Name: "app.oauth_url", Default: "https://oauth.bitrix.info/", Description: "Bitrix24's OAuth server, where app-mode tokens are refreshed"},
	{Name: "log.level", Default: "info", Description: "log level: `debug`, `info`, `warn` or `error`"},
	{Name: "log.format", Default: "text", Description: "log format: `text` or `json`"},
})

// Keys lists every configuration key in table order. It returns a copy, so
// callers cannot change how the configuration is loaded.
func Keys() []Key { return slices.Clone(keys) }

// fields maps each key to its Config field, found through the mapstructure
// tags, with Index leading from Config down to the field. TestKeys checks
// that keys and fields match one to one and that defaults have the field's
// type, which is what keeps Keys the single source of truth.
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

func buildKeys(ks []Key) []Key {
	for i, k := range ks {
		ks[i].Env, ks[i].Flag = envName(k.Name), k.Name
		ks[i].List = fields[k.Name].Type.Kind() == reflect.Slice
	}
	return ks
}

// envName joins a key's parts with "_" and upper-cases them. Key names
// already contain underscores, which is why a variable is always looked up
// by this exact name and never split back into a path.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, ".", "_"))
}

// isSection reports whether name is a section ("http", "bitrix", ...),
// which in the file must hold keys rather than a value.
func isSection(name string) bool {
	return slices.ContainsFunc(keys, func(k Key) bool { return strings.HasPrefix(k.Name, name+".") })
}
