package bot

import (
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
			if err := tx.MarkDialogChatFailed(e.EffectRef); err != nil {
				return err
			}
			_, err := tx.FailDependents(e.EffectRef, "the dialog's chat could not be created")
			return err
		}
		return tx.SetDialogChat(e.EffectRef, r.ID)
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
	case effectCommandRegistered:
		if c, ok := a.(bitrix24.RegisterCommand); ok && !r.Failed && r.ID > 0 {
			return tx.SetCommand(e.PortalID, c.Command.Name, r.ID)
		}
	}
	return nil
}
