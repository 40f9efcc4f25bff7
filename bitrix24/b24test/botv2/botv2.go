// Package botv2 teaches a b24test.Portal imbot.v2 (Chatbots 2.0): Attach adds the
// imbot.v2 methods a bot uses to the portal's REST endpoint, so its envelope,
// authentication, limits, faults and recorded calls apply, with the shapes and errors
// of the docs (api-reference/chat-bots/chat-bots-v2/). Chats and messages are the
// portal's (Chats, Messages): v1 and v2 see the same ones.
//
//   - botv2.go: the Fake, who may call (botToken, or the application's OAuth token);
//   - bots.go: Bot.* and Command.* (Bots, Commands);
//   - chats.go: Chat.*, Chat.Message.* and Command.answer;
//   - queue.go: Event.get and the fetch-mode queue (Queue, the builders, Pending,
//     Confirmed), and webhook-mode bodies (Form).
//
// Where the docs are silent the fake decides: a webhook caller is the application of
// its botToken (Bot.list shows it its own bots; a code registered with another token
// is BOT_CODE_ALREADY_TAKEN); imbot.v2 methods run inside batch, as batch.md refuses
// only file transfers and nested batches (SetBatch refuses them, the ways a portal
// might); a boolean in a batch command's query is Y, N, true or false, never 1 or 0;
// method names are case-sensitive; a bot posts only to private chats and to group
// chats it created or was added to (AddBot), as the real portal refuses others.
package botv2

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
)

// The first IDs the fake gives out. Messages of queued events are numbered far above
// the portal's own (5001…), and private chats above its group chats (1001…).
const (
	firstBotID     = 456 // as in the docs' examples
	firstCommandID = 42
	firstEventID   = 1001
	firstMessageID = 900001
	firstChatID    = 700001
)

// Fake is the imbot.v2 side of a portal. Its methods are safe for concurrent use.
type Fake struct {
	p *b24test.Portal

	mu        sync.Mutex
	bots      map[int64]*bot
	commands  map[int64]*Command
	own       map[int64]int64     // message ID → the bot that posted it (0: a system message)
	owners    map[int64]int64     // chat ID → its owner
	members   map[int64][]int64   // group chat ID → the bots in it
	private   map[string]int64    // private dialog → its chat ID, for events
	users     map[int64][2]string // SetUser's names
	msgOf     map[int64]int64     // event ID → its message's ID
	next      struct{ bot, cmd, event, msg, chat int64 }
	confirmed int64 // the highest offset Event.get was given
	batch     BatchMode
	offsets   OffsetMode
	queued    func()        // OnQueue's
	age       time.Duration // how old queued events are dated

	commandExists bool // Command.register of an existing command fails
}

// BatchMode is how the fake answers imbot.v2 methods inside batch.
type BatchMode int

const (
	// BatchRuns runs them, as the docs allow.
	BatchRuns BatchMode = iota
	// BatchNotAllowed refuses each with ERROR_BATCH_METHOD_NOT_ALLOWED.
	BatchNotAllowed
	// BatchNotFound refuses each with ERROR_METHOD_NOT_FOUND.
	BatchNotFound
	// BatchSilent runs none and says nothing of them: neither a result nor an error.
	BatchSilent
)

// SetBatch sets how imbot.v2 methods inside batch are answered from now on.
func (f *Fake) SetBatch(m BatchMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batch = m
}

// v2Booleans are the boolean fields of the methods the fake serves.
var v2Booleans = []string{"common", "hidden", "extranetSupport", "system", "urlPreview"}

