package b24test

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"supportbot/bitrix24"
)

// Chat is a chat the portal knows: created through imbot.chat.add, added with AddChat,
// or learnt from an event sent with Portal.Post.
type Chat struct {
	ID                   int64
	Title                string
	Users                []int64
	EntityType, EntityID string
	Description          string // imbot.v2's (botv2); v1 chats have none
}

// Message is a message the bot posted (imbot.message.add, the MESSAGE of
// imbot.chat.add).
type Message struct {
	ID       int64
	DialogID string // "27" for a private chat, "chat1001" for a group chat
	Text     string
	buttons  []bitrix24.Button
	// AuthorID is the person who wrote it (AddUserMessage), 0 for the bot's; Date is
	// when the portal took it; Deleted, that its author deleted it.
	AuthorID int64
	Date     time.Time
	Deleted  bool
}

// Buttons is the message's keyboard, however it was sent (nil for none).
func (m Message) Buttons() []bitrix24.Button { return m.buttons }

// firstMessageID is the ID of the first message the portal creates.
const firstMessageID = 5001

// Chat returns a chat by ID.
func (p *Portal) Chat(id int64) (Chat, bool) {
	defer p.lock()()
	c, ok := p.chats[id]
	if !ok {
		return Chat{}, false
	}
	out := *c
	out.Users = slices.Clone(c.Users)
	return out, true
}

// Chats returns every chat, by ID.
func (p *Portal) Chats() []Chat {
	p.mu.Lock()
	ids := slices.Sorted(maps.Keys(p.chats))
	p.mu.Unlock()
	out := make([]Chat, len(ids))
	for i, id := range ids {
		out[i], _ = p.Chat(id)
	}
	return out
}

// Messages returns the bot's messages in a dialog ("27", "chat1001"), oldest first.
func (p *Portal) Messages(dialogID string) []Message {
	defer p.lock()()
	return slices.DeleteFunc(slices.Clone(p.messages), func(m Message) bool { return m.DialogID != dialogID })
}

// AllMessages returns every message the bot posted, in any dialog, in the order the
// portal created them — a message sent twice shows up twice.
func (p *Portal) AllMessages() []Message {
	defer p.lock()()
	return slices.Clone(p.messages)
}

// AddChat makes a chat exist, as if created on the portal, so the bot may post to it.
// A zero ID takes the next free one. It returns the chat's ID.
func (p *Portal) AddChat(c Chat) int64 {
	defer p.lock()()
	if c.ID <= 0 {
		c.ID = p.newChatIDLocked()
	}
	c.Users = slices.Clone(c.Users)
	p.chats[c.ID] = &c
	return c.ID
}

func (p *Portal) newChatIDLocked() int64 {
	for p.chats[p.nextChat] != nil {
		p.nextChat++
	}
	p.nextChat++
	return p.nextChat - 1
}

func (p *Portal) addMessageLocked(dialog, text string, buttons []bitrix24.Button) int64 {
	id := firstMessageID + int64(len(p.messages))
	p.messages = append(p.messages, Message{ID: id, DialogID: dialog, Text: text, buttons: buttons, Date: time.Now()})
	return id
}

// method is a built-in method. Those of bots.go get the calling application instead
// of the caller (forApp, owned).
type method func(p *Portal, c caller, f bitrix24.Form) (any, *bitrix24.Error)

