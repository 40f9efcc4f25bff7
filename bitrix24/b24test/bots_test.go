package b24test_test

import (
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"supportbot/bitrix24/b24test"
)

func registration(code, handler string, name string) map[string]any {
	return map[string]any{
		"CODE": code, "TYPE": "S", "EVENT_HANDLER": handler, "OPENLINE": "N", "CLIENT_ID": "cid1",
		"PROPERTIES": map[string]any{"NAME": name, "COLOR": "GREEN", "WORK_POSITION": "Help desk"},
	}
}

func commandRegistration(botID int, command string) map[string]any {
	return map[string]any{
		"BOT_ID": botID, "COMMAND": command, "COMMON": "N", "HIDDEN": "N", "EXTRANET_SUPPORT": "N", "CLIENT_ID": "cid1",
		"EVENT_COMMAND_ADD": "https://bot.example/bitrix/events",
		"LANG": []any{
			map[string]any{"LANGUAGE_ID": "en", "TITLE": "All chats", "PARAMS": ""},
			map[string]any{"LANGUAGE_ID": "RU", "TITLE": "Все чаты", "PARAMS": "номер"},
		},
	}
}

// wantRaw checks the answer's raw JSON holds want, for shapes whose key order matters.
func wantRaw(t *testing.T, a answer, want string) {
	t.Helper()
	if a.Status != 200 || !strings.Contains(a.Raw, want) {
		t.Fatalf("answer %d %s, want it to hold %s", a.Status, a.Raw, want)
	}
}

// Registering twice (as a setup command run twice does) leaves one bot and one set
// of commands: Bitrix24 finds the CODE and the bot's COMMAND and answers their IDs.
func TestRegisterTwiceKeepsOneBotAndCommands(t *testing.T) {
	p := b24test.New(t)
	for round := 1; round <= 2; round++ {
		handler := "https://bot.example/bitrix/events"
		if round == 2 {
			handler = "https://bot2.example/bitrix/events?x=1"
		}
		wantResult(t, callJSON(t, p, "imbot.register", registration("supportbot", handler, "Support "+strconv.Itoa(round))), "567")
		wantResult(t, callJSON(t, p, "imbot.command.register", commandRegistration(567, "chats")), "103")
		wantResult(t, callJSON(t, p, "imbot.command.register", commandRegistration(567, "/new")), "104")
	}
	bots := p.Bots()
	if len(bots) != 1 {
		t.Fatalf("bots %+v", bots)
	}
	b := bots[0]
	wantEvents := map[string]string{}
	for _, e := range []string{"ONIMBOTMESSAGEADD", "ONIMBOTMESSAGEUPDATE", "ONIMBOTMESSAGEDELETE", "ONIMBOTJOINCHAT", "ONIMBOTDELETE"} {
		wantEvents[e] = "https://bot2.example/bitrix/events?x=1&CLIENT_ID=cid1"
	}
	want := b24test.Bot{ID: 567, Code: "supportbot", Type: "S", ClientID: "cid1",
		EventHandler: "https://bot2.example/bitrix/events?x=1&CLIENT_ID=cid1", Events: wantEvents,
		Properties:    map[string]string{"NAME": "Support 1", "COLOR": "GREEN", "WORK_POSITION": "Help desk"},
		Registrations: 2}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("bot\n %+v\nwant\n %+v", b, want)
	}
	cmds := p.Commands()
	if len(cmds) != 2 || cmds[0].Command != "chats" || cmds[1].Command != "new" {
		t.Fatalf("commands %+v", cmds)
	}
	wantCmd := b24test.Command{ID: 103, BotID: 567, Command: "chats",
		Lang:          map[string]b24test.CommandLang{"en": {Title: "All chats"}, "ru": {Title: "Все чаты", Params: "номер"}},
		Registrations: 2}
	if !reflect.DeepEqual(cmds[0], wantCmd) {
		t.Fatalf("command\n %+v\nwant\n %+v", cmds[0], wantCmd)
	}
	if h := p.AppHandler("customcid1", "ONIMCOMMANDADD"); h != "https://bot.example/bitrix/events?CLIENT_ID=cid1" {
		t.Fatalf("command handler %q", h)
	}
	if n := len(p.CallsTo("imbot.register")); n != 2 {
		t.Fatalf("%d register calls", n)
	}
}

