package b24test

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"supportbot/bitrix24"
)

// The fake portal outside tests: the local portal (package localportal) runs it as a
// product, served on the bot's own listener under a fixed base URL, with the people's
// own messages and a State that survives a restart.

// NewLocalApp makes an application's OAuth server and one portal with it installed,
// both served by the caller (ServeHTTP) at base ("http://localhost:8080"): the REST
// API under base+"/rest/", the token endpoint at base+"/oauth/token/". Nothing runs
// until the caller serves them; Close releases what waits.
func NewLocalApp(base, clientID, clientSecret string) (*OAuth, *Portal) {
	base = strings.TrimRight(base, "/")
	o := &OAuth{base: base, clientID: clientID, clientSecret: clientSecret, byMember: map[string]int{}, done: make(chan struct{})}
	p := buildPortal(o)
	p.base = base
	o.portals = []*Portal{p}
	return o, p
}

// ServeHTTP answers the REST API (and HandlePage's pages) as the test server does.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.serveHTTP(w, r) }

// ServeHTTP answers the token endpoint.
func (o *OAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) { o.serveHTTP(w, r) }

// Close releases the answers held back (FaultSlow, refresh delays) of a local portal
// and its OAuth server; tests' portals close when the test ends.
func (p *Portal) Close() {
	close(p.done)
	if p.oauth != nil {
		close(p.oauth.done)
	}
}

// AddUserMessage posts a person's message in a dialog ("27": the private chat of user
// 27 with the bot; "chat1001"), as the messenger does, and returns its ID, from the
// same sequence as the bot's messages. ok is false for a dialog the portal lacks.
func (p *Portal) AddUserMessage(dialog string, authorID int64, text string) (id int64, ok bool) {
	defer p.lock()()
	if !p.dialogExistsLocked(dialog) {
		return 0, false
	}
	id = p.addMessageLocked(dialog, text, nil)
	p.messages[id-firstMessageID].AuthorID = authorID
	return id, true
}

// EditUserMessage changes or deletes (text "", deleted) a person's own message; ok
// is false for a message that is not authorID's.
func (p *Portal) EditUserMessage(id, authorID int64, text string, deleted bool) (Message, bool) {
	defer p.lock()()
	i := id - firstMessageID
	if i < 0 || i >= int64(len(p.messages)) || authorID <= 0 || p.messages[i].AuthorID != authorID || p.messages[i].Deleted {
		return Message{}, false
	}
	m := &p.messages[i]
	m.Text, m.Deleted = text, deleted
	if deleted {
		m.Text = ""
	}
	return *m, true
}

// State is everything a portal keeps, for a local portal to write down and start
// again from (RestoreLocalApp). Calls, faults and limits are not kept.
type State struct {
	Secret, MemberID, AppToken, ClientID string
	Scopes                               []string
	Admins                               []int64
	Tokens                               map[string]TokenState // access token → its user and end
	Grants                               map[string]int64      // refresh token → user
	Chats                                []Chat
	Messages                             []MessageState
	NextChat, NextBot, NextCmd           int64
	Bots                                 []BotState
	Commands                             []CommandState
	Handlers                             []HandlerState
	Placements                           []Placement
	Names                                map[int64][2]string
}

// TokenState is an access token's user and end.
type TokenState struct {
	UserID  int64
	Expires time.Time
}

// MessageState is a Message with its keyboard.
type MessageState struct {
	Message
	Buttons []bitrix24.Button `json:",omitempty"`
}

// BotState is a registered v1 bot and its application.
type BotState struct {
	Bot
	OpenLine bool
	AppID    string
}

// CommandState is a v1 command and its application.
type CommandState struct {
	Command
	AppID string
}

// HandlerState is an event handler an application bound.
type HandlerState struct{ AppID, Event, URL string }

// State returns what the portal keeps now.
func (p *Portal) State() State {
	defer p.lock()()
	s := State{Secret: p.secret, MemberID: p.memberID, AppToken: p.appToken, ClientID: p.clientID, Scopes: slices.Clone(p.scopes),
		Admins: slices.Sorted(maps.Keys(p.admins)), Tokens: map[string]TokenState{}, Grants: maps.Clone(p.grants),
		NextChat: p.nextChat, NextBot: p.nextBot, NextCmd: p.nextCmd, Names: maps.Clone(p.names)}
	for tok, t := range p.tokens {
		s.Tokens[tok] = TokenState{UserID: t.userID, Expires: t.expires}
	}
	for _, id := range slices.Sorted(maps.Keys(p.chats)) {
		c := *p.chats[id]
		c.Users = slices.Clone(c.Users)
		s.Chats = append(s.Chats, c)
	}
	for _, m := range p.messages {
		s.Messages = append(s.Messages, MessageState{Message: m, Buttons: m.buttons})
	}
	for _, id := range slices.Sorted(maps.Keys(p.bots)) {
		b := p.bots[id]
		s.Bots = append(s.Bots, BotState{Bot: b.Bot, OpenLine: b.openline, AppID: b.appID})
	}
	for _, id := range slices.Sorted(maps.Keys(p.commands)) {
		c := p.commands[id]
		s.Commands = append(s.Commands, CommandState{Command: c.Command, AppID: c.appID})
	}
	for k, u := range p.handlerURLs {
		s.Handlers = append(s.Handlers, HandlerState{AppID: k[0], Event: k[1], URL: u})
	}
	slices.SortFunc(s.Handlers, func(a, b HandlerState) int { return strings.Compare(a.AppID+" "+a.Event, b.AppID+" "+b.Event) })
	for _, pl := range p.placements {
		s.Placements = append(s.Placements, *pl)
	}
	return s
}

// RestoreLocalApp is NewLocalApp with the portal as State s describes it.
func RestoreLocalApp(base, clientSecret string, s State) (*OAuth, *Portal) {
	o, p := NewLocalApp(base, s.ClientID, clientSecret)
	p.secret, p.memberID, p.appToken, p.clientID, p.scopes = s.Secret, s.MemberID, s.AppToken, s.ClientID, slices.Clone(s.Scopes)
	p.admins = map[int64]bool{}
	for _, id := range s.Admins {
		p.admins[id] = true
	}
	for tok, t := range s.Tokens {
		p.tokens[tok] = &accessToken{userID: t.UserID, expires: t.Expires}
	}
	maps.Copy(p.grants, s.Grants)
	for _, c := range s.Chats {
		p.chats[c.ID] = &c
	}
	for _, m := range s.Messages {
		m.buttons = m.Buttons
		p.messages = append(p.messages, m.Message)
	}
	p.nextChat, p.nextBot, p.nextCmd = max(p.nextChat, s.NextChat), max(p.nextBot, s.NextBot), max(p.nextCmd, s.NextCmd)
	for _, b := range s.Bots {
		p.bots[b.ID] = &botRecord{Bot: b.Bot, openline: b.OpenLine, appID: b.AppID}
	}
	for _, c := range s.Commands {
		p.commands[c.ID] = &commandRecord{Command: c.Command, appID: c.AppID}
	}
	for _, h := range s.Handlers {
		p.handlerURLs[[2]string{h.AppID, h.Event}] = h.URL
	}
	for _, pl := range s.Placements {
		p.placements = append(p.placements, &pl)
	}
	maps.Copy(p.names, s.Names)
	return o, p
}
