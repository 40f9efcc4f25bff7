package b24test

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"supportbot/bitrix24"
)

// Bot registration, as the im module does it (b24restdocs api-reference/chat-bots/outdated/;
// where they are silent, Bitrix\Im\Bot and Bitrix\Im\Command):
//
//   - every method needs the application: an OAuth token's, or, for a webhook, CLIENT_ID
//     (the bot is then the application "custom"+CLIENT_ID, and its handler URLs get
//     ?CLIENT_ID=… appended); without it ACCESS_DENIED, 403;
//   - imbot.register with a CODE some REST bot already has answers that bot's ID
//     (whichever application registered it), changes nothing about it, and binds the
//     calling application's event handlers; imbot.command.register of a COMMAND the bot
//     has answers that command's ID the same way;
//   - event handlers belong to the application, not the bot: one set per application;
//   - imbot.unregister removes the bot's commands too.

const (
	firstBotID     = 567 // the bot of the recorded message events
	firstCommandID = 103 // the command of the recorded command events
)

// Bot events and the imbot.register parameters that bind them, in the order
// imbot.register checks them.
var botEventParams = []struct{ param, event, missing string }{
	{"EVENT_MESSAGE_ADD", bitrix24.EventMessageAdd, `Handler for "Message add" event isn't specified`},
	{"EVENT_MESSAGE_UPDATE", bitrix24.EventMessageUpdate, ""},
	{"EVENT_MESSAGE_DELETE", bitrix24.EventMessageDelete, ""},
	{"EVENT_WELCOME_MESSAGE", bitrix24.EventJoinChat, `Handler for "Welcome message" event isn't specified`},
	{"EVENT_BOT_DELETE", bitrix24.EventBotDelete, `Handler for "Bot delete" event isn't specified`},
}

// Bot is a chat bot registered on the portal.
type Bot struct {
	ID   int64
	Code string
	Type string // B bot, S supervisor, O open lines, H human
	// ClientID is the CLIENT_ID it was registered with through a webhook, or the
	// client_id of the application whose token registered it.
	ClientID string
	// Events maps each bot event (ONIMBOTMESSAGEADD, ONIMBOTJOINCHAT…) bound for the
	// bot's application to its handler URL, as Bitrix24 will call it (for a webhook,
	// with ?CLIENT_ID=… appended); EventHandler is ONIMBOTMESSAGEADD's.
	Events       map[string]string
	EventHandler string
	// Properties are the PROPERTIES (NAME, LAST_NAME, COLOR…) with imbot.update's
	// changes.
	Properties map[string]string
	// Registrations is how many imbot.register calls answered this bot.
	Registrations int
}

// CommandLang is one translation of a command.
type CommandLang struct {
	Title  string
	Params string
}

// Command is a slash command registered for a bot. Its ONIMCOMMANDADD handler is the
// application's (AppHandler).
type Command struct {
	ID, BotID int64
	Command   string // without a leading slash, as Bitrix24 stores it
	Hidden    bool
	// Lang holds the translations by LANGUAGE_ID, lower-cased as Bitrix24 stores it.
	Lang map[string]CommandLang
	// Registrations is how many imbot.command.register calls answered this command.
	Registrations int
}

type botRecord struct {
	Bot
	openline bool
	appID    string
}

type commandRecord struct {
	Command
	appID string
}

func (b *botRecord) installedBy() string     { return b.appID }
func (c *commandRecord) installedBy() string { return c.appID }

func botsOf(p *Portal) map[int64]*botRecord         { return p.bots }
func commandsOf(p *Portal) map[int64]*commandRecord { return p.commands }

// Bots returns the registered bots by ID.
func (p *Portal) Bots() []Bot {
	defer p.lock()()
	var out []Bot
	for _, id := range slices.Sorted(maps.Keys(p.bots)) {
		r := p.bots[id]
		b := r.Bot
		b.Events = map[string]string{}
		for _, e := range botEventParams {
			if u, ok := p.handlerURLs[[2]string{r.appID, e.event}]; ok {
				b.Events[e.event] = u
			}
		}
		b.EventHandler = b.Events[bitrix24.EventMessageAdd]
		b.Properties = maps.Clone(b.Properties)
		out = append(out, b)
	}
	return out
}

// Commands returns the registered commands by ID.
func (p *Portal) Commands() []Command {
	defer p.lock()()
	var out []Command
	for _, id := range slices.Sorted(maps.Keys(p.commands)) {
		cmd := p.commands[id].Command
		cmd.Lang = maps.Clone(cmd.Lang)
		out = append(out, cmd)
	}
	return out
}

