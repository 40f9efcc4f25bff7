package bitrix24

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// A Wire turns actions into the REST calls of one chat-bot API version and reads the
// calls' answers. It is the only place where an action meets a method name.
type Wire interface {
	// Render is the call that does a.
	Render(a Action, c Context) (Call, error)
	// ResultID is the ID a's call answered: the new message, chat, bot or command; 0
	// when the answer carries none.
	ResultID(a Action, result json.RawMessage) int64
	// Lookup is the query that finds what a created, for an a that may have run
	// although its answer was lost (a chat, by the entity the bot stamped on it).
	Lookup(a Action) (Action, bool)
	// Batch reports that its calls may go together in one batch request.
	Batch() bool
}

// Context is what a call needs beyond its action.
type Context struct {
	BotID    int64  // the portal's bot; 0 while it is not registered
	BotToken string // a v2 bot's secret, through a webhook; empty for an application's
}

// WireFor is the wire of an API version: "v2" for imbot.v2, anything else v1.
func WireFor(api string) Wire {
	if api == "v2" {
		return V2
	}
	return V1
}

// Call is one REST call: a method and its parameters.
type Call struct {
	Method string
	Params map[string]any
}

// Caller makes REST calls; *Client is one, DryRun another.
type Caller interface {
	Call(ctx context.Context, method string, params any) (json.RawMessage, error)
}

// Perform renders a, calls it and reads the answer's ID: the synchronous way, for the
// set-up commands.
func Perform(ctx context.Context, c Caller, w Wire, a Action, cx Context) (int64, error) {
	call, err := w.Render(a, cx)
	if err != nil {
		return 0, err
	}
	raw, err := c.Call(ctx, call.Method, call.Params)
	if err != nil {
		return 0, err
	}
	return w.ResultID(a, raw), nil
}

// ResultID reads an ID answer: a positive number, a numeric string, or an object with
// an ID field (Bitrix24 answers all three, depending on the method and the portal).
func ResultID(raw json.RawMessage) (int64, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return 0, fmt.Errorf("result %s: %w", truncate(string(raw)), err)
	}
	var n json.Number
	switch x := v.(type) {
	case json.Number:
		n = x
	case string:
		n = json.Number(x)
	case map[string]any:
		for _, k := range []string{"ID", "id"} {
			if id, ok := x[k]; ok {
				b, _ := json.Marshal(id)
				return ResultID(b)
			}
		}
	}
	id, err := n.Int64()
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("result %s is not an ID", truncate(string(raw)))
	}
	return id, nil
}

// V1 is the imbot v1 API (imbot.message.add, imbot.chat.add, …).
var V1 Wire = v1{}

type v1 struct{}

func (v1) Render(a Action, c Context) (Call, error) {
	withBot := func(p map[string]any) map[string]any {
		if c.BotID != 0 {
			p["BOT_ID"] = c.BotID
		}
		return p
	}
	switch a := a.(type) {
	case SendMessage:
		text, kb := Fit(a.Text, a.Keyboard)
		p := map[string]any{"DIALOG_ID": a.To, "MESSAGE": text}
		if kb != nil {
			p["KEYBOARD"] = kb
		}
		return Call{"imbot.message.add", withBot(p)}, nil
	case UpdateMessage:
		text, kb := Fit(a.Text, a.Keyboard)
		p := map[string]any{"MESSAGE_ID": a.MessageID, "MESSAGE": text}
		switch {
		case a.DropKeyboard:
			p["KEYBOARD"] = "N"
		case kb != nil:
			p["KEYBOARD"] = kb
		}
		return Call{"imbot.message.update", withBot(p)}, nil
	case CreateChat:
		p := map[string]any{"TYPE": "CHAT", "TITLE": a.Title, "USERS": a.Users}
		if a.EntityType != "" {
			p["ENTITY_TYPE"], p["ENTITY_ID"] = a.EntityType, a.EntityID
		}
		return Call{"imbot.chat.add", withBot(p)}, nil
	case RenameChat:
		id, err := ChatIDOf(a.Chat)
		if err != nil {
			return Call{}, err
		}
		return Call{"imbot.chat.updateTitle", withBot(map[string]any{"CHAT_ID": id, "TITLE": a.Title})}, nil
	case AddUsers:
		id, err := ChatIDOf(a.Chat)
		if err != nil {
			return Call{}, err
		}
		return Call{"imbot.chat.user.add", withBot(map[string]any{"CHAT_ID": id, "USERS": a.Users})}, nil
	case RemoveUser:
		id, err := ChatIDOf(a.Chat)
		if err != nil {
			return Call{}, err
		}
		return Call{"imbot.chat.user.delete", withBot(map[string]any{"CHAT_ID": id, "USER_ID": a.User})}, nil
	case RegisterBot:
		p := botFields(a.Profile)
		p["TYPE"] = "S" // a supervisor sees every message in its chats: the transcript needs it
		p["OPENLINE"] = "N"
		return Call{"imbot.register", withClientID(p, a.Profile.ClientID)}, nil
	case UpdateBot:
		return Call{"imbot.update", withClientID(map[string]any{"BOT_ID": a.BotID, "FIELDS": botFields(a.Profile)},
			a.Profile.ClientID)}, nil
	case UnregisterBot:
		return Call{"imbot.unregister", withClientID(map[string]any{"BOT_ID": a.BotID}, a.ClientID)}, nil
	case RegisterCommand:
		if c.BotID == 0 {
			return Call{}, fmt.Errorf("register command /%s: the bot is not registered", a.Command.Name)
		}
		p := commandFields(a.Command, a.HandlerURL)
		p["BOT_ID"], p["COMMAND"], p["COMMON"] = c.BotID, a.Command.Name, "N"
		return Call{"imbot.command.register", withClientID(p, a.ClientID)}, nil
	case UpdateCommand:
		p := map[string]any{"COMMAND_ID": a.CommandID, "FIELDS": commandFields(a.Command, a.HandlerURL)}
		return Call{"imbot.command.update", withClientID(p, a.ClientID)}, nil
	case UnregisterCommand:
		return Call{"imbot.command.unregister", withClientID(map[string]any{"COMMAND_ID": a.CommandID}, a.ClientID)}, nil
	case BindEvent:
		return Call{"event.bind", map[string]any{"event": a.Event, "handler": a.Handler}}, nil
	case FindChat:
		return Call{"imbot.chat.get", map[string]any{"ENTITY_TYPE": a.EntityType, "ENTITY_ID": a.EntityID}}, nil
	case BindPlacement:
		return placementBind(a)
	}
	return Call{}, fmt.Errorf("imbot v1 has no call for %T", a)
}

