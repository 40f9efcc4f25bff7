package bitrix24

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Event types supportbot handles. Others decode to Unknown.
const (
	EventMessageAdd    = "ONIMBOTMESSAGEADD"
	EventMessageUpdate = "ONIMBOTMESSAGEUPDATE"
	EventMessageDelete = "ONIMBOTMESSAGEDELETE"
	EventCommandAdd    = "ONIMCOMMANDADD"
	EventJoinChat      = "ONIMBOTJOINCHAT"
	EventBotDelete     = "ONIMBOTDELETE"
	EventAppInstall    = "ONAPPINSTALL"
	EventAppUninstall  = "ONAPPUNINSTALL"
)

// Command contexts: typed in the text area, or sent by a keyboard button.
const (
	ContextTextarea = "TEXTAREA"
	ContextKeyboard = "KEYBOARD"
)

// ErrNotGenuine: an event's application token does not match the one its portal was
// given, or the portal is unknown. Events carry no signature; the token is the proof.
var ErrNotGenuine = errors.New("not a genuine event from the portal")

// Event is one decoded Bitrix24 event.
type Event interface {
	// Head is what every event carries: its type, time and the top-level auth block.
	Head() *Envelope
	// DedupKey identifies the event for de-duplication. v1 events carry no event ID,
	// so the key is built from what makes the event distinct.
	DedupKey() string
}

// Envelope is the part common to every event.
type Envelope struct {
	Type      string
	ID        int64 // imbot.v2's eventId, in fetch mode; v1 events have none
	HandlerID int64
	Time      time.Time
	Auth      Auth
}

// Head returns the envelope.
func (e *Envelope) Head() *Envelope { return e }

// Auth is the top-level auth[…] block. The application token is the event's only
// proof of origin; tokens must never reach a log (see LogValue).
type Auth struct {
	ApplicationToken string
	AccessToken      string
	RefreshToken     string
	ExpiresIn        int64
	Expires          int64
	Scope            string
	Domain           string
	ServerEndpoint   string
	ClientEndpoint   string
	MemberID         string
	UserID           int64
	Status           string
}

// LogValue keeps the secrets out of structured logs.
func (a Auth) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("domain", a.Domain),
		slog.String("member_id", a.MemberID),
		slog.Int64("user_id", a.UserID),
	)
}

// User is data[USER]: the author of the message or the one who pressed a button.
type User struct {
	ID         int64
	Name       string
	FirstName  string
	LastName   string
	IsBot      bool
	IsExtranet bool
	IsNetwork  bool
}

// Author is the user an event is from (who wrote, pressed, added the bot), or 0.
func Author(ev Event) int64 {
	switch e := ev.(type) {
	case *MessageAdd:
		return e.User.ID
	case *MessageUpdate:
		return e.User.ID
	case *MessageDelete:
		return e.User.ID
	case *CommandAdd:
		return e.User.ID
	case *JoinChat:
		return e.User.ID
	}
	return 0
}

// Message is data[PARAMS] of a message event.
type Message struct {
	ID             int64
	Chat           string // the chat's address (DIALOG_ID): "27" for a private chat, "chat1157" for a group chat
	ChatID         int64
	ChatType       string // P private, C group, O open, L open line…
	FromUserID     int64
	Text           string
	Original       string // before Bitrix24 stripped mentions
	ChatTitle      string
	ChatEntityType string
	ChatEntityID   string
	Language       string
	System         bool
	CommandContext string
}

// Private reports whether the message is in a one-to-one chat with the bot.
func (m Message) Private() bool {
	if m.ChatType != "" {
		return m.ChatType == "P"
	}
	return !strings.HasPrefix(m.Chat, "chat")
}

// MessageAdd is ONIMBOTMESSAGEADD.
type MessageAdd struct {
	Envelope
	BotID   int64
	Message Message
	User    User
}

// DedupKey implements Event. A typed slash command may also arrive as ONIMCOMMANDADD
// for the same message; both share this key so the command runs once.
func (e *MessageAdd) DedupKey() string { return "message:" + itoa(e.Message.ID) }

// MessageUpdate is ONIMBOTMESSAGEUPDATE: the same message ID with new text.
type MessageUpdate struct {
	Envelope
	BotID   int64
	Message Message
	User    User
}

// DedupKey implements Event: one message may be edited many times, even back to an
// earlier text, so the event's time and the new text are part of the key. Only a
// redelivery of the same event repeats both. Who edited is part of it too, so that
// nobody's event can take the key of another's.
func (e *MessageUpdate) DedupKey() string {
	sum := sha256.Sum256([]byte(e.Message.Text))
	return "update:" + itoa(e.Message.ID) + ":" + itoa(e.Time.Unix()) + ":" + hex.EncodeToString(sum[:8]) + ":" + itoa(e.User.ID)
}

