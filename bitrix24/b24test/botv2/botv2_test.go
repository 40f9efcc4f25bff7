package botv2_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bitrix24/b24test/botv2"
)

const token = "tok-0123456789"

type env struct {
	p    *b24test.Portal
	fake *botv2.Fake
	c    *bitrix24.Client
}

func setup(t *testing.T) *env {
	t.Helper()
	p := b24test.New(t)
	p.SetRateLimit(0, 1)
	return &env{p: p, fake: botv2.Attach(p), c: bitrix24.NewClient(p.WebhookURL())}
}

// call makes a call that must succeed and decodes its result.
func (e *env) call(t *testing.T, method string, params map[string]any) map[string]any {
	t.Helper()
	raw, err := e.c.Call(context.Background(), method, params)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return decode(t, raw)
}

func decode(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	return out
}

// fails makes a call that must fail with code.
func (e *env) fails(t *testing.T, code, method string, params map[string]any) {
	t.Helper()
	_, err := e.c.Call(context.Background(), method, params)
	var be *bitrix24.Error
	if !errors.As(err, &be) || be.Code != code {
		t.Fatalf("%s: got %v, want %s", method, err, code)
	}
}

// register registers a fetch-mode bot with token and returns its ID.
func (e *env) register(t *testing.T, code, tok string) int64 {
	t.Helper()
	res := e.call(t, "imbot.v2.Bot.register", map[string]any{"fields": map[string]any{"code": code, "botToken": tok,
		"type": "bot", "eventMode": "fetch", "properties": map[string]any{"name": "Support", "color": "AQUA", "workPosition": "Helpdesk"}}})
	return num(t, get(res, "bot", "id"))
}

