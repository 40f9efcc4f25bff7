package bot

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// The sidebar page (app mode's IM_SIDEBAR placement): what it shows a viewer and what
// its buttons do, by the rules, words and outbox of the commands. "Open new" is the
// command's (the limit, the dialog's chat and greeting, the answer in the client's
// main chat), the pencil is "rename", opening a dialog is the list's button, which
// marks it read. Texts are the commands' own, as plain text: the page escapes what it
// shows itself. Nothing here answers in the chat the page was opened in.

// Viewer is who looks at the page, as the portal named them (user.current).
type Viewer struct {
	UserID int64
	Name   string
	Admin  bool // the portal confirmed them as one of its administrators (user.admin)
}

// Page is what the page shows its viewer.
type Page struct {
	Lang string // "ru" or "en"
	// Client: the viewer's own dialogs and Open new are shown; Agent: the agents'
	// queue. Someone who is neither gets Refusal.
	Client, Agent bool
	// Refusal is why the viewer has no dialogs of their own here, in the command's
	// words (not allowed to ask, the free plan); "" for a client.
	Refusal string
	Header  string       // "Your questions: 3, unread messages: 2", as "all chats" starts
	Unread  int          // over all the dialogs
	Dialogs []PageDialog // active first, then resolved, as "all chats" lists them
	More    string       // "showing 1–100 of 130" when not all are shown
	// Limit is why Open new is refused now, the command's limit message; "" when it
	// is not.
	Limit       string
	QueueHeader string // "Waiting for an answer: 2"
	Queue       []PageWaiting
	Words       PageWords
}

// PageDialog is one dialog of the client's list.
type PageDialog struct {
	Number    int
	Title     string // as the client or an agent gave it: the page escapes it
	Status    string // "active", "resolved", "with technical support"
	Active    bool
	Escalated bool
	Unread    int
	ChatID    int64 // 0 while the chat is being created
}

// PageWaiting is one dialog of the agents' queue.
type PageWaiting struct {
	Number  int
	Title   string
	Client  string // the client's name, or "#27"
	Waited  string // "2 h 5 min"
	Waiting int    // the client's messages since the last agent answer
	ChatID  int64
	Owner   string // "owner #50" or "no owner", with "near/past its target" when so
}

// PageWords are the commands' words that the page reuses.
type PageWords struct {
	Empty, SectionActive, SectionResolved, ChatPending, OpenNew, Open, QueueEmpty string
}

// PageResult is what one of the page's buttons did.
type PageResult struct {
	Number int    // the dialog opened, renamed or marked read
	Title  string // its new title
	ChatID int64  // the chat of the dialog marked read; 0 while it is being created
	// Refusal: the rules refused, in the command's words; nothing changed.
	Refusal string
	// Duplicate: this page's Open new was already done (the form sent twice).
	Duplicate bool
}

// maxPageDialogs bounds the page's list; the rest are counted, as a list's pages are.
const maxPageDialogs = 5 * pageSize

// PageQuestionID stands for the Bitrix24 message of a question typed on the page,
// which has none: it goes into the transcript as the client's first message.
const pageQuestionID = -1

// PageLang is the page's language for the LANG its portal sent: ru or en, else the
// configured fallback.
func (b *Bot) PageLang(lang string) string { return b.lang(lang) }

// pageTurn is the page's request as the rules see it: from the viewer, answering (if
// at all) in their main chat with the bot.
func (b *Bot) pageTurn(tx *storage.Tx, portal storage.Portal, v Viewer, lang string) (*turn, error) {
	var admin int64
	if v.Admin {
		admin = v.UserID
	}
	from, err := b.who(tx, portal, bitrix24.User{ID: v.UserID, Name: v.Name}, v.UserID, admin)
	if err != nil {
		return nil, err
	}
	return b.newTurn(tx, portal, from, lang, strconv.FormatInt(v.UserID, 10)), nil
}

