package bitrix24

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// V2 is the imbot.v2 API (imbot.v2.Chat.Message.send, imbot.v2.Chat.add, …): camelCase
// parameters under fields, the bot named by botId and, through a webhook, its
// botToken. batch.md refuses only file transfers and nested batches, and limits.md
// tells every client to batch, so v2 calls go in batch as v1's do; a portal that
// refuses them there (BatchRefused) gets them one a request (delivery decides).
var V2 Wire = v2{}

type v2 struct{}

func (v2) Batch() bool { return true }

// yesNo writes a boolean as the docs allow where JSON has none ("If the client does
// not support JSON boolean, strings "Y" and "N" can be passed", command-register.md):
// a batch command is a query string, where encoding/json's true would become "1".
func yesNo(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}

// Lookup: v2 has no way to find a chat by a mark the bot put on it (Chat.get takes
// only the dialog ID), so a chat whose creation may have run cannot be checked for;
// it is created again and counted as a possible duplicate.
func (v2) Lookup(Action) (Action, bool) { return nil, false }

func (v2) Render(a Action, c Context) (Call, error) {
	bot := func(p map[string]any) map[string]any {
		p["botId"] = c.BotID
		if c.BotToken != "" {
			p["botToken"] = c.BotToken
		}
		return p
	}
	if c.BotID == 0 {
		switch a.(type) {
		case RegisterBot, BindEvent, BindPlacement:
		default:
			return Call{}, fmt.Errorf("imbot.v2 %s: the bot is not registered", a.Kind())
		}
	}
	switch a := a.(type) {
	case SendMessage:
		text, kb := Fit(a.Text, a.Keyboard)
		f := map[string]any{"message": text}
		if kb != nil {
			// With the bot named, the buttons' commands reach this bot, as in every
			// example of message-keyboards.md.
			f["keyboard"] = map[string]any{"BOT_ID": c.BotID, "BUTTONS": kb.Buttons}
		}
		return Call{"imbot.v2.Chat.Message.send", bot(map[string]any{"dialogId": a.To, "fields": f})}, nil
	case UpdateMessage:
		text, kb := Fit(a.Text, a.Keyboard)
		f := map[string]any{"message": text}
		switch {
		case a.DropKeyboard:
			f["keyboard"] = "N"
		case kb != nil:
			// With the bot named, the buttons' commands reach this bot (message-keyboards.md).
			f["keyboard"] = map[string]any{"BOT_ID": c.BotID, "BUTTONS": kb.Buttons}
		}
		return Call{"imbot.v2.Chat.Message.update", bot(map[string]any{"messageId": a.MessageID, "fields": f})}, nil
	case CreateChat:
		f := map[string]any{"title": a.Title, "userIds": a.Users}
		if a.EntityType != "" { // no entity binding in v2: the mark is kept where a person can read it
			f["description"] = a.EntityType + " " + a.EntityID
		}
		return Call{"imbot.v2.Chat.add", bot(map[string]any{"fields": f})}, nil
	case RenameChat:
		if !strings.HasPrefix(a.Chat, "chat") {
			return Call{}, fmt.Errorf("imbot.v2 rename: %q is not a group chat", a.Chat)
		}
		return Call{"imbot.v2.Chat.update", bot(map[string]any{"dialogId": a.Chat, "fields": map[string]any{"title": a.Title}})}, nil
	case AddUsers:
		return Call{"imbot.v2.Chat.User.add", bot(map[string]any{"dialogId": a.Chat, "userIds": a.Users})}, nil
	case RemoveUser:
		return Call{"imbot.v2.Chat.User.delete", bot(map[string]any{"dialogId": a.Chat, "userId": a.User})}, nil
	case RegisterBot:
		f := botFieldsV2(a.Profile)
		f["code"], f["type"] = a.Profile.Code, "supervisor" // a supervisor sees every message in its chats
		if c.BotToken != "" {
			f["botToken"] = c.BotToken
		}
		return Call{"imbot.v2.Bot.register", map[string]any{"fields": f}}, nil
	case UpdateBot:
		f := botFieldsV2(a.Profile)
		if a.NewToken != "" {
			f["botToken"] = a.NewToken
		}
		c.BotID = a.BotID
		return Call{"imbot.v2.Bot.update", bot(map[string]any{"fields": f})}, nil
	case UnregisterBot:
		c.BotID = a.BotID
		return Call{"imbot.v2.Bot.unregister", bot(map[string]any{})}, nil
	case RegisterCommand:
		return Call{"imbot.v2.Command.register", bot(map[string]any{"fields": commandFieldsV2(a.Command)})}, nil
	case UpdateCommand:
		return Call{"imbot.v2.Command.update", bot(map[string]any{"commandId": a.CommandID, "fields": commandFieldsV2(a.Command)})}, nil
	case UnregisterCommand:
		return Call{"imbot.v2.Command.unregister", bot(map[string]any{"commandId": a.CommandID})}, nil
	case BindEvent, BindPlacement:
		return V1.Render(a, c) // event.bind and placement.bind are the application's, the same for both
	}
	return Call{}, fmt.Errorf("imbot.v2 has no call for %T", a)
}