var builtins = map[string]method{
	"imbot.chat.add":           (*Portal).chatAdd,
	"imbot.chat.get":           (*Portal).chatGet,
	"imbot.chat.updatetitle":   (*Portal).chatUpdateTitle,
	"imbot.chat.user.add":      (*Portal).chatUserAdd,
	"imbot.chat.user.delete":   (*Portal).chatUserDelete,
	"imbot.message.add":        (*Portal).messageAdd,
	"imbot.message.update":     (*Portal).messageUpdate,
	"imbot.register":           forApp((*Portal).botRegister),
	"imbot.update":             owned(botsOf, "BOT_ID", "Bot", (*Portal).botUpdate),
	"imbot.unregister":         owned(botsOf, "BOT_ID", "Bot", (*Portal).botUnregister),
	"imbot.bot.list":           (*Portal).botList,
	"imbot.command.register":   forApp((*Portal).commandRegister),
	"imbot.command.update":     owned(commandsOf, "COMMAND_ID", "Command", (*Portal).commandUpdate),
	"imbot.command.unregister": owned(commandsOf, "COMMAND_ID", "Command", (*Portal).commandUnregister),
	"event.bind":               (*Portal).eventBind,
	"app.info":                 (*Portal).appInfo,
	"scope":                    (*Portal).scopeList,
	"user.admin":               (*Portal).userAdmin,
	"user.current":             (*Portal).userCurrent,
	"placement.bind":           (*Portal).placementBind,
	"placement.unbind":         (*Portal).placementUnbind,
}

// dispatch runs a call for caller c: an override from Handle, else a method of
// AddMethod, else the built-in one.
func (p *Portal) dispatch(c caller, call Call) (any, *bitrix24.Error) {
	key := strings.ToLower(call.Method)
	p.mu.Lock()
	h, m := p.handlers[key], p.added[key]
	p.mu.Unlock()
	switch {
	case h != nil:
		return h(call.Params)
	case m != nil:
		return m(call)
	case builtins[key] != nil:
		return builtins[key](p, c, call.Params)
	}
	return nil, errMethodNotFound
}

// Builtin runs a built-in method (imbot.message.add, imbot.chat.add…) as the webhook's
// user, whatever Handle says, without recording a call: for methods of AddMethod that
// work through the built-in ones.
func (p *Portal) Builtin(method string, params bitrix24.Form) (any, *bitrix24.Error) {
	if m := builtins[strings.ToLower(method)]; m != nil {
		return m(p, caller{userID: webhookUser}, params)
	}
	return nil, errMethodNotFound
}

// hasMethod reports whether the portal has a method: built in, or added with Handle,
// HandleHTTP or AddMethod.
func (p *Portal) hasMethod(name string) bool {
	key := strings.ToLower(name)
	defer p.lock()()
	return builtins[key] != nil || p.handlers[key] != nil || p.raw[key] != nil || p.added[key] != nil
}

// imbot.chat.add: TITLE, USERS[], ENTITY_TYPE, ENTITY_ID, MESSAGE → chat ID (TYPE is not kept).
func (p *Portal) chatAdd(_ caller, f bitrix24.Form) (any, *bitrix24.Error) {
	var users []int64
	for _, k := range f.Group("USERS").Keys() {
		users = append(users, intParam(f.Group("USERS"), k))
	}
	if f.String("USERS") != "" || slices.ContainsFunc(users, func(id int64) bool { return id <= 0 }) {
		return nil, wrongRequest("INVALID_FORMAT", "Parameter USERS has wrong type")
	}
	defer p.lock()()
	c := &Chat{ID: p.newChatIDLocked(), Title: strings.TrimSpace(f.String("TITLE")), Users: users,
		EntityType: f.String("ENTITY_TYPE"), EntityID: f.String("ENTITY_ID")}
	p.chats[c.ID] = c
	if msg := strings.TrimSpace(f.String("MESSAGE")); msg != "" {
		p.addMessageLocked(bitrix24.GroupChat(c.ID), msg, nil)
	}
	return c.ID, nil
}

// imbot.message.add: BOT_ID, DIALOG_ID, MESSAGE, KEYBOARD, ATTACH… → message ID.
// Checks in the order Bitrix24 makes them.
func (p *Portal) messageAdd(_ caller, f bitrix24.Form) (any, *bitrix24.Error) {
	dialog, text := strings.TrimSpace(f.String("DIALOG_ID")), strings.TrimSpace(f.String("MESSAGE"))
	buttons, err := keyboardParam(f)
	switch {
	case dialog == "":
		return nil, wrongRequest("DIALOG_ID_EMPTY", "Dialog ID can't be empty")
	case text == "" && !hasValue(f, "ATTACH"):
		return nil, wrongRequest("MESSAGE_EMPTY", "Message can't be empty")
	case err != nil:
		return nil, err
	}
	defer p.lock()()
	if !p.dialogExistsLocked(dialog) {
		// Bitrix24 fails in Bot::addMessage for a dialog it cannot post to.
		return nil, wrongRequest("WRONG_REQUEST", "Message isn't added")
	}
	return p.addMessageLocked(dialog, text, buttons), nil
}

