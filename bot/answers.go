package bot

import (
	"context"
	"encoding/json"
	"fmt"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// Answers that only read — /queue, /stats, "all chats" — are not written in the
// event's transaction. That transaction runs in the one writer every portal's events
// share, so a read that takes long there (a dialog flooded with messages) would hold
// up everyone's. Instead the event's transaction queues the answer's message with a
// note of what to write (answerLater): the command is on disk with the event, in its
// chat's lane, so it is answered once and in order, whatever happens after the 200.
// Just before the message is sent, the dispatcher has WriteAnswer write its text from
// a read snapshot, which waits for no writer and holds none up. The answer then says
// how things stand when it is sent, a moment after it was asked for.

// answer is the note: which answer, for whom, in which language, with what.
type answer struct {
	Command string `json:"command"` // cmdQueue, cmdStats or cmdChats
	User    int64  `json:"user"`
	Lang    string `json:"lang"`
	Page    string `json:"page,omitempty"` // "all chats": the page asked for
	Days    int    `json:"days,omitempty"` // /stats: the window
	Args    string `json:"args,omitempty"` // /queue: "mine" or nothing
}

// answerAgent answers an agent's command about the whole desk (the queue, the
// figures) where it was typed, except in a dialog, whose client reads along: there it
// goes to the agent's own chat with the bot, and sent says so in the dialog.
func (t *turn) answerAgent(a answer, sent string) error {
	if t.dialog == nil {
		return t.answerLater(t.replyLane(), t.chat, a)
	}
	own := t.own()
	if err := own.answerLater(own.replyLane(), own.chat, a); err != nil {
		return err
	}
	return t.reply(sent, nil)
}

// answerLater queues the message that will carry the answer, to the chat to in lane.
// The caller has checked that the author may have it.
func (t *turn) answerLater(lane outbox.Lane, to string, a answer) error {
	a.User, a.Lang = t.from.id, t.lang
	note, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return t.enqueue(outbox.Entry{Lane: lane, Answer: string(note)}, bitrix24.SendMessage{To: to})
}

// WriteAnswer writes the answer an outbox entry holds a note of (outbox.Entry.Answer),
// from a read snapshot of store: the entry's action with its text (and keyboard)
// filled in. The dispatcher calls it just before sending; an error (the database
// could not be read) leaves the entry to be tried again. The configuration it reads
// is the bot's (working hours and response targets mark the queue).
func (b *Bot) WriteAnswer(ctx context.Context, store *storage.Store, note string, portalID int64, action bitrix24.Action) (bitrix24.Action, error) {
	msg, ok := action.(bitrix24.SendMessage)
	var a answer
	if !ok || json.Unmarshal([]byte(note), &a) != nil {
		return nil, fmt.Errorf("%w: not an answer's note", outbox.ErrUnreadable)
	}
	err := store.View(ctx, func(tx *storage.Tx) error {
		p, err := tx.Portal(portalID)
		if err != nil {
			return err
		}
		t := b.newTurn(tx, p, who{id: a.User}, a.Lang, msg.To)
		switch a.Command {
		case cmdQueue:
			msg.Text, err = t.queueAnswer(a.Args)
		case cmdStats:
			msg.Text, err = t.statsAnswer(a.Days)
		case cmdChats:
			msg.Text, msg.Keyboard, err = t.chatsAnswer(a.Page)
		default:
			err = fmt.Errorf("%w: answer %q", outbox.ErrNewer, a.Command)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("write an answer: %w", err)
	}
	return msg, nil
}
