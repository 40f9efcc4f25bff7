package localportal

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
)

// What the messenger page does, as a person on the portal would in Bitrix24's own.

// Errors the page's actions answer.
var (
	ErrNoPerson  = errors.New("no such person on the local portal")
	ErrNoChat    = errors.New("the person is not in that chat")
	ErrNoMessage = errors.New("no such message of theirs in that chat")
	ErrEmpty     = errors.New("an empty message")
	ErrTooLong   = errors.New("the text is too long")
	ErrNotReady  = errors.New("the bot is not registered on the local portal yet: try again in a moment")
)

// maxText bounds what a person may write: Bitrix24's limit on a message.
const maxText = 20000

// Chat is a chat as a person's list shows it.
type Chat struct {
	DialogID string // "1": the private chat with the bot; "chat1001"
	Title    string
	Unread   int
	Private  bool // the chat with the bot
	LastID   int64
}

// Message is a message as the page shows it.
type Message struct {
	ID       int64
	AuthorID int64 // 0: the bot
	Author   string
	Mine     bool
	Text     string // BB-code as written; the page renders it (RenderBB)
	Date     time.Time
	Deleted  bool
	Buttons  []bitrix24.Button
}

// person checks a user ID against the people.
func person(userID int64) (Person, error) {
	p, ok := PersonOf(userID)
	if !ok {
		return Person{}, ErrNoPerson
	}
	return p, nil
}

// BotName is the bot's name, as registered, "" before it is.
func (lp *Portal) BotName() string {
	for _, b := range lp.v2.Bots() {
		return strings.TrimSpace(b.Name + " " + b.LastName)
	}
	return ""
}

// Chats are the chats userID is in: their chat with the bot first, then the group
// chats, the latest activity first, each with the messages they have not seen.
func (lp *Portal) Chats(userID int64) ([]Chat, error) {
	if _, err := person(userID); err != nil {
		return nil, err
	}
	private := strconv.FormatInt(userID, 10)
	chats := []Chat{{DialogID: private, Title: cmp.Or(lp.BotName(), "Support bot"), Private: true}}
	for _, c := range lp.portal.Chats() {
		if slices.Contains(c.Users, userID) {
			chats = append(chats, Chat{DialogID: bitrix24.GroupChat(c.ID), Title: c.Title})
		}
	}
	lp.mu.Lock()
	seen := lp.reads[userID]
	lp.mu.Unlock()
	for i := range chats {
		for _, m := range lp.portal.Messages(chats[i].DialogID) {
			chats[i].LastID = m.ID
			if m.ID > seen[chats[i].DialogID] && m.AuthorID != userID && !m.Deleted {
				chats[i].Unread++
			}
		}
	}
	slices.SortStableFunc(chats[1:], func(a, b Chat) int { return cmp.Compare(b.LastID, a.LastID) })
	return chats, nil
}

// member reports whether userID is in dialog.
func (lp *Portal) member(userID int64, dialog string) bool {
	if dialog == strconv.FormatInt(userID, 10) {
		return true
	}
	id, ok := strings.CutPrefix(dialog, "chat")
	n, err := strconv.ParseInt(id, 10, 64)
	if !ok || err != nil {
		return false
	}
	c, ok := lp.portal.Chat(n)
	return ok && slices.Contains(c.Users, userID)
}