func TestBotLifeCycle(t *testing.T) {
	p := b24test.New(t)
	wantRaw(t, callJSON(t, p, "imbot.bot.list", map[string]any{}), `"result":[]`)
	reg := registration("supportbot", "https://bot.example/e", "Support")
	reg["TYPE"] = "B"
	reg["PROPERTIES"].(map[string]any)["LAST_NAME"] = "Desk"
	wantResult(t, callJSON(t, p, "imbot.register", reg), "567")
	// A plain bot binds no edit and delete handlers.
	if ev := p.Bots()[0].Events; len(ev) != 3 || ev["ONIMBOTMESSAGEUPDATE"] != "" {
		t.Fatalf("events %v", ev)
	}
	wantRaw(t, callJSON(t, p, "imbot.bot.list", nil),
		`"result":{"567":{"ID":567,"NAME":"Support Desk","CODE":"supportbot","OPENLINE":"N"}}`)

	// imbot.update: code, properties, handlers.
	wantResult(t, callJSON(t, p, "imbot.update", map[string]any{"BOT_ID": 567, "CLIENT_ID": "cid1", "FIELDS": map[string]any{
		"CODE": "helpdesk", "EVENT_MESSAGE_ADD": "https://new.example/e",
		"PROPERTIES": map[string]any{"NAME": "", "WORK_POSITION": "Support desk"}}}), "true")
	b := p.Bots()[0]
	if b.Code != "helpdesk" || b.Properties["NAME"] != "Support" || b.Properties["WORK_POSITION"] != "Support desk" ||
		b.EventHandler != "https://new.example/e?CLIENT_ID=cid1" || b.Events["ONIMBOTJOINCHAT"] != "https://bot.example/e?CLIENT_ID=cid1" {
		t.Fatalf("updated bot %+v", b)
	}
	wantError(t, callJSON(t, p, "imbot.update", map[string]any{"BOT_ID": 999, "CLIENT_ID": "cid1", "FIELDS": map[string]any{"CODE": "x"}}), 400, "BOT_ID_ERROR")
	wantError(t, callJSON(t, p, "imbot.update", map[string]any{"BOT_ID": 567, "CLIENT_ID": "other", "FIELDS": map[string]any{"CODE": "x"}}), 400, "APP_ID_ERROR")
	wantError(t, callJSON(t, p, "imbot.update", map[string]any{"BOT_ID": 567, "CLIENT_ID": "cid1", "FIELDS": map[string]any{}}), 400, "WRONG_REQUEST")
	wantError(t, callJSON(t, p, "imbot.update", map[string]any{"BOT_ID": 567, "CLIENT_ID": "cid1",
		"FIELDS": map[string]any{"PROPERTIES": map[string]any{"NAME": "", "LAST_NAME": ""}}}), 400, "NAME_ERROR")
	wantError(t, callJSON(t, p, "imbot.update", map[string]any{"BOT_ID": 567, "CLIENT_ID": "cid1",
		"FIELDS": map[string]any{"EVENT_HANDLER": "ftp://x"}}), 400, "EVENT_MESSAGE_ADD_ERROR")
	wantError(t, callJSON(t, p, "imbot.update", map[string]any{"BOT_ID": 567, "FIELDS": map[string]any{"CODE": "x"}}), 403, "ACCESS_DENIED")

	// Commands: register, update, unregister.
	wantResult(t, callJSON(t, p, "imbot.command.register", commandRegistration(567, "chats")), "103")
	wantResult(t, callJSON(t, p, "imbot.command.register", commandRegistration(567, "help")), "104")
	wantResult(t, callJSON(t, p, "imbot.command.update", map[string]any{"COMMAND_ID": 103, "CLIENT_ID": "cid1", "FIELDS": map[string]any{
		"HIDDEN": "Y", "EVENT_COMMAND_ADD": "https://cmd.example/e",
		"LANG": []any{map[string]any{"LANGUAGE_ID": "de", "TITLE": "Alle Chats"}}}}), "true")
	c := p.Commands()[0]
	if !c.Hidden || p.AppHandler("customcid1", "onimcommandadd") != "https://cmd.example/e?CLIENT_ID=cid1" ||
		!reflect.DeepEqual(c.Lang, map[string]b24test.CommandLang{"de": {Title: "Alle Chats"}}) {
		t.Fatalf("updated command %+v", c)
	}
	wantError(t, callJSON(t, p, "imbot.command.update", map[string]any{"COMMAND_ID": 103, "CLIENT_ID": "cid1", "FIELDS": map[string]any{}}), 400, "WRONG_REQUEST")
	wantError(t, callJSON(t, p, "imbot.command.update", map[string]any{"COMMAND_ID": 7, "CLIENT_ID": "cid1", "FIELDS": map[string]any{"HIDDEN": "N"}}), 400, "COMMAND_ID_ERROR")
	wantError(t, callJSON(t, p, "imbot.command.update", map[string]any{"COMMAND_ID": 103, "CLIENT_ID": "x", "FIELDS": map[string]any{"HIDDEN": "N"}}), 400, "APP_ID_ERROR")
	wantResult(t, callJSON(t, p, "imbot.command.unregister", map[string]any{"COMMAND_ID": 104, "CLIENT_ID": "cid1"}), "true")
	wantError(t, callJSON(t, p, "imbot.command.unregister", map[string]any{"COMMAND_ID": 104, "CLIENT_ID": "cid1"}), 400, "COMMAND_ID_ERROR")
	if cmds := p.Commands(); len(cmds) != 1 || cmds[0].ID != 103 {
		t.Fatalf("commands %+v", cmds)
	}

	// Unregistering the bot takes its commands along.
	wantError(t, callJSON(t, p, "imbot.unregister", map[string]any{"BOT_ID": 567, "CLIENT_ID": "other"}), 400, "APP_ID_ERROR")
	wantResult(t, callJSON(t, p, "imbot.unregister", map[string]any{"BOT_ID": 567, "CLIENT_ID": "cid1"}), "true")
	if len(p.Bots()) != 0 || len(p.Commands()) != 0 {
		t.Fatalf("left: %+v %+v", p.Bots(), p.Commands())
	}
	wantError(t, callJSON(t, p, "imbot.unregister", map[string]any{"BOT_ID": 567, "CLIENT_ID": "cid1"}), 400, "BOT_ID_ERROR")
	wantRaw(t, callJSON(t, p, "imbot.bot.list", nil), `"result":[]`)
	// A new registration gets a new ID.
	wantResult(t, callJSON(t, p, "imbot.register", reg), "568")
}

