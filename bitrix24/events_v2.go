package bitrix24

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// imbot.v2 events: the same typed events as v1's, from two wire formats — the
// Event.get answer of fetch mode (JSON, typed values) and the bracket-form POST of
// webhook mode (camelCase keys, every scalar a string). Both are decoded from one tree
// of map[string]any (or Form), so the two cannot drift apart.

// imbot.v2 event types.
const (
	EventV2MessageAdd    = "ONIMBOTV2MESSAGEADD"
	EventV2MessageUpdate = "ONIMBOTV2MESSAGEUPDATE"
	EventV2MessageDelete = "ONIMBOTV2MESSAGEDELETE"
	EventV2JoinChat      = "ONIMBOTV2JOINCHAT"
	EventV2CommandAdd    = "ONIMBOTV2COMMANDADD"
	EventV2Delete        = "ONIMBOTV2DELETE"
)

// IsV2 reports an imbot.v2 event type.
func IsV2(eventType string) bool { return strings.HasPrefix(strings.ToUpper(eventType), "ONIMBOTV2") }

// Fetched is one Event.get answer: the events from the offset asked for, the offset
// that confirms them all, and whether more are waiting.
type Fetched struct {
	Events     []Event
	NextOffset int64
	HasMore    bool
}

// maxFetchBody caps an Event.get answer: at most 1,000 events of a few KiB each.
const maxFetchBody = 64 << 20

