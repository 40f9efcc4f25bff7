package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"supportbot/bitrix24"
)

// TestUpgradeKeepsPendingCalls: a database written by a version whose outbox held v1
// calls (method and parameters) still delivers every pending entry after the upgrade
// to actions: each converts to the action the bot now writes, and renders as the very
// call the old version would have made.
func TestUpgradeKeepsPendingCalls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(context.Background(), old, 5); err != nil {
		t.Fatal(err)
	}
	kb := &bitrix24.Keyboard{Buttons: []bitrix24.Button{{Text: "Go to chat", Action: "DIALOG", ActionValue: bitrix24.AwaitedDialogID,
		Display: "LINE", BgColor: "#29619b", TextColor: "#fff"}, bitrix24.NewLine()}}
	profile := bitrix24.BotProfile{Code: "supportbot", Name: "Поддержка", Color: "AQUA", HandlerURL: "https://s.example/bitrix/events"}
	command := bitrix24.CommandSpec{Name: "new", Titles: []bitrix24.CommandTitle{
		{Language: "ru", Title: "Открыть новое \"обращение\"", Params: "вопрос"}, {Language: "en", Title: "Open a new question", Params: "question"}}}
	hidden := bitrix24.CommandSpec{Name: "rate", Hidden: true, Titles: []bitrix24.CommandTitle{{Language: "ru", Title: "Оценить"}}}
	// What the old version wrote (its bot's parameter maps, its placeholders), and
	// what it now means.
	const oldBot = "\x00BOT_ID\x00"
	cases := []struct {
		method string
		params map[string]any
		want   bitrix24.Action
		botID  int64
	}{
		{"imbot.message.add", map[string]any{"BOT_ID": 7, "DIALOG_ID": bitrix24.AwaitedDialogID, "MESSAGE": "Hello [chat=" + bitrix24.AwaitedChatID + "]x[/chat]", "KEYBOARD": kb},
			bitrix24.SendMessage{DialogID: bitrix24.AwaitedDialogID, Text: "Hello [chat=" + bitrix24.AwaitedChatID + "]x[/chat]", Keyboard: kb}, 7},
		{"imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "plain"},
			bitrix24.SendMessage{DialogID: "27", Text: "plain"}, 0},
		{"imbot.message.update", map[string]any{"BOT_ID": 7, "MESSAGE_ID": 901, "MESSAGE": "answered", "KEYBOARD": "N"},
			bitrix24.UpdateMessage{MessageID: 901, Text: "answered", DropKeyboard: true}, 7},
		{"imbot.chat.add", map[string]any{"BOT_ID": 7, "TYPE": "CHAT", "TITLE": "Вопрос — №3", "USERS": []int64{27, 50},
			"ENTITY_TYPE": "SUPPORTBOT_QUESTION", "ENTITY_ID": "question|3"},
			bitrix24.CreateChat{Title: "Вопрос — №3", Users: []int64{27, 50}, EntityType: "SUPPORTBOT_QUESTION", EntityID: "question|3"}, 7},
		{"imbot.chat.updateTitle", map[string]any{"BOT_ID": 7, "CHAT_ID": bitrix24.AwaitedChatID, "TITLE": "Billing"},
			bitrix24.RenameChat{DialogID: bitrix24.AwaitedDialogID, Title: "Billing"}, 7},
		{"imbot.register", map[string]any{"CODE": profile.Code, "TYPE": "S", "EVENT_HANDLER": profile.HandlerURL,
			"EVENT_MESSAGE_ADD": profile.HandlerURL, "EVENT_WELCOME_MESSAGE": profile.HandlerURL, "EVENT_BOT_DELETE": profile.HandlerURL,
			"EVENT_MESSAGE_UPDATE": profile.HandlerURL, "EVENT_MESSAGE_DELETE": profile.HandlerURL, "OPENLINE": "N",
			"PROPERTIES": map[string]any{"NAME": profile.Name, "COLOR": profile.Color, "WORK_POSITION": "Support / Поддержка"}},
			bitrix24.RegisterBot{Profile: profile}, 0},
		{"imbot.command.register", map[string]any{"BOT_ID": oldBot, "COMMAND": "new", "COMMON": "N", "HIDDEN": "N", "EXTRANET_SUPPORT": "N",
			"EVENT_COMMAND_ADD": profile.HandlerURL, "LANG": []map[string]any{
				{"LANGUAGE_ID": "ru", "TITLE": "Открыть новое \"обращение\"", "PARAMS": "вопрос"},
				{"LANGUAGE_ID": "en", "TITLE": "Open a new question", "PARAMS": "question"}}},
			bitrix24.RegisterCommand{Command: command, HandlerURL: profile.HandlerURL}, 7},
		{"imbot.command.register", map[string]any{"BOT_ID": oldBot, "COMMAND": "rate", "COMMON": "N", "HIDDEN": "Y", "EXTRANET_SUPPORT": "N",
			"EVENT_COMMAND_ADD": profile.HandlerURL, "LANG": []map[string]any{{"LANGUAGE_ID": "ru", "TITLE": "Оценить", "PARAMS": ""}}},
			bitrix24.RegisterCommand{Command: hidden, HandlerURL: profile.HandlerURL}, 7},
		{"event.bind", map[string]any{"event": "ONAPPUNINSTALL", "handler": profile.HandlerURL},
			bitrix24.BindEvent{Event: "ONAPPUNINSTALL", Handler: profile.HandlerURL}, 0},
	}
	if _, err := old.Exec(`INSERT INTO portals (id, member_id, created_at, updated_at) VALUES (1, 'webhook', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		params, _ := json.Marshal(c.params)
		if _, err := old.Exec(`INSERT INTO outbox (portal_id, chat_key, method, params, next_attempt_at, created_at) VALUES (1, ?, ?, ?, 0, 0)`,
			"lane", c.method, string(params)); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
	}
	old.Close()

	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entries, err := s.Outbox(context.Background(), 1)
	if err != nil || len(entries) != len(cases) {
		t.Fatalf("%d entries after the upgrade (%v), want %d", len(entries), err, len(cases))
	}
	for i, c := range cases {
		e := entries[i]
		got, err := bitrix24.DecodeAction(e.Kind, e.Action, 0)
		if err != nil {
			t.Errorf("%s: %v (%s %s)", c.method, err, e.Kind, e.Action)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s converted to\n%#v\nwant\n%#v", c.method, got, c.want)
		}
		// Rendered with the chat and the bot known, it is the old call.
		filled, _ := bitrix24.DecodeAction(e.Kind, e.Action, 4001)
		call, err := bitrix24.V1.Render(filled, bitrix24.Context{BotID: c.botID})
		if err != nil {
			t.Errorf("%s: render: %v", c.method, err)
			continue
		}
		want := replaceAll(c.params, map[string]any{oldBot: c.botID, bitrix24.AwaitedChatID: int64(4001)})
		if !sameJSON(t, call.Params, want) || call.Method != c.method {
			gotJSON, _ := json.Marshal(call.Params)
			wantJSON, _ := json.Marshal(want)
			t.Errorf("%s renders as %s %s\nwant %s", c.method, call.Method, gotJSON, wantJSON)
		}
	}
}

// replaceAll puts the old placeholders' values in: a whole value that is a
// placeholder becomes the number; inside strings the number's digits.
func replaceAll(params map[string]any, values map[string]any) map[string]any {
	raw, _ := json.Marshal(params)
	var v any
	_ = json.Unmarshal(raw, &v)
	var walk func(any) any
	walk = func(x any) any {
		switch y := x.(type) {
		case map[string]any:
			for k, e := range y {
				y[k] = walk(e)
			}
		case []any:
			for i, e := range y {
				y[i] = walk(e)
			}
		case string:
			if n, ok := values[y]; ok {
				return n
			}
			for ph, n := range values {
				b, _ := json.Marshal(n)
				y = strings.ReplaceAll(y, ph, string(b))
			}
			return y
		}
		return x
	}
	return walk(v).(map[string]any)
}

// sameJSON compares two values by their JSON, numbers as numbers.
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	norm := func(v any) any {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var out any
		_ = json.Unmarshal(raw, &out)
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}
