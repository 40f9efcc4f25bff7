package botv2

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
)

// event is a queued event, as Event.get answers it.
type event struct {
	ID   int64           `json:"eventId"`
	Type string          `json:"type"`
	Date string          `json:"date"`
	Data json.RawMessage `json:"data"`
}

// dateLayout is how Bitrix24 writes dates: ISO 8601 with the offset.
const dateLayout = "2006-01-02T15:04:05-07:00"

// Event.get: botId, offset, limit (1–1000, default 100; clamped) → {events,
// nextOffset, hasMore}. Offset N confirms every event with an ID below N, which
// leaves the queue; the answer is the unconfirmed events from the lowest on.
func (f *Fake) eventGet(r *req) (any, *bitrix24.Error) {
	b := r.bot
	if offset := intParam(r.Params, "offset"); offset > 0 {
		b.queue = slices.DeleteFunc(b.queue, func(e event) bool { return e.ID < offset })
		f.confirmed = max(f.confirmed, offset)
	}
	if b.deleted && len(b.queue) == 0 {
		return nil, errBotNotFound // it has confirmed ONIMBOTV2DELETE
	}
	limit := intParam(r.Params, "limit")
	if limit <= 0 {
		limit = 100
	}
	page := append([]event{}, b.queue[:min(int(min(limit, 1000)), len(b.queue))]...)
	// With none to return, nextOffset is the next ID to be given out (the docs are
	// silent): it confirms nothing still queued, whatever offset came.
	next := f.next.event
	if len(page) > 0 {
		next = page[len(page)-1].ID + 1
	}
	answer := map[string]any{"events": page, "nextOffset": next, "hasMore": len(b.queue) > len(page)}
	switch f.offsets {
	case OffsetsEmptyMissing, OffsetsEmptyNull, OffsetsEmptyZero:
		if len(page) == 0 {
			answer["nextOffset"] = map[OffsetMode]any{OffsetsEmptyNull: nil, OffsetsEmptyZero: 0}[f.offsets]
			if f.offsets == OffsetsEmptyMissing {
				delete(answer, "nextOffset")
			}
		}
	case OffsetsBeyond:
		answer["nextOffset"] = next + 153
	case OffsetsStuck:
		if len(page) > 0 {
			answer["nextOffset"] = intParam(r.Params, "offset")
		}
	}
	return answer, nil
}

// OffsetMode is how Event.get writes nextOffset.
type OffsetMode int

const (
	// OffsetsNext: the first ID after the page; with an empty page, the next ID to come.
	OffsetsNext OffsetMode = iota
	// OffsetsEmptyMissing, OffsetsEmptyNull, OffsetsEmptyZero: an empty page has no
	// nextOffset, null, or 0.
	OffsetsEmptyMissing
	OffsetsEmptyNull
	OffsetsEmptyZero
	// OffsetsBeyond: a faulty portal's nextOffset, 153 past the page's last event + 1.
	OffsetsBeyond
	// OffsetsStuck: a faulty portal's nextOffset, the offset asked for, after a page
	// of events.
	OffsetsStuck
)

// Age dates the events queued from now on d in the past: events that have waited
// that long, as during an outage of the bot.
func (f *Fake) Age(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.age = d
}

// SetOffsets sets how Event.get writes nextOffset from now on.
func (f *Fake) SetOffsets(m OffsetMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offsets = m
}

// Queue queues an event for the portal's only imbot.v2 bot, which must take its
// events by fetch, and returns the event's ID. Data without "bot" gets the bot's full
// object, as fetch mode sends it. The builders below make realistic data.
func (f *Fake) Queue(typ string, data map[string]any) (eventID int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queueLocked(f.only(), typ, data)
}

// QueueFor is Queue for the bot botID.
func (f *Fake) QueueFor(botID int64, typ string, data map[string]any) (eventID int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.bots[botID]; b != nil && !b.deleted {
		return f.queueLocked(b, typ, data)
	}
	panic(fmt.Sprintf("botv2: QueueFor: no bot %d", botID))
}