// paramCase is a call with its parameters edited, and the error it gets.
type paramCase struct {
	name   string
	edit   func(m map[string]any)
	status int
	code   string
}

func TestRegisterErrors(t *testing.T) {
	p := b24test.New(t)
	base := func(edit func(m map[string]any)) map[string]any {
		m := map[string]any{"CODE": "b", "CLIENT_ID": "c", "EVENT_MESSAGE_ADD": "https://x.example/add",
			"EVENT_WELCOME_MESSAGE": "https://x.example/join", "EVENT_BOT_DELETE": "https://x.example/del",
			"PROPERTIES": map[string]any{"NAME": "B"}}
		edit(m)
		return m
	}
	cases := []paramCase{
		{"no client id", func(m map[string]any) { delete(m, "CLIENT_ID") }, 403, "ACCESS_DENIED"},
		{"no message handler", func(m map[string]any) { delete(m, "EVENT_MESSAGE_ADD") }, 400, "EVENT_MESSAGE_ADD_ERROR"},
		{"bad message handler", func(m map[string]any) { m["EVENT_MESSAGE_ADD"] = "not a url" }, 400, "EVENT_MESSAGE_ADD_ERROR"},
		{"bad update handler", func(m map[string]any) { m["EVENT_MESSAGE_UPDATE"] = "/relative" }, 400, "EVENT_MESSAGE_UPDATE_ERROR"},
		{"no welcome handler", func(m map[string]any) { delete(m, "EVENT_WELCOME_MESSAGE") }, 400, "EVENT_WELCOME_MESSAGE_ERROR"},
		{"no delete handler", func(m map[string]any) { delete(m, "EVENT_BOT_DELETE") }, 400, "EVENT_BOT_DELETE_ERROR"},
		{"no code", func(m map[string]any) { m["CODE"] = "" }, 400, "CODE_ERROR"},
		{"no name", func(m map[string]any) { m["PROPERTIES"] = map[string]any{"COLOR": "RED"} }, 400, "NAME_ERROR"},
		{"no properties", func(m map[string]any) { delete(m, "PROPERTIES") }, 400, "NAME_ERROR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, callJSON(t, p, "imbot.register", base(tc.edit)), tc.status, tc.code)
		})
	}
	if len(p.Bots()) != 0 {
		t.Fatalf("a failed registration made a bot: %+v", p.Bots())
	}
	// A CODE already registered answers that bot, whichever application asks.
	for i := range 3 {
		wantResult(t, callJSON(t, p, "imbot.register", base(func(m map[string]any) { m["CODE"] = "b" + strconv.Itoa(i) })), strconv.Itoa(567+i))
	}
	wantResult(t, callJSON(t, p, "imbot.register", base(func(m map[string]any) { m["CODE"] = "b2"; m["CLIENT_ID"] = "other" })), "569")
}