func botFieldsV2(p BotProfile) map[string]any {
	props := map[string]any{"name": p.Name, "color": colorV2(p.Color)}
	if p.WorkPosition != "" {
		props["workPosition"] = p.WorkPosition
	}
	f := map[string]any{"properties": props}
	if p.EventMode != "" {
		f["eventMode"] = p.EventMode
	}
	if p.EventMode == "webhook" {
		f["webhookUrl"] = p.HandlerURL
	}
	return f
}

// colorV2 writes v1's colour names ("LIGHT_BLUE") as v2's codes ("lightBlue").
func colorV2(c string) string {
	parts := strings.Split(strings.ToLower(c), "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

func commandFieldsV2(c CommandSpec) map[string]any {
	titles, params := map[string]any{}, map[string]any{}
	for _, t := range c.Titles {
		titles[t.Language] = t.Title
		if t.Params != "" {
			params[t.Language] = t.Params
		}
	}
	f := map[string]any{"command": c.Name, "title": titles, "hidden": yesNo(c.Hidden), "common": yesNo(false)}
	if len(params) > 0 {
		f["params"] = params
	}
	return f
}

// ResultID reads v2's answers: {id} for a message, {chat:{id}}, {bot:{id}} and
// {command:{id}} for what is created.
func (v2) ResultID(a Action, raw json.RawMessage) int64 {
	var r struct {
		ID                 json.RawMessage
		Chat, Bot, Command struct{ ID json.RawMessage }
	}
	if json.Unmarshal(raw, &r) != nil {
		return 0
	}
	var id json.RawMessage
	switch a.(type) {
	case SendMessage:
		id = r.ID
	case CreateChat:
		id = r.Chat.ID
	case RegisterBot, UpdateBot:
		id = r.Bot.ID
	case RegisterCommand, UpdateCommand:
		id = r.Command.ID
	}
	n, _ := ResultID(id)
	return n
}

// FetchEvents asks a v2 bot's queue for the events from offset on (passing it
// confirms every event before it) and decodes them.
func FetchEvents(ctx context.Context, c Caller, cx Context, offset int64, limit int) (Fetched, error) {
	p := map[string]any{"botId": cx.BotID, "limit": limit}
	if cx.BotToken != "" {
		p["botToken"] = cx.BotToken
	}
	if offset > 0 {
		p["offset"] = offset
	}
	raw, err := c.Call(ctx, "imbot.v2.Event.get", p)
	if err != nil {
		return Fetched{}, err
	}
	return DecodeFetched(raw)
}

// BotV2 is one of the application's v2 bots on the portal.
type BotV2 struct {
	ID        int64
	Code      string
	Type      string
	EventMode string
}

// BotsV2 lists the v2 bots the token's application has on the portal.
func BotsV2(ctx context.Context, c Caller, token string) ([]BotV2, error) {
	p := map[string]any{}
	if token != "" {
		p["botToken"] = token
	}
	raw, err := c.Call(ctx, "imbot.v2.Bot.list", p)
	if err != nil {
		return nil, err
	}
	var r struct {
		Bots []struct {
			ID        json.Number `json:"id"`
			Code      string      `json:"code"`
			Type      string      `json:"type"`
			EventMode string      `json:"eventMode"`
		} `json:"bots"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("bitrix24 imbot.v2.Bot.list: unexpected answer: %w", err)
	}
	out := make([]BotV2, 0, len(r.Bots))
	for _, b := range r.Bots {
		id, _ := b.ID.Int64()
		out = append(out, BotV2{ID: id, Code: b.Code, Type: b.Type, EventMode: b.EventMode})
	}
	return out, nil
}

// CommandsV2 lists a v2 bot's commands by name (without the slash): what a portal
// that refuses to register a command again (COMMAND_ALREADY_EXISTS) has of the bot's.
func CommandsV2(ctx context.Context, c Caller, cx Context) (map[string]int64, error) {
	p := map[string]any{"botId": cx.BotID}
	if cx.BotToken != "" {
		p["botToken"] = cx.BotToken
	}
	raw, err := c.Call(ctx, "imbot.v2.Command.list", p)
	if err != nil {
		return nil, err
	}
	var r struct {
		Commands []struct {
			ID      json.Number `json:"id"`
			Command string      `json:"command"`
		} `json:"commands"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("bitrix24 imbot.v2.Command.list: unexpected answer (%d bytes)", len(raw))
	}
	out := make(map[string]int64, len(r.Commands))
	for _, c := range r.Commands {
		if id, err := c.ID.Int64(); err == nil && id > 0 {
			out[strings.TrimPrefix(c.Command, "/")] = id
		}
	}
	return out, nil
}
