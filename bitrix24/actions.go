package bitrix24

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// An Action is something the bot wants done on a portal: post a message, create a
// dialog's chat, register a command. The bot decides it, the outbox keeps it as data
// (Kind and the JSON of the action), and a Wire turns it into a call of one API
// version. Actions name no REST method, so the same outbox serves imbot v1 and v2.
type Action interface {
	// Kind names the action in the outbox.
	Kind() string
	// Repeatable reports that doing it twice does no harm (an update, a rename): an
	// attempt that may have run can then be made again without showing a duplicate.
	Repeatable() bool
	// AwaitsResult reports that what follows it in its lane uses its result (the
	// bot's ID for the commands, the chat's ID for the greeting): nothing of the lane
	// may go in the same request after it.
	AwaitsResult() bool
}

// A Superseder is an action that makes an earlier one unnecessary when both are due
// together: a later rename of the same chat. The earlier is then done without a call.
type Superseder interface {
	Action
	Supersedes(earlier Action) bool
}

// A ChatAwaiter is an action that may name a chat still being created (the
// greeting inside a new dialog's chat, a link or a button to it), with AwaitedChat
// and AwaitedChatLink. Whoever queues it makes it wait for that chat; WithChat then
// names the chat that was created.
type ChatAwaiter interface {
	Action
	WithChat(chatID int64) Action
}

// Action kinds, as stored in the outbox.
const (
	KindSendMessage       = "send_message"
	KindUpdateMessage     = "update_message"
	KindCreateChat        = "create_chat"
	KindRenameChat        = "rename_chat"
	KindAddUsers          = "add_users"
	KindRemoveUser        = "remove_user"
	KindRegisterBot       = "register_bot"
	KindRegisterCommand   = "register_command"
	KindBindEvent         = "bind_event"
	KindUpdateBot         = "update_bot"
	KindUnregisterBot     = "unregister_bot"
	KindUpdateCommand     = "update_command"
	KindUnregisterCommand = "unregister_command"
	KindFindChat          = "find_chat"
	KindBindPlacement     = "bind_placement"
)

// awaitedMarker stands for the ID of a chat still being created, in an action that
// waits for it (ChatAwaiter). It holds NUL bytes, which decoded user text never
// contains (the event decoders remove them), so user text cannot forge it.
const awaitedMarker = "\x00CHAT_ID\x00"

// AwaitedChat is the address of the chat a ChatAwaiter waits for.
const AwaitedChat = "chat" + awaitedMarker

// SendMessage posts a message into a chat.
type SendMessage struct {
	To       string    `json:"dialog_id"` // "27" (a private chat) or "chat1001"
	Text     string    `json:"text"`
	Keyboard *Keyboard `json:"keyboard,omitempty"`
}

// UpdateMessage changes one of the bot's messages; DropKeyboard removes its buttons.
type UpdateMessage struct {
	MessageID    int64     `json:"message_id"`
	Text         string    `json:"text"`
	Keyboard     *Keyboard `json:"keyboard,omitempty"`
	DropKeyboard bool      `json:"drop_keyboard,omitempty"`
}

// CreateChat creates a group chat with the bot in it. The entity marks the chat as
// the bot's own, so it can be found again if the answer to its creation is lost.
type CreateChat struct {
	Title      string  `json:"title"`
	Users      []int64 `json:"users"`
	EntityType string  `json:"entity_type,omitempty"`
	EntityID   string  `json:"entity_id,omitempty"`
}

// RenameChat sets a group chat's title.
type RenameChat struct {
	Chat  string `json:"dialog_id"` // "chatN"
	Title string `json:"title"`
}

// AddUsers adds people to a group chat.
type AddUsers struct {
	Chat  string  `json:"dialog_id"` // "chatN"
	Users []int64 `json:"users"`
}

// RemoveUser takes a person out of a group chat.
type RemoveUser struct {
	Chat string `json:"chat"` // "chatN"
	User int64  `json:"user"`
}

// Kind, Repeatable (taking out one who is gone changes nothing) and AwaitsResult
// implement Action.
func (RemoveUser) Kind() string       { return KindRemoveUser }
func (RemoveUser) Repeatable() bool   { return true }
func (RemoveUser) AwaitsResult() bool { return false }

// BotProfile is how the bot presents itself to a portal.
type BotProfile struct {
	Code  string `json:"code"` // unique per application
	Name  string `json:"name"`
	Color string `json:"color"`
	// WorkPosition is shown under its name in the messenger; the words are the bot's.
	WorkPosition string `json:"work_position,omitempty"`
	HandlerURL   string `json:"handler_url"`          // where the portal posts the bot's events
	ClientID     string `json:"client_id,omitempty"`  // for a v1 bot registered through a webhook
	EventMode    string `json:"event_mode,omitempty"` // a v2 bot's: "fetch" (polled, no handler) or "webhook"
}

