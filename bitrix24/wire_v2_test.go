package bitrix24

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestV2Render: each action is the imbot.v2 call the documentation gives, with botId
// and, through a webhook, botToken on every bot-scoped call; keyboards go in
// fields.keyboard.
func TestV2Render(t *testing.T) {
	cx := Context{BotID: 7, BotToken: "tok"}
	kb := &Keyboard{Buttons: []Button{{Text: "Go", Command: "open", CommandParams: "3"}}}
	cases := []struct {
		a      Action
		method string
		params string
	}{
		{SendMessage{To: "27", Text: "hi"}, "imbot.v2.Chat.Message.send", `{"botId":7,"botToken":"tok","dialogId":"27","fields":{"message":"hi"}}`},
		{SendMessage{To: "chat5", Text: "hi", Keyboard: kb}, "imbot.v2.Chat.Message.send",
			`{"botId":7,"botToken":"tok","dialogId":"chat5","fields":{"keyboard":{"BOT_ID":7,"BUTTONS":[{"TEXT":"Go","COMMAND":"open","COMMAND_PARAMS":"3"}]},"message":"hi"}}`},
		{UpdateMessage{MessageID: 9, Text: "t", DropKeyboard: true}, "imbot.v2.Chat.Message.update",
			`{"botId":7,"botToken":"tok","fields":{"keyboard":"N","message":"t"},"messageId":9}`},
		{UpdateMessage{MessageID: 9, Text: "t", Keyboard: kb}, "imbot.v2.Chat.Message.update",
			`{"botId":7,"botToken":"tok","fields":{"keyboard":{"BOT_ID":7,"BUTTONS":[{"TEXT":"Go","COMMAND":"open","COMMAND_PARAMS":"3"}]},"message":"t"},"messageId":9}`},
		{CreateChat{Title: "T", Users: []int64{1}, EntityType: "E", EntityID: "e|1"}, "imbot.v2.Chat.add",
			`{"botId":7,"botToken":"tok","fields":{"description":"E e|1","title":"T","userIds":[1]}}`},
		{RenameChat{Chat: "chat5", Title: "x"}, "imbot.v2.Chat.update", `{"botId":7,"botToken":"tok","dialogId":"chat5","fields":{"title":"x"}}`},
		{AddUsers{Chat: "chat5", Users: []int64{3}}, "imbot.v2.Chat.User.add", `{"botId":7,"botToken":"tok","dialogId":"chat5","userIds":[3]}`},
		{RemoveUser{Chat: "chat5", User: 3}, "imbot.v2.Chat.User.delete", `{"botId":7,"botToken":"tok","dialogId":"chat5","userId":3}`},
		{UnregisterBot{BotID: 4}, "imbot.v2.Bot.unregister", `{"botId":4,"botToken":"tok"}`},
		{UnregisterCommand{CommandID: 8}, "imbot.v2.Command.unregister", `{"botId":7,"botToken":"tok","commandId":8}`},
		{BindEvent{Event: EventAppUninstall, Handler: "h"}, "event.bind", `{"event":"ONAPPUNINSTALL","handler":"h"}`},
	}
	for _, c := range cases {
		call, err := V2.Render(c.a, cx)
		if err != nil {
			t.Errorf("%s: %v", c.a.Kind(), err)
			continue
		}
		got, _ := json.Marshal(call.Params)
		if call.Method != c.method || string(got) != c.params {
			t.Errorf("%s:\n%s %s\nwant\n%s %s", c.a.Kind(), call.Method, got, c.method, c.params)
		}
	}

	profile := BotProfile{Code: "support", Name: "Support", Color: "LIGHT_BLUE", HandlerURL: "https://h/bitrix/events", EventMode: "fetch", WorkPosition: "Поддержка"}
	reg, _ := V2.Render(RegisterBot{Profile: profile}, Context{BotToken: "tok"})
	got, _ := json.Marshal(reg.Params)
	if want := `{"fields":{"botToken":"tok","code":"support","eventMode":"fetch","properties":{"color":"lightBlue","name":"Support","workPosition":"Поддержка"},"type":"supervisor"}}`; reg.Method != "imbot.v2.Bot.register" || string(got) != want {
		t.Errorf("register: %s %s\nwant %s", reg.Method, got, want)
	}
	profile.EventMode = "webhook"
	upd, _ := V2.Render(UpdateBot{BotID: 4, Profile: profile, NewToken: "new"}, cx)
	got, _ = json.Marshal(upd.Params)
	if want := `{"botId":4,"botToken":"tok","fields":{"botToken":"new","eventMode":"webhook","properties":{"color":"lightBlue","name":"Support","workPosition":"Поддержка"},"webhookUrl":"https://h/bitrix/events"}}`; upd.Method != "imbot.v2.Bot.update" || string(got) != want {
		t.Errorf("update: %s %s\nwant %s", upd.Method, got, want)
	}
	spec := CommandSpec{Name: "new", Titles: []CommandTitle{{Language: "ru", Title: "Новый", Params: "вопрос"}, {Language: "en", Title: "New"}}}
	cmd, _ := V2.Render(RegisterCommand{Command: spec}, cx)
	got, _ = json.Marshal(cmd.Params)
	if want := `{"botId":7,"botToken":"tok","fields":{"command":"new","common":"N","hidden":"N","params":{"ru":"вопрос"},"title":{"en":"New","ru":"Новый"}}}`; cmd.Method != "imbot.v2.Command.register" || string(got) != want {
		t.Errorf("command: %s %s\nwant %s", cmd.Method, got, want)
	}

	// An application's bot carries no botToken: its OAuth token names the application.
	app, _ := V2.Render(SendMessage{To: "27", Text: "hi"}, Context{BotID: 7})
	if _, ok := app.Params["botToken"]; ok {
		t.Errorf("botToken sent for an application's bot: %v", app.Params)
	}
	if _, err := V2.Render(SendMessage{To: "27"}, Context{}); err == nil {
		t.Error("a message rendered for a bot not yet registered")
	}
	if _, err := V2.Render(RenameChat{Chat: "27", Title: "x"}, cx); err == nil {
		t.Error("a private chat renamed")
	}
	if _, err := V2.Render(FindChat{EntityType: "E"}, cx); err == nil {
		t.Error("v2 rendered a chat lookup it has no method for")
	}
	if !V2.Batch() || !V1.Batch() {
		t.Error("v2 calls go in batch as v1's do")
	}
	// In a batch command (a query string) a boolean is written as the docs allow, not
	// as the 1 a JSON true would become.
	if q := EncodeQuery(cmd.Params); !strings.Contains(q, "fields%5Bhidden%5D=N") || !strings.Contains(q, "fields%5Bcommon%5D=N") {
		t.Errorf("query form of Command.register: %s", q)
	}
	if _, ok := V2.Lookup(CreateChat{EntityType: "E", EntityID: "e|1"}); ok {
		t.Error("v2 claims a chat lookup")
	}
}