func TestCommandRegisterErrors(t *testing.T) {
	p := b24test.New(t)
	wantResult(t, callJSON(t, p, "imbot.register", registration("supportbot", "https://bot.example/e", "S")), "567")
	cases := []paramCase{
		{"no client id", func(m map[string]any) { delete(m, "CLIENT_ID") }, 403, "ACCESS_DENIED"},
		{"no handler", func(m map[string]any) { delete(m, "EVENT_COMMAND_ADD") }, 400, "EVENT_COMMAND_ADD_ERROR"},
		{"bad handler", func(m map[string]any) { m["EVENT_COMMAND_ADD"] = "mailto:x@y" }, 400, "EVENT_COMMAND_ADD_ERROR"},
		{"no command", func(m map[string]any) { delete(m, "COMMAND") }, 400, "COMMAND_ERROR"},
		{"unknown bot", func(m map[string]any) { m["BOT_ID"] = 1 }, 400, "BOT_ID_ERROR"},
		{"no bot", func(m map[string]any) { delete(m, "BOT_ID") }, 400, "BOT_ID_ERROR"},
		{"another application's bot", func(m map[string]any) { m["CLIENT_ID"] = "cid2" }, 400, "APP_ID_ERROR"},
		{"no lang", func(m map[string]any) { delete(m, "LANG") }, 400, "LANG_ERROR"},
		{"empty lang", func(m map[string]any) { m["LANG"] = []any{} }, 400, "LANG_ERROR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := commandRegistration(567, "chats")
			tc.edit(m)
			wantError(t, callJSON(t, p, "imbot.command.register", m), tc.status, tc.code)
		})
	}
	if len(p.Commands()) != 0 {
		t.Fatalf("commands %+v", p.Commands())
	}
}

// The registration methods work inside a batch, with PHP-style parameters.
func TestRegisterInBatch(t *testing.T) {
	p := b24test.New(t)
	q := url.Values{"CODE": {"bb"}, "TYPE": {"B"}, "EVENT_HANDLER": {"https://bot.example/e"}, "CLIENT_ID": {"c"},
		"PROPERTIES[NAME]": {"Batch"}}
	cq := url.Values{"BOT_ID": {"567"}, "COMMAND": {"help"}, "CLIENT_ID": {"c"}, "EVENT_COMMAND_ADD": {"https://bot.example/e"},
		"LANG[0][LANGUAGE_ID]": {"en"}, "LANG[0][TITLE]": {"Help"}}
	a := callJSON(t, p, "batch", map[string]any{"halt": 0, "cmd": map[string]any{
		"bot": "imbot.register?" + q.Encode(), "cmd": "imbot.command.register?" + cq.Encode(),
		"bad": "imbot.command.register?BOT_ID=567&CLIENT_ID=c"}})
	wantRaw(t, a, `"result":{"bot":567,"cmd":103}`)
	wantRaw(t, a, `"result_error":{"bad":{"error":"EVENT_COMMAND_ADD_ERROR"`)
	if b := p.Bots(); len(b) != 1 || b[0].Properties["NAME"] != "Batch" || b[0].EventHandler != "https://bot.example/e?CLIENT_ID=c" {
		t.Fatalf("bots %+v", b)
	}
	if c := p.Commands(); len(c) != 1 || c[0].Lang["en"].Title != "Help" {
		t.Fatalf("commands %+v", c)
	}
}