// MessageDelete is ONIMBOTMESSAGEDELETE.
type MessageDelete struct {
	Envelope
	BotID   int64
	Message Message
	User    User
}

// DedupKey implements Event. Who deleted is part of it: a deletion by someone who may
// not delete the message (recorded as nothing) must not take the key of the author's.
func (e *MessageDelete) DedupKey() string {
	return "delete:" + itoa(e.Message.ID) + ":" + itoa(e.User.ID)
}

// Command is one entry of data[COMMAND][<id>].
type Command struct {
	ID        int64
	BotID     int64
	BotCode   string
	Name      string // COMMAND, without the slash
	Params    string // COMMAND_PARAMS
	Context   string // TEXTAREA or KEYBOARD
	MessageID int64  // the typed message, or the message that carried the keyboard
}

// CommandAdd is ONIMCOMMANDADD: a registered slash command typed, or a button pressed.
type CommandAdd struct {
	Envelope
	Command Command
	Message Message
	User    User
}

// DedupKey implements Event. A typed command shares its message's key (the first of
// several in one message; the others have keys of their own); a button press
// carries the keyboard message's ID, shared by every button, every user and every
// press, so the presser, command, parameters and the event's time make it distinct: a
// second press later is a new event, a redelivery of the same press is not.
func (e *CommandAdd) DedupKey() string {
	sum := sha256.Sum256([]byte(e.Command.Name + "\x00" + e.Command.Params))
	if e.Command.Context != ContextKeyboard {
		// A message with several slash commands brings an event for each (events.md):
		// only the one its text starts with is also the message's.
		if words := strings.Fields(e.Message.Text); len(words) > 0 && !strings.EqualFold(words[0], "/"+e.Command.Name) {
			return "message:" + itoa(e.Command.MessageID) + ":command:" + hex.EncodeToString(sum[:8])
		}
		return "message:" + itoa(e.Command.MessageID)
	}
	return "press:" + itoa(e.Command.MessageID) + ":" + itoa(e.User.ID) + ":" + itoa(e.Time.Unix()) + ":" + hex.EncodeToString(sum[:8])
}

// JoinChat is ONIMBOTJOINCHAT: the private chat with the bot opened, or the bot added
// to a chat.
type JoinChat struct {
	Envelope
	BotID    int64
	Chat     string // its address (DIALOG_ID): "chat5"
	ChatID   int64
	ChatType string
	UserID   int64
	Language string
	User     User
}

// DedupKey implements Event.
func (e *JoinChat) DedupKey() string {
	return "join:" + e.Chat + ":" + itoa(e.UserID) + ":" + itoa(e.Time.Unix())
}

// BotDelete is ONIMBOTDELETE.
type BotDelete struct {
	Envelope
	BotID   int64
	BotCode string
}

// DedupKey implements Event.
func (e *BotDelete) DedupKey() string { return "botdelete:" + itoa(e.BotID) }

// AppInstall is ONAPPINSTALL: a local or marketplace application installed; its auth
// block carries the portal's tokens.
type AppInstall struct {
	Envelope
	Version    string
	LanguageID string
	Active     bool
	Installed  bool
}

// DedupKey implements Event.
// Every installation brings a new token pair, so a second installation within the
// same second is not taken for a repeat of the first. The key holds a digest of the
// token, never the token.
func (e *AppInstall) DedupKey() string {
	sum := sha256.Sum256([]byte(e.Auth.AccessToken + "\x00" + e.Auth.RefreshToken))
	return "install:" + e.Auth.MemberID + ":" + itoa(e.Time.Unix()) + ":" + hex.EncodeToString(sum[:8])
}

// AppUninstall is ONAPPUNINSTALL: the application was removed from the portal.
type AppUninstall struct {
	Envelope
	Clean bool // the portal asked to delete the application's data too
}

// DedupKey implements Event.
func (e *AppUninstall) DedupKey() string {
	return "uninstall:" + e.Auth.MemberID + ":" + itoa(e.Time.Unix())
}

// Unknown is any other event: acknowledged and ignored.
type Unknown struct {
	Envelope
}

// DedupKey implements Event.
func (e *Unknown) DedupKey() string { return "" }

// Decode parses an event body. Errors wrap ErrMalformed.
func Decode(body []byte) (Event, error) {
	f, err := ParseForm(body)
	if err != nil {
		return nil, err
	}
	return DecodeForm(f)
}

