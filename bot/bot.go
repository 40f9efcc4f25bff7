// Package bot is supportbot's brain: who may do what, the limit on open dialogs,
// unread counts, titles, and what to say. It decides over storage inside the event's
// transaction and writes the actions it wants done into the outbox (bitrix24's
// typed actions, which name no REST method); when an action has been done or given
// up, Settle records what that means. It never does HTTP.
package bot

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
	"supportbot/workhours"
)

// Chats the bot creates are marked with this entity type, and ENTITY_ID
// "question|<dialog id>", so a chat can be traced back to its dialog even before the
// portal's answer to the chat's creation has been recorded.
const (
	EntityType     = "SUPPORTBOT_QUESTION"
	entityIDPrefix = "question|"
)

// maxTitle is the longest title the bot accepts, in characters.
const maxTitle = 255

// Config is what the bot needs to know about people and limits.
type Config struct {
	Agents      []int64
	Admins      []int64
	Integrators []int64
	Tech        []int64 // the second line seeded once, as Agents (the local portal's)
	FreePlan    bool
	MaxActive   int
	Language    string // fallback when the event's language is neither ru nor en
	// AutoCloseAfter: a dialog an agent answered last, whose client has been silent
	// this long, is resolved (0 = never); the client is warned AutoCloseWarning before.
	AutoCloseAfter, AutoCloseWarning time.Duration
	// RatingWindow is how long after a resolve the client's rating is recorded.
	RatingWindow time.Duration
	// Hours are support's working hours (nil: always open); the response targets
	// (0: none) are in working time (README, "Owners and response targets").
	Hours                            *workhours.Schedule
	FirstResponseTarget, ReplyTarget time.Duration
	// Profile is how the bot registers itself when an application is installed, and
	// API through which: "v2" (imbot.v2, in Profile.EventMode) or "v1".
	Profile bitrix24.BotProfile
	API     string
	// SidebarURL, if set, is bound as the handler of the messenger sidebar's item
	// (IM_SIDEBAR) when the application is installed: app mode's page.
	SidebarURL string
}

// Bot applies supportbot's rules to events.
type Bot struct {
	cfg  Config
	seed map[string][]int64 // the configuration's role lists, which seed a portal's roles
	log  *slog.Logger
	// outbox is what the results of its actions mean to it (settle.go).
	outbox *outbox.Handlers
}

