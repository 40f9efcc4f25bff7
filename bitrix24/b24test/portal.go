// Package b24test is a fake Bitrix24 portal for tests: a real HTTP server (httptest)
// that answers the REST methods a chat bot uses the way Bitrix24 does, keeps the chats
// and messages they create, and records every call. It also builds event bodies from
// the recorded fixtures in bitrix24/testdata and posts them to a bot.
//
// Error codes and answer shapes follow the Bitrix24 REST documentation
// (github.com/bitrix24/b24restdocs, api-reference/chat-bots/outdated/… and
// settings/how-to-call-rest-api/batch.md) and, where the documentation is silent, the
// im module's REST service source.
//
// Like a cloud portal it throttles requests with a leaky bucket (SetRateLimit), and a
// test can make it fail the way portals and their proxies fail (InjectFaults) or
// refuse a method for using up its time (BlockMethod). Calls, AllMessages and
// Requests tell what ran and what merely arrived.
//
// It keeps the bots and commands registered through it (Bots, Commands), grants the
// webhook and the application scopes (SetScopes), and speaks OAuth: NewOAuth starts an
// application's authorisation server, NewAppPortal a portal the application is
// installed on, which answers {client_endpoint}METHOD?auth=TOKEN, sends ONAPPINSTALL
// (InstallEvent) and events carrying its tokens (AppEvent), and lets tokens expire
// (ExpireTokens) so that a client must renew them.
package b24test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
)

// maxBatch is Bitrix24's limit of commands in one batch call.
const maxBatch = 50

// Call is one REST call the portal received.
type Call struct {
	Method string
	// Params are the call's parameters as a bracket-form tree whatever the body was:
	// JSON bodies are flattened (numbers as written, true/false as "1"/"0" like PHP's
	// http_build_query, objects as groups, arrays as groups keyed "0", "1", …, null
	// left out), so call.Params.String("DIALOG_ID") reads the same for a JSON call and
	// a batch sub-command.
	Params bitrix24.Form
	// JSON is the decoded JSON body (numbers as json.Number); nil for form bodies and
	// batch sub-commands.
	JSON    map[string]any
	At      time.Time
	Batched bool // a sub-command of a batch call
	// Auth is how the call authenticated: "webhook", or the OAuth access token it
	// carried (which is left out of Params).
	Auth string
	// UserID is the user the call acted as: the webhook's user (1), or the token's.
	UserID int64
}

// Chat is a chat the portal knows: created through imbot.chat.add, added with AddChat,
// or learnt from an event sent with Portal.Post.
type Chat struct {
	ID         int64
	Title      string
	Type       string // "CHAT" or "OPEN"
	Users      []int64
	EntityType string
	EntityID   string
	Messages   []Message // the bot's messages in this chat, oldest first
}

// Message is a message the bot posted (imbot.message.add, imbot.command.answer, the
// MESSAGE of imbot.chat.add).
type Message struct {
	ID       int64
	DialogID string // "27" for a private chat, "chat1001" for a group chat; "" for a command answer to a message the portal never saw
	Text     string
	// Keyboard is the KEYBOARD parameter as a JSON-like tree whose leaves are strings
	// (map[string]any, []any, string), the same whether it came as JSON or in a batch
	// query; nil for none. See Buttons.
	Keyboard any
	Updated  bool
}

// Buttons decodes the keyboard into buttons (nil for none).
func (m Message) Buttons() []bitrix24.Button {
	list := m.Keyboard
	if obj, ok := list.(map[string]any); ok {
		list = obj["BUTTONS"]
	}
	if list == nil {
		return nil
	}
	raw, err := json.Marshal(list)
	if err != nil {
		return nil
	}
	var out []bitrix24.Button
	if json.Unmarshal(raw, &out) != nil {
		return nil
	}
	return out
}

// Handler answers one method: a result, or an error the portal reports. An error with
// HTTPStatus 0 is sent as 400, the status Bitrix24 uses for method errors.
type Handler func(params bitrix24.Form) (result any, err *bitrix24.Error)

// Portal is the fake portal. Its methods are safe for concurrent use.
type Portal struct {
	srv    *httptest.Server
	userID string
	secret string

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever a call is recorded
	calls    []Call
	chats    map[int64]*Chat
	messages []*Message
	byID     map[int64]*Message
	known    map[int64]string // message ID → dialog, for messages learnt from events
	nextChat int64
	nextMsg  int64
	handlers map[string]Handler
	raw      map[string]http.HandlerFunc
	owners   map[int64]int64     // chat ID → owner (the bot, or OWNER_ID), for imbot.chat.get
	created  map[int64]time.Time // chat ID → when the portal got it

	bucket      bucket
	requests    int // authenticated HTTP requests, run or refused
	rejections  int // refused by the bucket
	faults      *faults
	faultCounts map[Fault]int
	blocked     map[string]time.Time // lower-case method → blocked until

	done      chan struct{} // closed when the test ends, to release held answers
	closeOnce sync.Once

	// Application identity and authorisation (auth.go).
	oauth    *OAuth // nil for a webhook portal (New)
	clientID string // the application's client_id; OAuth calls act for it
	memberID string
	appToken string
	scopes   []string
	admins   map[int64]bool
	tokens   map[string]*accessToken
	grants   map[string]*grant // refresh tokens

	// Bots and commands (bots.go).
	bots      map[int64]*botRecord
	commands  map[int64]*commandRecord
	appEvents map[string]map[string]string // application (APP_ID) → event name → bound handler URL
	nextBot   int64
	nextCmd   int64
}

