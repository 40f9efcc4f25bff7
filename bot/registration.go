package bot

import (
	"cmp"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// Registration: the commands the bot registers, in one place for both ways of setting
// up — `supportbot register` on a webhook, and the install of the application.

// Commands are the slash commands of SPEC §3 and the hidden ones keyboard buttons send.
func Commands() []bitrix24.CommandSpec {
	c := func(name, ruTitle, ruParams, enTitle, enParams string) bitrix24.CommandSpec {
		return bitrix24.CommandSpec{Name: name, Titles: []bitrix24.CommandTitle{
			{Language: "ru", Title: ruTitle, Params: ruParams},
			{Language: "en", Title: enTitle, Params: enParams},
		}}
	}
	hidden := func(name, ru, en string) bitrix24.CommandSpec {
		s := c(name, ru, "", en, "")
		s.Hidden = true
		return s
	}
	return []bitrix24.CommandSpec{
		c(cmdChats, "Все ваши обращения и непрочитанные", "", "All your questions and unread messages", ""),
		c(cmdNew, "Открыть новое обращение", "вопрос", "Open a new question", "question"),
		c(cmdRename, "Переименовать обращение", "N название", "Rename a question", "N title"),
		c(cmdHelp, "Справка", "", "Help", ""),
		c(cmdClose, "Поддержка: вопрос решён", "", "Support: the question is resolved", ""),
		c(cmdResolve, "Поддержка: вопрос решён", "", "Support: the question is resolved", ""),
		c(cmdReopen, "Поддержка: вернуть в работу", "", "Support: make it active again", ""),
		c(cmdEscalate, "Поддержка: передать в техподдержку", "", "Support: hand to technical support", ""),
		c(cmdQueue, "Поддержка: очередь ожидающих ответа", "", "Support: questions waiting for an answer", ""),
		c(cmdAgents, "Администратор: агенты поддержки", "add|remove ID", "Admin: support agents", "add|remove ID"),
		c(cmdTech, "Администратор: вторая линия", "add|remove ID", "Admin: the second line", "add|remove ID"),
		c(cmdClients, "Администратор: кто ещё может задавать вопросы", "add|remove ID", "Admin: who else may ask", "add|remove ID"),
		hidden(cmdOpen, "Открыть обращение", "Open a question"),
		hidden(cmdRate, "Оценить ответ", "Rate the answer"),
		hidden(cmdAccess, "Ответить на запрос доступа", "Answer an access request"),
		c(cmdStats, "Поддержка: показатели за N дней", "дни", "Support: service figures for N days", "days"),
		hidden(cmdKeep, "Оставить обращение открытым", "Keep a question open"),
		c(cmdTake, "Поддержка: вести обращение самому", "", "Support: own the question", ""),
		c(cmdAssign, "Поддержка: передать обращение агенту", "ID|@агент", "Support: give the question to an agent", "ID|@agent"),
		c(cmdRelease, "Поддержка: снять обращение с себя", "", "Support: leave the question unowned", ""),
	}
}

// onInstall registers the bot and its commands on a portal that installed the
// application. It always registers rather than updates: registering answers the bot
// that already has our code, and the command the bot already has, so a reinstall gets
// the IDs back whether Bitrix24 deleted the bot with the application, an
// administrator removed it by hand, or it is still there. Then it binds
// ONAPPUNINSTALL, which an application only receives once bound, so a removal is
// noticed. The actions go through the outbox like replies: they survive restarts and
// respect the rate limit; they share one lane, because the commands need the bot's ID.
func (b *Bot) onInstall(tx *storage.Tx, portal storage.Portal) error {
	p := b.cfg.Profile
	do := func(a bitrix24.Action, effect outbox.Effect) error {
		return enqueue(tx, portal.ID, outbox.Entry{Lane: outbox.SetupLane, Effect: effect}, a)
	}
	api := storage.APIv1
	if b.cfg.API == storage.APIv2 {
		// An application's v2 bot has no token of its own: its OAuth token names it.
		api = storage.APIv2
		if err := tx.SetBotV2(portal.ID, portal.BotID, "", cmp.Or(p.EventMode, storage.EventsFetch)); err != nil {
			return err
		}
	}
	if err := tx.SetAPI(portal.ID, api); err != nil {
		return err
	}
	if err := do(bitrix24.RegisterBot{Profile: p}, botRegistered(0)); err != nil {
		return err
	}
	for _, c := range Commands() {
		if err := do(bitrix24.RegisterCommand{Command: c, HandlerURL: p.HandlerURL}, commandRegistered(0)); err != nil {
			return err
		}
	}
	// Last in the lane: a portal that refuses them (bound already, or the placement
	// scope missing) holds nothing up. The sidebar's item needs no unbinding: the
	// portal removes an application's placements with it (settings/app-uninstallation.md),
	// and it shows at once, since an installation handled by the server is finished
	// without installFinish (settings/app-installation/installation-finish.md).
	if err := do(bitrix24.BindEvent{Event: bitrix24.EventAppUninstall, Handler: p.HandlerURL}, nil); err != nil {
		return err
	}
	if b.cfg.SidebarURL == "" {
		return nil
	}
	return do(SidebarPlacement(b.cfg.SidebarURL, p.Color), nil)
}

// SidebarPlacement is the messenger sidebar's item that opens the page at handler: in
// every chat (the page decides what to show), with the bot's colour.
func SidebarPlacement(handler, color string) bitrix24.BindPlacement {
	return bitrix24.BindPlacement{
		Placement: bitrix24.PlacementIMSidebar, Handler: handler, Icon: "fa-life-ring", Context: "ALL", Color: color,
		Titles: []bitrix24.PlacementTitle{{Language: "ru", Title: "Поддержка"}, {Language: "en", Title: "Support"}},
	}
}