func (f *Fake) queueLocked(b *bot, typ string, data map[string]any) int64 {
	if b.EventMode != "fetch" {
		panic(fmt.Sprintf("botv2: bot %d takes its events by webhook: post it a Form", b.ID))
	}
	d := map[string]any{"bot": f.botJSON(b, true)}
	maps.Copy(d, data)
	raw, err := json.Marshal(d)
	if err != nil {
		panic(fmt.Sprintf("botv2: Queue: %v", err))
	}
	var ids struct {
		Message   struct{ ID int64 }
		MessageID int64
	}
	_ = json.Unmarshal(raw, &ids)
	e := event{ID: f.next.event, Type: typ, Date: time.Now().Add(-f.age).Format(dateLayout), Data: raw}
	f.next.event++
	b.queue = append(b.queue, e)
	f.msgOf[e.ID] = cmp.Or(ids.Message.ID, ids.MessageID)
	if f.queued != nil {
		f.queued()
	}
	return e.ID
}

// OnQueue has fn called (under the fake's lock: it must not block) each time an
// event is queued for a bot that fetches: a stand-in running in the bot's own process
// can tell the poller at once, where a real portal's events wait for the next poll.
func (f *Fake) OnQueue(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queued = fn
}

// only is the one imbot.v2 bot Queue and Form need.
func (f *Fake) only() *bot {
	if live := f.live(); len(live) == 1 {
		return live[0]
	}
	panic("botv2: Queue and Form need exactly one bot registered through imbot.v2 (else QueueFor)")
}

// Pending is how many queued events no Event.get has confirmed, of all bots.
func (f *Fake) Pending() (n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.bots {
		n += len(b.queue)
	}
	return n
}

// Confirmed is the highest offset Event.get was given, 0 before any.
func (f *Fake) Confirmed() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.confirmed
}

// MessageID is the ID of a queued event's message (message.id or messageId), or 0.
func (f *Fake) MessageID(eventID int64) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msgOf[eventID]
}

// SetUser names a user in the events the builders make; one not named is "User <id>".
func (f *Fake) SetUser(id int64, firstName, lastName string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[id] = [2]string{firstName, lastName}
}

// The builders make an event's type and data as the docs' examples have them (chat,
// user, language "en"; Queue or Form adds the bot), for Queue or Form:
// fake.Queue(fake.MessageEvent(27, "27", "hi")), which fake.Message(27, "27", "hi")
// does. The dialog is a user's ID for the private chat with the bot, or "chatN" for a
// group chat, which the portal then has (titled "Chat N" if new) so the bot may post
// there. A new message gets an ID of its own.

// MessageEvent is ONIMBOTV2MESSAGEADD: userID writes text in dialogID.
func (f *Fake) MessageEvent(userID int64, dialogID, text string) (typ string, data map[string]any) {
	return f.build(bitrix24.EventV2MessageAdd, userID, dialogID, 0, text, nil)
}

// EditEvent is ONIMBOTV2MESSAGEUPDATE: userID changes their message messageID to text.
func (f *Fake) EditEvent(userID int64, dialogID string, messageID int64, text string) (typ string, data map[string]any) {
	return f.build(bitrix24.EventV2MessageUpdate, userID, dialogID, messageID, text, nil)
}

// DeleteEvent is ONIMBOTV2MESSAGEDELETE: userID's message messageID is deleted.
func (f *Fake) DeleteEvent(userID int64, dialogID string, messageID int64) (typ string, data map[string]any) {
	return f.build(bitrix24.EventV2MessageDelete, userID, dialogID, -1, "", map[string]any{"messageId": messageID})
}

// JoinEvent is ONIMBOTV2JOINCHAT: userID adds the bot to dialogID.
func (f *Fake) JoinEvent(userID int64, dialogID string) (typ string, data map[string]any) {
	return f.build(bitrix24.EventV2JoinChat, userID, dialogID, -1, "", map[string]any{"dialogId": dialogID})
}

// CommandEvent is ONIMBOTV2COMMANDADD from the text field: userID writes "/command
// params", a new message. The command ("help" or "/help") must be registered, or it
// panics: Bitrix24 would send no such event.
func (f *Fake) CommandEvent(userID int64, dialogID, command, params string) (typ string, data map[string]any) {
	return f.build(bitrix24.EventV2CommandAdd, userID, dialogID, 0, "", f.command(command, params, "textarea"))
}

