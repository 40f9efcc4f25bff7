package botv2

import (
	"maps"
	"slices"
	"strings"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
)

// For the local portal (package localportal): events of messages the portal already
// holds (b24test.Portal.AddUserMessage), commands asked for by name without a panic,
// and a State that survives a restart.

// Said queues ONIMBOTV2MESSAGEADD (or, edited, ONIMBOTV2MESSAGEUPDATE) of the
// portal's message messageID that userID wrote in dialogID, for the portal's only bot.
// ok is false when no bot takes events by fetch.
func (f *Fake) Said(userID int64, dialogID string, messageID int64, text string, edited bool) (eventID int64, ok bool) {
	typ := bitrix24.EventV2MessageAdd
	if edited {
		typ = bitrix24.EventV2MessageUpdate
	}
	if !f.fetching() {
		return 0, false
	}
	return f.Queue(f.build(typ, userID, dialogID, messageID, text, nil)), true
}

// Deleted queues ONIMBOTV2MESSAGEDELETE of the portal's message messageID.
func (f *Fake) Deleted(userID int64, dialogID string, messageID int64) (eventID int64, ok bool) {
	if !f.fetching() {
		return 0, false
	}
	return f.Delete(userID, dialogID, messageID), true
}

// Commanded queues ONIMBOTV2COMMANDADD of the registered command ("/help" or
// "help", in any case, as Bitrix24 matches them) that userID typed as the portal's
// message messageID (context "textarea"), or pressed on a keyboard of the bot's
// message messageID ("keyboard"). ok is false for a command the bot has not
// registered, which Bitrix24 sends as a plain message.
func (f *Fake) Commanded(userID int64, dialogID string, messageID int64, command, params string, pressed bool) (eventID int64, ok bool) {
	name, ok := f.registered(command)
	if !f.fetching() || !ok {
		return 0, false
	}
	context := "textarea"
	if pressed {
		context = "keyboard"
	}
	return f.Queue(f.build(bitrix24.EventV2CommandAdd, userID, dialogID, messageID, "", f.command(name, params, context))), true
}

// Registered reports a command ("/help" or "help", in any case) of a live bot.
func (f *Fake) Registered(command string) bool {
	_, ok := f.registered(command)
	return ok
}

// registered is the name a live bot registered command as.
func (f *Fake) registered(command string) (string, bool) {
	name := strings.TrimPrefix(command, "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.commands {
		if b := f.bots[c.BotID]; b != nil && !b.deleted && strings.EqualFold(c.Name, name) {
			return c.Name, true
		}
	}
	return "", false
}

// Fetching reports exactly one live bot, taking its events by fetch: the one Said,
// Deleted and Commanded queue events for.
func (f *Fake) Fetching() bool { return f.fetching() }

func (f *Fake) fetching() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	live := f.live()
	return len(live) == 1 && live[0].EventMode == "fetch"
}

// State is everything the imbot.v2 side keeps, for Restore.
type State struct {
	Bots      []BotState
	Commands  []Command
	Own       map[int64]int64
	Owners    map[int64]int64
	Members   map[int64][]int64 // group chat → the bots in it: where a bot may post
	Private   map[string]int64
	Users     map[int64][2]string
	MsgOf     map[int64]int64
	Next      struct{ Bot, Cmd, Event, Msg, Chat int64 }
	Confirmed int64
}

// BotState is a bot with its unconfirmed events.
type BotState struct {
	Bot
	Deleted bool
	Queue   []QueuedEvent
}

// QueuedEvent is an event waiting for Event.get to confirm it.
type QueuedEvent = event

// State returns what the Fake keeps now.
func (f *Fake) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := State{Own: maps.Clone(f.own), Owners: maps.Clone(f.owners), Private: maps.Clone(f.private), Users: maps.Clone(f.users),
		MsgOf: maps.Clone(f.msgOf), Confirmed: f.confirmed, Members: map[int64][]int64{}}
	for chat, bots := range f.members {
		s.Members[chat] = slices.Clone(bots)
	}
	s.Next.Bot, s.Next.Cmd, s.Next.Event, s.Next.Msg, s.Next.Chat = f.next.bot, f.next.cmd, f.next.event, f.next.msg, f.next.chat
	for _, id := range slices.Sorted(maps.Keys(f.bots)) {
		b := f.bots[id]
		s.Bots = append(s.Bots, BotState{Bot: b.Bot, Deleted: b.deleted, Queue: slices.Clone(b.queue)})
	}
	for _, id := range slices.Sorted(maps.Keys(f.commands)) {
		c := *f.commands[id]
		c.Titles, c.Params = maps.Clone(c.Titles), maps.Clone(c.Params)
		s.Commands = append(s.Commands, c)
	}
	return s
}

// Restore attaches imbot.v2 to p as State s describes it.
func Restore(p *b24test.Portal, s State) *Fake {
	f := Attach(p)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range s.Bots {
		f.bots[b.ID] = &bot{Bot: b.Bot, deleted: b.Deleted, queue: b.Queue}
	}
	for _, c := range s.Commands {
		f.commands[c.ID] = &c
	}
	maps.Copy(f.own, s.Own)
	maps.Copy(f.owners, s.Owners)
	maps.Copy(f.members, s.Members)
	maps.Copy(f.private, s.Private)
	maps.Copy(f.users, s.Users)
	maps.Copy(f.msgOf, s.MsgOf)
	f.next.bot, f.next.cmd, f.next.event = max(f.next.bot, s.Next.Bot), max(f.next.cmd, s.Next.Cmd), max(f.next.event, s.Next.Event)
	f.next.msg, f.next.chat, f.confirmed = max(f.next.msg, s.Next.Msg), max(f.next.chat, s.Next.Chat), s.Confirmed
	return f
}