// dialogExistsLocked: a positive user ID, or "chat<ID>" of a chat the portal has.
func (p *Portal) dialogExistsLocked(dialog string) bool {
	if id, ok := chatOf(dialog); ok {
		return p.chats[id] != nil
	}
	id, err := strconv.ParseInt(dialog, 10, 64)
	return err == nil && id > 0
}

// chatOf is the chat ID of a group chat's dialog ID, "chat<ID>".
func chatOf(dialog string) (int64, bool) {
	rest, ok := strings.CutPrefix(dialog, "chat")
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, ok && err == nil && id > 0
}

// imbot.message.update: MESSAGE_ID, MESSAGE, KEYBOARD → true.
func (p *Portal) messageUpdate(_ caller, f bitrix24.Form) (any, *bitrix24.Error) {
	id := intParam(f, "MESSAGE_ID")
	buttons, err := keyboardParam(f)
	if id <= 0 {
		return nil, wrongRequest("MESSAGE_ID_ERROR", "Message ID can't be empty")
	} else if err != nil {
		return nil, err
	}
	defer p.lock()()
	if i := id - firstMessageID; i < 0 || i >= int64(len(p.messages)) {
		// Bitrix24 cannot tell "no such message" from "not yours" or "too old".
		return nil, &bitrix24.Error{Code: "CANT_EDIT_MESSAGE",
			Description: "Time has expired for modification or you don't have access", HTTPStatus: http.StatusForbidden}
	}
	m := &p.messages[id-firstMessageID]
	if _, ok := f["KEYBOARD"]; ok {
		m.buttons = buttons
	}
	if _, ok := f["MESSAGE"]; ok {
		m.Text = f.String("MESSAGE")
	}
	return true, nil
}

// imbot.chat.updateTitle: CHAT_ID, TITLE → true.
func (p *Portal) chatUpdateTitle(_ caller, f bitrix24.Form) (any, *bitrix24.Error) {
	id, title := intParam(f, "CHAT_ID"), strings.TrimSpace(f.String("TITLE"))
	if id <= 0 {
		return nil, wrongRequest("CHAT_ID_EMPTY", "Chat ID can't be empty")
	} else if title == "" {
		return nil, wrongRequest("TITLE_EMPTY", "Title can't be empty")
	}
	defer p.lock()()
	c, ok := p.chats[id]
	if !ok {
		return nil, wrongRequest("WRONG_REQUEST", "This title currently set or chat isn't exists")
	}
	c.Title = title
	return true, nil
}

// imbot.chat.user.add: CHAT_ID, USERS[] → true; who is in the chat already stays once.
func (p *Portal) chatUserAdd(_ caller, f bitrix24.Form) (any, *bitrix24.Error) {
	id, users := intParam(f, "CHAT_ID"), f.Group("USERS")
	if id <= 0 {
		return nil, wrongRequest("CHAT_ID_EMPTY", "Chat ID can't be empty")
	} else if len(users.Keys()) == 0 {
		return nil, wrongRequest("USERS_EMPTY", "Users can't be empty")
	}
	defer p.lock()()
	c, ok := p.chats[id]
	if !ok {
		return nil, wrongRequest("WRONG_REQUEST", "You don't have access or chat isn't exists")
	}
	for _, k := range users.Keys() {
		if u := intParam(users, k); u > 0 && !slices.Contains(c.Users, u) {
			c.Users = append(c.Users, u)
		}
	}
	return true, nil
}