// AppHandler is the handler the application with clientID has bound for event, or "".
// For a webhook's application it is "custom"+CLIENT_ID.
func (p *Portal) AppHandler(clientID, event string) string {
	defer p.lock()()
	return p.handlerURLs[[2]string{clientID, strings.ToUpper(event)}]
}

// application is the calling application: appID as Bitrix24 keys bots by it, the
// client ID as given, and whether it is a webhook's custom one.
type application struct {
	appID, clientID string
	custom          bool
}

// forApp makes a method of the calling application's: it gets the parameters with
// their top-level keys upper-cased, as the im module's methods take them
// (array_change_key_case), and the application.
func forApp(m func(*Portal, application, bitrix24.Form) (any, *bitrix24.Error)) method {
	return func(p *Portal, c caller, f bitrix24.Form) (any, *bitrix24.Error) {
		upper := make(bitrix24.Form, len(f))
		for k, v := range f {
			upper[strings.ToUpper(k)] = v
		}
		switch {
		case c.token != "":
			return m(p, application{appID: c.clientID, clientID: c.clientID}, upper)
		case hasValue(upper, "CLIENT_ID"):
			cid := upper.String("CLIENT_ID")
			return m(p, application{appID: "custom" + cid, clientID: cid, custom: true}, upper)
		}
		return nil, &bitrix24.Error{Code: "ACCESS_DENIED", Description: "Access denied! Client ID not specified",
			HTTPStatus: http.StatusForbidden}
	}
}

// owned makes m a method of one of the application's bots or commands, the one whose
// ID is the parameter param ("BOT_ID", "COMMAND_ID"): m runs under the portal's lock
// with it. Without it the answer is BOT_ID_ERROR or COMMAND_ID_ERROR, and APP_ID_ERROR
// when another application installed it.
func owned[R interface{ installedBy() string }](records func(*Portal) map[int64]R, param, what string,
	m func(*Portal, application, R, bitrix24.Form) (any, *bitrix24.Error)) method {
	return forApp(func(p *Portal, app application, f bitrix24.Form) (any, *bitrix24.Error) {
		defer p.lock()()
		r, err := findLocked(records(p), app, f, param, what)
		if err != nil {
			return nil, err
		}
		return m(p, app, r, f)
	})
}

// findLocked finds what owned gives its method.
func findLocked[R interface{ installedBy() string }](records map[int64]R, app application, f bitrix24.Form, param, what string) (R, *bitrix24.Error) {
	r, ok := records[intParam(f, param)]
	switch {
	case !ok:
		return r, wrongRequest(param+"_ERROR", what+" not found")
	case r.installedBy() != app.appID:
		return r, wrongRequest("APP_ID_ERROR", what+" was installed by another rest application")
	}
	return r, nil
}

// handlerURL checks a handler URL and returns it as it will be bound.
func (a application) handlerURL(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false
	}
	if a.custom {
		sep := "?"
		if strings.Contains(raw, "?") {
			sep = "&"
		}
		raw += sep + "CLIENT_ID=" + a.clientID
	}
	return raw, true
}

// botHandlers reads the EVENT_* handler URLs of imbot.register, or of imbot.update's
// FIELDS, by event; EVENT_HANDLER stands for all of them. With required, a missing
// one that imbot.register needs is an error.
func (a application) botHandlers(f bitrix24.Form, required bool) (map[string]string, *bitrix24.Error) {
	bound := map[string]string{}
	for _, e := range botEventParams {
		key := e.param
		if hasValue(f, "EVENT_HANDLER") {
			key = "EVENT_HANDLER"
		}
		if !hasValue(f, key) {
			if required && e.missing != "" {
				return nil, wrongRequest(e.param+"_ERROR", e.missing)
			}
			continue
		}
		u, ok := a.handlerURL(f.String(key))
		if !ok {
			return nil, wrongRequest(e.param+"_ERROR", "Wrong handler URL")
		}
		bound[e.event] = u
	}
	return bound, nil
}

// properties reads PROPERTIES (NAME, LAST_NAME, COLOR, WORK_POSITION…).
func properties(g bitrix24.Form) map[string]string {
	props := map[string]string{}
	for k, v := range g {
		if v, ok := v.(string); ok {
			props[k] = v
		}
	}
	return props
}

// yes is a Y/N flag; a JSON true (flattened to "1") counts, as PHP's true == 'Y' does.
func yes(v string) bool { return v == "Y" || v == "1" }