// placementBind is placement.bind (api-reference/widgets/placement-bind.md, im/sidebar.md):
// an application's call, made with its OAuth token, the same whichever chat-bot API
// the bot uses. The page is offered to every user (role USER), not to extranet users.
func placementBind(a BindPlacement) (Call, error) {
	if len(a.Titles) == 0 || a.Icon == "" {
		return Call{}, fmt.Errorf("placement %s: a title and an icon are required", a.Placement)
	}
	langs := map[string]any{}
	for _, t := range a.Titles {
		langs[t.Language] = map[string]any{"TITLE": t.Title}
	}
	opts := map[string]any{"iconName": a.Icon, "role": "USER", "extranet": "N"}
	if a.Context != "" {
		opts["context"] = a.Context
	}
	if a.Color != "" {
		opts["color"] = a.Color
	}
	return Call{"placement.bind", map[string]any{
		"PLACEMENT": a.Placement, "HANDLER": a.Handler, "TITLE": a.Titles[0].Title, "LANG_ALL": langs, "OPTIONS": opts,
	}}, nil
}

// botFields are imbot.register's and imbot.update's description of the bot: every
// event goes to the one handler.
func botFields(p BotProfile) map[string]any {
	return map[string]any{
		"CODE":                  p.Code,
		"EVENT_HANDLER":         p.HandlerURL,
		"EVENT_MESSAGE_ADD":     p.HandlerURL,
		"EVENT_WELCOME_MESSAGE": p.HandlerURL,
		"EVENT_BOT_DELETE":      p.HandlerURL,
		"EVENT_MESSAGE_UPDATE":  p.HandlerURL,
		"EVENT_MESSAGE_DELETE":  p.HandlerURL,
		"PROPERTIES":            properties(p),
	}
}

// properties are the bot's PROPERTIES: the work position only when it has one.
func properties(p BotProfile) map[string]any {
	props := map[string]any{"NAME": p.Name, "COLOR": p.Color}
	if p.WorkPosition != "" {
		props["WORK_POSITION"] = p.WorkPosition
	}
	return props
}

func commandFields(c CommandSpec, handlerURL string) map[string]any {
	langs := make([]map[string]any, len(c.Titles))
	for i, t := range c.Titles {
		langs[i] = map[string]any{"LANGUAGE_ID": t.Language, "TITLE": t.Title, "PARAMS": t.Params}
	}
	hidden := "N"
	if c.Hidden {
		hidden = "Y"
	}
	return map[string]any{"EVENT_COMMAND_ADD": handlerURL, "HIDDEN": hidden, "EXTRANET_SUPPORT": "N", "LANG": langs}
}

func withClientID(p map[string]any, clientID string) map[string]any {
	if clientID != "" {
		p["CLIENT_ID"] = clientID
	}
	return p
}

func (v1) ResultID(a Action, raw json.RawMessage) int64 {
	switch a.(type) {
	case SendMessage, CreateChat, RegisterBot, RegisterCommand, FindChat:
		id, _ := ResultID(raw) // imbot.chat.get answers null or false for no chat: 0
		return id
	}
	return 0
}

func (v1) Batch() bool { return true }

func (v1) Lookup(a Action) (Action, bool) {
	if c, ok := a.(CreateChat); ok && c.EntityType != "" && c.EntityID != "" {
		return FindChat{EntityType: c.EntityType, EntityID: c.EntityID}, true
	}
	return nil, false
}

// ChatIDOf is the chat ID in a group chat's address ("chat1001" → 1001).
func ChatIDOf(chat string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(chat, "chat"), 10, 64)
	if !strings.HasPrefix(chat, "chat") || err != nil || id <= 0 {
		return 0, fmt.Errorf("%q is not a group chat's address", truncate(chat))
	}
	return id, nil
}
