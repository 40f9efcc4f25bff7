package bot

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// What the bot writes is bounded whatever the data, so every message stays well under
// Bitrix24's limits (bitrix24.Fit is the last guard): lists show a page of lines,
// quotes of what users wrote are shortened, titles are capped.
const (
	pageSize    = 20   // lines of a list per message
	maxQuote    = 1000 // characters of a user's text quoted in a message
	maxAskAgain = 1000 // characters put back into the input field
	maxButton   = 40   // characters of a title on a button
	maxName     = 100  // characters of a person's name
)

// chatsAnswer is the answer to "all chats" (page 1, or the page args names): active
// dialogs first, then resolved, with unread counts, a button per active dialog and,
// when more follow, a button for the next page. It only reads: written from a read
// snapshot just before it is sent (answers.go).
func (t *turn) chatsAnswer(args string) (string, *bitrix24.Keyboard, error) {
	list, err := t.tx.ClientDialogs(t.portal.ID, t.from.id)
	if err != nil {
		return "", nil, err
	}
	if len(list) == 0 {
		return t.t.ListEmpty, &bitrix24.Keyboard{Buttons: []bitrix24.Button{
			button(t.t.BtnOpenNew, cmdNew, "", true), button(t.t.BtnHelp, cmdHelp, "", false),
		}}, nil
	}
	unread := 0
	for _, d := range list {
		unread += d.Unread
	}
	var b strings.Builder
	b.WriteString(t.t.ListHeader(len(list), unread))
	from, to, next := page(args, len(list))
	if from > 0 || to < len(list) {
		b.WriteString("\n" + t.t.Showing(from+1, to, len(list)))
	}
	kb := &bitrix24.Keyboard{}
	section := ""
	for _, d := range list[from:to] {
		if s := t.sectionOf(d.Dialog); s != section {
			section = s
			b.WriteString("\n\n" + s)
		}
		b.WriteString("\n" + t.listLine(d, kb))
	}
	if next > 0 {
		kb.Buttons = append(kb.Buttons, button(t.t.BtnMore, cmdChats, strconv.Itoa(next), false))
	}
	kb.Buttons = append(kb.Buttons, button(t.t.BtnOpenNew, cmdNew, "", true))
	return b.String(), kb, nil
}

// page is the part of a list of n lines that page number args shows: lines [from,
// to), and the next page's number, 0 when this is the last.
func page(args string, n int) (from, to, next int) { return pageOf(args, n, pageSize) }

// pageOf is page for pages of size items.
func pageOf(args string, n, size int) (from, to, next int) {
	p, err := strconv.Atoi(strings.TrimSpace(args))
	if err != nil || p < 1 {
		p = 1
	}
	pages := (n + size - 1) / size
	p = min(p, max(pages, 1))
	from, to = (p-1)*size, min(p*size, n)
	if p < pages {
		next = p + 1
	}
	return from, to, next
}

// quote is a user's text as a message quotes it: shortened and escaped.
func quote(text string) string {
	return bitrix24.Escape(bitrix24.Shorten(strings.TrimSpace(text), maxQuote))
}

// listLine is a dialog's line in a list; an active dialog also gets a button in kb.
func (t *turn) listLine(d storage.DialogSummary, kb *bitrix24.Keyboard) string {
	title := bitrix24.EscapeLine(d.Title)
	if d.Active() {
		short := bitrix24.EscapeLine(bitrix24.Shorten(d.Title, maxButton))
		kb.Buttons = append(kb.Buttons, openDialogButton(t.t, d.Number, short, d.Unread)...)
	}
	return t.t.ListLine(d.Number, title, t.status(d.Dialog), d.Unread, t.chatLink(d.Dialog, t.t.OpenLink))
}

func (t *turn) sectionOf(d storage.Dialog) string {
	if d.Active() {
		return t.t.SectionActive
	}
	return t.t.SectionResolved
}

func (t *turn) status(d storage.Dialog) string {
	switch {
	case !d.Active():
		return t.t.StatusResolved
	case !d.EscalatedAt.IsZero():
		return t.t.StatusEscalated
	}
	return t.t.StatusActive
}