// imbot.register → bot ID.
func (p *Portal) botRegister(app application, f bitrix24.Form) (any, *bitrix24.Error) {
	bound, err := app.botHandlers(f, true)
	if err != nil {
		return nil, err
	}
	if !hasValue(f, "CODE") {
		return nil, wrongRequest("CODE_ERROR", "Bot code isn't specified")
	}
	code, typ := f.String("CODE"), f.String("TYPE")
	if len(typ) != 1 || !strings.Contains("BSOH", typ) {
		typ = "B"
	}
	openline := f.String("OPENLINE") == "Y" || typ == "O"
	if typ != "S" && !openline {
		// Plain bots get no edit and delete events.
		delete(bound, bitrix24.EventMessageUpdate)
		delete(bound, bitrix24.EventMessageDelete)
	}
	props := properties(f.Group("PROPERTIES"))
	_, hasName := props["NAME"]
	_, hasLast := props["LAST_NAME"]
	if !hasName && !hasLast {
		return nil, wrongRequest("NAME_ERROR", "Bot name isn't specified")
	}

	defer p.lock()()
	var b *botRecord
	for _, other := range p.bots {
		if other.Code == code {
			b = other
		}
	}
	if b == nil {
		b = &botRecord{Bot: Bot{ID: p.nextBot, Code: code, Type: typ, ClientID: app.clientID, Properties: props},
			openline: openline, appID: app.appID}
		p.nextBot++
		p.bots[b.ID] = b
	}
	b.Registrations++
	for event, u := range bound {
		p.handlerURLs[[2]string{app.appID, event}] = u
	}
	return b.ID, nil
}

// imbot.update: BOT_ID, CLIENT_ID, FIELDS{CODE, EVENT_*, PROPERTIES} → true. TYPE and
// OPENLINE cannot change (imbot-update.md).
func (p *Portal) botUpdate(app application, b *botRecord, f bitrix24.Form) (any, *bitrix24.Error) {
	fields := f.Group("FIELDS")
	bound, err := app.botHandlers(fields, false)
	if err != nil {
		return nil, err
	}
	props := properties(fields.Group("PROPERTIES"))
	name, hasName := props["NAME"]
	last, hasLast := props["LAST_NAME"]
	if hasName && name == "" && hasLast && last == "" {
		return nil, wrongRequest("NAME_ERROR", "Bot name isn't specified")
	}
	if !hasValue(fields, "CODE") && len(props) == 0 && len(bound) == 0 {
		return nil, wrongRequest("WRONG_REQUEST", "Update fields can't be empty")
	}
	if hasValue(fields, "CODE") {
		b.Code = fields.String("CODE")
	}
	for k, v := range props {
		if k != "NAME" || strings.TrimSpace(v) != "" { // an empty name is ignored, not stored
			b.Properties[k] = v
		}
	}
	for event, u := range bound {
		p.handlerURLs[[2]string{app.appID, event}] = u
	}
	return true, nil
}

// imbot.unregister: BOT_ID, CLIENT_ID → true; the bot's commands go with it.
func (p *Portal) botUnregister(app application, b *botRecord, _ bitrix24.Form) (any, *bitrix24.Error) {
	delete(p.bots, b.ID)
	for id, cmd := range p.commands {
		if cmd.BotID == b.ID {
			delete(p.commands, id)
		}
	}
	for _, other := range p.bots {
		if other.appID == app.appID {
			return true, nil
		}
	}
	// The application's last bot is gone: so are its bot event handlers.
	for _, e := range botEventParams {
		delete(p.handlerURLs, [2]string{app.appID, e.event})
	}
	return true, nil
}

// imbot.bot.list: every bot of the portal, by ID: {"567":{"ID":567,"NAME":…,"CODE":…,"OPENLINE":"N"}}
// (imbot-bot-list.md); [] when there is none, as PHP encodes an empty array.
func (p *Portal) botList(caller, bitrix24.Form) (any, *bitrix24.Error) {
	defer p.lock()()
	out := &phpArray{}
	for _, id := range slices.Sorted(maps.Keys(p.bots)) {
		b := p.bots[id]
		out.set(itoa(id), phpArray{"ID", b.ID, "NAME", strings.TrimSpace(b.Properties["NAME"] + " " + b.Properties["LAST_NAME"]),
			"CODE", b.Code, "OPENLINE", map[bool]string{true: "Y", false: "N"}[b.openline]})
	}
	return out, nil
}

// commandLangs reads LANG[{LANGUAGE_ID, TITLE, PARAMS}], skipping entries without a
// language or a title, as Bitrix\Im\Command does.
func commandLangs(g bitrix24.Form) map[string]CommandLang {
	out := map[string]CommandLang{}
	for _, k := range g.Keys() {
		e := g.Group(k)
		lang := strings.ToLower(e.String("LANGUAGE_ID"))
		if _, ok := e["TITLE"]; ok && lang != "" && lang != "0" {
			out[lang] = CommandLang{Title: e.String("TITLE"), Params: e.String("PARAMS")}
		}
	}
	return out
}