// Read returns the messages of a chat userID is in, oldest first, and marks them seen.
func (lp *Portal) Read(userID int64, dialog string) ([]Message, error) {
	if _, err := person(userID); err != nil {
		return nil, err
	}
	if !lp.member(userID, dialog) {
		return nil, ErrNoChat
	}
	bot := cmp.Or(lp.BotName(), "Support bot")
	var out []Message
	for _, m := range lp.portal.Messages(dialog) {
		author := bot
		if p, ok := PersonOf(m.AuthorID); ok {
			author = p.Name()
		}
		out = append(out, Message{ID: m.ID, AuthorID: m.AuthorID, Author: author, Mine: m.AuthorID == userID, Text: m.Text,
			Date: m.Date, Deleted: m.Deleted, Buttons: m.Buttons()})
	}
	if n := len(out); n > 0 {
		lp.mu.Lock()
		if lp.reads[userID] == nil {
			lp.reads[userID] = map[string]int64{}
		}
		changed := lp.reads[userID][dialog] != out[n-1].ID
		lp.reads[userID][dialog] = out[n-1].ID
		var err error
		if changed {
			err = lp.save()
		}
		lp.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkText refuses what no messenger would send.
func checkText(text string) (string, error) {
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return "", ErrEmpty
	case utf8.RuneCountInString(text) > maxText:
		return "", ErrTooLong
	}
	return text, nil
}

// Send posts userID's message in dialog: a registered slash command ("/help") goes
// to the bot as a command, anything else as a message, as Bitrix24 sends them.
func (lp *Portal) Send(userID int64, dialog, text string) error {
	text, err := checkText(text)
	if err != nil {
		return err
	}
	if _, err := person(userID); err != nil {
		return err
	}
	if !lp.member(userID, dialog) {
		return ErrNoChat
	}
	if !lp.v2.Fetching() { // Bitrix24 has no bot to write to before it is registered
		return ErrNotReady
	}
	lp.mu.Lock()
	defer lp.mu.Unlock()
	id, ok := lp.portal.AddUserMessage(dialog, userID, text)
	if !ok {
		return ErrNoChat
	}
	if strings.HasPrefix(text, "/") {
		command, params, _ := strings.Cut(text, " ")
		if _, ok := lp.v2.Commanded(userID, dialog, id, command, strings.TrimSpace(params), false); ok {
			return lp.save()
		}
	}
	lp.v2.Said(userID, dialog, id, text, false)
	return lp.save()
}

// Edit changes userID's own message in dialog, or deletes it (deleted).
func (lp *Portal) Edit(userID int64, dialog string, messageID int64, text string, deleted bool) error {
	if !deleted {
		var err error
		if text, err = checkText(text); err != nil {
			return err
		}
	}
	if !lp.member(userID, dialog) {
		return ErrNoChat
	}
	if !slices.ContainsFunc(lp.portal.Messages(dialog), func(m b24test.Message) bool { return m.ID == messageID }) {
		return ErrNoMessage
	}
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if _, ok := lp.portal.EditUserMessage(messageID, userID, text, deleted); !ok {
		return ErrNoMessage
	}
	if deleted {
		lp.v2.Deleted(userID, dialog, messageID)
	} else {
		lp.v2.Said(userID, dialog, messageID, text, true)
	}
	return lp.save()
}

// Press presses button i of the bot's message messageID in dialog. It answers the
// chat to open for a button that opens one (ACTION DIALOG) and the link of a link
// button; a command button goes to the bot, as a press.
func (lp *Portal) Press(userID int64, dialog string, messageID int64, i int) (openDialog, link string, err error) {
	if !lp.member(userID, dialog) {
		return "", "", ErrNoChat
	}
	var buttons []bitrix24.Button
	for _, m := range lp.portal.Messages(dialog) {
		if m.ID == messageID && m.AuthorID == 0 {
			buttons = m.Buttons()
		}
	}
	if i < 0 || i >= len(buttons) {
		return "", "", ErrNoMessage
	}
	b := buttons[i]
	switch {
	case b.Command != "":
		lp.mu.Lock()
		defer lp.mu.Unlock()
		if _, ok := lp.v2.Commanded(userID, dialog, messageID, b.Command, b.CommandParams, true); !ok {
			return "", "", ErrNoMessage
		}
		return "", "", lp.save()
	case strings.EqualFold(b.Action, "DIALOG"):
		return b.ActionValue, "", nil
	case strings.EqualFold(b.Action, "SEND"):
		return "", "", lp.Send(userID, dialog, b.ActionValue)
	case b.Link != "":
		if u, err := url.Parse(b.Link); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
			return "", b.Link, nil
		}
	}
	return "", "", nil
}