// Attach adds the imbot.v2 methods to p.
func Attach(p *b24test.Portal) *Fake {
	f := &Fake{p: p, bots: map[int64]*bot{}, commands: map[int64]*Command{}, own: map[int64]int64{}, owners: map[int64]int64{}, members: map[int64][]int64{},
		private: map[string]int64{}, users: map[int64][2]string{}, msgOf: map[int64]int64{}}
	f.next.bot, f.next.cmd, f.next.event, f.next.msg, f.next.chat = firstBotID, firstCommandID, firstEventID, firstMessageID, firstChatID
	for name, m := range methods {
		p.AddMethod(name, func(c b24test.Call) (any, *bitrix24.Error) { return f.serve(name, m, c) })
	}
	return f
}

// method is an imbot.v2 method. It runs under the Fake's lock, with what it needs
// found and checked by serve: the caller's bot of botId, and its command of
// commandId or the chat of dialogId.
type method struct {
	needs int
	run   func(f *Fake, r *req) (any, *bitrix24.Error)
}

const (
	nothing = iota
	aBot
	aCommand // and its bot
	aChat    // and a bot
)

var methods = map[string]method{
	"imbot.v2.Bot.register":        {nothing, (*Fake).botRegister},
	"imbot.v2.Bot.update":          {aBot, (*Fake).botUpdate},
	"imbot.v2.Bot.get":             {nothing, (*Fake).botGet},
	"imbot.v2.Bot.list":            {nothing, (*Fake).botList},
	"imbot.v2.Bot.unregister":      {aBot, (*Fake).botUnregister},
	"imbot.v2.Command.register":    {aBot, (*Fake).commandRegister},
	"imbot.v2.Command.update":      {aCommand, (*Fake).commandUpdate},
	"imbot.v2.Command.unregister":  {aCommand, (*Fake).commandUnregister},
	"imbot.v2.Command.list":        {aBot, (*Fake).commandList},
	"imbot.v2.Command.answer":      {aCommand, (*Fake).commandAnswer},
	"imbot.v2.Chat.Message.send":   {aBot, (*Fake).messageSend},
	"imbot.v2.Chat.Message.update": {aBot, (*Fake).messageUpdate},
	"imbot.v2.Chat.add":            {aBot, (*Fake).chatAdd},
	"imbot.v2.Chat.get":            {aChat, (*Fake).chatEdit},
	"imbot.v2.Chat.update":         {aChat, (*Fake).chatEdit},
	"imbot.v2.Chat.User.add":       {aChat, (*Fake).chatEdit},
	"imbot.v2.Chat.User.delete":    {aChat, (*Fake).chatEdit},
	"imbot.v2.Event.get":           {aBot, (*Fake).eventGet},
}

// req is a call as a method sees it.
type req struct {
	b24test.Call
	app   bool   // made with the application's OAuth token: no botToken needed
	token string // botToken, for a webhook call
	bot   *bot
	cmd   *Command
	chat  b24test.Chat
}

func (r *req) fields() bitrix24.Form { return r.Params.Group("fields") }

// has reports fields[key] in the call, even as an empty list or object or a JSON
// null, which Params leave out.
func (r *req) has(key string) bool {
	inJSON, _ := r.JSON["fields"].(map[string]any)
	_, a := inJSON[key]
	_, b := r.fields()[key]
	return a || b
}

// owns reports a bot the caller may act on: the application's, or a webhook bot of
// the caller's botToken.
func (r *req) owns(b *bot) bool { return b.App == r.app && (r.app || b.Token == r.token) }