// imbot.command.register: BOT_ID, COMMAND, COMMON, HIDDEN, EXTRANET_SUPPORT, CLIENT_ID,
// LANG, EVENT_COMMAND_ADD → command ID.
func (p *Portal) commandRegister(app application, f bitrix24.Form) (any, *bitrix24.Error) {
	if !hasValue(f, "EVENT_COMMAND_ADD") {
		return nil, wrongRequest("EVENT_COMMAND_ADD_ERROR", `Handler for "Command add" event isn't specified`)
	}
	handler, ok := app.handlerURL(f.String("EVENT_COMMAND_ADD"))
	if !ok {
		return nil, wrongRequest("EVENT_COMMAND_ADD_ERROR", "Wrong handler URL")
	}
	if !hasValue(f, "COMMAND") {
		return nil, wrongRequest("COMMAND_ERROR", "Command isn't specified")
	}
	defer p.lock()()
	b, err := findLocked(p.bots, app, f, "BOT_ID", "Bot")
	if err != nil {
		return nil, err
	}
	if !hasValue(f, "LANG") {
		return nil, wrongRequest("LANG_ERROR", "Lang set can't be empty")
	}
	name := strings.TrimPrefix(f.String("COMMAND"), "/")
	var cmd *commandRecord
	for _, existing := range p.commands {
		if existing.BotID == b.ID && existing.Command.Command == name {
			cmd = existing
		}
	}
	if cmd == nil {
		cmd = &commandRecord{Command: Command{ID: p.nextCmd, BotID: b.ID, Command: name, Hidden: yes(f.String("HIDDEN")),
			Lang: commandLangs(f.Group("LANG"))}, appID: app.appID}
		p.nextCmd++
		p.commands[cmd.ID] = cmd
	}
	cmd.Registrations++
	p.handlerURLs[[2]string{app.appID, bitrix24.EventCommandAdd}] = handler
	return cmd.ID, nil
}

// imbot.command.update: COMMAND_ID, CLIENT_ID, FIELDS{COMMAND, EVENT_COMMAND_ADD, HIDDEN,
// EXTRANET_SUPPORT, LANG} → true.
func (p *Portal) commandUpdate(app application, cmd *commandRecord, f bitrix24.Form) (any, *bitrix24.Error) {
	fields := f.Group("FIELDS")
	if hasValue(fields, "EVENT_COMMAND_ADD") {
		u, ok := app.handlerURL(fields.String("EVENT_COMMAND_ADD"))
		if !ok {
			return nil, wrongRequest("EVENT_COMMAND_ADD_ERROR", "Wrong handler URL")
		}
		p.handlerURLs[[2]string{app.appID, bitrix24.EventCommandAdd}] = u
	}
	if hasValue(fields, "COMMAND") {
		cmd.Command.Command = strings.TrimPrefix(fields.String("COMMAND"), "/")
	}
	if hasValue(fields, "HIDDEN") {
		cmd.Hidden = yes(fields.String("HIDDEN"))
	}
	if hasValue(fields, "LANG") {
		cmd.Lang = commandLangs(fields.Group("LANG"))
	}
	for _, k := range []string{"EVENT_COMMAND_ADD", "COMMAND", "HIDDEN", "EXTRANET_SUPPORT", "LANG"} {
		if hasValue(fields, k) {
			return true, nil
		}
	}
	return nil, wrongRequest("WRONG_REQUEST", "Update fields can't be empty")
}

// imbot.command.unregister: COMMAND_ID, CLIENT_ID → true.
func (p *Portal) commandUnregister(_ application, cmd *commandRecord, _ bitrix24.Form) (any, *bitrix24.Error) {
	delete(p.commands, cmd.ID)
	return true, nil
}

// event.bind: event, handler → true (api-reference/events/event-bind.md). Only an
// application may bind (a webhook has outbound webhooks instead): ACCESS_DENIED
// otherwise. Binding the same handler again answers true as well; the fake does not
// model the portal's refusal of a duplicate.
func (p *Portal) eventBind(c caller, f bitrix24.Form) (any, *bitrix24.Error) {
	if c.token == "" {
		return nil, &bitrix24.Error{Code: "ACCESS_DENIED", Description: "Application context required", HTTPStatus: http.StatusForbidden}
	}
	event := strings.ToUpper(f.String("event"))
	handler := f.String("handler")
	if u, err := url.Parse(handler); event == "" || err != nil || u.Host == "" {
		return nil, wrongRequest("ERROR_ARGUMENT", "Wrong event or handler")
	}
	defer p.lock()()
	p.handlerURLs[[2]string{c.clientID, event}] = handler
	return true, nil
}