// DecodeForm turns a parsed form into a typed event, checking the fields each type
// cannot do without.
func DecodeForm(f Form) (Event, error) {
	storableTree(f["data"])
	if IsV2(f.String("event")) {
		return decodeV2Form(f)
	}
	d := decoder{}
	env := Envelope{
		Type:      strings.ToUpper(strings.TrimSpace(f.String("event"))),
		HandlerID: d.int(f, "event_handler_id"),
		Auth:      d.auth(f.Group("auth")),
	}
	if env.Type == "" {
		return nil, fmt.Errorf("%w: no event name", ErrMalformed)
	}
	if ts := d.int(f, "ts"); ts > 0 {
		env.Time = time.Unix(ts, 0).UTC()
	}
	data := f.Group("data")
	var ev Event
	switch env.Type {
	case EventMessageAdd:
		msg := d.message(data)
		e := &MessageAdd{Envelope: env, BotID: d.botID(data), Message: msg, User: d.user(data)}
		d.need(msg.ID > 0, "data[PARAMS][MESSAGE_ID]")
		d.need(msg.Chat != "", "data[PARAMS][DIALOG_ID]")
		d.need(msg.FromUserID > 0, "data[PARAMS][FROM_USER_ID]")
		ev = e
	case EventMessageUpdate:
		msg := d.message(data)
		d.need(msg.ID > 0, "data[PARAMS][MESSAGE_ID]")
		d.need(msg.Chat != "", "data[PARAMS][DIALOG_ID]")
		ev = &MessageUpdate{Envelope: env, BotID: d.botID(data), Message: msg, User: d.user(data)}
	case EventMessageDelete:
		msg := d.message(data)
		d.need(msg.ID > 0, "data[PARAMS][MESSAGE_ID]")
		d.need(msg.Chat != "", "data[PARAMS][DIALOG_ID]")
		ev = &MessageDelete{Envelope: env, BotID: d.botID(data), Message: msg, User: d.user(data)}
	case EventCommandAdd:
		e := &CommandAdd{Envelope: env, Command: d.command(data), Message: d.message(data), User: d.user(data)}
		if e.User.ID == 0 {
			e.User.ID = e.Message.FromUserID
		}
		if e.Message.FromUserID == 0 {
			e.Message.FromUserID = e.User.ID
		}
		d.need(e.Command.Name != "", "data[COMMAND][…][COMMAND]")
		d.need(e.Command.MessageID > 0, "data[COMMAND][…][MESSAGE_ID]")
		d.need(e.User.ID > 0, "data[PARAMS][FROM_USER_ID]")
		d.need(e.Message.Chat != "", "data[PARAMS][DIALOG_ID]")
		ev = e
	case EventJoinChat:
		p := data.Group("PARAMS")
		e := &JoinChat{
			Envelope: env,
			BotID:    d.botID(data),
			Chat:     p.String("DIALOG_ID"),
			ChatID:   d.int(p, "CHAT_ID"),
			ChatType: p.String("CHAT_TYPE"),
			UserID:   d.int(p, "USER_ID"),
			Language: p.String("LANGUAGE"),
			User:     d.user(data),
		}
		d.need(e.Chat != "", "data[PARAMS][DIALOG_ID]")
		ev = e
	case EventBotDelete:
		e := &BotDelete{Envelope: env, BotID: d.int(data, "BOT_ID"), BotCode: data.String("BOT_CODE")}
		d.need(e.BotID > 0, "data[BOT_ID]")
		ev = e
	case EventAppInstall:
		e := &AppInstall{
			Envelope:   env,
			Version:    data.String("VERSION"),
			LanguageID: data.String("LANGUAGE_ID"),
			Active:     data.String("ACTIVE") == "Y",
			Installed:  data.String("INSTALLED") == "Y",
		}
		d.need(e.Auth.MemberID != "", "auth[member_id]")
		ev = e
	case EventAppUninstall:
		e := &AppUninstall{Envelope: env, Clean: data.String("CLEAN") == "1" || data.String("CLEAN") == "Y"}
		d.need(e.Auth.MemberID != "", "auth[member_id]")
		ev = e
	default:
		ev = &Unknown{Envelope: env}
	}
	if d.err != nil {
		return nil, fmt.Errorf("%s: %w", env.Type, d.err)
	}
	return ev, nil
}

// decoder collects the first error so field extraction reads as a list.
type decoder struct{ err error }

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) need(ok bool, field string) {
	if !ok {
		d.fail(fmt.Errorf("%w: %s is missing or invalid", ErrMalformed, field))
	}
}

// int reads a decimal field; missing or empty is 0, anything else non-numeric is an error.
func (d *decoder) int(f Form, key string) int64 {
	s := strings.TrimSpace(f.String(key))
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.fail(fmt.Errorf("%w: %s is not a number", ErrMalformed, key))
		return 0
	}
	return n
}

