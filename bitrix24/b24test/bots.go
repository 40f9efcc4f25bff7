package b24test

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"supportbot/bitrix24"
)

// Bot registration, as the im module does it (b24restdocs api-reference/chat-bots/outdated/bots/
// and commands/; where they are silent, CIMRestService::botRegister… and
// Bitrix\Im\Bot / Bitrix\Im\Command in the im module):
//
//   - every method needs the application: an OAuth token's, or, for a webhook, CLIENT_ID
//     (the bot is then the application "custom"+CLIENT_ID, and its handler URLs get
//     ?CLIENT_ID=… appended); without it ACCESS_DENIED, 403;
//   - imbot.register with a CODE some REST bot already has registers nothing: it answers
//     that bot's ID (whichever application registered it), leaves its type and
//     properties as they were, and binds the calling application's event handlers to the
//     URLs given (Bitrix\Im\Bot::register looks the code up first);
//   - imbot.command.register of a COMMAND the bot already has answers that command's ID
//     the same way, binding the new ONIMCOMMANDADD handler (Bitrix\Im\Command::register);
//   - event handlers belong to the application, not the bot: one set per application;
//   - imbot.unregister removes the bot's commands too (Bitrix\Im\Bot::unRegister).

const (
	firstBotID     = 567 // the bot of the recorded message events
	firstCommandID = 103 // the command of the recorded command events
	maxAppBots     = 5   // bots one application may have (imbot-register.md)
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

// botProperties are the PROPERTIES imbot.register and imbot.update take.
var botProperties = []string{"NAME", "LAST_NAME", "COLOR", "EMAIL", "PERSONAL_BIRTHDAY", "WORK_POSITION",
	"PERSONAL_WWW", "PERSONAL_GENDER", "PERSONAL_PHOTO"}

// Bot is a chat bot registered on the portal.
type Bot struct {
	ID       int64
	Code     string
	Type     string // B bot, S supervisor, O open lines, H human
	OpenLine bool
	// ClientID is the CLIENT_ID it was registered with through a webhook, or the
	// client_id of the application whose token registered it.
	ClientID string
	// EventHandler is the ONIMBOTMESSAGEADD handler URL bound for the bot's
	// application, as Bitrix24 will call it (for a webhook, with ?CLIENT_ID=… appended).
	EventHandler string
	// Events maps each bot event bound for the bot's application (ONIMBOTMESSAGEADD,
	// ONIMBOTJOINCHAT, ONIMBOTDELETE, ONIMBOTMESSAGEUPDATE, ONIMBOTMESSAGEDELETE) to its
	// handler URL.
	Events map[string]string
	// Properties are the PROPERTIES (NAME, LAST_NAME, COLOR, WORK_POSITION…) as given,
	// with imbot.update's changes.
	Properties map[string]string
	// Registrations is how many imbot.register calls answered this bot: the first
	// made it, the others found its CODE.
	Registrations int
}

// CommandLang is one translation of a command.
type CommandLang struct {
	Title  string
	Params string
}

// Command is a slash command registered for a bot.
type Command struct {
	ID, BotID       int64
	Command         string // without a leading slash, as Bitrix24 stores it
	Hidden, Common  bool
	ExtranetSupport bool
	ClientID        string
	// EventHandler is the ONIMCOMMANDADD handler URL bound for the command's
	// application (for a webhook, with ?CLIENT_ID=… appended).
	EventHandler string
	// Lang holds the translations by LANGUAGE_ID, lower-cased as Bitrix24 stores it.
	Lang map[string]CommandLang
	// Registrations is how many imbot.command.register calls answered this command.
	Registrations int
}

type botRecord struct {
	id            int64
	code, typ     string
	openline      bool
	appID         string
	clientID      string
	props         map[string]string
	registrations int
}

type commandRecord struct {
	id, botID       int64
	command         string
	hidden, common  bool
	extranet        bool
	appID, clientID string
	lang            map[string]CommandLang
	registrations   int
}

// Bots returns the registered bots by ID.
func (p *Portal) Bots() []Bot {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Bot, 0, len(p.bots))
	for _, b := range p.bots {
		events := map[string]string{}
		for _, e := range botEventParams {
			if u, ok := p.appEvents[b.appID][e.event]; ok {
				events[e.event] = u
			}
		}
		props := make(map[string]string, len(b.props))
		for k, v := range b.props {
			props[k] = v
		}
		out = append(out, Bot{ID: b.id, Code: b.code, Type: b.typ, OpenLine: b.openline, ClientID: b.clientID,
			EventHandler: events[bitrix24.EventMessageAdd], Events: events, Properties: props, Registrations: b.registrations})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Commands returns the registered commands by ID.
func (p *Portal) Commands() []Command {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Command, 0, len(p.commands))
	for _, c := range p.commands {
		lang := make(map[string]CommandLang, len(c.lang))
		for k, v := range c.lang {
			lang[k] = v
		}
		out = append(out, Command{ID: c.id, BotID: c.botID, Command: c.command, Hidden: c.hidden, Common: c.common,
			ExtranetSupport: c.extranet, ClientID: c.clientID, EventHandler: p.appEvents[c.appID][bitrix24.EventCommandAdd],
			Lang: lang, Registrations: c.registrations})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// application is the calling application: appID as Bitrix24 keys bots by it, the
// client ID as given, and whether it is a webhook's custom one.
type application struct {
	appID, clientID string
	custom          bool
}

func (c caller) application(f bitrix24.Form) (application, *bitrix24.Error) {
	if c.token != "" {
		return application{appID: c.clientID, clientID: c.clientID}, nil
	}
	if hasValue(f, "CLIENT_ID") {
		cid := f.String("CLIENT_ID")
		return application{appID: "custom" + cid, clientID: cid, custom: true}, nil
	}
	return application{}, &bitrix24.Error{Code: "ACCESS_DENIED", Description: "Access denied! Client ID not specified",
		HTTPStatus: http.StatusForbidden}
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

// upperKeys upper-cases the top-level keys, as the REST methods do
// (array_change_key_case); nested ones stay as sent.
func upperKeys(f bitrix24.Form) bitrix24.Form {
	out := make(bitrix24.Form, len(f))
	for k, v := range f {
		out[strings.ToUpper(k)] = v
	}
	return out
}

// yes is a Y/N flag; a JSON true (flattened to "1") counts, as PHP's true == 'Y' does.
func yes(v string) bool { return v == "Y" || v == "1" }

func yn(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}

// bindLocked binds the application's handler of event.
func (p *Portal) bindLocked(appID, event, url string) {
	if p.appEvents[appID] == nil {
		p.appEvents[appID] = map[string]string{}
	}
	p.appEvents[appID][event] = url
}

// imbot.register → bot ID.
func (p *Portal) botRegister(c caller, f bitrix24.Form) (any, *bitrix24.Error) {
	f = upperKeys(f)
	app, aerr := c.application(f)
	if aerr != nil {
		return nil, aerr
	}
	given := map[string]string{}
	for _, e := range botEventParams {
		switch {
		case hasValue(f, "EVENT_HANDLER"):
			given[e.param] = f.String("EVENT_HANDLER")
		case hasValue(f, e.param):
			given[e.param] = f.String(e.param)
		}
	}
	bound := map[string]string{} // event → URL
	for _, e := range botEventParams {
		raw, ok := given[e.param]
		if !ok {
			if e.missing != "" {
				return nil, wrongRequest(e.param+"_ERROR", e.missing)
			}
			continue
		}
		u, ok := app.handlerURL(raw)
		if !ok {
			return nil, wrongRequest(e.param+"_ERROR", "Wrong handler URL")
		}
		bound[e.event] = u
	}
	if !hasValue(f, "CODE") {
		return nil, wrongRequest("CODE_ERROR", "Bot code isn't specified")
	}
	code := f.String("CODE")
	typ := f.String("TYPE")
	if typ != "O" && typ != "B" && typ != "H" && typ != "S" {
		typ = "B"
	}
	openline := f.String("OPENLINE") == "Y" || typ == "O"
	if typ != "S" && typ != "O" && !openline {
		// Plain bots get no edit and delete events.
		delete(bound, bitrix24.EventMessageUpdate)
		delete(bound, bitrix24.EventMessageDelete)
	}
	props := map[string]string{}
	given2 := f.Group("PROPERTIES")
	for _, k := range botProperties {
		if v, ok := given2[k].(string); ok {
			props[k] = v
		}
	}
	_, hasName := props["NAME"]
	_, hasLast := props["LAST_NAME"]
	if !hasName && !hasLast {
		return nil, wrongRequest("NAME_ERROR", "Bot name isn't specified")
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	var b *botRecord
	for _, existing := range p.bots {
		if existing.code == code {
			b = existing
			break
		}
	}
	if b == nil {
		n := 0
		for _, other := range p.bots {
			if other.appID == app.appID {
				n++
			}
		}
		if n >= maxAppBots {
			return nil, wrongRequest("MAX_COUNT_ERROR", "Has reached the maximum number of bots for application (max: "+strconv.Itoa(maxAppBots)+")")
		}
		b = &botRecord{id: p.nextBot, code: code, typ: typ, openline: openline, appID: app.appID, clientID: app.clientID, props: props}
		p.nextBot++
		p.bots[b.id] = b
	}
	b.registrations++
	for _, e := range botEventParams {
		if u, ok := bound[e.event]; ok {
			p.bindLocked(app.appID, e.event, u)
		}
	}
	return b.id, nil
}

// botForLocked finds a bot of the application: BOT_ID_ERROR or APP_ID_ERROR.
func (p *Portal) botForLocked(app application, id int64) (*botRecord, *bitrix24.Error) {
	b := p.bots[id]
	if b == nil {
		return nil, wrongRequest("BOT_ID_ERROR", "Bot not found")
	}
	if b.appID != app.appID {
		return nil, wrongRequest("APP_ID_ERROR", "Bot was installed by another rest application")
	}
	return b, nil
}

// imbot.update: BOT_ID, CLIENT_ID, FIELDS{CODE, EVENT_*, PROPERTIES} → true. TYPE and
// OPENLINE cannot change (imbot-update.md).
func (p *Portal) botUpdate(c caller, f bitrix24.Form) (any, *bitrix24.Error) {
	f = upperKeys(f)
	app, aerr := c.application(f)
	if aerr != nil {
		return nil, aerr
	}
	id := intParam(f, "BOT_ID")
	p.mu.Lock()
	_, berr := p.botForLocked(app, id)
	p.mu.Unlock()
	if berr != nil {
		return nil, berr
	}
	fields := f.Group("FIELDS")
	if fields == nil {
		fields = bitrix24.Form{}
	}
	bound := map[string]string{}
	for _, e := range botEventParams {
		raw := ""
		switch {
		case hasValue(fields, "EVENT_HANDLER"):
			raw = fields.String("EVENT_HANDLER")
		case hasValue(fields, e.param):
			raw = fields.String(e.param)
		default:
			continue
		}
		u, ok := app.handlerURL(raw)
		if !ok {
			return nil, wrongRequest(e.param+"_ERROR", "Wrong handler URL")
		}
		bound[e.event] = u
	}
	code := ""
	if hasValue(fields, "CODE") {
		code = fields.String("CODE")
	}
	props := map[string]string{}
	given := fields.Group("PROPERTIES")
	for _, k := range botProperties {
		if v, ok := given[k].(string); ok {
			props[k] = v
		}
	}
	name, hasName := props["NAME"]
	last, hasLast := props["LAST_NAME"]
	if hasName && name == "" && hasLast && last == "" {
		return nil, wrongRequest("NAME_ERROR", "Bot name isn't specified")
	}
	if code == "" && len(props) == 0 && len(bound) == 0 {
		return nil, wrongRequest("WRONG_REQUEST", "Update fields can't be empty")
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	b, berr := p.botForLocked(app, id)
	if berr != nil {
		return nil, berr
	}
	if code != "" {
		b.code = code
	}
	for k, v := range props {
		if k == "NAME" && strings.TrimSpace(v) == "" {
			continue // an empty name is ignored, not stored
		}
		b.props[k] = v
	}
	for event, u := range bound {
		p.bindLocked(app.appID, event, u)
	}
	return true, nil
}

// imbot.unregister: BOT_ID, CLIENT_ID → true; the bot's commands go with it.
func (p *Portal) botUnregister(c caller, f bitrix24.Form) (any, *bitrix24.Error) {
	f = upperKeys(f)
	app, aerr := c.application(f)
	if aerr != nil {
		return nil, aerr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, berr := p.botForLocked(app, intParam(f, "BOT_ID"))
	if berr != nil {
		return nil, berr
	}
	delete(p.bots, b.id)
	for id, cmd := range p.commands {
		if cmd.botID == b.id {
			delete(p.commands, id)
		}
	}
	left := false
	for _, other := range p.bots {
		if other.appID == app.appID {
			left = true
			break
		}
	}
	if !left {
		// The application's last bot is gone: so are its bot event handlers.
		for _, e := range botEventParams {
			delete(p.appEvents[app.appID], e.event)
		}
	}
	return true, nil
}

// imbot.bot.list: every bot of the portal, by ID: {"567":{"ID":567,"NAME":…,"CODE":…,"OPENLINE":"N"}}
// (imbot-bot-list.md); [] when there is none, as PHP encodes an empty array.
func (p *Portal) botList() any {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]int64, 0, len(p.bots))
	for id := range p.bots {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := &phpArray{}
	for _, id := range ids {
		b := p.bots[id]
		item := &phpArray{}
		item.set("ID", b.id)
		item.set("NAME", strings.TrimSpace(b.props["NAME"]+" "+b.props["LAST_NAME"]))
		item.set("CODE", b.code)
		item.set("OPENLINE", yn(b.openline))
		out.set(itoa(id), item)
	}
	return out
}

// commandLangs reads LANG[{LANGUAGE_ID, TITLE, PARAMS}], skipping entries without a
// language, as Bitrix\Im\Command does.
func commandLangs(g bitrix24.Form) map[string]CommandLang {
	out := map[string]CommandLang{}
	for _, k := range g.Keys() {
		e := g.Group(k)
		lang := strings.ToLower(e.String("LANGUAGE_ID"))
		if lang == "" || lang == "0" {
			continue
		}
		if _, ok := e["TITLE"]; !ok {
			continue
		}
		out[lang] = CommandLang{Title: e.String("TITLE"), Params: e.String("PARAMS")}
	}
	return out
}

// imbot.command.register: BOT_ID, COMMAND, COMMON, HIDDEN, EXTRANET_SUPPORT, CLIENT_ID,
// LANG, EVENT_COMMAND_ADD → command ID.
func (p *Portal) commandRegister(c caller, f bitrix24.Form) (any, *bitrix24.Error) {
	f = upperKeys(f)
	app, aerr := c.application(f)
	if aerr != nil {
		return nil, aerr
	}
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
	botID := intParam(f, "BOT_ID")
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, berr := p.botForLocked(app, botID); berr != nil {
		return nil, berr
	}
	if !hasValue(f, "LANG") {
		return nil, wrongRequest("LANG_ERROR", "Lang set can't be empty")
	}
	name := strings.TrimPrefix(f.String("COMMAND"), "/")
	var cmd *commandRecord
	for _, existing := range p.commands {
		if existing.botID == botID && existing.command == name {
			cmd = existing
			break
		}
	}
	if cmd == nil {
		cmd = &commandRecord{id: p.nextCmd, botID: botID, command: name, common: yes(f.String("COMMON")),
			hidden: yes(f.String("HIDDEN")), extranet: yes(f.String("EXTRANET_SUPPORT")),
			appID: app.appID, clientID: app.clientID, lang: commandLangs(f.Group("LANG"))}
		p.nextCmd++
		p.commands[cmd.id] = cmd
	}
	cmd.registrations++
	p.bindLocked(app.appID, bitrix24.EventCommandAdd, handler)
	return cmd.id, nil
}

// commandForLocked finds a command of the application: COMMAND_ID_ERROR or APP_ID_ERROR.
func (p *Portal) commandForLocked(app application, id int64) (*commandRecord, *bitrix24.Error) {
	cmd := p.commands[id]
	if cmd == nil {
		return nil, wrongRequest("COMMAND_ID_ERROR", "Command not found")
	}
	if cmd.appID != app.appID {
		return nil, wrongRequest("APP_ID_ERROR", "Command was installed by another rest application")
	}
	return cmd, nil
}

// imbot.command.update: COMMAND_ID, CLIENT_ID, FIELDS{COMMAND, EVENT_COMMAND_ADD, HIDDEN,
// EXTRANET_SUPPORT, LANG} → true.
func (p *Portal) commandUpdate(c caller, f bitrix24.Form) (any, *bitrix24.Error) {
	f = upperKeys(f)
	app, aerr := c.application(f)
	if aerr != nil {
		return nil, aerr
	}
	id := intParam(f, "COMMAND_ID")
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd, cerr := p.commandForLocked(app, id)
	if cerr != nil {
		return nil, cerr
	}
	fields := f.Group("FIELDS")
	if fields == nil {
		fields = bitrix24.Form{}
	}
	handler := ""
	if hasValue(fields, "EVENT_COMMAND_ADD") {
		u, ok := app.handlerURL(fields.String("EVENT_COMMAND_ADD"))
		if !ok {
			return nil, wrongRequest("EVENT_COMMAND_ADD_ERROR", "Wrong handler URL")
		}
		handler = u
	}
	changed := false
	if hasValue(fields, "COMMAND") {
		cmd.command = strings.TrimPrefix(fields.String("COMMAND"), "/")
		changed = true
	}
	if hasValue(fields, "HIDDEN") {
		cmd.hidden = yes(fields.String("HIDDEN"))
		changed = true
	}
	if hasValue(fields, "EXTRANET_SUPPORT") {
		cmd.extranet = yes(fields.String("EXTRANET_SUPPORT"))
		changed = true
	}
	if hasValue(fields, "LANG") {
		cmd.lang = commandLangs(fields.Group("LANG"))
		changed = true
	}
	if !changed && handler == "" {
		return nil, wrongRequest("WRONG_REQUEST", "Update fields can't be empty")
	}
	if handler != "" {
		p.bindLocked(app.appID, bitrix24.EventCommandAdd, handler)
	}
	return true, nil
}

// imbot.command.unregister: COMMAND_ID, CLIENT_ID → true.
func (p *Portal) commandUnregister(c caller, f bitrix24.Form) (any, *bitrix24.Error) {
	f = upperKeys(f)
	app, aerr := c.application(f)
	if aerr != nil {
		return nil, aerr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd, cerr := p.commandForLocked(app, intParam(f, "COMMAND_ID"))
	if cerr != nil {
		return nil, cerr
	}
	delete(p.commands, cmd.id)
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
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bindLocked(c.clientID, event, handler)
	return true, nil
}

// AppHandler is the handler the application with clientID has bound for event, or "".
func (p *Portal) AppHandler(clientID, event string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.appEvents[clientID][strings.ToUpper(event)]
}