// New starts a fake portal; it stops when the test ends. It throttles requests like
// a cloud portal (2 a second, 50 at once: see SetRateLimit).
func New(t testing.TB) *Portal {
	t.Helper()
	return newPortal(t, nil)
}

// newPortal starts a portal; o is the OAuth server of the application installed on
// it, or nil for a webhook portal.
func newPortal(t testing.TB, o *OAuth) *Portal {
	t.Helper()
	secret := make([]byte, 8)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	p := &Portal{
		userID:   "1",
		secret:   hex.EncodeToString(secret),
		changed:  make(chan struct{}),
		chats:    map[int64]*Chat{},
		byID:     map[int64]*Message{},
		known:    map[int64]string{},
		nextChat: 1001,
		nextMsg:  5001,
		handlers: map[string]Handler{},
		raw:      map[string]http.HandlerFunc{},
		owners:   map[int64]int64{},
		created:  map[int64]time.Time{},

		bucket:      bucket{rate: defaultRate, burst: defaultBurst},
		faultCounts: map[Fault]int{},
		blocked:     map[string]time.Time{},
		done:        make(chan struct{}),

		oauth:     o,
		clientID:  defaultClientID,
		memberID:  randomHex(16),
		appToken:  randomHex(16),
		scopes:    append([]string(nil), defaultScopes...),
		admins:    map[int64]bool{webhookUser: true},
		tokens:    map[string]*accessToken{},
		grants:    map[string]*grant{},
		bots:      map[int64]*botRecord{},
		commands:  map[int64]*commandRecord{},
		appEvents: map[string]map[string]string{},
		nextBot:   firstBotID,
		nextCmd:   firstCommandID,
	}
	if o != nil {
		p.clientID = o.clientID
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serveHTTP))
	t.Cleanup(func() {
		// Release answers FaultSlow holds first: Close waits for running handlers.
		p.closeOnce.Do(func() { close(p.done) })
		p.srv.Close()
	})
	return p
}

// WebhookURL is the inbound webhook base, "http://127.0.0.1:PORT/rest/1/<secret>/".
func (p *Portal) WebhookURL() string {
	return p.srv.URL + "/rest/" + p.userID + "/" + p.secret + "/"
}

// URL is the server root.
func (p *Portal) URL() string { return p.srv.URL }

// Handle overrides or adds a method; it applies to direct calls and batch
// sub-commands alike. The handler runs without the portal's lock held, so it may call
// the portal's methods; it must not modify params, which are also the recorded
// Call's. A nil handler restores the built-in behaviour.
func (p *Portal) Handle(method string, h func(params bitrix24.Form) (result any, err *bitrix24.Error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h == nil {
		delete(p.handlers, strings.ToLower(method))
		return
	}
	p.handlers[strings.ToLower(method)] = h
}

// HandleHTTP takes over the whole HTTP answer for direct calls to method — to send an
// HTML error page, hang, or drop the connection. The call is still recorded first.
// Batch sub-commands are not affected. A nil handler removes it. A handler that hangs
// must return when r.Context() is done, or the test's end waits for it.
func (p *Portal) HandleHTTP(method string, h http.HandlerFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h == nil {
		delete(p.raw, strings.ToLower(method))
		return
	}
	p.raw[strings.ToLower(method)] = h
}

// Calls returns every recorded call in arrival order. A batch appears as the "batch"
// call followed by each sub-command it ran, with Batched set, in command order.
func (p *Portal) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Call(nil), p.calls...)
}

// CallsTo returns the calls to method (compared case-insensitively, as Bitrix24
// does), direct and batched.
func (p *Portal) CallsTo(method string) []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.callsToLocked(method)
}

func (p *Portal) callsToLocked(method string) []Call {
	var out []Call
	for _, c := range p.calls {
		if strings.EqualFold(c.Method, method) {
			out = append(out, c)
		}
	}
	return out
}

// Reset forgets the recorded calls; chats and messages stay.
func (p *Portal) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = nil
}

// WaitCalls waits until at least n calls to method were recorded and returns them all;
// after timeout it fails the test. Call it from the test's goroutine.
func (p *Portal) WaitCalls(t testing.TB, method string, n int, timeout time.Duration) []Call {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		got := p.callsToLocked(method)
		changed := p.changed
		p.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("b24test: waited %v for %d calls to %s, got %d", timeout, n, method, len(got))
			return got
		}
	}
}