func (d *decoder) auth(a Form) Auth {
	return Auth{
		ApplicationToken: strings.TrimSpace(a.String("application_token")),
		AccessToken:      a.String("access_token"),
		RefreshToken:     a.String("refresh_token"),
		ExpiresIn:        d.int(a, "expires_in"),
		Expires:          d.int(a, "expires"),
		Scope:            a.String("scope"),
		Domain:           a.String("domain"),
		ServerEndpoint:   a.String("server_endpoint"),
		ClientEndpoint:   a.String("client_endpoint"),
		MemberID:         a.String("member_id"),
		UserID:           d.int(a, "user_id"),
		Status:           a.String("status"),
	}
}

func (d *decoder) message(data Form) Message {
	p := data.Group("PARAMS")
	m := Message{
		ID:             d.int(p, "MESSAGE_ID"),
		Chat:           strings.TrimSpace(p.String("DIALOG_ID")),
		ChatID:         d.int(p, "CHAT_ID"),
		ChatType:       p.String("CHAT_TYPE"),
		FromUserID:     d.int(p, "FROM_USER_ID"),
		Text:           p.String("MESSAGE"),
		Original:       p.String("MESSAGE_ORIGINAL"),
		ChatTitle:      p.String("CHAT_TITLE"),
		ChatEntityType: p.String("CHAT_ENTITY_TYPE"),
		ChatEntityID:   p.String("CHAT_ENTITY_ID"),
		Language:       p.String("LANGUAGE"),
		System:         p.String("SYSTEM") == "Y",
		CommandContext: p.String("COMMAND_CONTEXT"),
	}
	if m.ID == 0 {
		m.ID = d.int(p, "ID")
	}
	if m.ChatID == 0 {
		m.ChatID = d.int(p, "TO_CHAT_ID")
	}
	if m.FromUserID == 0 {
		// Edits and deletions name the author only as AUTHOR_ID.
		m.FromUserID = d.int(p, "AUTHOR_ID")
	}
	return m
}

func (d *decoder) user(data Form) User {
	u := data.Group("USER")
	return User{
		ID:         d.int(u, "ID"),
		Name:       u.String("NAME"),
		FirstName:  u.String("FIRST_NAME"),
		LastName:   u.String("LAST_NAME"),
		IsBot:      u.String("IS_BOT") == "Y",
		IsExtranet: u.String("IS_EXTRANET") == "Y",
		IsNetwork:  u.String("IS_NETWORK") == "Y",
	}
}

// botID reads the ID of the bot the event is for: the key of data[BOT][<id>].
func (d *decoder) botID(data Form) int64 {
	bots := data.Group("BOT")
	for _, k := range bots.Keys() {
		if id, err := strconv.ParseInt(k, 10, 64); err == nil && id > 0 {
			return id
		}
	}
	return d.int(data.Group("PARAMS"), "BOT_ID")
}

// command reads the first entry of data[COMMAND][<id>]. Bitrix24 sends one per event.
func (d *decoder) command(data Form) Command {
	cmds := data.Group("COMMAND")
	for _, k := range cmds.Keys() {
		c := cmds.Group(k)
		if c == nil {
			continue
		}
		cmd := Command{
			ID:        d.int(c, "COMMAND_ID"),
			BotID:     d.int(c, "BOT_ID"),
			BotCode:   c.String("BOT_CODE"),
			Name:      strings.TrimPrefix(strings.TrimSpace(c.String("COMMAND")), "/"),
			Params:    c.String("COMMAND_PARAMS"),
			Context:   strings.ToUpper(c.String("COMMAND_CONTEXT")),
			MessageID: d.int(c, "MESSAGE_ID"),
		}
		if cmd.ID == 0 {
			cmd.ID, _ = strconv.ParseInt(k, 10, 64)
		}
		return cmd
	}
	return Command{}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// storable makes user text what both engines store alike: NUL (U+0000), which
// PostgreSQL's text refuses (SQLSTATE 22021: the event failed on every attempt and
// the question was lost) while SQLite keeps it, is dropped — nobody types it — and
// bytes that are not UTF-8, which PostgreSQL refuses too, become U+FFFD.
func storable(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// storableTree applies storable to every string of an event's data (a Form, or the
// JSON of a fetched event), in place.
func storableTree(v any) {
	switch t := v.(type) {
	case Form:
		storableMap(t)
	case map[string]any:
		storableMap(t)
	case []any:
		for i, x := range t {
			if str, ok := x.(string); ok {
				t[i] = storable(str)
			} else {
				storableTree(x)
			}
		}
	}
}

func storableMap(m map[string]any) {
	for k, x := range m {
		if str, ok := x.(string); ok {
			m[k] = storable(str)
		} else {
			storableTree(x)
		}
	}
}