// imbot.chat.user.delete: CHAT_ID, USER_ID → true. Unlike imbot.v2's, it refuses a
// user who is not in the chat (WRONG_REQUEST, imbot-chat-user-delete.md).
func (p *Portal) chatUserDelete(_ caller, f bitrix24.Form) (any, *bitrix24.Error) {
	id, user := intParam(f, "CHAT_ID"), intParam(f, "USER_ID")
	if id <= 0 {
		return nil, wrongRequest("CHAT_ID_EMPTY", "Chat ID can't be empty")
	} else if user <= 0 {
		return nil, wrongRequest("USER_ID_EMPTY", "User ID can't be empty")
	}
	defer p.lock()()
	c, ok := p.chats[id]
	if !ok || !slices.Contains(c.Users, user) {
		return nil, wrongRequest("WRONG_REQUEST", "You don't have access or user isn't member in chat")
	}
	c.Users = slices.DeleteFunc(c.Users, func(u int64) bool { return u == user })
	return true, nil
}

// imbot.chat.get by ENTITY_TYPE and ENTITY_ID, both non-empty in PHP's sense, answers
// {"ID": n} of the chat made with them (the lowest ID if several), or null when there
// is none, as the im module's CIMRestService::chatGet does; it reads no CHAT_ID. The
// fake does not describe chats by DIALOG_ID.
func (p *Portal) chatGet(_ caller, f bitrix24.Form) (any, *bitrix24.Error) {
	if _, ok := f["DIALOG_ID"]; ok {
		return nil, wrongRequest("B24TEST_NOT_MODELLED", "b24test answers imbot.chat.get by ENTITY_TYPE and ENTITY_ID only")
	}
	if !hasValue(f, "ENTITY_TYPE") || !hasValue(f, "ENTITY_ID") {
		return nil, nil
	}
	defer p.lock()()
	for _, id := range slices.Sorted(maps.Keys(p.chats)) {
		if c := p.chats[id]; c.EntityType == f.String("ENTITY_TYPE") && c.EntityID == f.String("ENTITY_ID") {
			return map[string]int64{"ID": id}, nil
		}
	}
	return nil, nil
}

// maxKeyboardBytes is Bitrix24's limit on KEYBOARD (30 KB).
const maxKeyboardBytes = 30 * 1024

// keyboardParam reads KEYBOARD: absent, "" or "N" is none; otherwise a list of
// buttons, or an object with BUTTONS, given as a group or as a JSON string.
func keyboardParam(f bitrix24.Form) ([]bitrix24.Button, *bitrix24.Error) {
	bad := wrongRequest("KEYBOARD_ERROR", "Incorrect keyboard params")
	tree, _ := f["KEYBOARD"].(bitrix24.Form)
	if s := strings.TrimSpace(f.String("KEYBOARD")); s != "" && s != "N" {
		var decoded any
		if json.Unmarshal([]byte(s), &decoded) != nil {
			return nil, bad
		}
		if tree, _ = formOf(bitrix24.EncodeQuery(map[string]any{"KEYBOARD": decoded}))["KEYBOARD"].(bitrix24.Form); tree == nil {
			return nil, bad
		}
	}
	if len(tree) == 0 {
		return nil, nil
	}
	list := tree
	if g := tree.Group("BUTTONS"); g != nil || tree["BUTTONS"] != nil {
		list = g
	}
	var buttons []bitrix24.Button
	for i, k := range list.Keys() {
		var b bitrix24.Button
		raw, _ := json.Marshal(list[k])
		if _, ok := list[k].(bitrix24.Form); !ok || k != strconv.Itoa(i) || json.Unmarshal(raw, &b) != nil {
			return nil, bad
		}
		buttons = append(buttons, b)
	}
	if len(buttons) == 0 {
		return nil, bad
	}
	if raw, _ := json.Marshal(tree); len(raw) > maxKeyboardBytes {
		return nil, wrongRequest("KEYBOARD_OVERSIZE", "You have exceeded the maximum allowable size of keyboard")
	}
	return buttons, nil
}

// hasValue: the parameter is there and not empty, which is what PHP's truthiness
// test on it checks.
func hasValue(f bitrix24.Form, key string) bool {
	switch v := f[key].(type) {
	case string:
		return v != "" && v != "0"
	case bitrix24.Form:
		return len(v) > 0
	}
	return false
}

func intParam(f bitrix24.Form, key string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(f.String(key)), 10, 64)
	return n
}