// openDialog opens a dialog for the author, within the limit. The count and the
// insert share the event's transaction, and transactions run one at a time, so
// concurrent requests cannot both take the last place.
func (t *turn) openDialog(question string, sourceMessageID int64) error {
	if none, err := t.noAgents(); none || err != nil {
		if err != nil {
			return err
		}
		return t.reply(t.t.NoAgents, askAgain(t.t, strings.TrimSpace(question)))
	}
	active, err := t.tx.CountActiveDialogs(t.portal.ID, t.from.id)
	if err != nil {
		return err
	}
	if active >= t.b.cfg.MaxActive {
		return t.limitReached()
	}
	d, err := t.createDialog(newDialog{
		clientID: t.from.id, clientName: t.from.name, lang: t.lang,
		question: question, questionMsgID: sourceMessageID, questionBy: t.from.id, questionRole: storage.RoleClient,
	})
	if err != nil {
		return err
	}
	return t.send(t.replyLane(), t.chat, t.t.Opened(d.Number, pendingChatLink(d)),
		goToChat(t.t, bitrix24.AwaitedChat, true), d.ID)
}

// noAgents reports a portal with no support agents: a dialog opened there would be a
// chat of the client and the bot, with nobody to answer, so none is opened and the
// client is told why (and keeps the question).
func (t *turn) noAgents() (bool, error) {
	agents, err := t.tx.Members(t.portal.ID, storage.RoleAgent)
	return len(agents) == 0, err
}

// limitReached lists the client's active dialogs and says how to free a place.
func (t *turn) limitReached() error {
	list, err := t.tx.ClientDialogs(t.portal.ID, t.from.id)
	if err != nil {
		return err
	}
	var active []storage.DialogSummary
	for _, d := range list {
		if d.Active() {
			active = append(active, d)
		}
	}
	var lines []string
	kb := &bitrix24.Keyboard{}
	_, to, _ := page("", len(active))
	for _, d := range active[:to] {
		lines = append(lines, t.listLine(d, kb))
	}
	if to < len(active) {
		lines = append(lines, t.t.Showing(1, to, len(active)))
		kb.Buttons = append(kb.Buttons, button(t.t.BtnAllChats, cmdChats, "", false))
	}
	return t.reply(t.t.LimitReached(t.b.cfg.MaxActive, lines), kb)
}

// newDialog describes a dialog to open: for whom, in which language, and the
// question it starts with (if any) and who wrote it.
type newDialog struct {
	clientID      int64
	clientName    string
	lang          string
	question      string
	questionMsgID int64 // the Bitrix24 message that carried the question
	questionBy    int64
	questionRole  string
}

// createDialog creates a dialog and queues, in its lane: the chat's creation, then
// the greeting inside it, which waits for the chat's ID. The caller answers the
// request; answers that link to the chat must wait for it too (AwaitsDialog).
func (t *turn) createDialog(nd newDialog) (storage.Dialog, error) {
	tx := textsFor(nd.lang)
	d, err := t.tx.CreateDialog(storage.NewDialog{
		PortalID: t.portal.ID, ClientID: nd.clientID, ClientName: nd.clientName, Language: nd.lang, Title: tx.DefaultTitle,
	})
	if err != nil {
		return d, err
	}
	if err := t.tx.AddDialogEvent(d, storage.LifeOpened, t.from.id); err != nil {
		return d, err
	}
	agents, err := t.tx.Members(t.portal.ID, storage.RoleAgent)
	if err != nil {
		return d, err
	}
	users := []int64{nd.clientID}
	for _, a := range agents {
		if a != nd.clientID {
			users = append(users, a)
		}
	}
	err = t.enqueue(outbox.Entry{Lane: outbox.DialogLane(d.ID), Effect: dialogChat(d.ID)}, bitrix24.CreateChat{
		Title: d.Title, Users: users, EntityType: EntityType, EntityID: entityIDPrefix + strconv.FormatInt(d.ID, 10),
	})
	if err != nil {
		return d, err
	}
	question := strings.TrimSpace(nd.question)
	if question != "" && nd.questionMsgID != 0 { // < 0: typed on the sidebar page, no Bitrix24 message
		seq, _, err := t.tx.AddMessage(storage.Message{
			DialogID: d.ID, BitrixMessageID: nd.questionMsgID, AuthorID: nd.questionBy, AuthorRole: nd.questionRole, Text: question,
		})
		if err == nil && nd.questionRole == storage.RoleClient {
			err = t.tx.AddDialogEvent(d, storage.LifeClientMessage, nd.questionBy)
		}
		if err != nil {
			return d, err
		}
		if nd.questionRole == storage.RoleClient {
			if err := t.tx.SetLastSeen(d.ID, nd.clientID, seq); err != nil {
				return d, err
			}
		}
	}
	greeting := tx.Greeting(d.Number, mention(nd.clientID, nd.clientName), quote(question))
	if err := t.send(outbox.DialogLane(d.ID), bitrix24.AwaitedChat, greeting, nil, d.ID); err != nil {
		return d, err
	}
	if nd.questionRole == storage.RoleClient { // the client's own question, typed or on the page
		return d, t.outOfHours(d)
	}
	return d, nil
}