// PressEvent is ONIMBOTV2COMMANDADD from a keyboard: userID presses a button of the
// bot's message messageID that sends command with params.
func (f *Fake) PressEvent(userID int64, dialogID string, messageID int64, command, params string) (typ string, data map[string]any) {
	return f.build(bitrix24.EventV2CommandAdd, userID, dialogID, messageID, "", f.command(command, params, "keyboard"))
}

// Message queues MessageEvent's event and returns its ID (MessageID gives the message's).
func (f *Fake) Message(userID int64, dialogID, text string) int64 {
	return f.Queue(f.MessageEvent(userID, dialogID, text))
}

// Edit queues EditEvent's event.
func (f *Fake) Edit(userID int64, dialogID string, messageID int64, text string) int64 {
	return f.Queue(f.EditEvent(userID, dialogID, messageID, text))
}

// Delete queues DeleteEvent's event.
func (f *Fake) Delete(userID int64, dialogID string, messageID int64) int64 {
	return f.Queue(f.DeleteEvent(userID, dialogID, messageID))
}

// Join queues JoinEvent's event.
func (f *Fake) Join(userID int64, dialogID string) int64 {
	id := f.Queue(f.JoinEvent(userID, dialogID))
	if chat, ok := chatID(dialogID); ok { // the bot was added to the chat: it may post there
		f.mu.Lock()
		b := f.only()
		f.mu.Unlock()
		f.AddBot(b.ID, chat)
	}
	return id
}

// Command queues CommandEvent's event.
func (f *Fake) Command(userID int64, dialogID, command, params string) int64 {
	return f.Queue(f.CommandEvent(userID, dialogID, command, params))
}

// SlashCommands queues what one message holding several slash commands yields: an event
// for each (events.md), all with the message's ID and its whole text. Each command is
// {name, params}; it returns the events' IDs.
func (f *Fake) SlashCommands(userID int64, dialogID string, cmds ...[2]string) []int64 {
	var lines []string
	for _, c := range cmds {
		lines = append(lines, strings.TrimSpace("/"+strings.TrimPrefix(c[0], "/")+" "+c[1]))
	}
	f.mu.Lock()
	msg := f.next.msg
	f.next.msg++
	f.mu.Unlock()
	var ids []int64
	for _, c := range cmds {
		typ, data := f.build(bitrix24.EventV2CommandAdd, userID, dialogID, msg, "", f.command(c[0], c[1], "textarea"))
		data["message"].(map[string]any)["text"] = strings.Join(lines, "\n")
		ids = append(ids, f.Queue(typ, data))
	}
	return ids
}

// Press queues PressEvent's event.
func (f *Fake) Press(userID int64, dialogID string, messageID int64, command, params string) int64 {
	return f.Queue(f.PressEvent(userID, dialogID, messageID, command, params))
}

// command is the data's command object of a registered command.
func (f *Fake) command(name, params, context string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = strings.TrimPrefix(name, "/")
	for _, id := range slices.Sorted(maps.Keys(f.commands)) {
		if f.commands[id].Name == name {
			return map[string]any{"command": map[string]any{"id": id, "command": "/" + name, "params": params, "context": context}}
		}
	}
	panic(fmt.Sprintf("botv2: no command %q is registered", name))
}

// build makes an event's data: chat, user, language, the message (messageID, a new
// one if 0, none if -1; a command's text is the command) and more.
func (f *Fake) build(typ string, userID int64, dialogID string, messageID int64, text string, more map[string]any) (string, map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := map[string]any{"chat": f.eventChat(userID, dialogID), "user": f.human(userID), "language": "en"}
	if cmd, ok := more["command"].(map[string]any); ok {
		text = strings.TrimSpace(cmd["command"].(string) + " " + cmd["params"].(string))
	}
	if messageID == 0 {
		messageID, f.next.msg = f.next.msg, f.next.msg+1
	}
	if messageID > 0 {
		d["message"] = map[string]any{"id": messageID, "chatId": d["chat"].(map[string]any)["id"], "authorId": userID,
			"date": time.Now().Format(dateLayout), "text": text, "isSystem": false, "uuid": "", "forward": nil,
			"params": map[string]any{}, "viewedByOthers": false}
	}
	maps.Copy(d, more)
	return typ, d
}

