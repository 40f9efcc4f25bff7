package bot

import (
	"supportbot/bitrix24"
	"supportbot/storage"
)

// Registration: how the bot presents itself to a portal (imbot.register) and the
// commands it registers (imbot.command.register), in one place for both ways of
// setting up — `supportbot register` on a webhook, and the install of the application.

// Profile is what imbot.register needs to know about the bot.
type Profile struct {
	Code       string // CODE: unique per application
	Name       string
	Color      string
	HandlerURL string // where Bitrix24 posts the bot's events
	ClientID   string // CLIENT_ID, for a bot registered through a webhook
}

// RegisterParams are imbot.register's parameters. TYPE S: a supervisor bot sees
// every message in its chats, which the transcript and unread counts need.
func RegisterParams(p Profile) map[string]any {
	params := map[string]any{
		"CODE":                  p.Code,
		"TYPE":                  "S",
		"EVENT_HANDLER":         p.HandlerURL,
		"EVENT_MESSAGE_ADD":     p.HandlerURL,
		"EVENT_WELCOME_MESSAGE": p.HandlerURL,
		"EVENT_BOT_DELETE":      p.HandlerURL,
		"EVENT_MESSAGE_UPDATE":  p.HandlerURL,
		"EVENT_MESSAGE_DELETE":  p.HandlerURL,
		"OPENLINE":              "N",
		"PROPERTIES":            properties(p),
	}
	if p.ClientID != "" {
		params["CLIENT_ID"] = p.ClientID
	}
	return params
}

// UpdateParams are imbot.update's parameters for an already registered bot.
func UpdateParams(botID any, p Profile) map[string]any {
	params := map[string]any{
		"BOT_ID": botID,
		"FIELDS": map[string]any{
			"CODE":                  p.Code,
			"EVENT_HANDLER":         p.HandlerURL,
			"EVENT_MESSAGE_ADD":     p.HandlerURL,
			"EVENT_WELCOME_MESSAGE": p.HandlerURL,
			"EVENT_BOT_DELETE":      p.HandlerURL,
			"EVENT_MESSAGE_UPDATE":  p.HandlerURL,
			"EVENT_MESSAGE_DELETE":  p.HandlerURL,
			"PROPERTIES":            properties(p),
		},
	}
	if p.ClientID != "" {
		params["CLIENT_ID"] = p.ClientID
	}
	return params
}

func properties(p Profile) map[string]any {
	return map[string]any{"NAME": p.Name, "COLOR": p.Color, "WORK_POSITION": "Support / Поддержка"}
}

// CommandLang is a command's title and parameter hint in one language.
type CommandLang struct {
	LanguageID string
	Title      string
	Params     string
}

// CommandSpec is one command to register.
type CommandSpec struct {
	Command string
	Hidden  bool // sent by keyboard buttons only; not offered in the command list
	Lang    []CommandLang
}

// Commands are the slash commands of SPEC §3 and the hidden ones keyboard buttons send.
func Commands() []CommandSpec {
	c := func(name, ruTitle, ruParams, enTitle, enParams string) CommandSpec {
		return CommandSpec{Command: name, Lang: []CommandLang{
			{LanguageID: "ru", Title: ruTitle, Params: ruParams},
			{LanguageID: "en", Title: enTitle, Params: enParams},
		}}
	}
	hidden := func(name, ru, en string) CommandSpec {
		s := c(name, ru, "", en, "")
		s.Hidden = true
		return s
	}
	return []CommandSpec{
		c(cmdChats, "Все ваши обращения и непрочитанные", "", "All your questions and unread messages", ""),
		c(cmdNew, "Открыть новое обращение", "вопрос", "Open a new question", "question"),
		c(cmdRename, "Переименовать обращение", "N название", "Rename a question", "N title"),
		c(cmdHelp, "Справка", "", "Help", ""),
		c(cmdClose, "Поддержка: вопрос решён", "", "Support: the question is resolved", ""),
		c(cmdResolve, "Поддержка: вопрос решён", "", "Support: the question is resolved", ""),
		c(cmdReopen, "Поддержка: вернуть в работу", "", "Support: make it active again", ""),
		c(cmdEscalate, "Поддержка: передать в техподдержку", "", "Support: hand to technical support", ""),
		c(cmdQueue, "Поддержка: очередь ожидающих ответа", "", "Support: questions waiting for an answer", ""),
		hidden(cmdOpen, "Открыть обращение", "Open a question"),
		hidden(cmdRate, "Оценить ответ", "Rate the answer"),
		hidden(cmdAccess, "Ответить на запрос доступа", "Answer an access request"),
	}
}