// pendingChatLink links to a dialog's chat whose ID is not known yet: the message
// carrying it must wait for the chat (AwaitsDialog).
func pendingChatLink(d storage.Dialog) string {
	return bitrix24.AwaitedChatLink(bitrix24.EscapeLine(d.Title))
}

// mention is a [USER=…] mention with the name escaped.
func mention(userID int64, name string) string {
	return "[USER=" + strconv.FormatInt(userID, 10) + "]" + displayName(userID, name) + "[/USER]"
}

// replyLane is the ordering lane of answers to the chat the event came from.
func (t *turn) replyLane() outbox.Lane {
	if t.dialog != nil {
		return outbox.DialogLane(t.dialog.ID)
	}
	return outbox.LaneOf(t.chat)
}

// openFromList handles the list's button for dialog N: the client has seen it all.
func (t *turn) openFromList(args string) error {
	n, err := strconv.Atoi(strings.TrimSpace(args))
	if err != nil || n <= 0 {
		return t.reply(t.t.UnknownCommand, nil)
	}
	d, err := t.tx.DialogByNumber(t.portal.ID, n)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && d.ClientID != t.from.id) {
		return t.reply(t.t.DialogNotFound(n), nil)
	}
	if err != nil {
		return err
	}
	if err := t.tx.MarkAllSeen(d.ID, t.from.id); err != nil {
		return err
	}
	var kb *bitrix24.Keyboard
	if d.ChatID != 0 {
		kb = goToChat(t.t, bitrix24.GroupChat(d.ChatID), false)
	}
	return t.reply(t.t.OpenedFor(d.Number, t.chatLink(d, bitrix24.EscapeLine(d.Title))), kb)
}

// rename handles "rename N title" (clients: their own dialogs; agents: any). Inside a
// dialog's chat the number may be left out.
func (t *turn) rename(args string) error {
	if ok, err := t.mayAsk(); !ok {
		return err
	}
	var d storage.Dialog
	title := args
	first, rest, _ := strings.Cut(strings.TrimSpace(args), " ")
	found := false
	if n, err := strconv.Atoi(first); err == nil && strings.TrimSpace(rest) != "" {
		d, err = t.tx.DialogByNumber(t.portal.ID, n)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		found = err == nil && (t.from.agent || d.ClientID == t.from.id)
		// Inside a dialog, a number that names none of theirs ("/rename 2024 budget
		// report") is the title's first word, and this dialog is the one renamed.
		if !found && t.dialog == nil {
			return t.reply(t.t.DialogNotFound(n), nil)
		}
		if found {
			title = rest
		}
	}
	if !found {
		if t.dialog == nil {
			return t.reply(t.t.RenameUsage, nil)
		}
		d = *t.dialog
		if !t.from.agent && d.ClientID != t.from.id {
			return t.reply(t.t.NotAllowed, nil)
		}
	}
	title, refusal, err := t.renameTo(d, title)
	switch {
	case err != nil:
		return err
	case refusal != "":
		return t.reply(refusal, nil)
	}
	done := t.t.Renamed(d.Number, bitrix24.EscapeLine(title))
	if t.dialog != nil && d.ID != t.dialog.ID {
		// Another dialog, renamed from inside this one, whose client reads along: its
		// title is not theirs to see, and the author hears it in their own chat.
		return t.own().reply(done, nil)
	}
	return t.reply(done, nil)
}

// renameTo gives dialog d the title, if the rules take it: the title as stored, or
// the refusal to say instead. The chat is renamed through the outbox, after its
// creation if it is still under way.
func (t *turn) renameTo(d storage.Dialog, title string) (string, string, error) {
	title = cleanTitle(title)
	if title == "" {
		return "", t.t.RenameUsage, nil
	}
	if utf8.RuneCountInString(title) > maxTitle {
		return "", t.t.TitleTooLong(maxTitle), nil
	}
	if err := t.tx.RenameDialog(d.ID, title, true); err != nil {
		return "", "", err
	}
	err := t.enqueue(outbox.Entry{Lane: outbox.DialogLane(d.ID), Awaits: d.ID, Effect: titleSent(d.ID)},
		bitrix24.RenameChat{Chat: bitrix24.AwaitedChat, Title: title})
	return title, "", err
}

// cleanTitle makes a title one line: whitespace runs become one space, hidden
// characters (bitrix24.Hidden: control and format characters) go.
func cleanTitle(s string) string {
	s = strings.Map(func(r rune) rune {
		if bitrix24.Hidden(r) && !unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}
