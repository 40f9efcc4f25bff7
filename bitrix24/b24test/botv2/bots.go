package botv2

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"supportbot/bitrix24"
)

// Bot is a bot registered through imbot.v2.
type Bot struct {
	ID                    int64
	Code, Type            string // type: bot, supervisor, personal, openline or network
	EventMode, WebhookURL string // mode: fetch or webhook
	// Token is the botToken of its webhook calls; "" for a bot of the application
	// (App), registered with an OAuth token.
	Token                               string
	App                                 bool
	Name, LastName, Color, WorkPosition string
}

// Command is a command registered through imbot.v2.
type Command struct {
	ID, BotID                       int64
	Name                            string            // without the slash
	Titles, Params                  map[string]string // by language
	Hidden, Common, ExtranetSupport bool
}

type bot struct {
	Bot
	deleted bool    // unregistered; kept while its queue holds ONIMBOTV2DELETE
	queue   []event // unconfirmed, by ID
}

// Bots returns the registered bots, by ID.
func (f *Fake) Bots() (out []Bot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.live() {
		out = append(out, b.Bot)
	}
	return out
}

// Commands returns the registered commands, by ID.
func (f *Fake) Commands() (out []Command) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(f.commands)) {
		c := *f.commands[id]
		c.Titles, c.Params = maps.Clone(c.Titles), maps.Clone(c.Params)
		out = append(out, c)
	}
	return out
}

// live is the bots not unregistered, by ID.
func (f *Fake) live() (out []*bot) {
	for _, id := range slices.Sorted(maps.Keys(f.bots)) {
		if !f.bots[id].deleted {
			out = append(out, f.bots[id])
		}
	}
	return out
}

// checkMode checks an event mode and its webhook URL.
func checkMode(mode, url string) *bitrix24.Error {
	if mode != "fetch" && mode != "webhook" {
		return fail("BOT_INVALID_EVENT_MODE", "Allowed values: fetch, webhook")
	} else if mode == "webhook" && url == "" {
		return fail("BOT_WEBHOOK_URL_REQUIRED", "fields.webhookUrl is required in webhook mode")
	}
	return nil
}

// Bot.register: fields{code, botToken (or top-level), type, eventMode, webhookUrl,
// properties{name…}} → {bot, users}. A code the caller has answers that bot, unchanged.
func (f *Fake) botRegister(r *req) (any, *bitrix24.Error) {
	fl := r.fields()
	r.token = cmp.Or(strings.TrimSpace(fl.String("botToken")), r.token)
	code, typ, mode, url := fl.String("code"), cmp.Or(fl.String("type"), "bot"), cmp.Or(fl.String("eventMode"), "fetch"), fl.String("webhookUrl")
	switch {
	case !r.app && r.token == "":
		return nil, fail("BOT_TOKEN_NOT_SPECIFIED", "fields.botToken is not specified")
	case len(r.token) > 40:
		return nil, fail("BOT_TOKEN_INVALID_LENGTH", "botToken is longer than 40 characters")
	case code == "":
		return nil, fail("BOT_CODE_REQUIRED", "fields.code is not specified")
	case strings.TrimSpace(fl.String("properties", "name")) == "":
		return nil, fail("BOT_PROPERTIES_REQUIRED", "fields.properties.name is not specified")
	case !slices.Contains([]string{"bot", "supervisor", "personal", "openline", "network"}, typ):
		return nil, fail("BOT_INVALID_TYPE", "Allowed values: bot, network, openline, supervisor, personal")
	case checkMode(mode, url) != nil:
		return nil, checkMode(mode, url)
	}
	if r.app {
		r.token = ""
	}
	for _, b := range f.live() {
		if b.Code == code && !r.owns(b) {
			return nil, fail("BOT_CODE_ALREADY_TAKEN", "The bot code is taken by another application")
		} else if b.Code == code {
			return f.botAnswer(b, true), nil
		}
	}
	b := &bot{Bot: Bot{ID: f.next.bot, Code: code, Type: typ, EventMode: mode, WebhookURL: url, Token: r.token, App: r.app}}
	f.next.bot++
	f.bots[b.ID] = b
	b.setProperties(fl.Group("properties"))
	return f.botAnswer(b, true), nil
}

func (b *bot) setProperties(g bitrix24.Form) {
	set(g, strings.Clone, map[string]*string{"name": &b.Name, "lastName": &b.LastName, "color": &b.Color, "workPosition": &b.WorkPosition})
}

// set sets each field whose key g has to the value conv reads.
func set[T any](g bitrix24.Form, conv func(string) T, fields map[string]*T) {
	for key, p := range fields {
		if _, ok := g[key]; ok {
			*p = conv(g.String(key))
		}
	}
}

