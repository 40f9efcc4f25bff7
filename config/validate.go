package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"slices"
	"strings"
)

// ErrTokenRequired is spelled out because it is the one mistake every new
// installation makes: a webhook without the token would make the bot call
// the portal while accepting forged events from anyone.
var ErrTokenRequired = errors.New("bitrix.application_token is required when bitrix.webhook_url is set: events from the portal could not be verified")

// Validate checks every value and returns one error naming every problem,
// so that a broken configuration can be fixed in one edit rather than one
// restart per mistake.
//
// It also normalises bitrix.webhook_url to end in "/", because the REST
// client appends method names to it and portals show it both ways; this is
// why it has a pointer receiver. Error messages never contain the webhook
// URL or the token.
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
	if reason := checkHTTPURL(c.HTTP.PublicURL); c.HTTP.PublicURL != "" && reason != "" {
		add("http.public_url %q %s", c.HTTP.PublicURL, reason)
	}
	check(c.DB.Path == "", "db.path is empty")

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
		if c.Bitrix.ApplicationToken == "" {
			errs = append(errs, ErrTokenRequired)
		}
	}
	check(c.Bitrix.BotID < 0, "bitrix.bot_id must be >= 0 (0 = take it from the database), got %d", c.Bitrix.BotID)
	check(!(c.Bitrix.RatePerSecond > 0) || math.IsInf(c.Bitrix.RatePerSecond, 0), "bitrix.rate_per_second must be a number > 0, got %v", c.Bitrix.RatePerSecond)
	check(c.Bitrix.Burst < 1, "bitrix.burst must be >= 1, got %d", c.Bitrix.Burst)

	check(c.Bot.Code == "" || strings.IndexFunc(c.Bot.Code, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) >= 0, "bot.code %q: use latin letters, digits, _ and -", c.Bot.Code)
	check(!slices.Contains(botColors, c.Bot.Color), "bot.color %q is not a Bitrix24 colour (%s)", c.Bot.Color, strings.Join(botColors, ", "))
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
	check(c.Bot.Language != "ru" && c.Bot.Language != "en", `bot.language must be "ru" or "en", got %q`, c.Bot.Language)

	checkIDs := func(name string, ids []int64) {
		for _, id := range ids {
			check(id <= 0, "%s: %d is not a user ID (must be > 0)", name, id)
		}
	}
	checkIDs("support.agents", c.Support.Agents)
	checkIDs("access.admins", c.Access.Admins)
	checkIDs("access.integrators", c.Access.Integrators)

	check(c.Portal.Plan != "commercial" && c.Portal.Plan != "free", `portal.plan must be "commercial" or "free", got %q`, c.Portal.Plan)
	check(c.Dialogs.MaxActive < 1, "dialogs.max_active must be >= 1, got %d", c.Dialogs.MaxActive)
	check(new(slog.Level).UnmarshalText([]byte(c.Log.Level)) != nil, `log.level must be "debug", "info", "warn" or "error", got %q`, c.Log.Level)
	check(c.Log.Format != "text" && c.Log.Format != "json", `log.format must be "text" or "json", got %q`, c.Log.Format)
	return errors.Join(errs...)
}

// botColors are the avatar colours Bitrix24 knows.
var botColors = []string{"RED", "GREEN", "MINT", "LIGHT_BLUE", "DARK_BLUE", "PURPLE", "AQUA", "PINK",
	"LIME", "BROWN", "AZURE", "KHAKI", "SAND", "MARENGO", "GRAY", "GRAPHITE"}

// checkHTTPURL returns why s is not an absolute http(s) URL, or "". The
// reason never quotes s, since the webhook URL is a secret.
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

// ExceptMissingToken returns err without ErrTokenRequired, or nil when that was the
// only problem. The set-up commands need it: the portal reveals the application token
// only in the events it sends after the bot is registered, so `register` must run
// before the token can be configured.
func ExceptMissingToken(err error) error {
	return errors.Join(slices.DeleteFunc(leafErrors(err), func(e error) bool { return e == ErrTokenRequired })...)
}

// leafErrors flattens the tree that nested errors.Join calls build.
func leafErrors(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		if err == nil {
			return nil
		}
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, leafErrors(e)...)
	}
	return out
}