// Page is what the page shows v: a client's dialogs as "all chats" lists them, an
// agent's queue as /queue shows it, or the refusal.
func (b *Bot) Page(tx *storage.Tx, portal storage.Portal, v Viewer, lang string) (Page, error) {
	t, err := b.pageTurn(tx, portal, v, lang)
	if err != nil {
		return Page{}, err
	}
	tt := t.t
	pg := Page{Lang: t.lang, Words: PageWords{
		Empty: plain(tt.ListEmpty), SectionActive: plain(tt.SectionActive), SectionResolved: plain(tt.SectionResolved),
		ChatPending: tt.ChatPending, OpenNew: tt.BtnOpenNew, Open: tt.OpenLink, QueueEmpty: plain(tt.QueueEmpty),
	}}
	if t.from.agent {
		if err := t.pageQueue(&pg); err != nil {
			return Page{}, err
		}
	}
	if refusal := t.refusalAsClient(); refusal != tt.AgentHelp { // an agent who is no client has the queue, not a refusal
		pg.Refusal = plain(refusal)
	}
	if !t.from.client || b.cfg.FreePlan {
		return pg, nil
	}
	pg.Client = true
	list, err := tx.ClientDialogs(portal.ID, t.from.id)
	if err != nil {
		return Page{}, err
	}
	active := 0
	for _, d := range list {
		pg.Unread += d.Unread
		if d.Active() {
			active++
		}
	}
	pg.Header = plain(tt.ListHeader(len(list), pg.Unread))
	if len(list) > maxPageDialogs {
		pg.More = plain(tt.Showing(1, maxPageDialogs, len(list)))
		list = list[:maxPageDialogs]
	}
	for _, d := range list {
		pg.Dialogs = append(pg.Dialogs, PageDialog{Number: d.Number, Title: d.Title, Status: t.status(d.Dialog), Active: d.Active(),
			Escalated: !d.EscalatedAt.IsZero(), Unread: d.Unread, ChatID: d.ChatID})
	}
	if active >= b.cfg.MaxActive {
		pg.Limit = t.limitText()
	}
	return pg, nil
}

// pageQueue fills in the agents' queue, as /queue lists it.
func (t *turn) pageQueue(pg *Page) error {
	list, err := t.tx.WaitingDialogs(t.portal.ID)
	if err != nil {
		return err
	}
	desk, err := t.tx.DeskStates(t.portal.ID)
	if err != nil {
		return err
	}
	pg.Agent = true
	pg.QueueHeader = plain(t.t.QueueHeader(len(list)))
	now := t.tx.Now()
	for _, w := range list[:min(len(list), maxPageDialogs)] {
		pg.Queue = append(pg.Queue, PageWaiting{Number: w.Number, Title: w.Title, Client: pageName(w.ClientID, w.ClientName),
			Waited: t.t.Duration(max(now.Sub(w.WaitingSince), time.Duration(0))), Waiting: w.Waiting, ChatID: w.ChatID,
			Owner: strings.TrimPrefix(plain(t.deskNote(desk[w.ID], now)), " · ")})
	}
	return nil
}

// PageOpenNew is the page's Open new: a dialog for the viewer with the optional
// question, within the limit, as the command opens it; the answer with the link
// goes to the viewer's main chat. once names the page the form came from: a second
// Open new from it (the form sent again) is a Duplicate and opens nothing.
func (b *Bot) PageOpenNew(tx *storage.Tx, portal storage.Portal, v Viewer, lang, question, once string) (PageResult, error) {
	t, err := b.pageTurn(tx, portal, v, lang)
	if err != nil {
		return PageResult{}, err
	}
	if refusal := t.refusalAsClient(); refusal != "" {
		return PageResult{Refusal: plain(refusal)}, nil
	}
	if once != "" {
		fresh, err := tx.MarkProcessed(portal.ID, "sidebar-new:"+once, "SIDEBAR_NEW")
		if err != nil || !fresh {
			return PageResult{Duplicate: !fresh}, err
		}
	}
	if none, err := t.noAgents(); none || err != nil {
		return PageResult{Refusal: plain(t.t.NoAgents)}, err
	}
	// The count and the insert share the transaction, as the command's do.
	active, err := tx.CountActiveDialogs(portal.ID, t.from.id)
	if err != nil {
		return PageResult{}, err
	}
	if active >= b.cfg.MaxActive {
		return PageResult{Refusal: t.limitText()}, nil
	}
	var msgID int64
	if strings.TrimSpace(question) != "" {
		msgID = pageQuestionID
	}
	d, err := t.createDialog(newDialog{
		clientID: t.from.id, clientName: t.from.name, lang: t.lang,
		question: question, questionMsgID: msgID, questionBy: t.from.id, questionRole: storage.RoleClient,
	})
	if err != nil {
		return PageResult{}, err
	}
	err = t.send(t.replyLane(), t.chat, t.t.Opened(d.Number, pendingChatLink(d)), goToChat(t.t, bitrix24.AwaitedChat, true), d.ID)
	return PageResult{Number: d.Number, Title: d.Title}, err
}