// Bot.update: botId, botToken (the current one), fields{properties, eventMode,
// webhookUrl, botToken (a new one: the old stops working)} → {bot, users}.
func (f *Fake) botUpdate(r *req) (any, *bitrix24.Error) {
	b, fl := r.bot, r.fields()
	mode, url := cmp.Or(fl.String("eventMode"), b.EventMode), cmp.Or(fl.String("webhookUrl"), b.WebhookURL)
	token := strings.TrimSpace(fl.String("botToken")) // empty or blank: ignored
	switch {
	case checkMode(mode, url) != nil:
		return nil, checkMode(mode, url)
	case len(token) > 40:
		return nil, fail("BOT_TOKEN_INVALID_LENGTH", "botToken is longer than 40 characters")
	case token != "" && slices.ContainsFunc(f.live(), func(o *bot) bool { return o != b && o.Token == token }):
		return nil, fail("BOT_TOKEN_ROTATION_FAILED", "Failed to rotate the bot token")
	}
	b.EventMode, b.WebhookURL = mode, url
	if token != "" && !b.App {
		b.Token = token
	}
	b.setProperties(fl.Group("properties"))
	return f.botAnswer(b, true), nil
}

// Bot.get: botId or code → {bot, users}; another application's bot in brief.
func (f *Fake) botGet(r *req) (any, *bitrix24.Error) {
	id, code := intParam(r.Params, "botId"), r.Params.String("code")
	if id <= 0 && code == "" {
		return nil, fail("PARAMS_REQUIRED", "botId or code is required")
	}
	for _, b := range f.live() {
		if b.ID == id || id <= 0 && b.Code == code {
			return f.botAnswer(b, r.owns(b)), nil
		}
	}
	return nil, errBotNotFound
}

// Bot.list: filter{type} → {bots, users, hasNextPage}, the caller's bots.
func (f *Fake) botList(r *req) (any, *bitrix24.Error) {
	bots, users := []any{}, []any{}
	for _, b := range f.live() {
		if t := r.Params.String("filter", "type"); r.owns(b) && (t == "" || t == b.Type) {
			bots, users = append(bots, f.botJSON(b, true)), append(users, botUser(b))
		}
	}
	return map[string]any{"bots": bots, "users": users, "hasNextPage": false}, nil
}

// Bot.unregister: botId → {result: true}. Its commands go; in fetch mode it gets
// ONIMBOTV2DELETE, its last event.
func (f *Fake) botUnregister(r *req) (any, *bitrix24.Error) {
	if r.bot.EventMode == "fetch" {
		f.queueLocked(r.bot, bitrix24.EventV2Delete, nil)
	}
	r.bot.deleted = true
	maps.DeleteFunc(f.commands, func(_ int64, c *Command) bool { return c.BotID == r.bot.ID })
	return done, nil
}

func (f *Fake) botAnswer(b *bot, owner bool) map[string]any {
	return map[string]any{"bot": f.botJSON(b, owner), "users": []any{botUser(b)}}
}

// botJSON is the Bot object (entities.md#bot); its owner sees more.
func (f *Fake) botJSON(b *bot, owner bool) map[string]any {
	m := map[string]any{"id": b.ID, "code": b.Code, "type": b.Type, "isHidden": false, "isSupportOpenline": b.Type == "openline",
		"isReactionsEnabled": true, "backgroundId": nil, "language": "en"}
	if owner {
		m["moduleId"], m["eventMode"], m["countChat"], m["countUser"] = "rest", b.EventMode, 0, 0
		m["countMessage"] = count(f.own, func(by int64) bool { return by == b.ID })
		m["countCommand"] = count(f.commands, func(c *Command) bool { return c.BotID == b.ID })
	}
	return m
}

// count is how many values of m keep.
func count[V any](m map[int64]V, keep func(V) bool) (n int) {
	for _, v := range m {
		if keep(v) {
			n++
		}
	}
	return n
}

func botUser(b *bot) map[string]any {
	u := user(b.ID, b.Name, b.LastName)
	u["bot"], u["type"], u["externalAuthId"], u["workPosition"], u["color"] = true, "bot", "bot", b.WorkPosition, b.Color
	return u
}

// RefuseExistingCommands makes Command.register of a command the bot has answer
// COMMAND_ALREADY_EXISTS, as a portal may, instead of the command (the docs' idempotence).
func (f *Fake) RefuseExistingCommands() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commandExists = true
}