// CommandParams are imbot.command.register's parameters.
func CommandParams(botID any, c CommandSpec, handlerURL, clientID string) map[string]any {
	params := map[string]any{
		"BOT_ID":            botID,
		"COMMAND":           c.Command,
		"COMMON":            "N",
		"HIDDEN":            yn(c.Hidden),
		"EXTRANET_SUPPORT":  "N",
		"EVENT_COMMAND_ADD": handlerURL,
		"LANG":              langs(c),
	}
	if clientID != "" {
		params["CLIENT_ID"] = clientID
	}
	return params
}

// CommandUpdateParams are imbot.command.update's parameters.
func CommandUpdateParams(commandID int64, c CommandSpec, handlerURL, clientID string) map[string]any {
	params := map[string]any{
		"COMMAND_ID": commandID,
		"FIELDS": map[string]any{
			"EVENT_COMMAND_ADD": handlerURL,
			"HIDDEN":            yn(c.Hidden),
			"EXTRANET_SUPPORT":  "N",
			"LANG":              langs(c),
		},
	}
	if clientID != "" {
		params["CLIENT_ID"] = clientID
	}
	return params
}

func langs(c CommandSpec) []map[string]any {
	out := make([]map[string]any, len(c.Lang))
	for i, l := range c.Lang {
		out[i] = map[string]any{"LANGUAGE_ID": l.LanguageID, "TITLE": l.Title, "PARAMS": l.Params}
	}
	return out
}

func yn(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}

// setupLane is the ordering lane of registration calls: the bot first, then its
// commands, which need its ID.
const setupLane = "setup"

// onInstall registers the bot and its commands on a portal that installed the
// application. It always registers rather than updates: imbot.register answers the
// bot that already has our CODE, and imbot.command.register the command the bot
// already has, so a reinstall gets the IDs back whether Bitrix24 deleted the bot with
// the application, an administrator removed it by hand, or it is still there. Then it
// binds ONAPPUNINSTALL, which an application only receives once bound, so a removal
// is noticed. The calls go through the outbox like replies: they survive restarts and
// respect the rate limit; they share one lane, because the commands need the bot's ID.
func (b *Bot) onInstall(tx *storage.Tx, portal storage.Portal) error {
	p := b.cfg.Profile
	t := b.newTurn(tx, portal, who{}, b.cfg.Language, "")
	t.portal.BotID = 0 // BOT_ID belongs in no registration call
	if err := t.enqueue(storage.OutboxEntry{ChatKey: setupLane, Method: "imbot.register", Effect: storage.EffectBotRegistered},
		RegisterParams(p)); err != nil {
		return err
	}
	for _, c := range Commands() {
		err := t.enqueue(storage.OutboxEntry{ChatKey: setupLane, Method: "imbot.command.register", Effect: storage.EffectCommandRegistered},
			CommandParams(storage.BotIDPlaceholder, c, p.HandlerURL, ""))
		if err != nil {
			return err
		}
	}
	// Last in the lane: a portal that refuses it (bound already) holds nothing up.
	return t.enqueue(storage.OutboxEntry{ChatKey: setupLane, Method: "event.bind"},
		map[string]any{"event": bitrix24.EventAppUninstall, "handler": p.HandlerURL})
}
