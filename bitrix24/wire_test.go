package bitrix24

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestActionsRoundTrip: every action comes back from the outbox as written, and an
// action that waited for a chat names it, once created, wherever it named the
// awaited one.
func TestActionsRoundTrip(t *testing.T) {
	kb := &Keyboard{Buttons: []Button{{Text: "Go", Action: "DIALOG", ActionValue: AwaitedChat}, NewLine()}}
	spec := CommandSpec{Name: "new", Titles: []CommandTitle{{Language: "ru", Title: "Новый", Params: "вопрос"}}}
	profile := BotProfile{Code: "c", Name: "n", Color: "AQUA", HandlerURL: "https://h/e", ClientID: "id"}
	actions := []Action{
		SendMessage{To: AwaitedChat, Text: "see " + AwaitedChatLink("title"), Keyboard: kb},
		UpdateMessage{MessageID: 9, Text: "t", DropKeyboard: true},
		CreateChat{Title: "T", Users: []int64{1, 2}, EntityType: "E", EntityID: "e|1"},
		RenameChat{Chat: "chat5", Title: "x"},
		AddUsers{Chat: "chat5", Users: []int64{3}},
		RemoveUser{Chat: "chat5", User: 3},
		RegisterBot{Profile: profile},
		UpdateBot{BotID: 4, Profile: profile},
		UnregisterBot{BotID: 4, ClientID: "id"},
		RegisterCommand{Command: spec, HandlerURL: "https://h/e"},
		UpdateCommand{CommandID: 8, Command: spec, HandlerURL: "https://h/e"},
		UnregisterCommand{CommandID: 8},
		BindEvent{Event: EventAppUninstall, Handler: "https://h/e"},
		FindChat{EntityType: "E", EntityID: "e|1"},
	}
	for _, a := range actions {
		kind, data, err := EncodeAction(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeAction(kind, data)
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("%s: got %#v (%v), want %#v", kind, got, err, a)
		}
	}
	kind, data, _ := EncodeAction(actions[0])
	got, _ := DecodeAction(kind, data)
	send := got.(ChatAwaiter).WithChat(1234).(SendMessage)
	if send.To != "chat1234" || send.Text != "see [chat=1234]title[/chat]" || send.Keyboard.Buttons[0].ActionValue != "chat1234" {
		t.Fatalf("awaited chat not filled in: %#v", send)
	}
	if kb.Buttons[0].ActionValue != AwaitedChat {
		t.Fatal("WithChat changed the keyboard of the action it was called on")
	}
	for _, a := range []ChatAwaiter{RenameChat{Chat: AwaitedChat, Title: "x"}, AddUsers{Chat: AwaitedChat, Users: []int64{3}},
		RemoveUser{Chat: AwaitedChat, User: 3}} {
		if got := a.WithChat(5); reflect.DeepEqual(got, a) || strings.Contains(fmt.Sprint(got), awaitedMarker) {
			t.Errorf("%s: awaited chat not filled in: %#v", a.Kind(), got)
		}
	}
	if _, err := DecodeAction("no_such_kind", []byte("{}")); err == nil {
		t.Fatal("an unknown kind decoded")
	}
}

