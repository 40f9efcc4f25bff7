package b24test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"supportbot/bitrix24"
)

// Drop, as a value given to Event, removes the field (or the whole group) instead of
// setting it.
const Drop = "\x00drop"

// Fixture returns the raw body of bitrix24/testdata/<name>, e.g.
// "v1/onimbotmessageadd-private.form", found from this source file so that it works
// from a test in any package. It panics when the file is missing: a test with a wrong
// fixture name cannot do anything useful.
func Fixture(name string) []byte {
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "testdata", filepath.FromSlash(name)))
	if err != nil {
		b, err = bitrix24.Recorded(name) // a binary away from its source: the local portal's few
	}
	if err != nil {
		panic(fmt.Sprintf("b24test: fixture %s: %v", name, err))
	}
	return b
}

// Event builds an event body from a fixture with fields replaced, added or removed.
// Keys are bracket paths as they decode ("data[PARAMS][MESSAGE]",
// "auth[application_token]"); a "*" segment stands for every group at its level,
// whatever IDs the fixture has there ("data[COMMAND][*][COMMAND]",
// "data[BOT][*][BOT_ID]"). The value Drop removes the field, or the whole group. A
// key that sets a value where the fixture has a group, or goes below one of its
// values, or has a "*" where the fixture has no group, panics.
//
// The body is form-urlencoded as bitrix24.EncodeQuery writes it (PHP's
// http_build_query: brackets percent-encoded), with no trailing newline.
func Event(fixture string, set map[string]string) []byte {
	f := parseFixture(fixture)
	apply(f, set)
	return []byte(bitrix24.EncodeQuery(f))
}

func parseFixture(name string) bitrix24.Form {
	f, err := bitrix24.ParseForm(Fixture(name))
	if err != nil {
		panic(fmt.Sprintf("b24test: fixture %s: %v", name, err))
	}
	return f
}

// apply applies Event's set to f.
func apply(f bitrix24.Form, set map[string]string) {
	var query []string
	for k, v := range set {
		query = append(query, url.QueryEscape(k)+"="+url.QueryEscape(v))
	}
	changes, err := bitrix24.ParseForm([]byte(strings.Join(query, "&")))
	if err != nil {
		panic(fmt.Sprintf("b24test: Event keys: %v", err))
	}
	merge(f, changes, "")
}

// merge writes changes into the group f, whose key is at ("" for the top).
func merge(f, changes bitrix24.Form, at string) {
	for k, change := range changes {
		keys := []string{k}
		if k == "*" {
			keys = nil
			for key, v := range f {
				if _, ok := v.(bitrix24.Form); ok {
					keys = append(keys, key)
				}
			}
			if len(keys) == 0 {
				panic(fmt.Sprintf("b24test: Event: the fixture has no group in %s for *", at))
			}
		}
		for _, key := range keys {
			name := key
			if at != "" {
				name = at + "[" + key + "]"
			}
			group, isGroup := f[key].(bitrix24.Form)
			_, isValue := f[key].(string)
			switch change := change.(type) {
			case bitrix24.Form:
				if isValue {
					panic(fmt.Sprintf("b24test: Event: %s is a value in the fixture, not a group", name))
				} else if !isGroup {
					group = bitrix24.Form{}
					f[key] = group
				}
				merge(group, change, name)
			case string:
				if isGroup && change != Drop {
					panic(fmt.Sprintf("b24test: Event: %s is a group in the fixture; set its fields, or Drop it", name))
				}
				f[key] = change
				if change == Drop {
					delete(f, key)
				}
			}
		}
	}
}

// maxAnswer caps how much of the bot's answer Post reads.
const maxAnswer = 1 << 20

// Post sends an event body to the bot's URL as Bitrix24 does (POST,
// application/x-www-form-urlencoded) and returns the answer's status and body.
func Post(ctx context.Context, url string, body []byte) (status int, respBody string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Bitrix24 Webhook Engine")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	return resp.StatusCode, string(b), err
}