// Chat returns a chat by ID, with the bot's messages in it.
func (p *Portal) Chat(id int64) (Chat, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.chats[id]
	if !ok {
		return Chat{}, false
	}
	return p.chatCopyLocked(c), true
}

// Chats returns every chat, by ID.
func (p *Portal) Chats() []Chat {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]int64, 0, len(p.chats))
	for id := range p.chats {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := make([]Chat, len(ids))
	for i, id := range ids {
		out[i] = p.chatCopyLocked(p.chats[id])
	}
	return out
}

func (p *Portal) chatCopyLocked(c *Chat) Chat {
	out := *c
	out.Users = append([]int64(nil), c.Users...)
	out.Messages = p.messagesLocked(bitrix24.DialogIDForChat(c.ID))
	return out
}

// Messages returns the bot's messages in a dialog ("27", "chat1001"), oldest first.
func (p *Portal) Messages(dialogID string) []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.messagesLocked(dialogID)
}

// AllMessages returns every message the bot posted, in any dialog, in the order the
// portal created them — a message sent twice shows up twice.
func (p *Portal) AllMessages() []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Message, len(p.messages))
	for i, m := range p.messages {
		out[i] = *m
	}
	return out
}

func (p *Portal) messagesLocked(dialogID string) []Message {
	var out []Message
	for _, m := range p.messages {
		if m.DialogID == dialogID {
			out = append(out, *m)
		}
	}
	return out
}

// AddChat makes a chat exist, as if created on the portal, so the bot may post to it.
// A zero ID takes the next free one. It returns the chat's ID.
func (p *Portal) AddChat(c Chat) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.ID <= 0 {
		c.ID = p.newChatIDLocked()
	}
	c.Users = append([]int64(nil), c.Users...)
	c.Messages = nil
	p.chats[c.ID] = &c
	p.created[c.ID] = time.Now()
	return c.ID
}

func (p *Portal) newChatIDLocked() int64 {
	for p.chats[p.nextChat] != nil {
		p.nextChat++
	}
	id := p.nextChat
	p.nextChat++
	return id
}

func (p *Portal) record(c Call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, c)
	close(p.changed)
	p.changed = make(chan struct{})
}

// serveHTTP routes /rest/<user>/<secret>/<method>[.json] and answers like Bitrix24:
// authentication, then the leaky bucket, then any injected fault, then the call.
func (p *Portal) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rest, ok := strings.CutPrefix(r.URL.Path, "/rest/")
	if !ok {
		// Outside the REST API Bitrix24 answers with an HTML page, not an envelope.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "<html><body><h1>404 Not Found</h1></body></html>")
		return
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 1:
		// {client_endpoint}METHOD: an application's call, authorised by its token.
		p.serveOAuth(w, r, strings.TrimSuffix(parts[0], ".json"), start)
	case len(parts) == 3 && parts[0] == p.userID && parts[1] == p.secret:
		p.serveAuthed(w, r, webhookCaller(), strings.TrimSuffix(parts[2], ".json"), start)
	default:
		writeError(w, errNoAuth())
	}
}

// serveAuthed answers a call whose credentials are good: the leaky bucket, then any
// injected fault, then the call.
func (p *Portal) serveAuthed(w http.ResponseWriter, r *http.Request, c caller, method string, start time.Time) {
	fault, slow, admitted := p.admit(method)
	switch {
	case !admitted:
		writeError(w, errQueryLimit())
	case fault != noFault:
		p.serveFaulted(w, r, c, method, start, fault, slow)
	default:
		p.execute(w, r, c, method, start)
	}
}

func errNoAuth() *bitrix24.Error {
	return &bitrix24.Error{Code: "NO_AUTH_FOUND", Description: "Wrong authorization data", HTTPStatus: http.StatusUnauthorized}
}

// execute reads, records and runs a call that got past the limits.
func (p *Portal) execute(w http.ResponseWriter, r *http.Request, c caller, method string, start time.Time) {
	if method == "" {
		writeError(w, errMethodNotFound())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 32<<20))
	if err != nil {
		writeError(w, &bitrix24.Error{Code: "INVALID_REQUEST", Description: "Request body too large", HTTPStatus: http.StatusRequestEntityTooLarge})
		return
	}
	params, jsonBody, perr := parseParams(r, body)
	if perr != nil {
		writeError(w, perr)
		return
	}
	c.strip(params)
	p.record(Call{Method: method, Params: params, JSON: jsonBody, At: start, Auth: c.name(), UserID: c.userID})

	if serr := p.checkScope(c, method); serr != nil {
		writeError(w, serr)
		return
	}
	if until, blocked := p.blockedUntil(method); blocked {
		writeBlocked(w, start, until)
		return
	}
	p.mu.Lock()
	raw := p.raw[strings.ToLower(method)]
	p.mu.Unlock()
	if raw != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		raw(w, r)
		return
	}
	if strings.EqualFold(method, "batch") {
		writeResult(w, p.runBatch(c, params, cmdOrder(r, body)), start)
		return
	}
	result, berr := p.dispatch(c, method, params)
	if berr != nil {
		writeError(w, berr)
		return
	}
	writeResult(w, result, start)
}