// TestV1Render: each action is the v1 call the portal knows, with the bot's ID where
// the method takes it.
func TestV1Render(t *testing.T) {
	cx := Context{BotID: 7}
	cases := []struct {
		a      Action
		method string
		params string
	}{
		{SendMessage{To: "27", Text: "hi"}, "imbot.message.add", `{"BOT_ID":7,"DIALOG_ID":"27","MESSAGE":"hi"}`},
		{UpdateMessage{MessageID: 9, Text: "t", DropKeyboard: true}, "imbot.message.update", `{"BOT_ID":7,"KEYBOARD":"N","MESSAGE":"t","MESSAGE_ID":9}`},
		{CreateChat{Title: "T", Users: []int64{1}, EntityType: "E", EntityID: "e|1"}, "imbot.chat.add",
			`{"BOT_ID":7,"ENTITY_ID":"e|1","ENTITY_TYPE":"E","TITLE":"T","TYPE":"CHAT","USERS":[1]}`},
		{RenameChat{Chat: "chat5", Title: "x"}, "imbot.chat.updateTitle", `{"BOT_ID":7,"CHAT_ID":5,"TITLE":"x"}`},
		{AddUsers{Chat: "chat5", Users: []int64{3}}, "imbot.chat.user.add", `{"BOT_ID":7,"CHAT_ID":5,"USERS":[3]}`},
		{RemoveUser{Chat: "chat5", User: 3}, "imbot.chat.user.delete", `{"BOT_ID":7,"CHAT_ID":5,"USER_ID":3}`},
		{UnregisterBot{BotID: 4, ClientID: "id"}, "imbot.unregister", `{"BOT_ID":4,"CLIENT_ID":"id"}`},
		{UnregisterCommand{CommandID: 8}, "imbot.command.unregister", `{"COMMAND_ID":8}`},
		{BindEvent{Event: EventAppUninstall, Handler: "h"}, "event.bind", `{"event":"ONAPPUNINSTALL","handler":"h"}`},
		{FindChat{EntityType: "E", EntityID: "e|1"}, "imbot.chat.get", `{"ENTITY_ID":"e|1","ENTITY_TYPE":"E"}`},
	}
	for _, c := range cases {
		call, err := V1.Render(c.a, cx)
		if err != nil {
			t.Errorf("%s: %v", c.a.Kind(), err)
			continue
		}
		got, _ := json.Marshal(call.Params)
		if call.Method != c.method || string(got) != c.params {
			t.Errorf("%s: %s %s, want %s %s", c.a.Kind(), call.Method, got, c.method, c.params)
		}
	}
	reg, _ := V1.Render(RegisterBot{Profile: BotProfile{Code: "c", HandlerURL: "h", WorkPosition: "Support"}}, cx)
	props, _ := reg.Params["PROPERTIES"].(map[string]any)
	if reg.Method != "imbot.register" || reg.Params["TYPE"] != "S" || reg.Params["BOT_ID"] != nil || reg.Params["EVENT_MESSAGE_ADD"] != "h" ||
		props["WORK_POSITION"] != "Support" {
		t.Errorf("register: %s %v", reg.Method, reg.Params)
	}
	cmd, _ := V1.Render(RegisterCommand{Command: CommandSpec{Name: "new", Hidden: true}, HandlerURL: "h"}, cx)
	if cmd.Params["BOT_ID"] != int64(7) || cmd.Params["COMMAND"] != "new" || cmd.Params["HIDDEN"] != "Y" {
		t.Errorf("command: %v", cmd.Params)
	}
	if _, err := V1.Render(RegisterCommand{Command: CommandSpec{Name: "new"}}, Context{}); err == nil {
		t.Error("a command rendered for a bot not yet registered")
	}
	if _, err := V1.Render(RenameChat{Chat: "27"}, cx); err == nil {
		t.Error("a private chat renamed")
	}
	if nob, _ := V1.Render(SendMessage{To: "27"}, Context{}); nob.Params["BOT_ID"] != nil {
		t.Errorf("BOT_ID sent while unknown: %v", nob.Params)
	}
}

func TestResultIDAndLookup(t *testing.T) {
	for raw, want := range map[string]int64{`1001`: 1001, `"1001"`: 1001, `{"ID":"55"}`: 55, `{"id":56}`: 56,
		`null`: 0, `false`: 0, `true`: 0, `0`: 0, `-3`: 0, `"x"`: 0, `[]`: 0, `12345678901234567890`: 0} {
		got, err := ResultID(json.RawMessage(raw))
		if got != want || (want == 0) != (err != nil) {
			t.Errorf("ResultID(%s) = %d, %v; want %d", raw, got, err, want)
		}
	}
	if id := V1.ResultID(UpdateMessage{}, json.RawMessage("true")); id != 0 {
		t.Errorf("an update answered ID %d", id)
	}
	if id := V1.ResultID(FindChat{}, json.RawMessage(`{"ID":"4001","TITLE":"x"}`)); id != 4001 {
		t.Errorf("chat.get's chat: %d", id)
	}
	if l, ok := V1.Lookup(CreateChat{EntityType: "E", EntityID: "e|1"}); !ok || l != (FindChat{EntityType: "E", EntityID: "e|1"}) {
		t.Errorf("lookup %#v %v", l, ok)
	}
	if _, ok := V1.Lookup(CreateChat{}); ok {
		t.Error("a chat without an entity can be looked up")
	}
	if _, ok := V1.Lookup(SendMessage{}); ok {
		t.Error("a message can be looked up")
	}
}

// FuzzDecodeAction: whatever the outbox holds, reading it back never panics, and an
// action that decodes renders or refuses cleanly.
func FuzzDecodeAction(f *testing.F) {
	for _, a := range []Action{SendMessage{To: "27", Text: "x"}, RenameChat{Chat: AwaitedChat}, CreateChat{Users: []int64{1}}} {
		kind, data, _ := EncodeAction(a)
		f.Add(kind, data, int64(5))
	}
	f.Add("register_command", []byte(`{"command":{"titles":null}}`), int64(0))
	f.Fuzz(func(t *testing.T, kind string, data []byte, chat int64) {
		a, err := DecodeAction(kind, data)
		if err != nil {
			return
		}
		if w, ok := a.(ChatAwaiter); ok && chat != 0 {
			a = w.WithChat(chat)
		}
		if call, err := V1.Render(a, Context{BotID: 1}); err == nil && !strings.Contains(call.Method, ".") {
			t.Fatalf("method %q", call.Method)
		}
	})
}
