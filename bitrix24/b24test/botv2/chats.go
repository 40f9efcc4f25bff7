package botv2

import (
	"cmp"
	"slices"
	"strings"
	"unicode/utf8"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
)

// Chat.Message.send: botId, dialogId, fields{message, keyboard, attach, system,
// urlPreview} → {id, uuidMap}.
func (f *Fake) messageSend(r *req) (any, *bitrix24.Error) {
	fl := r.fields()
	if chat, ok := chatID(r.Params.String("dialogId")); ok && !f.member(r.bot, chat) {
		return nil, denied("Bot is not a participant in the chat") // chat-message-send.md
	}
	id, err := f.post(r.bot, r.Params.String("dialogId"), fl.String("message"), fl)
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": id, "uuidMap": map[string]any{}}, nil
}

// post posts a message of bot b through the portal's imbot.message.add, which reads
// the keyboard in all its forms (a JSON string, {BUTTONS: […]}, a list of buttons),
// so that it shows up in Portal.Messages with its Buttons.
func (f *Fake) post(b *bot, dialog, text string, fl bitrix24.Form) (int64, *bitrix24.Error) {
	params := bitrix24.Form{"DIALOG_ID": dialog, "MESSAGE": truncate(text)}
	for from, to := range map[string]string{"keyboard": "KEYBOARD", "attach": "ATTACH"} {
		if v, ok := fl[from]; ok {
			params[to] = v
		}
	}
	res, err := f.p.Builtin("imbot.message.add", params)
	if err != nil {
		return 0, v2Error(err)
	}
	id, _ := res.(int64)
	f.own[id] = b.ID
	if flag(fl.String("system")) {
		f.own[id] = 0 // nobody's: not to be updated
	}
	return id, nil
}

// maxMessage is imbot.v2's limit on a message: the excess is cut, " (...)" added.
const maxMessage = 20000

func truncate(s string) string {
	if utf8.RuneCountInString(s) <= maxMessage {
		return s
	}
	return string([]rune(s)[:maxMessage]) + " (...)"
}

// v2Error is an error of the portal's imbot.message.add or .update as imbot.v2 has it.
func v2Error(e *bitrix24.Error) *bitrix24.Error {
	switch e.Code {
	case "MESSAGE_EMPTY":
		return fail("EMPTY_MESSAGE", "Message can't be empty")
	case "DIALOG_ID_EMPTY", "WRONG_REQUEST", "CANT_EDIT_MESSAGE":
		return denied("The bot has no access to the dialog")
	}
	return e
}

// Chat.Message.update: botId, messageId, fields{message, keyboard ("N", empty or
// null removes it)} → {result: true}; only the bot's own messages, not system ones.
func (f *Fake) messageUpdate(r *req) (any, *bitrix24.Error) {
	id, fl := intParam(r.Params, "messageId"), r.fields()
	if by, ok := f.own[id]; !ok || by != r.bot.ID {
		return nil, denied("The message is not the bot's own")
	}
	params := bitrix24.Form{"MESSAGE_ID": itoa(id)}
	if _, ok := fl["message"]; ok {
		params["MESSAGE"] = truncate(fl.String("message"))
	}
	if r.has("keyboard") {
		params["KEYBOARD"] = cmp.Or[any](fl["keyboard"], "") // an empty list or null: ""
	}
	if _, err := f.p.Builtin("imbot.message.update", params); err != nil {
		return nil, v2Error(err)
	}
	return done, nil
}

// Command.answer: botId, commandId, messageId (the command's), dialogId,
// fields{message, keyboard, attach, system} → {result: true}; the answer is posted.
func (f *Fake) commandAnswer(r *req) (any, *bitrix24.Error) {
	dialog, fl := r.Params.String("dialogId"), r.fields()
	if intParam(r.Params, "messageId") <= 0 || dialog == "" {
		return nil, fail("COMMAND_ANSWER_FAILED", "messageId and dialogId are required")
	}
	if _, err := f.post(r.bot, dialog, fl.String("message"), fl); err != nil {
		return nil, err
	}
	return done, nil
}

// Chat.add: botId, fields{title, description, userIds, ownerId (the bot if not
// given), message} → {chat, users}. The portal's Chat has the userIds as its Users.
func (f *Fake) chatAdd(r *req) (any, *bitrix24.Error) {
	fl := r.fields()
	c := b24test.Chat{Title: strings.TrimSpace(fl.String("title")), Users: ids(fl.Group("userIds")), Description: fl.String("description")}
	c.ID = f.p.AddChat(c)
	f.owners[c.ID] = cmp.Or(intParam(fl, "ownerId"), r.bot.ID)
	f.members[c.ID] = append(f.members[c.ID], r.bot.ID)
	if msg := strings.TrimSpace(fl.String("message")); msg != "" {
		if _, err := f.post(r.bot, "chat"+itoa(c.ID), msg, nil); err != nil {
			return nil, err
		}
	}
	users := []any{botUser(r.bot)}
	for _, id := range c.Users {
		users = append(users, f.human(id))
	}
	return map[string]any{"chat": f.chatJSON(c), "users": users}, nil
}

// chatJSON is the Chat object of Chat.add and Chat.get (entities.md#chat), in part.
func (f *Fake) chatJSON(c b24test.Chat) map[string]any {
	return map[string]any{"id": c.ID, "dialogId": "chat" + itoa(c.ID), "name": c.Title, "description": c.Description,
		"type": "chat", "messageType": "C", "owner": f.owners[c.ID], "color": "#4ba984", "avatar": "", "extranet": false,
		"entityType": c.EntityType, "entityId": c.EntityID, "userCounter": len(c.Users)}
}

// chatEdit is Chat.get (botId, dialogId → {chat}), Chat.update (fields{title,
// description} → {result: true}), Chat.User.add (userIds, top-level → {result: true})
// and Chat.User.delete (userId → {result: true}, also for one not in the chat).
func (f *Fake) chatEdit(r *req) (any, *bitrix24.Error) {
	c, fl := r.chat, r.fields()
	switch r.Method {
	case "imbot.v2.Chat.get":
		return map[string]any{"chat": f.chatJSON(c)}, nil
	case "imbot.v2.Chat.update":
		c.Title = cmp.Or(strings.TrimSpace(fl.String("title")), c.Title)
		if r.has("description") {
			c.Description = fl.String("description")
		}
	case "imbot.v2.Chat.User.delete":
		user := intParam(r.Params, "userId")
		c.Users = slices.DeleteFunc(c.Users, func(u int64) bool { return u == user })
	default:
		for _, id := range ids(r.Params.Group("userIds")) {
			if !slices.Contains(c.Users, id) {
				c.Users = append(c.Users, id)
			}
		}
	}
	f.p.AddChat(c)
	return done, nil
}

// member reports a bot in a group chat: one it created, or was added to (AddBot).
func (f *Fake) member(b *bot, chat int64) bool { return slices.Contains(f.members[chat], b.ID) }

// Join makes the bot botID a member of the portal's group chat chatID, as adding it
// in Bitrix24 does: only then may it post there.
func (f *Fake) AddBot(botID, chatID int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(f.members[chatID], botID) {
		f.members[chatID] = append(f.members[chatID], botID)
	}
}