// dispatch runs one method for caller c: an override from Handle, else the built-in
// one.
func (p *Portal) dispatch(c caller, method string, params bitrix24.Form) (any, *bitrix24.Error) {
	key := strings.ToLower(method)
	p.mu.Lock()
	h := p.handlers[key]
	p.mu.Unlock()
	if h != nil {
		return h(params)
	}
	switch key {
	case "imbot.chat.add":
		return p.chatAdd(params)
	case "imbot.message.add":
		return p.messageAdd(params)
	case "imbot.message.update":
		return p.messageUpdate(params)
	case "imbot.chat.updatetitle":
		return p.chatUpdateTitle(params)
	case "imbot.command.answer":
		return p.commandAnswer(params)
	case "imbot.chat.get":
		return p.chatGet(params)
	case "imbot.register":
		return p.botRegister(c, params)
	case "imbot.update":
		return p.botUpdate(c, params)
	case "imbot.unregister":
		return p.botUnregister(c, params)
	case "imbot.bot.list":
		return p.botList(), nil
	case "imbot.command.register":
		return p.commandRegister(c, params)
	case "imbot.command.update":
		return p.commandUpdate(c, params)
	case "imbot.command.unregister":
		return p.commandUnregister(c, params)
	case "scope":
		return p.scopeList(params), nil
	case "user.admin":
		return p.isAdmin(c.userID), nil
	case "app.info":
		return p.appInfo(c)
	case "event.bind":
		return p.eventBind(c, params)
	}
	return nil, errMethodNotFound()
}

// builtin lists the methods dispatch answers by itself (lower case).
var builtin = map[string]bool{
	"imbot.chat.add": true, "imbot.message.add": true, "imbot.message.update": true,
	"imbot.chat.updatetitle": true, "imbot.command.answer": true, "imbot.chat.get": true,
	"imbot.register": true, "imbot.update": true, "imbot.unregister": true, "imbot.bot.list": true,
	"imbot.command.register": true, "imbot.command.update": true, "imbot.command.unregister": true,
	"scope": true, "user.admin": true, "app.info": true, "event.bind": true, "batch": true,
}