// TestV2ResultID reads the IDs from the documented answers.
func TestV2ResultID(t *testing.T) {
	cases := []struct {
		a    Action
		raw  string
		want int64
	}{
		{SendMessage{}, `{"id": 789, "uuidMap": {}}`, 789},
		{CreateChat{}, `{"chat": {"id": 5, "dialogId": "chat5"}, "users": []}`, 5},
		{RegisterBot{}, `{"bot": {"id": 456, "code": "support_bot"}}`, 456},
		{UpdateBot{}, `{"bot": {"id": 456}}`, 456},
		{RegisterCommand{}, `{"command": {"id": 12, "command": "new"}}`, 12},
		{UpdateMessage{}, `{"result": true}`, 0},
		{CreateChat{}, `{"chat": {"id": "x"}}`, 0},
		{SendMessage{}, `[]`, 0},
	}
	for _, c := range cases {
		if got := V2.ResultID(c.a, json.RawMessage(c.raw)); got != c.want {
			t.Errorf("%s %s: %d, want %d", c.a.Kind(), c.raw, got, c.want)
		}
	}
}

type recordedCall struct {
	method string
	params any
}

// callerFunc answers calls from a function: the package's own one-method seam, so
// the requests FetchEvents makes can be read without a portal.
type callerFunc func(method string, params any) (json.RawMessage, error)

func (f callerFunc) Call(_ context.Context, method string, params any) (json.RawMessage, error) {
	return f(method, params)
}

// TestFetchEvents: the first poll names no offset; later ones pass the stored one,
// which confirms what came before it; the answer decodes into events.
func TestFetchEvents(t *testing.T) {
	var calls []recordedCall
	page, err := os.ReadFile(filepath.Join("testdata", "v2", "fetch", "event-get.json"))
	if err != nil {
		t.Fatal(err)
	}
	var envelope struct{ Result json.RawMessage }
	if err := json.Unmarshal(page, &envelope); err != nil {
		t.Fatal(err)
	}
	c := callerFunc(func(method string, params any) (json.RawMessage, error) {
		calls = append(calls, recordedCall{method, params})
		return envelope.Result, nil
	})
	f, err := FetchEvents(context.Background(), c, Context{BotID: 456, BotToken: "tok"}, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Events) == 0 || f.NextOffset == 0 {
		t.Fatalf("fetched %+v", f)
	}
	if _, err := FetchEvents(context.Background(), c, Context{BotID: 456}, f.NextOffset, 10); err != nil {
		t.Fatal(err)
	}
	first, _ := json.Marshal(calls[0].params)
	second, _ := json.Marshal(calls[1].params)
	if calls[0].method != "imbot.v2.Event.get" || string(first) != `{"botId":456,"botToken":"tok","limit":100}` ||
		!strings.Contains(string(second), `"offset":`) || strings.Contains(string(second), "botToken") {
		t.Errorf("calls: %s %s / %s", calls[0].method, first, second)
	}
}