// Rename renames a group chat userID is in (the pencil): the bot learns the new title
// from the chat of the next event, as from Bitrix24.
func (lp *Portal) Rename(userID int64, dialog, title string) error {
	title = strings.Join(strings.Fields(title), " ")
	if title == "" {
		return ErrEmpty
	}
	if utf8.RuneCountInString(title) > 255 {
		return ErrTooLong
	}
	id, ok := strings.CutPrefix(dialog, "chat")
	n, err := strconv.ParseInt(id, 10, 64)
	if !ok || err != nil || !lp.member(userID, dialog) {
		return ErrNoChat
	}
	lp.mu.Lock()
	defer lp.mu.Unlock()
	c, ok := lp.portal.Chat(n)
	if !ok {
		return ErrNoChat
	}
	c.Title = title
	lp.portal.AddChat(c)
	return lp.save()
}

// Opening is the POST that opens the bot's sidebar page in a frame: where to and the
// form's fields, as Bitrix24 posts them.
type Opening struct {
	Action string
	Fields []Field
}

// Field is one field of the opening.
type Field struct{ Name, Value string }

// sidebarAuthLife is how long a person's sidebar AUTH_ID is used again: well within
// the hour the portal's access tokens live.
const sidebarAuthLife = 30 * time.Minute

type sidebarAuth struct {
	token string
	until time.Time
}

// Sidebar is the opening of the bot's sidebar page for userID in dialog, if the
// application bound it.
func (lp *Portal) Sidebar(userID int64, dialog, lang string) (Opening, bool) {
	if !lp.member(userID, dialog) {
		return Opening{}, false
	}
	var handler string
	for _, pl := range lp.portal.Placements() {
		if pl.Placement == bitrix24.PlacementIMSidebar {
			handler = pl.Handler
		}
	}
	if handler == "" {
		return Opening{}, false
	}
	lp.mu.Lock()
	defer lp.mu.Unlock()
	set := map[string]string{"LANG": cmp.Or(lang, "en")}
	kept, ok := lp.sidebarAuth[userID]
	if ok && time.Now().Before(kept.until) {
		set["AUTH_ID"] = kept.token
	}
	query, body := lp.portal.PlacementOpen(userID, dialog, set)
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return Opening{}, false
	}
	if _, reused := set["AUTH_ID"]; !reused {
		if lp.sidebarAuth == nil {
			lp.sidebarAuth = map[int64]sidebarAuth{}
		}
		lp.sidebarAuth[userID] = sidebarAuth{token: values.Get("AUTH_ID"), until: time.Now().Add(sidebarAuthLife)}
	}
	o := Opening{Action: handler + "?" + string(query)}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		o.Fields = append(o.Fields, Field{Name: k, Value: values.Get(k)})
	}
	if err := lp.save(); err != nil { // the opening's tokens
		return Opening{}, false
	}
	return o, true
}

// Changes is a fingerprint of what any page shows (chats, titles, members, messages):
// a page that polls it reloads when it differs. Tokens and reading marks do not count.
func (lp *Portal) Changes() string {
	h := fnv.New64a()
	for _, c := range lp.portal.Chats() {
		fmt.Fprintf(h, "c%d|%s|%v\n", c.ID, c.Title, c.Users)
	}
	for _, m := range lp.portal.AllMessages() {
		fmt.Fprintf(h, "m%d|%s|%v|%d\n", m.ID, m.Text, m.Deleted, len(m.Buttons()))
	}
	fmt.Fprintf(h, "p%d|%s", len(lp.portal.Placements()), lp.BotName())
	return strconv.FormatUint(h.Sum64(), 36)
}