// Command.register: botId, fields{command (no slash), title{lang: text}, params,
// common, hidden, extranetSupport} → {command}. A command the bot has answers it,
// unchanged.
func (f *Fake) commandRegister(r *req) (any, *bitrix24.Error) {
	fl := r.fields()
	name, titles := fl.String("command"), langs(fl.Group("title"))
	if err := checkName(name); err != nil {
		return nil, err
	} else if len(titles) == 0 && !flag(fl.String("hidden")) {
		return nil, fail("COMMAND_TITLE_REQUIRED", "fields.title is required unless the command is hidden")
	}
	for _, c := range f.commands {
		if c.BotID == r.bot.ID && c.Name == name && f.commandExists {
			return nil, fail("COMMAND_ALREADY_EXISTS", "The command is registered already")
		} else if c.BotID == r.bot.ID && c.Name == name {
			return map[string]any{"command": commandJSON(c)}, nil
		}
	}
	c := &Command{ID: f.next.cmd, BotID: r.bot.ID, Name: name, Titles: titles, Params: langs(fl.Group("params"))}
	f.next.cmd++
	f.commands[c.ID] = c
	c.setFlags(fl)
	return map[string]any{"command": commandJSON(c)}, nil
}

func (c *Command) setFlags(fl bitrix24.Form) {
	set(fl, flag, map[string]*bool{"common": &c.Common, "hidden": &c.Hidden, "extranetSupport": &c.ExtranetSupport})
}

func checkName(name string) *bitrix24.Error {
	if name == "" {
		return fail("COMMAND_REQUIRED", "fields.command is not specified")
	} else if strings.ContainsAny(name, "/ \t\r\n") {
		return fail("COMMAND_NAME_INVALID", "A command is named without the slash, and without spaces")
	}
	return nil
}

// langs reads {lang: text}.
func langs(g bitrix24.Form) map[string]string {
	out := map[string]string{}
	for k, v := range g {
		if s, ok := v.(string); ok {
			out[strings.ToLower(k)] = s
		}
	}
	return out
}

// Command.update: botId, commandId, fields{command, title and params (a text sets a
// language, null deletes it; params only of a title's languages), common, hidden,
// extranetSupport} → {command}.
func (f *Fake) commandUpdate(r *req) (any, *bitrix24.Error) {
	c, fl := r.cmd, r.fields()
	if name, ok := fl["command"].(string); ok {
		taken := count(f.commands, func(o *Command) bool { return o != c && o.BotID == c.BotID && o.Name == name }) > 0
		if name == "" {
			return nil, fail("COMMAND_NAME_EMPTY", "The command name is empty")
		} else if err := checkName(name); err != nil {
			return nil, err
		} else if taken {
			return nil, fail("COMMAND_ALREADY_EXISTS", "The bot has a command of that name")
		}
		c.Name = name
	}
	raw, _ := r.JSON["fields"].(map[string]any)
	for _, g := range []struct {
		key string
		m   map[string]string
	}{{"title", c.Titles}, {"params", c.Params}} { // in this order: params only of a title's languages
		for lang, text := range langs(fl.Group(g.key)) {
			if _, ok := c.Titles[lang]; ok || g.key == "title" {
				g.m[lang] = text
			}
		}
		nulls, _ := raw[g.key].(map[string]any)
		maps.DeleteFunc(g.m, func(lang, _ string) bool { v, ok := nulls[lang]; return ok && v == nil })
	}
	c.setFlags(fl)
	return map[string]any{"command": commandJSON(c)}, nil
}

// Command.unregister: botId, commandId → {result: true}.
func (f *Fake) commandUnregister(r *req) (any, *bitrix24.Error) {
	delete(f.commands, r.cmd.ID)
	return done, nil
}

// Command.list: botId → {commands}, title and params as text in the portal's
// language (en, else the first there is).
func (f *Fake) commandList(r *req) (any, *bitrix24.Error) {
	pick := func(m map[string]string) string {
		if s, ok := m["en"]; ok || len(m) == 0 {
			return s
		}
		return m[slices.Sorted(maps.Keys(m))[0]]
	}
	out := []any{}
	for _, id := range slices.Sorted(maps.Keys(f.commands)) {
		if c := f.commands[id]; c.BotID == r.bot.ID {
			m := commandJSON(c)
			m["title"], m["params"], m["category"], m["context"] = pick(c.Titles), pick(c.Params), r.bot.Name, ""
			out = append(out, m)
		}
	}
	return map[string]any{"commands": out}, nil
}

func commandJSON(c *Command) map[string]any {
	return map[string]any{"id": c.ID, "botId": c.BotID, "command": "/" + c.Name, "common": c.Common, "hidden": c.Hidden,
		"extranetSupport": c.ExtranetSupport}
}