func get(v any, path ...string) any {
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

func num(t *testing.T, v any) int64 {
	t.Helper()
	n, err := v.(json.Number).Int64()
	if err != nil {
		t.Fatalf("%v is not a number", v)
	}
	return n
}

func TestRegisterTwiceIsOneBot(t *testing.T) {
	e := setup(t)
	id := e.register(t, "support", token)
	if again := e.register(t, "support", token); again != id {
		t.Fatalf("second register: bot %d, first %d", again, id)
	}
	// botToken at the top level, as quick-start.md has it.
	res := e.call(t, "imbot.v2.Bot.register", map[string]any{"botToken": token,
		"fields": map[string]any{"code": "support", "properties": map[string]any{"name": "Other name"}}})
	if num(t, get(res, "bot", "id")) != id || get(res, "bot", "eventMode") != "fetch" || get(res, "bot", "code") != "support" {
		t.Fatalf("register answered %v", res)
	}
	users, _ := res["users"].([]any)
	if len(users) != 1 || get(users[0], "bot") != true || get(users[0], "name") != "Support" {
		t.Fatalf("users %v", users)
	}
	bots := e.fake.Bots()
	want := botv2.Bot{ID: id, Code: "support", Type: "bot", EventMode: "fetch", Token: token, Name: "Support", Color: "AQUA", WorkPosition: "Helpdesk"}
	if len(bots) != 1 || bots[0] != want {
		t.Fatalf("Bots() = %+v, want %+v", bots, want)
	}
	e.fails(t, "BOT_CODE_ALREADY_TAKEN", "imbot.v2.Bot.register", map[string]any{"fields": map[string]any{"code": "support",
		"botToken": "another", "properties": map[string]any{"name": "X"}}})
	e.fails(t, "BOT_TOKEN_NOT_SPECIFIED", "imbot.v2.Bot.register", map[string]any{"fields": map[string]any{"code": "x",
		"properties": map[string]any{"name": "X"}}})
	e.fails(t, "BOT_WEBHOOK_URL_REQUIRED", "imbot.v2.Bot.register", map[string]any{"fields": map[string]any{"code": "x",
		"botToken": token, "eventMode": "webhook", "properties": map[string]any{"name": "X"}}})
	list := e.call(t, "imbot.v2.Bot.list", map[string]any{"botToken": token})
	if bots, _ := list["bots"].([]any); len(bots) != 1 || list["hasNextPage"] != false {
		t.Fatalf("Bot.list: %v", list)
	}
	if list := e.call(t, "imbot.v2.Bot.list", map[string]any{"botToken": "another"}); len(list["bots"].([]any)) != 0 {
		t.Fatalf("Bot.list for another token: %v", list)
	}
	got := e.call(t, "imbot.v2.Bot.get", map[string]any{"botToken": token, "code": "support"})
	if num(t, get(got, "bot", "id")) != id || get(got, "bot", "countMessage") == nil {
		t.Fatalf("Bot.get: %v", got)
	}
}

func TestTokenRotation(t *testing.T) {
	e := setup(t)
	id := e.register(t, "support", token)
	res := e.call(t, "imbot.v2.Bot.update", map[string]any{"botId": id, "botToken": token,
		"fields": map[string]any{"botToken": "new-token", "properties": map[string]any{"name": "Renamed"}}})
	if get(res, "bot", "id") == nil || get(res["users"].([]any)[0], "name") != "Renamed" {
		t.Fatalf("Bot.update answered %v", res)
	}
	e.fails(t, "BOT_OWNERSHIP_ERROR", "imbot.v2.Event.get", map[string]any{"botId": id, "botToken": token})
	e.fails(t, "BOT_OWNERSHIP_ERROR", "imbot.v2.Bot.update", map[string]any{"botId": id, "botToken": token, "fields": map[string]any{}})
	e.call(t, "imbot.v2.Event.get", map[string]any{"botId": id, "botToken": "new-token"})
	if b := e.fake.Bots()[0]; b.Token != "new-token" || b.Name != "Renamed" {
		t.Fatalf("bot after rotation: %+v", b)
	}
	// Re-registering with the new token finds the bot.
	if again := e.register(t, "support", "new-token"); again != id {
		t.Fatalf("register with the new token: %d", again)
	}
}

func TestErrors(t *testing.T) {
	e := setup(t)
	id := e.register(t, "support", token)
	e.fails(t, "BOT_TOKEN_NOT_SPECIFIED", "imbot.v2.Event.get", map[string]any{"botId": id})
	e.fails(t, "BOT_ID_REQUIRED", "imbot.v2.Event.get", map[string]any{"botToken": token})
	e.fails(t, "BOT_NOT_FOUND", "imbot.v2.Event.get", map[string]any{"botId": 999, "botToken": token})
	e.fails(t, "BOT_OWNERSHIP_ERROR", "imbot.v2.Event.get", map[string]any{"botId": id, "botToken": "wrong"})
	e.fails(t, "ACCESS_DENIED", "imbot.v2.Chat.get", map[string]any{"botId": id, "botToken": token, "dialogId": "chat77"})
	e.fails(t, "ERROR_METHOD_NOT_FOUND", "imbot.v2.event.get", map[string]any{"botId": id, "botToken": token})
	e.fails(t, "BOT_NOT_FOUND", "imbot.v2.Bot.get", map[string]any{"botToken": token, "code": "nobody"})

	// Inside batch v2 methods run as the docs allow; SetBatch refuses them the ways a
	// portal might, and a boolean written 1 or 0 is refused there.
	batch := func(cmds ...bitrix24.BatchCommand) []bitrix24.BatchResult {
		t.Helper()
		results, err := e.c.Batch(context.Background(), cmds, false)
		if err != nil {
			t.Fatal(err)
		}
		return results
	}
	get := bitrix24.BatchCommand{Key: "a", Method: "imbot.v2.Event.get", Params: map[string]any{"botId": id, "botToken": token}}
	scope := bitrix24.BatchCommand{Key: "b", Method: "scope"}
	if r := batch(get, scope); r[0].Err != nil || !strings.Contains(string(r[0].Result), `"nextOffset"`) || r[1].Err != nil {
		t.Fatalf("batch: %+v", r)
	}
	for mode, code := range map[botv2.BatchMode]string{botv2.BatchNotAllowed: "ERROR_BATCH_METHOD_NOT_ALLOWED", botv2.BatchNotFound: "ERROR_METHOD_NOT_FOUND"} {
		e.fake.SetBatch(mode)
		if r := batch(get, scope); !errors.Is(r[0].Err, &bitrix24.Error{Code: code}) || r[1].Err != nil {
			t.Fatalf("batch refused with %s: %+v", code, r)
		}
	}
	e.fake.SetBatch(botv2.BatchSilent)
	if r := batch(get, scope); !errors.Is(r[0].Err, bitrix24.ErrBatchSkipped) || r[1].Err != nil {
		t.Fatalf("batch run silently: %+v", r)
	}
	e.fake.SetBatch(botv2.BatchRuns)
	reg := bitrix24.BatchCommand{Key: "c", Method: "imbot.v2.Command.register", Params: map[string]any{"botId": id, "botToken": token,
		"fields": map[string]any{"command": "x", "hidden": true}}}
	if r := batch(reg); !errors.Is(r[0].Err, &bitrix24.Error{Code: "INVALID_ARGUMENT"}) {
		t.Fatalf("a boolean written 1 in a batch: %+v", r)
	}
	// The v2 calls are recorded like any other.
	if calls := e.p.CallsTo("imbot.v2.Event.get"); len(calls) != 9 || calls[0].Params.String("botId") != "456" || !calls[8].Batched {
		t.Fatalf("recorded calls: %+v", calls)
	}
}

func TestCommands(t *testing.T) {
	e := setup(t)
	id := e.register(t, "support", token)
	reg := func(name string) map[string]any {
		return e.call(t, "imbot.v2.Command.register", map[string]any{"botId": id, "botToken": token, "fields": map[string]any{
			"command": name, "title": map[string]any{"ru": "Помощь", "en": "Help"}, "params": map[string]any{"en": "topic"}, "common": true}})
	}
	first := reg("help")
	if get(first, "command", "command") != "/help" || get(first, "command", "common") != true || num(t, get(first, "command", "botId")) != id {
		t.Fatalf("Command.register: %v", first)
	}
	if again := reg("help"); !reflect.DeepEqual(again, first) {
		t.Fatalf("second register: %v, first %v", again, first)
	}
	reg("close")
	cmds := e.fake.Commands()
	if len(cmds) != 2 || cmds[0].Name != "help" || cmds[0].Titles["ru"] != "Помощь" || cmds[0].Params["en"] != "topic" || !cmds[0].Common {
		t.Fatalf("Commands() = %+v", cmds)
	}
	helpID := num(t, get(first, "command", "id"))
	e.fails(t, "COMMAND_NAME_INVALID", "imbot.v2.Command.register", map[string]any{"botId": id, "botToken": token,
		"fields": map[string]any{"command": "/x", "title": map[string]any{"en": "X"}}})
	e.fails(t, "COMMAND_TITLE_REQUIRED", "imbot.v2.Command.register", map[string]any{"botId": id, "botToken": token,
		"fields": map[string]any{"command": "x", "title": "X"}})

	upd := e.call(t, "imbot.v2.Command.update", map[string]any{"botId": id, "botToken": token, "commandId": helpID,
		"fields": map[string]any{"command": "assist", "title": map[string]any{"ru": nil, "de": "Hilfe"}, "hidden": true}})
	if get(upd, "command", "command") != "/assist" || get(upd, "command", "hidden") != true {
		t.Fatalf("Command.update: %v", upd)
	}
	if c := e.fake.Commands()[0]; !reflect.DeepEqual(c.Titles, map[string]string{"en": "Help", "de": "Hilfe"}) {
		t.Fatalf("titles after update: %v", c.Titles)
	}
	e.fails(t, "COMMAND_ALREADY_EXISTS", "imbot.v2.Command.update", map[string]any{"botId": id, "botToken": token, "commandId": helpID,
		"fields": map[string]any{"command": "close"}})
	list := e.call(t, "imbot.v2.Command.list", map[string]any{"botId": id, "botToken": token})
	if l := list["commands"].([]any); len(l) != 2 || get(l[0], "title") != "Help" || get(l[0], "params") != "topic" {
		t.Fatalf("Command.list: %v", list)
	}

	ans := e.call(t, "imbot.v2.Command.answer", map[string]any{"botId": id, "botToken": token, "commandId": helpID, "messageId": 900001,
		"dialogId": "27", "fields": map[string]any{"message": "Here is help", "keyboard": []any{map[string]any{"TEXT": "More", "COMMAND": "assist"}}}})
	if ans["result"] != true {
		t.Fatalf("Command.answer: %v", ans)
	}
	if m := e.p.Messages("27"); len(m) != 1 || m[0].Text != "Here is help" || m[0].Buttons()[0].Command != "assist" {
		t.Fatalf("messages: %+v", m)
	}

	e.call(t, "imbot.v2.Command.unregister", map[string]any{"botId": id, "botToken": token, "commandId": helpID})
	e.fails(t, "COMMAND_NOT_FOUND", "imbot.v2.Command.unregister", map[string]any{"botId": id, "botToken": token, "commandId": helpID})
	e.call(t, "imbot.v2.Bot.unregister", map[string]any{"botId": id, "botToken": token})
	if n := len(e.fake.Commands()); n != 0 {
		t.Fatalf("%d commands left after Bot.unregister", n)
	}
}

func TestMessages(t *testing.T) {
	e := setup(t)
	id := e.register(t, "support", token)
	send := func(dialog string, fields map[string]any) int64 {
		res := e.call(t, "imbot.v2.Chat.Message.send", map[string]any{"botId": id, "botToken": token, "dialogId": dialog, "fields": fields})
		if u, ok := res["uuidMap"].(map[string]any); !ok || len(u) != 0 {
			t.Fatalf("send answered %v", res)
		}
		return num(t, res["id"])
	}
	buttons := []any{map[string]any{"TEXT": "Yes", "COMMAND": "yes", "COMMAND_PARAMS": "1"}, map[string]any{"TYPE": "NEWLINE"}}
	asString, _ := json.Marshal(buttons)
	for i, kb := range []any{buttons, map[string]any{"BOT_ID": id, "BUTTONS": buttons}, string(asString)} {
		mid := send("27", map[string]any{"message": "Pick one", "keyboard": kb, "urlPreview": false})
		all := e.p.Messages("27")
		if m := all[len(all)-1]; m.ID != mid || m.Text != "Pick one" || len(m.Buttons()) != 2 || m.Buttons()[0].CommandParams != "1" {
			t.Fatalf("keyboard form %d: %+v %+v", i, m, m.Buttons())
		}
	}
	mid := e.p.Messages("27")[0].ID
	e.call(t, "imbot.v2.Chat.Message.update", map[string]any{"botId": id, "botToken": token, "messageId": mid,
		"fields": map[string]any{"message": "Done", "keyboard": "N"}})
	if m := e.p.Messages("27")[0]; m.Text != "Done" || m.Buttons() != nil {
		t.Fatalf("after update: %+v", m)
	}
	e.call(t, "imbot.v2.Chat.Message.update", map[string]any{"botId": id, "botToken": token, "messageId": e.p.Messages("27")[1].ID,
		"fields": map[string]any{"keyboard": []any{}}})
	if m := e.p.Messages("27")[1]; m.Text != "Pick one" || m.Buttons() != nil {
		t.Fatalf("after removing the keyboard with []: %+v", m)
	}
	// A message not the bot's: another bot's, v1's, or none.
	other := e.register(t, "other", "other-token")
	theirs := e.call(t, "imbot.v2.Chat.Message.send", map[string]any{"botId": other, "botToken": "other-token", "dialogId": "27",
		"fields": map[string]any{"message": "theirs"}})
	v1, err := e.c.Call(context.Background(), "imbot.message.add", map[string]any{"DIALOG_ID": "27", "MESSAGE": "v1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []any{theirs["id"], string(v1), 123} {
		e.fails(t, "ACCESS_DENIED", "imbot.v2.Chat.Message.update", map[string]any{"botId": id, "botToken": token, "messageId": m,
			"fields": map[string]any{"message": "x"}})
	}
	e.fails(t, "EMPTY_MESSAGE", "imbot.v2.Chat.Message.send", map[string]any{"botId": id, "botToken": token, "dialogId": "27", "fields": map[string]any{}})
	e.fails(t, "ACCESS_DENIED", "imbot.v2.Chat.Message.send", map[string]any{"botId": id, "botToken": token, "dialogId": "chat5",
		"fields": map[string]any{"message": "x"}})
	long := strings.Repeat("я", 20001)
	send("27", map[string]any{"message": long})
	if all := e.p.AllMessages(); all[len(all)-1].Text != strings.Repeat("я", 20000)+" (...)" {
		t.Fatal("a long message is not cut")
	}
}

func TestChats(t *testing.T) {
	e := setup(t)
	id := e.register(t, "support", token)
	res := e.call(t, "imbot.v2.Chat.add", map[string]any{"botId": id, "botToken": token, "fields": map[string]any{
		"title": "Ticket 7", "description": "supportbot:ticket:7", "userIds": []any{27, 31}, "message": "Welcome"}})
	chat := res["chat"].(map[string]any)
	cid := num(t, chat["id"])
	dialog := chat["dialogId"].(string)
	if dialog != "chat"+itoa(cid) || chat["name"] != "Ticket 7" || chat["type"] != "chat" || num(t, chat["owner"]) != id ||
		chat["entityType"] != "" || chat["entityId"] != "" || chat["description"] != "supportbot:ticket:7" {
		t.Fatalf("Chat.add chat: %v", chat)
	}
	if users := res["users"].([]any); len(users) != 3 || num(t, get(users[1], "id")) != 27 {
		t.Fatalf("Chat.add users: %v", users)
	}
	if c, ok := e.p.Chat(cid); !ok || c.Title != "Ticket 7" || c.Description != "supportbot:ticket:7" || !slices.Equal(c.Users, []int64{27, 31}) {
		t.Fatalf("portal chat: %+v", c)
	}
	if m := e.p.Messages(dialog); len(m) != 1 || m[0].Text != "Welcome" {
		t.Fatalf("first message: %+v", m)
	}
	// A chat the bot is not in: refused, as chat-message-send.md says, until it is added.
	other := e.p.AddChat(b24test.Chat{Title: "Elsewhere", Users: []int64{27}})
	sendTo := map[string]any{"botId": id, "botToken": token, "dialogId": "chat" + itoa(other), "fields": map[string]any{"message": "hi"}}
	e.fails(t, "ACCESS_DENIED", "imbot.v2.Chat.Message.send", sendTo)
	e.fake.AddBot(id, other)
	e.call(t, "imbot.v2.Chat.Message.send", sendTo)
	e.call(t, "imbot.v2.Chat.update", map[string]any{"botId": id, "botToken": token, "dialogId": dialog,
		"fields": map[string]any{"title": "Ticket 7 (closed)"}})
	e.call(t, "imbot.v2.Chat.User.add", map[string]any{"botId": id, "botToken": token, "dialogId": dialog, "userIds": []any{31, 40}})
	got := e.call(t, "imbot.v2.Chat.get", map[string]any{"botId": id, "botToken": token, "dialogId": dialog})
	if get(got, "chat", "name") != "Ticket 7 (closed)" || get(got, "chat", "description") != "supportbot:ticket:7" {
		t.Fatalf("Chat.get: %v", got)
	}
	if c, _ := e.p.Chat(cid); !slices.Equal(c.Users, []int64{27, 31, 40}) || len(e.p.Chats()) != 2 {
		t.Fatalf("after User.add: %+v", c)
	}
	// User.delete takes one out; one who is not in the chat is "removed" too
	// (chat-user-delete.md: idempotent).
	for range 2 {
		e.call(t, "imbot.v2.Chat.User.delete", map[string]any{"botId": id, "botToken": token, "dialogId": dialog, "userId": 31})
	}
	if c, _ := e.p.Chat(cid); !slices.Equal(c.Users, []int64{27, 40}) {
		t.Fatalf("after User.delete: %+v", c)
	}
}

// eventGet calls Event.get (offset < 0: none) and decodes its answer.
func (e *env) eventGet(t *testing.T, id, offset int64, limit int) bitrix24.Fetched {
	t.Helper()
	params := map[string]any{"botId": id, "botToken": token}
	if offset >= 0 {
		params["offset"] = offset
	}
	if limit > 0 {
		params["limit"] = limit
	}
	raw, err := e.c.Call(context.Background(), "imbot.v2.Event.get", params)
	if err != nil {
		t.Fatal(err)
	}
	page, err := bitrix24.DecodeFetched(raw)
	if err != nil {
		t.Fatal(err)
	}
	return page
}

func eventIDs(page bitrix24.Fetched) (out []int64) {
	for _, ev := range page.Events {
		out = append(out, ev.Head().ID)
	}
	return out
}

func TestEventGetOffsets(t *testing.T) {
	e := setup(t)
	id := e.register(t, "support", token)
	if page := e.eventGet(t, id, -1, 0); len(page.Events) != 0 || page.NextOffset != 1001 || page.HasMore {
		t.Fatalf("empty queue: %+v", page)
	}
	for i := range 5 {
		if got := e.fake.Message(27, "27", "m"+itoa(int64(i))); got != int64(1001+i) {
			t.Fatalf("event %d has ID %d", i, got)
		}
	}
	page := e.eventGet(t, id, -1, 2)
	if !slices.Equal(eventIDs(page), []int64{1001, 1002}) || page.NextOffset != 1003 || !page.HasMore {
		t.Fatalf("first page: %v next %d more %v", eventIDs(page), page.NextOffset, page.HasMore)
	}
	// Nothing is confirmed yet: the same again.
	if again := e.eventGet(t, id, -1, 2); !slices.Equal(eventIDs(again), []int64{1001, 1002}) || e.fake.Pending() != 5 {
		t.Fatalf("re-read: %v, pending %d", eventIDs(again), e.fake.Pending())
	}
	// Offset 1002 confirms 1001 only.
	page = e.eventGet(t, id, 1002, 2)
	if !slices.Equal(eventIDs(page), []int64{1002, 1003}) || page.NextOffset != 1004 || !page.HasMore || e.fake.Pending() != 4 {
		t.Fatalf("offset 1002: %v next %d more %v pending %d", eventIDs(page), page.NextOffset, page.HasMore, e.fake.Pending())
	}
	page = e.eventGet(t, id, page.NextOffset, 0)
	if !slices.Equal(eventIDs(page), []int64{1004, 1005}) || page.NextOffset != 1006 || page.HasMore || e.fake.Confirmed() != 1004 {
		t.Fatalf("last page: %v next %d more %v confirmed %d", eventIDs(page), page.NextOffset, page.HasMore, e.fake.Confirmed())
	}
	page = e.eventGet(t, id, page.NextOffset, 0)
	if len(page.Events) != 0 || page.NextOffset != 1006 || page.HasMore || e.fake.Pending() != 0 || e.fake.Confirmed() != 1006 {
		t.Fatalf("all confirmed: %+v pending %d", page, e.fake.Pending())
	}
	// limit: default 100, at most 1000.
	for range 1100 {
		e.fake.Queue(bitrix24.EventV2Delete, nil)
	}
	if page := e.eventGet(t, id, -1, 0); len(page.Events) != 100 || !page.HasMore || page.NextOffset != 1106 {
		t.Fatalf("default limit: %d events, next %d", len(page.Events), page.NextOffset)
	}
	if page := e.eventGet(t, id, -1, 5000); len(page.Events) != 1000 || !page.HasMore {
		t.Fatalf("limit 5000: %d events", len(page.Events))
	}
}

func TestEventsDecode(t *testing.T) {
	e := setup(t)
	id := e.register(t, "support", token)
	e.call(t, "imbot.v2.Command.register", map[string]any{"botId": id, "botToken": token,
		"fields": map[string]any{"command": "open", "title": map[string]any{"en": "Open"}}})
	e.p.AddChat(b24test.Chat{ID: 5, Title: "Printers"})
	e.fake.SetUser(27, "Anna", "Petrova")

	msg := e.fake.Message(27, "27", "Не работает печать")
	group := e.fake.Message(31, "chat5", "hello all")
	newChat := e.fake.Join(27, "chat9")
	botMsg := e.call(t, "imbot.v2.Chat.Message.send", map[string]any{"botId": id, "botToken": token, "dialogId": "chat9",
		"fields": map[string]any{"message": "Ticket?", "keyboard": []any{map[string]any{"TEXT": "Open", "COMMAND": "open", "COMMAND_PARAMS": "7"}}}})
	press := e.fake.Press(27, "chat9", num(t, botMsg["id"]), "open", "7")
	typed := e.fake.Command(27, "27", "/open", "8")
	edit := e.fake.Edit(27, "27", e.fake.MessageID(msg), "Печать не работает")
	del := e.fake.Delete(27, "27", e.fake.MessageID(msg))

	page := e.eventGet(t, id, -1, 0)
	if len(page.Events) != 7 {
		t.Fatalf("%d events", len(page.Events))
	}
	byID := map[int64]bitrix24.Event{}
	for _, ev := range page.Events {
		byID[ev.Head().ID] = ev
	}
	m, ok := byID[msg].(*bitrix24.MessageAdd)
	if !ok || m.BotID != id || m.Message.Text != "Не работает печать" || m.Message.Chat != "27" || m.Message.FromUserID != 27 ||
		m.Message.ChatType != "P" || m.User.ID != 27 || m.User.Name != "Anna Petrova" || m.Message.Language != "en" ||
		m.Message.ID != e.fake.MessageID(msg) || m.Message.ID < 900000 {
		t.Fatalf("private message: %#v", byID[msg])
	}
	g, ok := byID[group].(*bitrix24.MessageAdd)
	if !ok || g.Message.Chat != "chat5" || g.Message.ChatID != 5 || g.Message.ChatType != "C" || g.Message.ChatTitle != "Printers" ||
		g.User.Name != "User 31" {
		t.Fatalf("group message: %#v", byID[group])
	}
	if j, ok := byID[newChat].(*bitrix24.JoinChat); !ok || j.Chat != "chat9" || j.ChatID != 9 || j.UserID != 27 {
		t.Fatalf("join: %#v", byID[newChat])
	}
	if c, ok := e.p.Chat(9); !ok || c.Title != "Chat 9" {
		t.Fatalf("the portal does not have the event's chat: %+v", c)
	}
	p, ok := byID[press].(*bitrix24.CommandAdd)
	if !ok || p.Command.Name != "open" || p.Command.Params != "7" || p.Command.Context != bitrix24.ContextKeyboard ||
		p.Command.MessageID != num(t, botMsg["id"]) || p.User.ID != 27 || p.Message.Chat != "chat9" || p.Command.BotID != id {
		t.Fatalf("press: %#v", byID[press])
	}
	if c, ok := byID[typed].(*bitrix24.CommandAdd); !ok || c.Command.Context != bitrix24.ContextTextarea || c.Message.Text != "/open 8" ||
		c.Command.ID != e.fake.Commands()[0].ID {
		t.Fatalf("typed command: %#v", byID[typed])
	}
	if u, ok := byID[edit].(*bitrix24.MessageUpdate); !ok || u.Message.ID != m.Message.ID || u.Message.Text != "Печать не работает" {
		t.Fatalf("edit: %#v", byID[edit])
	}
	if d, ok := byID[del].(*bitrix24.MessageDelete); !ok || d.Message.ID != m.Message.ID || d.Message.Chat != "27" {
		t.Fatalf("delete: %#v", byID[del])
	}
}

// A webhook-mode body of an event decodes to the event Event.get gives for it.
func TestFormDecodesAsFetched(t *testing.T) {
	e := setup(t)
	id := e.register(t, "support", token)
	e.call(t, "imbot.v2.Command.register", map[string]any{"botId": id, "botToken": token,
		"fields": map[string]any{"command": "open", "title": map[string]any{"en": "Open"}}})
	for _, mk := range []func() (string, map[string]any){
		func() (string, map[string]any) { return e.fake.MessageEvent(27, "chat5", "hello") },
		func() (string, map[string]any) { return e.fake.PressEvent(27, "27", 5001, "open", "1") },
		func() (string, map[string]any) { return e.fake.JoinEvent(27, "27") },
	} {
		typ, data := mk()
		eventID := e.fake.Queue(typ, data)
		body := e.fake.Form(typ, data)
		fromForm, err := bitrix24.Decode(body)
		if err != nil {
			t.Fatalf("%s: %v\n%s", typ, err, body)
		}
		page := e.eventGet(t, id, eventID, 0)
		fetched := page.Events[0]
		if fetched.Head().ID != eventID {
			t.Fatalf("fetched %d, want %d", fetched.Head().ID, eventID)
		}
		if a, b := strip(fromForm), strip(fetched); !reflect.DeepEqual(a, b) {
			t.Fatalf("%s:\nform    %#v\nfetched %#v", typ, a, b)
		}
		if fromForm.Head().Auth.ApplicationToken != e.p.ApplicationToken() || fromForm.Head().Auth.Domain != e.p.Domain() {
			t.Fatalf("%s: auth %+v", typ, fromForm.Head().Auth)
		}
		f, _ := bitrix24.ParseForm(body)
		if f.String("data", "bot", "auth", "application_token") == "" || f.Group("data", "bot", "isHidden") != nil || f.String("data", "bot", "isHidden") != "" {
			t.Fatalf("%s: data[bot] %v", typ, f.Group("data", "bot"))
		}
		if typ != bitrix24.EventV2JoinChat {
			msg := f.Group("data", "message")
			if _, ok := msg["forward"]; !ok || msg.String("isSystem") != "0" || msg["params"] != nil {
				t.Fatalf("%s: data[message] %v", typ, msg)
			}
		}
	}
}

// strip is an event without its envelope, which differs between the modes.
func strip(ev bitrix24.Event) bitrix24.Event {
	switch e := ev.(type) {
	case *bitrix24.MessageAdd:
		c := *e
		c.Envelope = bitrix24.Envelope{}
		return &c
	case *bitrix24.CommandAdd:
		c := *e
		c.Envelope = bitrix24.Envelope{}
		return &c
	case *bitrix24.JoinChat:
		c := *e
		c.Envelope = bitrix24.Envelope{}
		return &c
	}
	return ev
}

func TestUnregisterQueuesDelete(t *testing.T) {
	e := setup(t)
	id := e.register(t, "support", token)
	e.fake.Message(27, "27", "hi")
	e.call(t, "imbot.v2.Bot.unregister", map[string]any{"botId": id, "botToken": token})
	if len(e.fake.Bots()) != 0 {
		t.Fatal("the bot is still listed")
	}
	e.fails(t, "BOT_NOT_FOUND", "imbot.v2.Chat.Message.send", map[string]any{"botId": id, "botToken": token, "dialogId": "27",
		"fields": map[string]any{"message": "x"}})
	page := e.eventGet(t, id, -1, 0)
	if len(page.Events) != 2 {
		t.Fatalf("%d events", len(page.Events))
	}
	if d, ok := page.Events[1].(*bitrix24.BotDelete); !ok || d.BotID != id || d.BotCode != "support" {
		t.Fatalf("last event: %#v", page.Events[1])
	}
	e.fails(t, "BOT_NOT_FOUND", "imbot.v2.Event.get", map[string]any{"botId": id, "botToken": token, "offset": page.NextOffset})
	if e.fake.Pending() != 0 {
		t.Fatal("events left")
	}
	// The code is free again.
	if again := e.register(t, "support", "another"); again == id {
		t.Fatal("a new registration got the old bot")
	}
}

// An application's bot needs no botToken: its OAuth token says who calls.
func TestApplicationBot(t *testing.T) {
	o := b24test.NewOAuth(t, "local.app", "secret")
	p := b24test.NewAppPortal(t, o)
	fake := botv2.Attach(p)
	app := bitrix24.NewClient(p.ClientEndpoint(), bitrix24.WithTokens(bitrix24.StaticToken(p.UserToken(1))))
	raw, err := app.Call(context.Background(), "imbot.v2.Bot.register", map[string]any{"fields": map[string]any{"code": "support",
		"properties": map[string]any{"name": "Support"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := num(t, get(decode(t, raw), "bot", "id"))
	if b := fake.Bots(); len(b) != 1 || !b[0].App || b[0].Token != "" {
		t.Fatalf("Bots() = %+v", b)
	}
	fake.Message(27, "27", "hi")
	raw, err = app.Call(context.Background(), "imbot.v2.Event.get", map[string]any{"botId": id})
	if err != nil {
		t.Fatal(err)
	}
	if page, err := bitrix24.DecodeFetched(raw); err != nil || len(page.Events) != 1 {
		t.Fatalf("Event.get: %v %+v", err, page)
	}
	// A webhook with some botToken does not own it.
	hook := bitrix24.NewClient(p.WebhookURL())
	_, err = hook.Call(context.Background(), "imbot.v2.Event.get", map[string]any{"botId": id, "botToken": "x"})
	if !errors.Is(err, &bitrix24.Error{Code: "BOT_OWNERSHIP_ERROR"}) {
		t.Fatalf("webhook call: %v", err)
	}
	if c := p.CallsTo("imbot.v2.Event.get"); len(c) != 2 || c[0].Auth == "webhook" || c[1].Auth != "webhook" {
		t.Fatalf("calls: %+v", c)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The portal's limits, blocks and hung chats apply to imbot.v2 calls too.
func TestPortalMachineryApplies(t *testing.T) {
	e := setup(t)
	id := e.register(t, "support", token)
	e.p.BlockMethod("imbot.v2.Event.get", time.Now().Add(time.Hour))
	e.fails(t, "OPERATION_TIME_LIMIT", "imbot.v2.Event.get", map[string]any{"botId": id, "botToken": token})

	e.p.HangChat("27")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := e.c.Call(ctx, "imbot.v2.Chat.Message.send", map[string]any{"botId": id, "botToken": token, "dialogId": "27",
		"fields": map[string]any{"message": "x"}})
	if err == nil || len(e.p.AllMessages()) != 0 {
		t.Fatalf("a call for a hung chat answered: %v", err)
	}

	e.p.SetRateLimit(1, 1)
	e.call(t, "imbot.v2.Bot.list", map[string]any{"botToken": token})
	e.fails(t, "QUERY_LIMIT_EXCEEDED", "imbot.v2.Bot.list", map[string]any{"botToken": token})
}