// CommandTitle is a command's title and parameter hint in one language.
type CommandTitle struct {
	Language string `json:"language"`
	Title    string `json:"title"`
	Params   string `json:"params,omitempty"`
}

// CommandSpec is one command of the bot.
type CommandSpec struct {
	Name   string         `json:"name"`             // without the slash
	Hidden bool           `json:"hidden,omitempty"` // sent by buttons only, not offered in the list
	Titles []CommandTitle `json:"titles"`
}

// RegisterBot registers the bot; its result is the bot's ID. Registering a bot whose
// code the application already has answers that bot's ID.
type RegisterBot struct {
	Profile BotProfile `json:"profile"`
}

// UpdateBot updates a registered bot's profile and handlers; NewToken, if set,
// replaces a v2 bot's secret (the Context's is the current one).
type UpdateBot struct {
	BotID    int64      `json:"bot_id"`
	Profile  BotProfile `json:"profile"`
	NewToken string     `json:"-"` // a secret: never stored in the outbox
}

// UnregisterBot removes the bot.
type UnregisterBot struct {
	BotID    int64  `json:"bot_id"`
	ClientID string `json:"client_id,omitempty"`
}

// RegisterCommand registers a command for the portal's bot (the Context's BotID); its
// result is the command's ID.
type RegisterCommand struct {
	Command    CommandSpec `json:"command"`
	HandlerURL string      `json:"handler_url"`
	ClientID   string      `json:"client_id,omitempty"`
}

// UpdateCommand updates a registered command.
type UpdateCommand struct {
	CommandID  int64       `json:"command_id"`
	Command    CommandSpec `json:"command"`
	HandlerURL string      `json:"handler_url"`
	ClientID   string      `json:"client_id,omitempty"`
}

// UnregisterCommand removes a command.
type UnregisterCommand struct {
	CommandID int64  `json:"command_id"`
	ClientID  string `json:"client_id,omitempty"`
}

// BindEvent asks the portal to post an application event (ONAPPUNINSTALL) to handler.
type BindEvent struct {
	Event   string `json:"event"`
	Handler string `json:"handler"`
}

// BindPlacement adds the application's page to a place of the portal's interface
// (PlacementIMSidebar: an item of the messenger's chat sidebar), whose handler the
// portal posts to when a user opens it. Titles' first is the default for languages
// the others do not name.
type BindPlacement struct {
	Placement string           `json:"placement"`
	Handler   string           `json:"handler"`
	Titles    []PlacementTitle `json:"titles"`
	Icon      string           `json:"icon"`              // a Font Awesome 4 icon's name: "fa-life-ring"
	Context   string           `json:"context,omitempty"` // IM_SIDEBAR: ALL, USER, CHAT, LINES or CRM
	Color     string           `json:"color,omitempty"`   // IM_SIDEBAR: the icon's colour, as the bot's (AQUA…)
}

// PlacementTitle is a placement's title in one language.
type PlacementTitle struct {
	Language string `json:"language"`
	Title    string `json:"title"`
}

// FindChat looks up the chat the bot created with an entity; its result is the chat's
// ID, or 0 when there is none.
type FindChat struct {
	EntityType string `json:"entity_type"`
	EntityID   string `json:"entity_id"`
}

// Kind and Repeatable implement Action.
func (SendMessage) Kind() string       { return KindSendMessage }
func (UpdateMessage) Kind() string     { return KindUpdateMessage }
func (CreateChat) Kind() string        { return KindCreateChat }
func (RenameChat) Kind() string        { return KindRenameChat }
func (AddUsers) Kind() string          { return KindAddUsers }
func (RegisterBot) Kind() string       { return KindRegisterBot }
func (UpdateBot) Kind() string         { return KindUpdateBot }
func (UnregisterBot) Kind() string     { return KindUnregisterBot }
func (RegisterCommand) Kind() string   { return KindRegisterCommand }
func (UpdateCommand) Kind() string     { return KindUpdateCommand }
func (UnregisterCommand) Kind() string { return KindUnregisterCommand }
func (BindEvent) Kind() string         { return KindBindEvent }
func (FindChat) Kind() string          { return KindFindChat }
func (BindPlacement) Kind() string     { return KindBindPlacement }

func (SendMessage) Repeatable() bool { return false }

// Repeatable: a second chat would be created; the dispatcher looks for the first one
// instead (Wire.Lookup).
func (CreateChat) Repeatable() bool        { return false }
func (UpdateMessage) Repeatable() bool     { return true }
func (RenameChat) Repeatable() bool        { return true }
func (AddUsers) Repeatable() bool          { return true }
func (RegisterBot) Repeatable() bool       { return true } // answers the existing bot
func (UpdateBot) Repeatable() bool         { return true }
func (UnregisterBot) Repeatable() bool     { return true }
func (RegisterCommand) Repeatable() bool   { return true } // answers the existing command
func (UpdateCommand) Repeatable() bool     { return true }
func (UnregisterCommand) Repeatable() bool { return true }
func (BindEvent) Repeatable() bool         { return true }
func (FindChat) Repeatable() bool          { return true }
func (BindPlacement) Repeatable() bool     { return true } // a second bind is refused, not doubled

