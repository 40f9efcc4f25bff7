// Package outbox owns the outbox entry: an action the bot decided on, the lane it
// waits its turn in, the dialog's chat it may wait for, and what its result means.
//
// The bot puts entries (Put) and registers, once, what their results mean and how an
// answer that only reads is written (Handlers). storage keeps the rows and knows
// nothing of what is in them. delivery reads them back (Handlers.Read), sends them
// and hands each ending to Handlers.Settle, in the transaction that records it. So a
// new action touches the action and its wires in bitrix24; a new meaning of a result
// touches one effect type and its handler in the bot.
package outbox

import (
	"context"
	"errors"
	"fmt"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// Entry is an action the bot decided on, as it puts it into the outbox.
type Entry struct {
	Lane   Lane
	Action bitrix24.Action
	// Awaits is the dialog whose chat the action names before it exists
	// (bitrix24.ChatAwaiter): the entry waits for the chat, and is given up if the
	// chat is never created. 0: it waits for nothing.
	Awaits int64
	// Effect is what the action's result means to the bot; nil: nothing.
	Effect Effect
	// Answer is the bot's note of an answer that only reads: the action is a message
	// whose text the registered Answers writer writes just before it is sent, from a
	// read snapshot, never in the writer. "": an ordinary entry.
	Answer string
}

// Put adds an entry to the outbox of a portal, in tx: it is sent after tx commits.
func Put(tx *storage.Tx, portalID int64, e Entry) error {
	if e.Awaits != 0 {
		if _, ok := e.Action.(bitrix24.ChatAwaiter); !ok {
			return fmt.Errorf("outbox: %s cannot wait for a chat", e.Action.Kind())
		}
	}
	kind, data, err := bitrix24.EncodeAction(e.Action)
	if err != nil {
		return err
	}
	row := storage.OutboxRow{PortalID: portalID, Lane: e.Lane.String(), Kind: kind, Action: data,
		AwaitsDialog: e.Awaits, Answer: e.Answer}
	if e.Effect != nil {
		row.Effect, row.EffectRef = e.Effect.Effect()
	}
	_, err = tx.Enqueue(row)
	return err
}

// FailLane gives up every pending entry of a lane: what follows in it cannot succeed
// (the commands of a bot that could not be registered).
func FailLane(tx *storage.Tx, portalID int64, lane Lane, reason string) error {
	return tx.FailLane(portalID, lane.String(), reason)
}

// An Effect is the bot's note, on an entry, of what its action's result means: "the
// chat of dialog 12", "the message with access request 3's buttons". Each is a type
// of the bot's over int64, holding what it refers to, with a handler registered with
// On.
type Effect interface {
	// Effect is its name, as stored, and what it refers to.
	Effect() (name string, ref int64)
}

// Result is how an entry's action ended, as its effect's handler is told.
type Result struct {
	PortalID int64
	Lane     Lane
	Action   bitrix24.Action
	ID       int64 // the ID the call answered (a chat's, a message's); 0 when none
	Failed   bool  // given up for good: the portal refused it, or it failed too long
}

// Answers writes the answer an entry holds a note of (Entry.Answer): the entry's
// action with its text filled in from a read snapshot of store. An error leaves the
// entry to be tried again, unless it wraps ErrUnreadable.
type Answers func(ctx context.Context, store *storage.Store, note string, portalID int64, a bitrix24.Action) (bitrix24.Action, error)

// ErrUnreadable: an entry that cannot be made sense of (the database was edited by
// hand); trying again cannot help, so it is given up.
var ErrUnreadable = errors.New("unreadable outbox entry")

// ErrNewer: a well-formed entry that names what this build does not know (a lane, an
// action kind, an effect, an answer), as a newer release writes during a rolling
// upgrade. It is not this replica's to give up: it is tried again later, holding its
// lane, until a replica that knows it sends it (or the dispatcher's MaxAge ends it).
var ErrNewer = errors.New("outbox entry of a newer release")

// Handlers are what the bot makes of its entries: the handler of each effect, and
// the writer of answers that only read.
type Handlers struct {
	effects map[string]func(tx *storage.Tx, ref int64, r Result) error
	answers Answers
}

// NewHandlers returns handlers that know no effect and write no answer yet.
func NewHandlers() *Handlers {
	return &Handlers{effects: map[string]func(*storage.Tx, int64, Result) error{}}
}

// On registers what an effect means: fn is called with the effect and the result,
// in the transaction that records how the action ended.
func On[E interface {
	~int64
	Effect
}](h *Handlers, fn func(tx *storage.Tx, effect E, r Result) error) {
	var zero E
	name, _ := zero.Effect()
	if _, dup := h.effects[name]; dup {
		panic("outbox: effect " + name + " registered twice")
	}
	h.effects[name] = func(tx *storage.Tx, ref int64, r Result) error { return fn(tx, E(ref), r) }
}

// WriteAnswersWith registers the writer of answers that only read.
func (h *Handlers) WriteAnswersWith(fn Answers) { h.answers = fn }

// Sending is an entry read back to be sent: its row as storage keeps it, its lane,
// and its action, naming the awaited chat once it exists.
type Sending struct {
	Row    storage.OutboxRow
	Lane   Lane
	Action bitrix24.Action // nil when Err is set
	// Err: the row cannot be read: ErrUnreadable, given up without a call, or
	// ErrNewer, left for a replica that knows it.
	Err error
}

// Read reads a row back for sending.
func (h *Handlers) Read(row storage.OutboxRow) Sending {
	s := Sending{Row: row}
	var err error
	if s.Lane, err = ParseLane(row.Lane); errors.Is(err, ErrNewer) {
		s.Err = err
		return s
	} else if err != nil {
		s.Err = fmt.Errorf("%w: %v", ErrUnreadable, err)
		return s
	}
	a, err := bitrix24.DecodeAction(row.Kind, row.Action)
	switch {
	case errors.Is(err, bitrix24.ErrUnknownAction):
		s.Err = fmt.Errorf("%w: %v", ErrNewer, err)
		return s
	case err != nil:
		s.Err = fmt.Errorf("%w: %v", ErrUnreadable, err)
		return s
	case row.Effect != "" && h.effects[row.Effect] == nil:
		s.Err = fmt.Errorf("%w: effect %q", ErrNewer, row.Effect)
		return s
	case row.Answer != "" && h.answers == nil:
		s.Err = fmt.Errorf("%w: no writer of answers", ErrUnreadable)
		return s
	}
	if row.AwaitsDialog != 0 && row.DialogChatID != 0 {
		w, ok := a.(bitrix24.ChatAwaiter)
		if !ok {
			s.Err = fmt.Errorf("%w: %s cannot wait for a chat", ErrUnreadable, row.Kind)
			return s
		}
		a = w.WithChat(row.DialogChatID)
	}
	s.Action = a
	return s
}

// ChatFailed reports an entry that waited for a dialog's chat the portal would not
// create: it can never be sent.
func (s Sending) ChatFailed() bool { return s.Row.AwaitsDialog != 0 && s.Row.DialogChatFailed }

// Write writes an answer that only reads (Entry.Answer) just before it is sent; any
// other entry's action is returned as it is.
func (h *Handlers) Write(ctx context.Context, store *storage.Store, s Sending) (bitrix24.Action, error) {
	if s.Row.Answer == "" {
		return s.Action, nil
	}
	return h.answers(ctx, store, s.Row.Answer, s.Row.PortalID, s.Action)
}

// Settle tells the entry's effect's handler how its action ended: done, with the ID
// its call answered, or failed for good. An entry given up unread (damaged, or a
// newer release's kind that expired) is told as failed, with no action: what waits
// on its effect (a dialog's greeting waits for its chat) must learn it will not come,
// or it would wait for ever, never tried and so never given up.
func (h *Handlers) Settle(tx *storage.Tx, s Sending, id int64, failed bool) error {
	if s.Row.Effect == "" || s.Action == nil && !failed {
		return nil
	}
	fn := h.effects[s.Row.Effect]
	if fn == nil {
		return nil // Read gave it up already
	}
	return fn(tx, s.Row.EffectRef, Result{PortalID: s.Row.PortalID, Lane: s.Lane, Action: s.Action, ID: id, Failed: failed})
}