// hasMethod reports whether the portal has method: built in, or added with Handle or
// HandleHTTP. Unknown methods are ERROR_METHOD_NOT_FOUND whatever the scopes.
func (p *Portal) hasMethod(method string) bool {
	key := strings.ToLower(method)
	if builtin[key] {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handlers[key] != nil || p.raw[key] != nil
}

func errMethodNotFound() *bitrix24.Error {
	return &bitrix24.Error{Code: "ERROR_METHOD_NOT_FOUND", Description: "Method not found!", HTTPStatus: http.StatusNotFound}
}

// wrongRequest builds a method error with Bitrix24's usual 400 status.
func wrongRequest(code, description string) *bitrix24.Error {
	return &bitrix24.Error{Code: code, Description: description, HTTPStatus: http.StatusBadRequest}
}

// imbot.chat.add: TYPE, TITLE, USERS[], ENTITY_TYPE, ENTITY_ID, MESSAGE → chat ID.
func (p *Portal) chatAdd(f bitrix24.Form) (any, *bitrix24.Error) {
	var users []int64
	switch u := f["USERS"].(type) {
	case nil:
	case bitrix24.Form:
		for _, k := range u.Keys() {
			id, err := strconv.ParseInt(strings.TrimSpace(u.String(k)), 10, 64)
			if err != nil || id <= 0 {
				return nil, wrongRequest("INVALID_FORMAT", "Parameter USERS has wrong type")
			}
			users = append(users, id)
		}
	default:
		if s, _ := u.(string); s != "" {
			return nil, wrongRequest("INVALID_FORMAT", "Parameter USERS has wrong type")
		}
	}
	typ := "CHAT"
	if strings.EqualFold(f.String("TYPE"), "OPEN") {
		typ = "OPEN"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := &Chat{
		ID:         p.newChatIDLocked(),
		Title:      strings.TrimSpace(f.String("TITLE")),
		Type:       typ,
		Users:      users,
		EntityType: f.String("ENTITY_TYPE"),
		EntityID:   f.String("ENTITY_ID"),
	}
	p.chats[c.ID] = c
	p.created[c.ID] = time.Now()
	if owner := intParam(f, "OWNER_ID"); owner > 0 {
		p.owners[c.ID] = owner
	} else {
		p.owners[c.ID] = intParam(f, "BOT_ID")
	}
	if msg := strings.TrimSpace(f.String("MESSAGE")); msg != "" {
		p.addMessageLocked(bitrix24.DialogIDForChat(c.ID), msg, nil)
	}
	return c.ID, nil
}

// imbot.message.add: BOT_ID, DIALOG_ID, MESSAGE, KEYBOARD, ATTACH… → message ID.
// Checks in the order Bitrix24 makes them.
func (p *Portal) messageAdd(f bitrix24.Form) (any, *bitrix24.Error) {
	dialog := strings.TrimSpace(f.String("DIALOG_ID"))
	from, to := intParam(f, "FROM_USER_ID"), intParam(f, "TO_USER_ID")
	if from > 0 && to > 0 {
		dialog = strconv.FormatInt(to, 10) // DIALOG_ID is ignored in this mode
	}
	if dialog == "" {
		return nil, wrongRequest("DIALOG_ID_EMPTY", "Dialog ID can't be empty")
	}
	text := strings.TrimSpace(f.String("MESSAGE"))
	if text == "" && !hasValue(f, "ATTACH") {
		return nil, wrongRequest("MESSAGE_EMPTY", "Message can't be empty")
	}
	kb, kerr := keyboardParam(f)
	if kerr != nil {
		return nil, kerr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.dialogExistsLocked(dialog) {
		// Bitrix24 fails in Bot::addMessage for a dialog it cannot post to.
		return nil, wrongRequest("WRONG_REQUEST", "Message isn't added")
	}
	return p.addMessageLocked(dialog, text, kb), nil
}

// imbot.message.update: MESSAGE_ID, MESSAGE, KEYBOARD → true.
func (p *Portal) messageUpdate(f bitrix24.Form) (any, *bitrix24.Error) {
	id := intParam(f, "MESSAGE_ID")
	if id <= 0 {
		return nil, wrongRequest("MESSAGE_ID_ERROR", "Message ID can't be empty")
	}
	var kb any
	setKB := present(f, "KEYBOARD")
	if setKB {
		var kerr *bitrix24.Error
		if kb, kerr = keyboardParam(f); kerr != nil {
			return nil, kerr
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.byID[id]
	if !ok {
		// Bitrix24 cannot tell "no such message" from "not yours" or "too old".
		return nil, &bitrix24.Error{Code: "CANT_EDIT_MESSAGE",
			Description: "Time has expired for modification or you don't have access", HTTPStatus: http.StatusForbidden}
	}
	if setKB {
		m.Keyboard = kb
	}
	if present(f, "MESSAGE") {
		m.Text = f.String("MESSAGE")
	}
	m.Updated = true
	return true, nil
}

// imbot.chat.updateTitle: CHAT_ID, TITLE → true.
func (p *Portal) chatUpdateTitle(f bitrix24.Form) (any, *bitrix24.Error) {
	id := intParam(f, "CHAT_ID")
	if id <= 0 {
		return nil, wrongRequest("CHAT_ID_EMPTY", "Chat ID can't be empty")
	}
	title := strings.TrimSpace(f.String("TITLE"))
	if title == "" {
		return nil, wrongRequest("TITLE_EMPTY", "Title can't be empty")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.chats[id]
	if !ok {
		return nil, wrongRequest("WRONG_REQUEST", "This title currently set or chat isn't exists")
	}
	c.Title = title
	return true, nil
}

// imbot.chat.get answers as the im module's CIMRestService::chatGet does:
//   - DIALOG_ID ("chat1001"): the chat's description — imbot.dialog.get's fields in
//     its order (those the fake can fill), dialog_id last; an unknown chat is
//     ACCESS_ERROR. The fake keeps no private chats, so a user's dialog ID is
//     ACCESS_ERROR too;
//   - else ENTITY_TYPE and ENTITY_ID, both non-empty in PHP's sense: {"ID": n} of the
//     chat made with them (the lowest ID if several), or null when there is none;
//   - anything else is null — Bitrix24 reads no CHAT_ID here.
func (p *Portal) chatGet(f bitrix24.Form) (any, *bitrix24.Error) {
	if present(f, "DIALOG_ID") {
		return p.dialogChat(f.String("DIALOG_ID"))
	}
	if !hasValue(f, "ENTITY_TYPE") || !hasValue(f, "ENTITY_ID") {
		return nil, nil
	}
	typ, id := f.String("ENTITY_TYPE"), f.String("ENTITY_ID")
	p.mu.Lock()
	defer p.mu.Unlock()
	var found int64
	for cid, c := range p.chats {
		if c.EntityType == typ && c.EntityID == id && (found == 0 || cid < found) {
			found = cid
		}
	}
	if found == 0 {
		return nil, nil
	}
	out := &phpArray{}
	out.set("ID", found)
	return out, nil
}

func (p *Portal) dialogChat(dialog string) (any, *bitrix24.Error) {
	digits, isChat := strings.CutPrefix(dialog, "chat")
	id, err := strconv.ParseInt(digits, 10, 64)
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" || err != nil || id <= 0 {
		return nil, wrongRequest("DIALOG_ID_EMPTY", "Dialog ID can't be empty")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.chats[id]
	if !isChat || c == nil {
		return nil, &bitrix24.Error{Code: "ACCESS_ERROR", Description: "You do not have access to the specified dialog", HTTPStatus: http.StatusForbidden}
	}
	dialogID := bitrix24.DialogIDForChat(c.ID)
	msgs := p.messagesLocked(dialogID)
	var last int64
	if len(msgs) > 0 {
		last = msgs[len(msgs)-1].ID
	}
	typ, msgType := "chat", "C"
	if c.Type == "OPEN" {
		typ, msgType = "open", "O"
	}
	owner := p.owners[c.ID]
	managers := []int64{}
	if owner > 0 {
		managers = append(managers, owner)
	}
	out := &phpArray{}
	out.set("id", c.ID)
	out.set("parent_chat_id", 0)
	out.set("parent_message_id", 0)
	out.set("name", c.Title)
	out.set("description", "")
	out.set("owner", owner)
	out.set("extranet", false)
	out.set("avatar", "")
	out.set("color", "#29619b")
	out.set("type", typ)
	out.set("counter", 0)
	out.set("user_counter", len(c.Users))
	out.set("message_count", len(msgs))
	out.set("unread_id", 0)
	out.set("last_message_id", last)
	out.set("last_id", last)
	out.set("marked_id", 0)
	out.set("disk_folder_id", 0)
	out.set("entity_type", c.EntityType)
	out.set("entity_id", c.EntityID)
	out.set("entity_data_1", "")
	out.set("entity_data_2", "")
	out.set("entity_data_3", "")
	out.set("mute_list", []any{})
	out.set("date_create", p.created[c.ID].Format(dateLayout))
	out.set("message_type", msgType)
	out.set("public", "")
	out.set("role", "member")
	out.set("manager_list", managers)
	out.set("dialog_id", dialogID)
	return out, nil
}

// imbot.command.answer: COMMAND_ID (or COMMAND), MESSAGE_ID, MESSAGE, KEYBOARD → new
// message ID, posted to the dialog of MESSAGE_ID when the portal knows it.
func (p *Portal) commandAnswer(f bitrix24.Form) (any, *bitrix24.Error) {
	if intParam(f, "COMMAND_ID") <= 0 && strings.TrimSpace(f.String("COMMAND")) == "" {
		return nil, wrongRequest("COMMAND_ID_ERROR", "Command not found")
	}
	msgID := intParam(f, "MESSAGE_ID")
	if msgID <= 0 {
		return nil, wrongRequest("MESSAGE_ID_EMPTY", "Message ID can't be empty")
	}
	text := strings.TrimSpace(f.String("MESSAGE"))
	if text == "" && !hasValue(f, "ATTACH") {
		return nil, wrongRequest("MESSAGE_EMPTY", "Message can't be empty")
	}
	kb, kerr := keyboardParam(f)
	if kerr != nil {
		return nil, kerr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	dialog := p.known[msgID]
	if m, ok := p.byID[msgID]; ok && dialog == "" {
		dialog = m.DialogID
	}
	return p.addMessageLocked(dialog, text, kb), nil
}

func (p *Portal) addMessageLocked(dialog, text string, kb any) int64 {
	m := &Message{ID: p.nextMsg, DialogID: dialog, Text: text, Keyboard: kb}
	p.nextMsg++
	p.messages = append(p.messages, m)
	p.byID[m.ID] = m
	return m.ID
}

// dialogExistsLocked: a positive user ID, or "chat<ID>" of a chat the portal has.
func (p *Portal) dialogExistsLocked(dialog string) bool {
	if rest, ok := strings.CutPrefix(dialog, "chat"); ok {
		id, err := strconv.ParseInt(rest, 10, 64)
		return err == nil && id > 0 && p.chats[id] != nil
	}
	id, err := strconv.ParseInt(dialog, 10, 64)
	return err == nil && id > 0
}

// maxKeyboardBytes is Bitrix24's limit on KEYBOARD (30 KB).
const maxKeyboardBytes = 30 * 1024

// keyboardParam reads KEYBOARD: absent, "" or "N" is none; otherwise a list of
// buttons, or an object with BUTTONS, given as a group or as a JSON string.
func keyboardParam(f bitrix24.Form) (any, *bitrix24.Error) {
	bad := wrongRequest("KEYBOARD_ERROR", "Incorrect keyboard params")
	var tree any
	switch v := f["KEYBOARD"].(type) {
	case nil:
		return nil, nil
	case string:
		s := strings.TrimSpace(v)
		if s == "" || s == "N" {
			return nil, nil
		}
		var decoded any
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if err := dec.Decode(&decoded); err != nil {
			return nil, bad
		}
		tree = stringTree(flatten(decoded))
	case bitrix24.Form:
		if len(v) == 0 {
			return nil, nil
		}
		tree = stringTree(v)
	}
	buttons := tree
	if obj, ok := tree.(map[string]any); ok {
		buttons = obj["BUTTONS"]
	}
	list, ok := buttons.([]any)
	if !ok || len(list) == 0 {
		return nil, bad
	}
	for _, b := range list {
		if _, ok := b.(map[string]any); !ok {
			return nil, bad
		}
	}
	if raw, _ := json.Marshal(tree); len(raw) > maxKeyboardBytes {
		return nil, wrongRequest("KEYBOARD_OVERSIZE", "You have exceeded the maximum allowable size of keyboard")
	}
	return tree, nil
}

// stringTree turns a Form into map[string]any / []any (groups keyed 0…n-1 become
// lists) with string leaves, so a keyboard reads the same however it was sent.
func stringTree(v any) any {
	f, ok := v.(bitrix24.Form)
	if !ok {
		return v
	}
	keys := f.Keys()
	isList := len(keys) > 0
	for i, k := range keys {
		if k != strconv.Itoa(i) {
			isList = false
			break
		}
	}
	if isList {
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = stringTree(f[k])
		}
		return out
	}
	out := make(map[string]any, len(f))
	for k, e := range f {
		out[k] = stringTree(e)
	}
	return out
}

// hasValue: the parameter is there and not empty, which is what PHP's truthiness
// test on it checks.
func hasValue(f bitrix24.Form, key string) bool {
	switch v := f[key].(type) {
	case string:
		return v != "" && v != "0"
	case bitrix24.Form:
		return len(v) > 0
	}
	return false
}

func present(f bitrix24.Form, key string) bool {
	_, ok := f[key]
	return ok
}

func intParam(f bitrix24.Form, key string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(f.String(key)), 10, 64)
	return n
}

// parseParams reads a request's parameters from the URL query and the body — JSON or
// form-urlencoded with bracket keys, both of which Bitrix24 accepts.
func parseParams(r *http.Request, body []byte) (bitrix24.Form, map[string]any, *bitrix24.Error) {
	params, err := bitrix24.ParseForm([]byte(r.URL.RawQuery))
	if err != nil {
		return nil, nil, wrongRequest("INVALID_REQUEST", "Malformed query string")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return params, nil, nil
	}
	if strings.Contains(strings.ToLower(r.Header.Get("Content-Type")), "json") {
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			return nil, nil, wrongRequest("INVALID_REQUEST", "Malformed JSON body")
		}
		for k, v := range obj {
			if fv := flatten(v); fv != nil {
				params[k] = fv
			}
		}
		return params, obj, nil
	}
	form, err := bitrix24.ParseForm(body)
	if err != nil {
		return nil, nil, wrongRequest("INVALID_REQUEST", "Malformed form body")
	}
	for k, v := range form {
		params[k] = v
	}
	return params, nil, nil
}

// flatten turns a decoded JSON value into a Form value: a string leaf or a group.
// null is nil (left out).
func flatten(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		if x {
			return "1"
		}
		return "0"
	case map[string]any:
		f := bitrix24.Form{}
		for k, e := range x {
			if fe := flatten(e); fe != nil {
				f[k] = fe
			}
		}
		return f
	case []any:
		f := bitrix24.Form{}
		for i, e := range x {
			if fe := flatten(e); fe != nil {
				f[strconv.Itoa(i)] = fe
			}
		}
		return f
	}
	return nil
}

// runBatch runs the commands in order, as Bitrix24 does, and builds its answer:
// {"result":{…},"result_error":{…},"result_total":[],"result_next":[],"result_time":{…}}.
func (p *Portal) runBatch(c caller, params bitrix24.Form, order []string) any {
	halt := false
	switch strings.ToLower(strings.TrimSpace(params.String("halt"))) {
	case "1", "true", "y":
		halt = true
	}
	cmds := params.Group("cmd")
	keys := make([]string, 0, len(cmds))
	seen := map[string]bool{}
	for _, k := range order {
		if _, ok := cmds[k]; ok && !seen[k] {
			keys = append(keys, k)
			seen[k] = true
		}
	}
	for _, k := range cmds.Keys() {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	results, failures, times := &phpArray{}, &phpArray{}, &phpArray{}
	for i, k := range keys {
		if i >= maxBatch {
			// Bitrix24 fails the commands past the limit, not the whole batch.
			failures.set(k, errorBody(&bitrix24.Error{Code: "ERROR_BATCH_LENGTH_EXCEEDED", Description: "Max batch length exceeded"}))
			continue
		}
		cmdStart := time.Now()
		method, query, _ := strings.Cut(cmds.String(k), "?")
		sub, err := bitrix24.ParseForm([]byte(query))
		var res any
		var berr *bitrix24.Error
		switch {
		case method == "":
			berr = errMethodNotFound()
		case err != nil:
			berr = wrongRequest("INVALID_REQUEST", "Malformed command query")
		case strings.EqualFold(method, "batch"):
			berr = &bitrix24.Error{Code: "ERROR_BATCH_METHOD_NOT_ALLOWED", Description: "Method is not allowed for batch usage"}
		default:
			c.strip(sub)
			p.record(Call{Method: method, Params: sub, At: cmdStart, Batched: true, Auth: c.name(), UserID: c.userID})
			if serr := p.checkScope(c, method); serr != nil {
				// Inside a batch Bitrix24 leaves the description empty (batch.md).
				berr = &bitrix24.Error{Code: serr.Code}
			} else if _, blocked := p.blockedUntil(method); blocked {
				berr = errOperationTimeLimit()
			} else {
				res, berr = p.dispatch(c, method, sub)
			}
		}
		if berr != nil {
			failures.set(k, errorBody(berr))
			if halt {
				break
			}
			continue
		}
		results.set(k, res)
		times.set(k, timing(cmdStart))
	}
	// Built in Bitrix24's key order, which encoding/json would sort away.
	out := &phpArray{}
	out.set("result", results)
	out.set("result_error", failures)
	out.set("result_total", &phpArray{})
	out.set("result_next", &phpArray{})
	out.set("result_time", times)
	return out
}

// cmdOrder lists the batch's cmd keys in the order the body gives them: Bitrix24
// runs commands in that order, and decoding into a map loses it.
func cmdOrder(r *http.Request, body []byte) []string {
	if strings.Contains(strings.ToLower(r.Header.Get("Content-Type")), "json") {
		return jsonCmdOrder(body)
	}
	var keys []string
	for _, src := range []string{r.URL.RawQuery, string(body)} {
		for part := range strings.SplitSeq(strings.TrimSpace(src), "&") {
			rawKey, _, _ := strings.Cut(part, "=")
			key, err := url.QueryUnescape(rawKey)
			if err != nil {
				continue
			}
			if rest, ok := strings.CutPrefix(key, "cmd["); ok {
				if k, _, ok := strings.Cut(rest, "]"); ok {
					keys = append(keys, k)
				}
			}
		}
	}
	return keys
}

func jsonCmdOrder(body []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		if key, _ := tok.(string); key != "cmd" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return nil
			}
			continue
		}
		tok, err = dec.Token()
		if err != nil {
			return nil
		}
		var keys []string
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return keys
				}
				k, _ := kt.(string)
				keys = append(keys, k)
				var skip json.RawMessage
				if dec.Decode(&skip) != nil {
					return keys
				}
			}
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				keys = append(keys, strconv.Itoa(i))
				var skip json.RawMessage
				if dec.Decode(&skip) != nil {
					return keys
				}
			}
		}
		return keys
	}
	return nil
}