// PageRename is the page's pencil: "rename N title", for the viewer's own dialogs
// (an agent's: any).
func (b *Bot) PageRename(tx *storage.Tx, portal storage.Portal, v Viewer, lang string, number int, title string) (PageResult, error) {
	t, err := b.pageTurn(tx, portal, v, lang)
	if err != nil {
		return PageResult{}, err
	}
	if !t.from.agent {
		if refusal := t.refusalAsClient(); refusal != "" {
			return PageResult{Refusal: plain(refusal)}, nil
		}
	}
	d, refusal, err := t.pageDialog(number, t.from.agent)
	if err != nil || refusal != "" {
		return PageResult{Refusal: refusal}, err
	}
	title, refusal, err = t.renameTo(d, title)
	if err != nil || refusal != "" {
		return PageResult{Refusal: plain(refusal)}, err
	}
	return PageResult{Number: d.Number, Title: title}, nil
}

// PageOpen is opening dialog N from the page, as the list's button does: the client
// has seen all of it.
func (b *Bot) PageOpen(tx *storage.Tx, portal storage.Portal, v Viewer, lang string, number int) (PageResult, error) {
	t, err := b.pageTurn(tx, portal, v, lang)
	if err != nil {
		return PageResult{}, err
	}
	if refusal := t.refusalAsClient(); refusal != "" {
		return PageResult{Refusal: plain(refusal)}, nil
	}
	d, refusal, err := t.pageDialog(number, false)
	if err != nil || refusal != "" {
		return PageResult{Refusal: refusal}, err
	}
	if err := tx.MarkAllSeen(d.ID, t.from.id); err != nil {
		return PageResult{}, err
	}
	return PageResult{Number: d.Number, Title: d.Title, ChatID: d.ChatID}, nil
}

// pageDialog is dialog №number if the viewer may act on it: their own, or any for
// an agent; otherwise the refusal, which does not tell someone else's dialog from
// none.
func (t *turn) pageDialog(number int, anyClient bool) (storage.Dialog, string, error) {
	d, err := t.tx.DialogByNumber(t.portal.ID, number)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (d.ChatFailed || (!anyClient && d.ClientID != t.from.id))) {
		return storage.Dialog{}, t.t.DialogNotFound(number), nil
	}
	return d, "", err
}

// limitText is the command's limit message without its list of dialogs, which the
// page shows itself.
func (t *turn) limitText() string {
	var lines []string
	for _, l := range strings.Split(plain(t.t.LimitReached(t.b.cfg.MaxActive, nil)), "\n") {
		l = strings.TrimSpace(l)
		if before, ok := strings.CutSuffix(l, ":"); ok {
			l = before + "." // it introduced the list
		}
		if l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// pageName is a person's name as the page shows it: shortened, or their number.
func pageName(userID int64, name string) string {
	if name = strings.TrimSpace(name); name == "" {
		return "#" + strconv.FormatInt(userID, 10)
	}
	return bitrix24.Shorten(name, maxName)
}

var bbTag = regexp.MustCompile(`(?i)\[/?(b|i|u|s|code|url|user|chat|send|put)(=[^\]]*)?\]`)

// plain is one of the bot's texts without its BB-codes: the words as the page shows
// them. The texts it is given hold no user text, whose brackets would go too.
func plain(bb string) string {
	s := strings.NewReplacer("[br]", "\n", "[BR]", "\n", "#BR#", "\n").Replace(bb)
	return strings.ReplaceAll(bbTag.ReplaceAllString(s, ""), "\u200b", "")
}