// eventChat is the chat object of events, which has fewer fields than Chat.get's.
func (f *Fake) eventChat(userID int64, dialogID string) map[string]any {
	chat := map[string]any{"dialogId": dialogID, "type": "chat", "entityType": "", "avatar": "", "color": "#ab7761"}
	if id, ok := chatID(dialogID); ok {
		c, known := f.p.Chat(id)
		if !known {
			c = b24test.Chat{ID: id, Title: "Chat " + itoa(id), Users: []int64{userID}}
			f.p.AddChat(c)
			f.owners[id] = userID
		}
		chat["id"], chat["name"], chat["entityType"], chat["owner"] = id, c.Title, c.EntityType, f.owners[id]
		return chat
	}
	if n, err := strconv.ParseInt(dialogID, 10, 64); err != nil || n <= 0 {
		panic(fmt.Sprintf("botv2: dialog %q is neither a user's ID nor chatN", dialogID))
	}
	if f.private[dialogID] == 0 {
		f.private[dialogID], f.next.chat = f.next.chat, f.next.chat+1
	}
	chat["id"], chat["type"], chat["name"], chat["owner"] = f.private[dialogID], "private", "", 0
	return chat
}

// userTemplate is the user of the docs' examples (testdata/v2/fetch/event-get.json):
// every user of the fake has its fields.
var userTemplate = sync.OnceValue(func() map[string]any {
	var page struct {
		Result struct {
			Events []struct{ Data struct{ User map[string]any } }
		}
	}
	if err := json.Unmarshal(b24test.Fixture("v2/fetch/event-get.json"), &page); err != nil || page.Result.Events[0].Data.User == nil {
		panic("botv2: v2/fetch/event-get.json has no user")
	}
	return page.Result.Events[0].Data.User
})

// user is a User object (entities.md#user).
func user(id int64, first, last string) map[string]any {
	u := maps.Clone(userTemplate())
	u["id"], u["name"], u["firstName"], u["lastName"] = id, strings.TrimSpace(first+" "+last), first, last
	return u
}

// human is a user, named as SetUser says.
func (f *Fake) human(id int64) map[string]any {
	name, ok := f.users[id]
	if !ok {
		name = [2]string{"User", itoa(id)}
	}
	return user(id, name[0], name[1])
}

// Form is the body Bitrix24 POSTs to the webhookUrl of the portal's only imbot.v2 bot
// in webhook mode, for b24test.Post: the bracket form of http_build_query (every
// scalar a string, true "1", false "0", null "", empty lists and objects left out);
// data[bot] is {id, code, auth} with a token acting as the bot, and the top-level
// auth has the portal's domain and application_token.
func (f *Fake) Form(typ string, data map[string]any) []byte {
	f.mu.Lock()
	b := f.only().Bot
	f.mu.Unlock()
	p, now := f.p, time.Now()
	auth := map[string]any{"access_token": p.UserToken(b.ID), "expires": now.Add(time.Hour).Unix(), "expires_in": 3600,
		"scope": "imbot", "domain": p.Domain(), "server_endpoint": "https://oauth.bitrix.info/rest/", "status": "F",
		"client_endpoint": p.ClientEndpoint(), "member_id": p.MemberID(), "user_id": b.ID, "application_token": p.ApplicationToken()}
	d := noNulls(data).(map[string]any)
	d["bot"] = map[string]any{"id": b.ID, "code": b.Code, "auth": auth}
	return []byte(bitrix24.EncodeQuery(map[string]any{"event": typ, "data": d, "ts": now.Unix(),
		"auth": map[string]any{"domain": p.Domain(), "application_token": p.ApplicationToken()}}))
}

// noNulls is v with every null made "", as http_build_query sends it (EncodeQuery
// leaves nulls out).
func noNulls(v any) any {
	switch t := v.(type) {
	case nil:
		return ""
	case map[string]any:
		out := map[string]any{}
		for k, e := range t {
			out[k] = noNulls(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = noNulls(e)
		}
		return out
	}
	return v
}