// AwaitsResult: only the bot's registration (the commands need its ID) and a chat's
// creation (what is sent into it needs its ID).
func (SendMessage) AwaitsResult() bool       { return false }
func (UpdateMessage) AwaitsResult() bool     { return false }
func (CreateChat) AwaitsResult() bool        { return true }
func (RenameChat) AwaitsResult() bool        { return false }
func (AddUsers) AwaitsResult() bool          { return false }
func (RegisterBot) AwaitsResult() bool       { return true }
func (UpdateBot) AwaitsResult() bool         { return false }
func (UnregisterBot) AwaitsResult() bool     { return false }
func (RegisterCommand) AwaitsResult() bool   { return false }
func (UpdateCommand) AwaitsResult() bool     { return false }
func (UnregisterCommand) AwaitsResult() bool { return false }
func (BindEvent) AwaitsResult() bool         { return false }
func (FindChat) AwaitsResult() bool          { return false }
func (BindPlacement) AwaitsResult() bool     { return false }

// Supersedes: only the last title set matters.
func (r RenameChat) Supersedes(earlier Action) bool {
	e, ok := earlier.(RenameChat)
	return ok && e.Chat == r.Chat
}

// WithChat names the created chat where the message named the awaited one: its
// address, links in its text, its buttons.
func (m SendMessage) WithChat(chatID int64) Action {
	id := strconv.FormatInt(chatID, 10)
	m.To = strings.ReplaceAll(m.To, awaitedMarker, id)
	m.Text = strings.ReplaceAll(m.Text, awaitedMarker, id)
	if m.Keyboard != nil {
		kb := Keyboard{Buttons: make([]Button, len(m.Keyboard.Buttons))}
		for i, b := range m.Keyboard.Buttons {
			b.Text = strings.ReplaceAll(b.Text, awaitedMarker, id)
			b.CommandParams = strings.ReplaceAll(b.CommandParams, awaitedMarker, id)
			b.Link = strings.ReplaceAll(b.Link, awaitedMarker, id)
			b.ActionValue = strings.ReplaceAll(b.ActionValue, awaitedMarker, id)
			kb.Buttons[i] = b
		}
		m.Keyboard = &kb
	}
	return m
}

// WithChat renames the created chat.
func (r RenameChat) WithChat(chatID int64) Action { r.Chat = GroupChat(chatID); return r }

// WithChat adds the people to the created chat.
func (a AddUsers) WithChat(chatID int64) Action { a.Chat = GroupChat(chatID); return a }

// WithChat takes the person out of the created chat.
func (r RemoveUser) WithChat(chatID int64) Action { r.Chat = GroupChat(chatID); return r }

// EncodeAction is the action as the outbox stores it.
func EncodeAction(a Action) (kind string, data []byte, err error) {
	data, err = marshalJSON(a)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s: %w", a.Kind(), err)
	}
	return a.Kind(), data, nil
}

// ErrUnknownAction: DecodeAction was given a kind this build does not know, as one
// a newer release wrote.
var ErrUnknownAction = errors.New("unknown action kind")

// DecodeAction reads an action back from the outbox.
func DecodeAction(kind string, data []byte) (Action, error) {
	decode, ok := decoders[kind]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownAction, kind)
	}
	a, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", kind, err)
	}
	return a, nil
}

var decoders = map[string]func([]byte) (Action, error){
	KindSendMessage:       decodeAs[SendMessage],
	KindUpdateMessage:     decodeAs[UpdateMessage],
	KindCreateChat:        decodeAs[CreateChat],
	KindRenameChat:        decodeAs[RenameChat],
	KindAddUsers:          decodeAs[AddUsers],
	KindRemoveUser:        decodeAs[RemoveUser],
	KindRegisterBot:       decodeAs[RegisterBot],
	KindUpdateBot:         decodeAs[UpdateBot],
	KindUnregisterBot:     decodeAs[UnregisterBot],
	KindRegisterCommand:   decodeAs[RegisterCommand],
	KindUpdateCommand:     decodeAs[UpdateCommand],
	KindUnregisterCommand: decodeAs[UnregisterCommand],
	KindBindEvent:         decodeAs[BindEvent],
	KindFindChat:          decodeAs[FindChat],
	KindBindPlacement:     decodeAs[BindPlacement],
}

func decodeAs[T Action](data []byte) (Action, error) {
	var a T
	err := json.Unmarshal(data, &a)
	return a, err
}
