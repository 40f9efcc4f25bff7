package bot

import (
	"strconv"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// Effects: the bot's note, on an outbox entry, of what the action's result means.
const (
	effectDialogChat           = "dialog_chat"            // the result is the chat of dialog EffectRef
	effectTitleSent            = "title_sent"             // a rename of dialog EffectRef has finished
	effectAccessRequestMessage = "access_request_message" // the result is the message with access request EffectRef's buttons
	effectBotRegistered        = "bot_registered"         // the result is the portal's bot ID
	effectCommandRegistered    = "command_registered"     // the result is the command's ID
	effectPressAnswer          = "press_answer"           // an update answering a press in user EffectRef's main chat
)

// Result is how an action ended: done, with the ID its call answered (0 when the
// answer held none), or given up for good.
type Result struct {
	ID     int64
	Failed bool
}

// Settle records what the end of an action means to the bot: a dialog's new chat, a
// registered bot or command, a chat that will never exist. The dispatcher calls it in
// the transaction that records the outcome.
func (b *Bot) Settle(tx *storage.Tx, e storage.OutboxEntry, a bitrix24.Action, r Result) error {
	switch e.Effect {
	case effectDialogChat:
		if r.Failed || r.ID <= 0 {
			return b.chatFailed(tx, e.PortalID, e.EffectRef)
		}
		return b.chatCreated(tx, e.PortalID, e.EffectRef, r.ID)
	case effectTitleSent:
		return tx.TitleSent(e.EffectRef)
	case effectAccessRequestMessage:
		if !r.Failed && r.ID > 0 {
			return tx.SetAccessRequestMessage(e.EffectRef, r.ID)
		}
	case effectBotRegistered:
		if r.Failed || r.ID <= 0 {
			return tx.FailLane(e.PortalID, e.Lane, "the bot could not be registered")
		}
		return tx.SetBotID(e.PortalID, r.ID)
	case effectPressAnswer:
		// The portal would not update the pressed message (ACCESS_DENIED: not the
		// bot's own): the answer goes as a new message instead.
		if u, ok := a.(bitrix24.UpdateMessage); ok && r.Failed && e.EffectRef > 0 {
			return enqueue(tx, e.PortalID, storage.OutboxEntry{Lane: e.Lane},
				bitrix24.SendMessage{DialogID: strconv.FormatInt(e.EffectRef, 10), Text: u.Text, Keyboard: u.Keyboard})
		}
	case effectCommandRegistered:
		if c, ok := a.(bitrix24.RegisterCommand); ok && !r.Failed && r.ID > 0 {
			return tx.SetCommand(e.PortalID, c.Command.Name, r.ID)
		}
	}
	return nil
}

// chatCreated binds a dialog to the chat the portal created for it, and adopts what
// was written there while the answer was on its way.
func (b *Bot) chatCreated(tx *storage.Tx, portalID, dialogID, chatID int64) error {
	if err := tx.SetDialogChat(dialogID, chatID); err != nil {
		return err
	}
	strays, err := tx.TakeStrays(portalID, chatID, dialogID)
	if err != nil || len(strays) == 0 {
		return err
	}
	d, err := tx.Dialog(dialogID)
	if err != nil {
		return err
	}
	for _, m := range strays {
		if _, err := b.record(tx, d, m.BitrixMessageID, m.AuthorID, m.Text); err != nil {
			return err
		}
	}
	return nil
}

// chatFailed withdraws a dialog whose chat the portal will not create: it no longer
// counts towards the client's limit or shows in any list, what waited for the chat is
// given up, and the client is told in the main chat, with their question, so that
// nothing they wrote is lost and they can ask again.
func (b *Bot) chatFailed(tx *storage.Tx, portalID, dialogID int64) error {
	if err := tx.MarkDialogChatFailed(dialogID); err != nil {
		return err
	}
	if _, err := tx.FailDependents(dialogID, "the dialog's chat could not be created"); err != nil {
		return err
	}
	d, err := tx.Dialog(dialogID)
	if err != nil {
		return err
	}
	tr, err := tx.Transcript(d.ID)
	if err != nil {
		return err
	}
	question := ""
	if len(tr) > 0 {
		question = tr[0].Text
	}
	ct := textsFor(d.Language)
	lane := clientLane(d.ClientID)
	return enqueue(tx, portalID, storage.OutboxEntry{Lane: lane},
		bitrix24.SendMessage{DialogID: lane, Text: ct.ChatFailed(d.Number, quote(question)), Keyboard: askAgain(ct, question)})
}