// New builds a Bot.
func New(cfg Config, log *slog.Logger) *Bot {
	if cfg.MaxActive <= 0 {
		cfg.MaxActive = 5
	}
	if cfg.Language != "en" {
		cfg.Language = "ru"
	}
	if cfg.RatingWindow <= 0 {
		cfg.RatingWindow = 7 * 24 * time.Hour
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	seed := map[string][]int64{
		storage.RoleAgent:  cfg.Agents,
		storage.RoleTech:   cfg.Tech,
		storage.RoleClient: slices.Concat(cfg.Admins, cfg.Integrators),
	}
	b := &Bot{cfg: cfg, seed: seed, log: log}
	b.outbox = b.settlement()
	return b
}

// Arrival is a decoded event as its source vouched for it: the portal it comes from
// and, where the portal confirmed it before the transaction, the author as one of
// its administrators (app mode: user.admin with the author's own token; a fetched
// event: the installer, see portals.FetchedAdmin), or 0.
type Arrival struct {
	PortalID int64
	Event    bitrix24.Event
	Admin    int64
}

// Take is the one intake of an event, whichever way it came: the webhook route, the
// job that applies the posted events kept until the portal confirmed their author,
// and the fetch poller all call it inside the transaction that commits the event
// (and, fetched, the offset that confirms it). What happens before (reading,
// decoding, authenticating) differs by source; from here on nothing does.
//
// It lives in bot, not in a package of its own, because every caller already may
// import bot and nothing else they share (handlers imports bot, storage, portals;
// poller imports bitrix24, storage, bot) and it needs only bot and storage: one
// more package would be one more room each event crosses.
func (b *Bot) Take(tx *storage.Tx, a Arrival) (Outcome, error) {
	if _, unknown := a.Event.(*bitrix24.Unknown); unknown {
		return Unknown, nil // acknowledged (or confirmed with its page) and ignored
	}
	// Read in the transaction: an earlier event in it (a fetched page) may have
	// changed the portal, a deleted bot for one.
	portal, err := tx.Portal(a.PortalID)
	if err != nil {
		return 0, err
	}
	return b.process(tx, portal, a.Event, a.Admin)
}

// Outcome says what became of an event: Take's answer, and what the sources add
// before or after it. Logs, the webhook's answers and the events metric name it by
// String.
type Outcome int

// Outcomes of an event. Take returns the first four.
const (
	Processed Outcome = iota
	Duplicate
	Ignored // known, but with nothing to key it by
	Unknown // a type the bot does not handle
	Rejected
	Failed
	Kept    // posted in app mode; its author is checked again later
	GivenUp // kept, and its author never confirmed while their token lived
)

// String is the outcome as logs, answers and metrics name it.
func (o Outcome) String() string {
	return [...]string{Processed: "processed", Duplicate: "duplicate", Ignored: "ignored", Unknown: "unknown",
		Rejected: "rejected", Failed: "failed", Kept: "kept", GivenUp: "given_up"}[o]
}

// process records the event's key and, unless it was seen before, applies the rules.
// It runs inside the transaction that also commits the event, so an event is either
// fully processed and recorded, or not at all. admin is a user the portal confirmed,
// before the transaction, as one of its administrators (app mode: user.admin for the
// event's author; see portals), or 0.
func (b *Bot) process(tx *storage.Tx, portal storage.Portal, ev bitrix24.Event, admin int64) (Outcome, error) {
	key := ev.DedupKey()
	if key == "" {
		return Ignored, nil
	}
	fresh, err := tx.MarkProcessed(portal.ID, key, ev.Head().Type)
	if err != nil {
		return 0, err
	}
	if !fresh {
		return Duplicate, nil
	}
	// Webhook mode: the configuration's lists become the portal's roles, once; from
	// then on the portal's administrators change them in the chat (see roles.go).
	if !portal.RolesSeeded && len(b.seed[storage.RoleAgent])+len(b.seed[storage.RoleClient]) > 0 {
		if _, err := tx.SeedRoles(portal.ID, b.seed); err != nil {
			return 0, err
		}
	}
	if err := b.handle(tx, portal, ev, admin); err != nil {
		return 0, fmt.Errorf("%s %s: %w", ev.Head().Type, key, err)
	}
	return Processed, nil
}

func (b *Bot) handle(tx *storage.Tx, portal storage.Portal, ev bitrix24.Event, admin int64) error {
	switch e := ev.(type) {
	case *bitrix24.MessageAdd:
		if err := b.learnBot(tx, &portal, e.BotID); err != nil {
			return err
		}
		from, err := b.who(tx, portal, e.User, e.Message.FromUserID, admin)
		if err != nil {
			return err
		}
		return b.onMessage(tx, portal, e.Message, from, nil)
	case *bitrix24.CommandAdd:
		if err := b.learnBot(tx, &portal, e.Command.BotID); err != nil {
			return err
		}
		cmd := fromButton(e.Command.Name, e.Command.Params)
		from, err := b.who(tx, portal, e.User, e.Message.FromUserID, admin)
		if err != nil {
			return err
		}
		if e.Command.Context == bitrix24.ContextKeyboard {
			return b.onButton(tx, portal, e.Message, from, cmd, e.Command.MessageID)
		}
		return b.onMessage(tx, portal, e.Message, from, &cmd)
	case *bitrix24.MessageUpdate:
		return b.onEdit(tx, portal, e.Message, e.User.ID, false)
	case *bitrix24.MessageDelete:
		return b.onEdit(tx, portal, e.Message, e.User.ID, true)
	case *bitrix24.JoinChat:
		if err := b.learnBot(tx, &portal, e.BotID); err != nil {
			return err
		}
		from, err := b.who(tx, portal, e.User, e.UserID, admin)
		if err != nil {
			return err
		}
		return b.onJoin(tx, portal, e, from)
	case *bitrix24.AppInstall:
		return b.onInstall(tx, portal)
	case *bitrix24.AppUninstall:
		b.log.Warn("the portal removed the application: nothing more will be sent there; the data stays",
			"portal", portal.ID, "domain", portal.Domain)
		return tx.MarkUninstalled(portal.ID)
	case *bitrix24.BotDelete:
		if portal.BotID != 0 && e.BotID != portal.BotID {
			return nil // another bot of the same application
		}
		b.log.Warn("the portal removed the bot: nothing more will be sent there; the data stays",
			"portal", portal.ID, "bot_id", e.BotID)
		return tx.MarkBotDeleted(portal.ID)
	}
	return nil
}

// learnBot records the bot's ID from an event when it is not known yet, so a bot
// registered by hand needs no bitrix.bot_id. After ONIMBOTDELETE only a different bot
// ID (the bot registered anew) revives the portal: late events of the deleted bot
// do not.
func (b *Bot) learnBot(tx *storage.Tx, portal *storage.Portal, botID int64) error {
	switch {
	case botID <= 0 || botID == portal.BotID:
		return nil
	case portal.BotID != 0 && !portal.BotDeleted():
		return nil // keep the registered bot; events for others share the handler
	}
	portal.BotID, portal.BotDeletedAt = botID, time.Time{}
	return tx.SetBotID(portal.ID, botID)
}

// who is the person behind an event.
type who struct {
	id     int64
	name   string
	bot    bool
	agent  bool // an agent or the second line: the agents' commands are theirs
	client bool
	admin  bool // administers the portal: may ask, and manages the roles
}

// who is the event's author with their roles on the portal; admin is a user the
// portal confirmed as its administrator (app mode), as a configured access.admins
// user is in webhook mode.
func (b *Bot) who(tx *storage.Tx, portal storage.Portal, u bitrix24.User, fallbackID, admin int64) (who, error) {
	id := u.ID
	if id == 0 {
		id = fallbackID
	}
	name := strings.TrimSpace(u.Name)
	if name == "" {
		name = strings.TrimSpace(u.FirstName + " " + u.LastName)
	}
	roles, err := tx.RolesOf(portal.ID, id)
	isAdmin := id > 0 && (admin == id || slices.Contains(b.cfg.Admins, id))
	return who{id: id, name: name, bot: u.IsBot, agent: roles.Agent || roles.Tech, client: roles.Client || isAdmin, admin: isAdmin}, err
}

// lang picks the reply language: the event's, else the configured fallback.
func (b *Bot) lang(eventLang string) string {
	switch strings.ToLower(eventLang) {
	case "ru", "en":
		return strings.ToLower(eventLang)
	}
	return b.cfg.Language
}

// turn is one event being handled: where it came from and how to answer.
type turn struct {
	b      *Bot
	tx     *storage.Tx
	portal storage.Portal
	from   who
	lang   string
	t      *texts
	// chat is the address (DIALOG_ID) of the chat the event came from ("27" or
	// "chat1001"); dialog is set
	// when that chat is one of our dialogs.
	chat   string
	dialog *storage.Dialog
	// keyboardMessageID is the message whose button was pressed (0 for typed text).
	keyboardMessageID int64
}

// own is the turn answered in its author's own chat with the bot instead: for what a
// dialog's client, who reads along there, need not see.
func (t *turn) own() *turn {
	o := *t
	o.dialog, o.chat = nil, bitrix24.UserChat(t.from.id)
	return &o
}

func (b *Bot) newTurn(tx *storage.Tx, portal storage.Portal, from who, lang, chat string) *turn {
	l := b.lang(lang)
	return &turn{b: b, tx: tx, portal: portal, from: from, lang: l, t: textsFor(l), chat: chat}
}

// onMessage handles a message (ONIMBOTMESSAGEADD), or a typed command that arrived as
// ONIMCOMMANDADD (cmd set).
func (b *Bot) onMessage(tx *storage.Tx, portal storage.Portal, m bitrix24.Message, from who, cmd *command) error {
	if from.bot || (portal.BotID != 0 && from.id == portal.BotID) || m.System {
		return nil
	}
	t := b.newTurn(tx, portal, from, m.Language, m.Chat)
	if cmd == nil {
		if c, ok := parseCommand(m.Text); ok {
			cmd = &c
		}
	}
	if m.Private() {
		return t.inMainChat(m, cmd)
	}
	d, err := t.findDialog(m)
	if err != nil {
		return err
	}
	if d == nil {
		// A chat that is not ours: only commands get an answer.
		if cmd != nil {
			return t.run(*cmd, m)
		}
		return nil
	}
	t.dialog = d
	return t.inDialog(m, cmd)
}

// findDialog finds the dialog held in the message's chat, by the chat ID the portal
// answered when the bot created it. A chat is never bound by what its events say of
// themselves: anyone can give a chat our entity. A message from a chat that claims a
// dialog whose chat is still being created is kept aside instead, and enters the
// transcript only if the portal's answer names that chat (see Settle).
func (t *turn) findDialog(m bitrix24.Message) (*storage.Dialog, error) {
	if m.ChatID <= 0 {
		return nil, nil
	}
	d, err := t.tx.DialogByChat(t.portal.ID, m.ChatID)
	if err == nil {
		return &d, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if m.ChatEntityType != EntityType || !strings.HasPrefix(m.ChatEntityID, entityIDPrefix) {
		return nil, nil
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(m.ChatEntityID, entityIDPrefix), 10, 64)
	if err != nil {
		return nil, nil
	}
	claimed, err := t.tx.Dialog(id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (claimed.PortalID != t.portal.ID || claimed.ChatID != 0 || claimed.ChatFailed)) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return nil, t.tx.AddStray(t.portal.ID, storage.StrayMessage{
		ChatID: m.ChatID, DialogID: claimed.ID, BitrixMessageID: m.ID, AuthorID: t.from.id, Text: m.Text,
	})
}

// inMainChat: commands, or a question that opens a new dialog.
func (t *turn) inMainChat(m bitrix24.Message, cmd *command) error {
	if cmd != nil {
		return t.run(*cmd, m)
	}
	// A question is the client's own: an agent who is not a client gets the agents'
	// help, and a free plan refuses it like /new.
	if ok, err := t.mayAskAsClient(); !ok {
		return err
	}
	return t.openDialog(m.Text, m.ID)
}

// inDialog: every message goes into the transcript; the client's moves their mark
// and may reopen a resolved dialog; a rename in the Bitrix24 UI is picked up.
func (t *turn) inDialog(m bitrix24.Message, cmd *command) error {
	d := t.dialog
	if cmd != nil && cmd.phrase && cmd.name == cmdNew && t.from.id != d.ClientID {
		// "Open new tab and reload", an agent's answer: support opens a dialog for
		// the client with /new, and the phrase is the client's.
		cmd = nil
	}
	role, err := t.b.record(t.tx, *d, m.ID, t.from.id, m.Text)
	if err != nil {
		return err
	}
	// A rename with the pencil: capped like a title from a command. Taken only from
	// the chat's own people, the client and support: an event proves its author, not
	// that they are in the chat it names, so anyone else's title proves nothing.
	if title := bitrix24.Shorten(cleanTitle(m.ChatTitle), maxTitle); role != storage.RoleOther && title != "" && title != d.Title && !d.TitlePending {
		if err := t.tx.RenameDialog(d.ID, title, false); err != nil {
			return err
		}
		d.Title = title
	}
	if cmd != nil {
		return t.run(*cmd, m)
	}
	if role == storage.RoleClient && !d.Active() {
		if err := t.clientWritesInResolved(); err != nil || !d.Active() {
			return err
		}
	}
	if role == storage.RoleClient {
		return t.outOfHours(*d)
	}
	return nil
}

// record puts a message into a dialog's transcript and returns its author's role
// there: the client's moves their mark, since they have seen what came before.
func (b *Bot) record(tx *storage.Tx, d storage.Dialog, messageID, authorID int64, text string) (string, error) {
	role := storage.RoleOther
	switch {
	case authorID == d.ClientID:
		role = storage.RoleClient
	default:
		roles, err := tx.RolesOf(d.PortalID, authorID)
		if err != nil {
			return "", err
		}
		if roles.Agent || roles.Tech {
			role = storage.RoleAgent
		}
	}
	seq, added, err := tx.AddMessage(storage.Message{DialogID: d.ID, BitrixMessageID: messageID, AuthorID: authorID, AuthorRole: role, Text: text})
	if err != nil {
		return "", err
	}
	// A command talks to the bot, not to the other side: an agent's /close answers
	// no one, a client's "all chats" asks support nothing (README, "Service figures").
	_, isCommand := parseCommand(text)
	if life := map[string]string{storage.RoleClient: storage.LifeClientMessage, storage.RoleAgent: storage.LifeAgentAnswer}[role]; added && life != "" && !isCommand {
		if err := tx.AddDialogEvent(d, life, authorID); err != nil {
			return "", err
		}
	}
	if err := tx.TouchDialog(d.ID); err != nil {
		return "", err
	}
	if role == storage.RoleClient {
		if err := tx.SetLastSeen(d.ID, authorID, seq); err != nil {
			return "", err
		}
	}
	return role, nil
}

// clientWritesInResolved reopens the dialog if the limit allows; otherwise says why not,
// in the dialog.
func (t *turn) clientWritesInResolved() error {
	d := t.dialog
	n, err := t.tx.CountActiveDialogs(t.portal.ID, d.ClientID)
	if err != nil {
		return err
	}
	if n >= t.b.cfg.MaxActive {
		return t.reply(t.t.LimitInDialog(t.b.cfg.MaxActive), nil)
	}
	if err := t.tx.SetDialogStatus(d.ID, storage.StatusActive); err != nil {
		return err
	}
	d.Status = storage.StatusActive
	if err := t.tx.AddDialogEvent(*d, storage.LifeReopened, t.from.id); err != nil {
		return err
	}
	return t.reply(t.t.Reopened, nil)
}

// onEdit keeps the transcript in step with edits and deletions. Only a message's
// author changes it here: an event names any MESSAGE_ID, and in app mode its author
// is proven (the token's owner) while the message it names is only claimed.
func (b *Bot) onEdit(tx *storage.Tx, portal storage.Portal, m bitrix24.Message, actor int64, deleted bool) error {
	if m.Private() || m.ChatID <= 0 {
		return nil
	}
	d, err := tx.DialogByChat(portal.ID, m.ChatID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if deleted {
		_, err = tx.DeleteMessage(d.ID, m.ID, actor)
	} else {
		_, err = tx.EditMessage(d.ID, m.ID, actor, m.Text)
	}
	return err
}

// onJoin greets a person who opens the private chat with the bot.
func (b *Bot) onJoin(tx *storage.Tx, portal storage.Portal, e *bitrix24.JoinChat, from who) error {
	if e.ChatType != "P" && strings.HasPrefix(e.Chat, "chat") {
		return nil // added to a group chat: nothing to say
	}
	t := b.newTurn(tx, portal, from, e.Language, e.Chat)
	return t.help()
}

// onButton handles a keyboard press.
func (b *Bot) onButton(tx *storage.Tx, portal storage.Portal, m bitrix24.Message, from who, cmd command, keyboardMessageID int64) error {
	t := b.newTurn(tx, portal, from, m.Language, m.Chat)
	if !m.Private() && m.ChatID > 0 {
		d, err := tx.DialogByChat(portal.ID, m.ChatID)
		if err == nil {
			t.dialog = &d
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	t.keyboardMessageID = keyboardMessageID
	return t.run(cmd, m)
}

// run dispatches a command.
func (t *turn) run(cmd command, m bitrix24.Message) error {
	switch cmd.name {
	case cmdHelp:
		return t.help()
	case cmdChats:
		if ok, err := t.mayAskAsClient(); !ok {
			return err
		}
		return t.answerLater(t.replyLane(), t.chat, answer{Command: cmdChats, Page: cmd.args})
	case cmdNew:
		// An agent's /new inside someone's dialog is for that dialog's client.
		// Inside a dialog, /new is for that dialog's client: its client asks within
		// the limit, an agent past it, and nobody else may.
		if t.dialog != nil && t.dialog.ClientID != t.from.id {
			if !t.from.agent {
				return t.reply(t.t.AgentsOnly, nil)
			}
			return t.agentNew(cmd.args, m.ID)
		}
		if ok, err := t.mayAskAsClient(); !ok {
			return err
		}
		return t.openDialog(cmd.args, m.ID)
	case cmdOpen:
		if ok, err := t.mayAskAsClient(); !ok {
			return err
		}
		return t.openFromList(cmd.args)
	case cmdRename:
		return t.rename(cmd.args)
	case cmdClose, cmdResolve:
		return t.closeDialog(cmd.args)
	case cmdReopen:
		return t.reopenDialog()
	case cmdEscalate:
		return t.escalate()
	case cmdQueue:
		if !t.from.agent {
			return t.reply(t.t.AgentsOnly, nil)
		}
		return t.answerAgent(answer{Command: cmdQueue, Args: cmd.args}, t.t.QueueSentPrivately)
	case cmdAccess:
		return t.answerAccess(cmd.args, t.keyboardMessageID)
	case cmdRate:
		return t.rate(cmd.args, t.keyboardMessageID)
	case cmdAgents, cmdTech, cmdClients:
		return t.manageRoles(cmd.name, cmd.args)
	case cmdStats:
		return t.stats(cmd.args)
	case cmdKeep:
		return t.keepOpen(cmd.args)
	case cmdTake:
		return t.take()
	case cmdAssign:
		return t.assign(cmd.args)
	case cmdRelease:
		return t.release()
	}
	return t.reply(t.t.UnknownCommand, nil)
}

// mayAsk checks that the author may talk to support at all. When not, it queues the
// refusal and reports false; nothing else may change.
func (t *turn) mayAsk() (bool, error) {
	if t.from.agent {
		return true, nil
	}
	return t.mayAskAsClient()
}

// mayAskAsClient is mayAsk for what only clients do: their own questions and their
// list. It is the one place of the plan rule: agents help clients on any plan; a
// client's own question needs a commercial plan, whoever else the client is.
func (t *turn) mayAskAsClient() (bool, error) {
	if refusal := t.refusalAsClient(); refusal != "" {
		return false, t.reply(refusal, nil)
	}
	return true, nil
}

// refusalAsClient is what mayAskAsClient answers someone who may not ask, or "".
func (t *turn) refusalAsClient() string {
	switch {
	case !t.from.client && t.from.agent:
		return t.t.AgentHelp
	case !t.from.client:
		return t.t.NotAllowed
	case t.b.cfg.FreePlan:
		return t.t.FreePlan
	}
	return ""
}

func (t *turn) help() error {
	switch {
	case t.from.client && t.b.cfg.FreePlan && t.from.agent:
		return t.reply(t.t.FreePlan+"\n\n"+t.t.AgentHelp, nil)
	case t.from.client && t.b.cfg.FreePlan:
		return t.reply(t.t.FreePlan, nil)
	case t.from.client:
		text := t.t.ClientHelp(t.b.cfg.MaxActive)
		if t.from.agent {
			text += "\n\n" + t.t.AgentHelp
		}
		if t.from.admin {
			text += "\n\n" + t.t.AdminHelp
		}
		return t.reply(text, clientKeyboard(t.t))
	case t.from.agent:
		return t.reply(t.t.AgentHelp, nil)
	}
	return t.reply(t.t.NotAllowed, nil)
}

// reply sends text (and an optional keyboard) to the chat the event came from.
func (t *turn) reply(text string, kb *bitrix24.Keyboard) error {
	return t.send(t.replyLane(), t.chat, text, kb, 0)
}

// send posts a message into a chat, in lane. With awaits set, the message waits for
// that dialog's chat and may name it with bitrix24.AwaitedChat as to and
// bitrix24.AwaitedChatLink in its text, and in its keyboard.
func (t *turn) send(lane outbox.Lane, to, text string, kb *bitrix24.Keyboard, awaits int64) error {
	return t.enqueue(outbox.Entry{Lane: lane, Awaits: awaits}, bitrix24.SendMessage{To: to, Text: text, Keyboard: kb})
}

// enqueue writes one action into the outbox; e says its lane and what its result
// will mean.
func (t *turn) enqueue(e outbox.Entry, a bitrix24.Action) error {
	return enqueue(t.tx, t.portal.ID, e, a)
}

func enqueue(tx *storage.Tx, portalID int64, e outbox.Entry, a bitrix24.Action) error {
	e.Action = a
	return outbox.Put(tx, portalID, e)
}

// chatLink links to a dialog's chat, or says the chat is still being created. A
// message that waits for the chat links to it with pendingChatLink instead.
func (t *turn) chatLink(d storage.Dialog, text string) string {
	if d.ChatID == 0 {
		return "[i]" + t.t.ChatPending + "[/i]"
	}
	return bitrix24.ChatLink(d.ChatID, text)
}