// Post is the package's Post, sent from this portal: before sending it learns what a
// real portal would know from the event — the group chat it happened in
// (data[PARAMS][DIALOG_ID], CHAT_TITLE, CHAT_ENTITY_TYPE, CHAT_ENTITY_ID), so that the
// bot may post there.
func (p *Portal) Post(ctx context.Context, url string, body []byte) (status int, respBody string, err error) {
	f, _ := bitrix24.ParseForm(body)
	params := f.Group("data", "PARAMS")
	if id, ok := chatOf(params.String("DIALOG_ID")); ok {
		p.mu.Lock()
		if p.chats[id] == nil {
			p.chats[id] = &Chat{ID: id, Title: params.String("CHAT_TITLE"),
				EntityType: params.String("CHAT_ENTITY_TYPE"), EntityID: params.String("CHAT_ENTITY_ID")}
		}
		p.mu.Unlock()
	}
	return Post(ctx, url, body)
}

// AppEvent builds an event body from any fixture as this portal would send it to the
// application: the top-level auth block gets the portal's member_id, domain,
// client_endpoint, server_endpoint, application_token, an access token acting as
// userID and user_id = userID, and where the fixture has them the scopes, a fresh
// refresh_token, expires and expires_in. The copies under data[BOT|COMMAND][<id>] and
// their [AUTH] get the same, client_id, and a token acting as the bot (their user_id
// stays the bot's). Then set is applied as Event applies it.
func (p *Portal) AppEvent(fixture string, userID int64, set map[string]string) []byte {
	f := parseFixture(fixture)
	p.mu.Lock()
	issued := map[int64]map[string]string{}
	valuesFor := func(user int64) map[string]string {
		if issued[user] == nil {
			access, exp := p.issueLocked(user)
			issued[user] = map[string]string{"member_id": p.memberID, "domain": p.Domain(), "client_endpoint": p.ClientEndpoint(),
				"server_endpoint": p.serverEndpoint(), "application_token": p.appToken, "scope": strings.Join(p.scopes, ","),
				"access_token": access, "refresh_token": p.grantLocked(user), "expires": itoa(exp.Unix()),
				"expires_in": strconv.Itoa(int(tokenLifetime.Seconds())), "client_id": p.clientID}
		}
		return issued[user]
	}
	own := valuesFor(userID)
	auth := f.Group("auth")
	if auth == nil {
		auth = bitrix24.Form{}
		f["auth"] = auth
	}
	fill(auth, own)
	auth["user_id"] = itoa(userID)
	for _, k := range []string{"access_token", "member_id", "domain", "client_endpoint", "server_endpoint", "application_token"} {
		auth[k] = own[k]
	}
	for _, group := range []string{"BOT", "COMMAND"} {
		for id, c := range f.Group("data", group) {
			if c, ok := c.(bitrix24.Form); ok {
				bot, _ := strconv.ParseInt(cmp.Or(c.String("user_id"), id), 10, 64) // the bot's own user
				fill(c, valuesFor(bot))
				fill(c.Group("AUTH"), valuesFor(bot))
			}
		}
	}
	p.mu.Unlock()
	apply(f, set)
	return []byte(bitrix24.EncodeQuery(f))
}

// fill sets the values of g that values has.
func fill(g bitrix24.Form, values map[string]string) {
	for k, v := range g {
		if s, ok := values[k]; ok {
			if _, leaf := v.(string); leaf {
				g[k] = s
			}
		}
	}
}

// InstallEvent is the ONAPPINSTALL body (fixture app/onappinstall.form) this portal
// sends when the application is installed: its member_id, domain, client_endpoint,
// server_endpoint and application_token, the granted scopes, and a fresh token pair
// acting as an administrator (the lowest of SetAdmins, user 1 at first), expires_in 3600.
func (p *Portal) InstallEvent() []byte {
	p.mu.Lock()
	user := int64(webhookUser)
	if len(p.admins) > 0 {
		user = slices.Min(slices.Collect(maps.Keys(p.admins)))
	}
	p.mu.Unlock()
	// ONAPPINSTALL carries no user_id.
	return p.AppEvent("app/onappinstall.form", user, map[string]string{"auth[user_id]": Drop})
}