// DecodeFetched reads an Event.get result. An event that cannot be decoded becomes
// Unknown rather than failing the page: it is confirmed with the rest and ignored,
// so one bad event cannot hold up the queue for ever.
func DecodeFetched(raw json.RawMessage) (Fetched, error) {
	if len(raw) > maxFetchBody {
		return Fetched{}, fmt.Errorf("%w: Event.get answer of %d bytes", ErrMalformed, len(raw))
	}
	var page struct {
		Events     []json.RawMessage `json:"events"`
		NextOffset json.Number       `json:"nextOffset"`
		HasMore    bool              `json:"hasMore"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		// Not the decoder's words: they may quote the answer, and a portal that echoes
		// the request would put the webhook's secret and the bot's token in the log.
		return Fetched{}, fmt.Errorf("%w: Event.get answer is not {events, nextOffset, hasMore} (%d bytes)", ErrMalformed, len(raw))
	}
	// An empty queue may answer no nextOffset, null or 0 (the docs show none): the
	// poller reads that as "nothing new", and checks any offset against the events.
	var next int64
	if page.NextOffset != "" {
		n, err := page.NextOffset.Int64()
		if err != nil || n < 0 {
			return Fetched{}, fmt.Errorf("%w: Event.get answer with a nextOffset that is not an event ID", ErrMalformed)
		}
		next = n
	}
	out := Fetched{NextOffset: next, HasMore: page.HasMore, Events: make([]Event, 0, len(page.Events))}
	for _, e := range page.Events {
		out.Events = append(out.Events, decodeFetchedEvent(e))
	}
	return out, nil
}

func decodeFetchedEvent(raw json.RawMessage) Event {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var e map[string]any
	if dec.Decode(&e) != nil {
		return &Unknown{}
	}
	d := decoder{}
	env := Envelope{Type: strings.ToUpper(text(e["type"])), ID: d.num(e["eventId"], "eventId")}
	if t, err := time.Parse(time.RFC3339, text(e["date"])); err == nil {
		env.Time = t.UTC()
	}
	data, _ := asTree(e["data"])
	storableTree(data)
	ev, err := decodeV2(env, data)
	if err != nil {
		return &Unknown{Envelope: env}
	}
	return ev
}

// decodeV2Form turns a webhook-mode v2 POST into a typed event. The top-level auth
// block is the proof, as in v1; member_id, which it lacks, comes from the bot's.
func decodeV2Form(f Form) (Event, error) {
	d := decoder{}
	env := Envelope{
		Type:      strings.ToUpper(strings.TrimSpace(f.String("event"))),
		HandlerID: d.int(f, "event_handler_id"),
		Auth:      d.auth(f.Group("auth")),
	}
	if ts := d.int(f, "ts"); ts > 0 {
		env.Time = time.Unix(ts, 0).UTC()
	}
	if env.Auth.MemberID == "" {
		env.Auth.MemberID = f.String("data", "bot", "auth", "member_id")
	}
	if d.err != nil {
		return nil, d.err
	}
	data := f.Group("data")
	return decodeV2(env, map[string]any(data))
}

// decodeV2 builds the typed event from a v2 event's data.
func decodeV2(env Envelope, data map[string]any) (Event, error) {
	d := decoder{}
	bot, _ := asTree(data["bot"])
	botID := d.num(bot["id"], "bot.id")
	var ev Event
	switch env.Type {
	case EventV2MessageAdd, EventV2MessageUpdate, EventV2MessageDelete:
		msg, user := d.v2Message(data), d.v2User(data)
		d.need(msg.ID > 0, "message.id")
		d.need(msg.Chat != "", "chat.dialogId")
		switch env.Type {
		case EventV2MessageAdd:
			d.need(msg.FromUserID > 0, "message.authorId")
			ev = &MessageAdd{Envelope: env, BotID: botID, Message: msg, User: user}
		case EventV2MessageUpdate:
			ev = &MessageUpdate{Envelope: env, BotID: botID, Message: msg, User: user}
		default:
			ev = &MessageDelete{Envelope: env, BotID: botID, Message: msg, User: user}
		}
	case EventV2CommandAdd:
		cmd, _ := asTree(data["command"])
		msg, user := d.v2Message(data), d.v2User(data)
		c := Command{
			ID:        d.num(cmd["id"], "command.id"),
			BotID:     botID,
			BotCode:   text(bot["code"]),
			Name:      strings.TrimPrefix(strings.TrimSpace(text(cmd["command"])), "/"),
			Params:    text(cmd["params"]),
			Context:   ContextTextarea,
			MessageID: msg.ID,
		}
		if strings.EqualFold(text(cmd["context"]), "keyboard") {
			c.Context = ContextKeyboard
		}
		if user.ID == 0 {
			user.ID = msg.FromUserID
		}
		if msg.FromUserID == 0 {
			msg.FromUserID = user.ID
		}
		d.need(c.Name != "", "command.command")
		d.need(c.MessageID > 0, "message.id")
		d.need(user.ID > 0, "user.id")
		d.need(msg.Chat != "", "chat.dialogId")
		ev = &CommandAdd{Envelope: env, Command: c, Message: msg, User: user}
	case EventV2JoinChat:
		chat, _ := asTree(data["chat"])
		user := d.v2User(data)
		e := &JoinChat{Envelope: env, BotID: botID, Chat: text(data["dialogId"]), ChatID: d.num(chat["id"], "chat.id"),
			ChatType: chatType(text(chat["type"])), UserID: user.ID, Language: text(data["language"]), User: user}
		if e.Chat == "" {
			e.Chat = text(chat["dialogId"])
		}
		d.need(e.Chat != "", "dialogId")
		ev = e
	case EventV2Delete:
		d.need(botID > 0, "bot.id")
		ev = &BotDelete{Envelope: env, BotID: botID, BotCode: text(bot["code"])}
	default:
		ev = &Unknown{Envelope: env}
	}
	if d.err != nil {
		return nil, fmt.Errorf("%s: %w", env.Type, d.err)
	}
	return ev, nil
}

func (d *decoder) v2Message(data map[string]any) Message {
	msg, _ := asTree(data["message"])
	chat, _ := asTree(data["chat"])
	m := Message{
		ID:             d.num(msg["id"], "message.id"),
		Chat:           strings.TrimSpace(text(chat["dialogId"])),
		ChatID:         d.num(chat["id"], "chat.id"),
		ChatType:       chatType(text(chat["type"])),
		FromUserID:     d.num(msg["authorId"], "message.authorId"),
		Text:           text(msg["text"]),
		ChatTitle:      text(chat["name"]),
		ChatEntityType: text(chat["entityType"]),
		ChatEntityID:   text(chat["entityId"]),
		Language:       text(data["language"]),
		System:         flag(msg["isSystem"]),
	}
	if m.ID == 0 {
		m.ID = d.num(data["messageId"], "messageId") // MESSAGEDELETE names only the ID
	}
	if m.ChatID == 0 {
		m.ChatID = d.num(msg["chatId"], "message.chatId")
	}
	if m.FromUserID == 0 {
		user, _ := asTree(data["user"])
		m.FromUserID = d.num(user["id"], "user.id")
	}
	return m
}

func (d *decoder) v2User(data map[string]any) User {
	u, _ := asTree(data["user"])
	return User{
		ID:         d.num(u["id"], "user.id"),
		Name:       text(u["name"]),
		FirstName:  text(u["firstName"]),
		LastName:   text(u["lastName"]),
		IsBot:      flag(u["bot"]),
		IsExtranet: flag(u["extranet"]),
	}
}

// chatType maps v2's chat types to v1's letters, which the rules use: "private" is
// P, a group chat C, an open one O, an open line L.
func chatType(t string) string {
	switch strings.ToLower(t) {
	case "private":
		return "P"
	case "open":
		return "O"
	case "lines", "openline", "open_line":
		return "L"
	case "":
		return ""
	}
	return "C"
}

// asTree is a JSON object or a form group as a map.
func asTree(v any) (map[string]any, bool) {
	switch t := v.(type) {
	case map[string]any:
		return t, true
	case Form:
		return map[string]any(t), true
	}
	return nil, false
}

// text is a scalar as text: a string, a number's digits, a boolean as "1"/"0" (as
// webhook mode sends them), "" for null, absent or a group.
func text(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		if t {
			return "1"
		}
		return "0"
	}
	return ""
}

// flag reads a boolean sent as JSON true/false or as the form's "1"/"0".
func flag(v any) bool {
	s := strings.ToLower(text(v))
	return s == "1" || s == "true" || s == "y"
}

// num reads an ID or a count; missing or empty is 0, anything else not an integer is
// an error.
func (d *decoder) num(v any, field string) int64 {
	s := strings.TrimSpace(text(v))
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.fail(fmt.Errorf("%w: %s is not a number", ErrMalformed, field))
		return 0
	}
	return n
}

// ErrAuthorUnprovable refuses imbot.v2's webhook mode to an application (app mode):
// there every user who opens the application's page reads the application token
// (widgets/_includes/widget_data.md), so a posted event must prove its author with
// the user token Bitrix24 issued for them, and a v2 webhook event carries none — its
// top-level auth holds only the domain and the application token, and the one user
// token (data[bot][auth]) is the bot's, not the author's. Fetch mode, or API v1,
// prove what they say.
var ErrAuthorUnprovable = errors.New("bitrix.events=webhook with bitrix.api=v2 cannot be used in app mode: " +
	"imbot.v2's posted events carry no token of their author, and the application token alone is readable by every user " +
	"who opens the application's page; use bitrix.events=fetch (or bitrix.api=v1)")

// CheckAppEventMode says whether an application (app mode) may receive its bot's
// events through api ("v1", "v2") and events ("fetch", "webhook").
func CheckAppEventMode(api, events string) error {
	if api == "v2" && events == "webhook" {
		return ErrAuthorUnprovable
	}
	return nil
}