// phpArray is an ordered map that encodes as PHP's json_encode encodes an array: []
// when empty, a list when the keys are 0…n-1, else an object in insertion order.
type phpArray struct {
	keys []string
	vals []any
}

func (a *phpArray) set(k string, v any) {
	a.keys = append(a.keys, k)
	a.vals = append(a.vals, v)
}

func (a *phpArray) MarshalJSON() ([]byte, error) {
	list := true
	for i, k := range a.keys {
		if k != strconv.Itoa(i) {
			list = false
			break
		}
	}
	var b bytes.Buffer
	if list {
		b.WriteByte('[')
	} else {
		b.WriteByte('{')
	}
	for i, k := range a.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		if !list {
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
		}
		vb, err := json.Marshal(a.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	if list {
		b.WriteByte(']')
	} else {
		b.WriteByte('}')
	}
	return b.Bytes(), nil
}

func errorBody(e *bitrix24.Error) map[string]string {
	return map[string]string{"error": e.Code, "error_description": e.Description}
}

// dateLayout is how Bitrix24 writes dates: ISO 8601 with the offset.
const dateLayout = "2006-01-02T15:04:05-07:00"

// timing is the "time" block Bitrix24 adds to every answer, keys in its order.
// operating_reset_at is ten minutes after the start: the method's oldest one-minute
// basket of processing time would be dropped then (b24restdocs limits.md).
func timing(start time.Time) *phpArray {
	return timingReset(start, start.Add(10*time.Minute))
}

// timingReset is timing with operating_reset_at set to resetAt.
func timingReset(start, resetAt time.Time) *phpArray {
	finish := time.Now()
	t := &phpArray{}
	t.set("start", float64(start.UnixMicro())/1e6)
	t.set("finish", float64(finish.UnixMicro())/1e6)
	t.set("duration", finish.Sub(start).Seconds())
	t.set("processing", finish.Sub(start).Seconds())
	t.set("date_start", start.Format(dateLayout))
	t.set("date_finish", finish.Format(dateLayout))
	t.set("operating_reset_at", resetAt.Unix())
	t.set("operating", 0)
	return t
}

func writeResult(w http.ResponseWriter, result any, start time.Time) {
	env := &phpArray{}
	env.set("result", result)
	env.set("time", timing(start))
	writeJSON(w, http.StatusOK, env)
}

func writeError(w http.ResponseWriter, e *bitrix24.Error) {
	status := e.HTTPStatus
	if status == 0 {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, errorBody(e))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		body, _ = json.Marshal(errorBody(&bitrix24.Error{Code: "INTERNAL_SERVER_ERROR", Description: err.Error()}))
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