func (f *Fake) serve(name string, m method, c b24test.Call) (any, *bitrix24.Error) {
	r := &req{Call: c, app: c.Auth != "webhook", token: strings.TrimSpace(c.Params.String("botToken"))}
	switch {
	case c.Method != name:
		return nil, &bitrix24.Error{Code: "ERROR_METHOD_NOT_FOUND", Description: "Method not found!", HTTPStatus: http.StatusNotFound}
	case c.Batched && f.batchMode() == BatchNotAllowed:
		return nil, &bitrix24.Error{Code: "ERROR_BATCH_METHOD_NOT_ALLOWED", Description: "Method is not allowed for batch usage"}
	case c.Batched && f.batchMode() == BatchNotFound:
		return nil, &bitrix24.Error{Code: "ERROR_METHOD_NOT_FOUND", Description: "Method not found!"}
	case c.Batched && f.batchMode() == BatchSilent:
		return nil, b24test.ErrNotRun
	case c.Batched && badBoolean(r.fields()) != "":
		return nil, fail("INVALID_ARGUMENT", "fields."+badBoolean(r.fields())+": a boolean is Y, N, true or false")
	case !r.app && r.token == "" && name != "imbot.v2.Bot.register": // which reads fields.botToken
		return nil, fail("BOT_TOKEN_NOT_SPECIFIED", "botToken is not specified")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.needs == nothing {
		return m.run(f, r)
	}
	id := intParam(c.Params, "botId")
	r.bot, r.cmd = f.bots[id], f.commands[intParam(c.Params, "commandId")]
	// A bot unregistered in fetch mode still reads its queue, down to ONIMBOTV2DELETE.
	gone := r.bot == nil || r.bot.deleted && (name != "imbot.v2.Event.get" || len(r.bot.queue) == 0)
	chat, inChat := chatID(c.Params.String("dialogId"))
	if inChat {
		r.chat, inChat = f.p.Chat(chat)
	}
	switch {
	case id <= 0:
		return nil, fail("BOT_ID_REQUIRED", "Bot ID is required")
	case gone:
		return nil, errBotNotFound
	case !r.owns(r.bot):
		return nil, &bitrix24.Error{Code: "BOT_OWNERSHIP_ERROR", Description: "Bot is registered by another application",
			HTTPStatus: http.StatusForbidden}
	case m.needs == aCommand && (r.cmd == nil || r.cmd.BotID != r.bot.ID):
		return nil, fail("COMMAND_NOT_FOUND", "Command not found")
	case m.needs == aChat && !inChat: // a chat the portal lacks, as one the bot is not in
		return nil, denied("The bot is not a member of the chat")
	}
	return m.run(f, r)
}

func (f *Fake) batchMode() BatchMode {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.batch
}

// badBoolean names a boolean field of a query that is not written as the docs write
// booleans: PHP reads "0" as false but "N" and "false" as true, so a client that
// writes 1 and 0 cannot be meant.
func badBoolean(fl bitrix24.Form) string {
	for _, k := range v2Booleans {
		if v, ok := fl[k].(string); ok && v != "" && !slices.Contains([]string{"y", "n", "true", "false"}, strings.ToLower(v)) {
			return k
		}
	}
	return ""
}

var errBotNotFound = fail("BOT_NOT_FOUND", "Bot not found")

// fail is a method error, HTTP 400.
func fail(code, description string) *bitrix24.Error {
	return &bitrix24.Error{Code: code, Description: description, HTTPStatus: http.StatusBadRequest}
}

func denied(description string) *bitrix24.Error {
	return &bitrix24.Error{Code: "ACCESS_DENIED", Description: description, HTTPStatus: http.StatusForbidden}
}

// done is the {"result": true} of the methods that answer nothing else.
var done = map[string]bool{"result": true}

func intParam(f bitrix24.Form, key string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(f.String(key)), 10, 64)
	return n
}

// flag reads a boolean: JSON true (in Params "1"), "Y" or "true".
func flag(s string) bool {
	return s == "1" || strings.EqualFold(s, "Y") || strings.EqualFold(s, "true")
}

// ids reads a list of positive IDs, such as userIds.
func ids(g bitrix24.Form) (out []int64) {
	for _, k := range g.Keys() {
		if n := intParam(g, k); n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// chatID is the chat ID of a group chat's dialog ID, "chatN".
func chatID(dialog string) (int64, bool) {
	rest, ok := strings.CutPrefix(dialog, "chat")
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, ok && err == nil && id > 0
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Portal is the portal the fake teaches imbot.v2.
func (f *Fake) Portal() *b24test.Portal { return f.p }
