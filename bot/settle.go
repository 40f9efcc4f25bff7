package bot

import (
	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// Effects: what the results of the bot's actions mean to it. Each is noted on the
// entry that carries the action (outbox.Entry.Effect) and handled, when the action
// has ended, by the handler registered for it in settlement, in the transaction that
// records the ending.
type (
	dialogChat           int64 // the result is the chat of this dialog
	titleSent            int64 // a rename of this dialog's chat has ended
	accessRequestMessage int64 // the result is the message with this access request's buttons
	botRegistered        int64 // the result is the portal's bot's ID (refers to nothing: 0)
	commandRegistered    int64 // the result is the command's ID (refers to nothing: 0)
	pressAnswer          int64 // an update answering a press in this user's main chat
)

func (d dialogChat) Effect() (string, int64)           { return "dialog_chat", int64(d) }
func (d titleSent) Effect() (string, int64)            { return "title_sent", int64(d) }
func (r accessRequestMessage) Effect() (string, int64) { return "access_request_message", int64(r) }
func (botRegistered) Effect() (string, int64)          { return "bot_registered", 0 }
func (commandRegistered) Effect() (string, int64)      { return "command_registered", 0 }
func (u pressAnswer) Effect() (string, int64)          { return "press_answer", int64(u) }

// settlement registers the bot's handler of each effect, and the writer of the
// answers that only read (answers.go): what the dispatcher asks of the bot.
func (b *Bot) settlement() *outbox.Handlers {
	h := outbox.NewHandlers()
	outbox.On(h, func(tx *storage.Tx, d dialogChat, r outbox.Result) error {
		if r.Failed || r.ID <= 0 {
			return b.chatFailed(tx, r.PortalID, int64(d))
		}
		return b.chatCreated(tx, r.PortalID, int64(d), r.ID)
	})
	outbox.On(h, func(tx *storage.Tx, d titleSent, _ outbox.Result) error { return tx.TitleSent(int64(d)) })
	outbox.On(h, func(tx *storage.Tx, req accessRequestMessage, r outbox.Result) error {
		if r.Failed || r.ID <= 0 {
			return nil
		}
		return tx.SetAccessRequestMessage(int64(req), r.ID)
	})
	outbox.On(h, func(tx *storage.Tx, _ botRegistered, r outbox.Result) error {
		if r.Failed || r.ID <= 0 {
			return outbox.FailLane(tx, r.PortalID, r.Lane, "the bot could not be registered")
		}
		return tx.SetBotID(r.PortalID, r.ID)
	})
	outbox.On(h, func(tx *storage.Tx, _ commandRegistered, r outbox.Result) error {
		if c, ok := r.Action.(bitrix24.RegisterCommand); ok && !r.Failed && r.ID > 0 {
			return tx.SetCommand(r.PortalID, c.Command.Name, r.ID)
		}
		return nil
	})
	outbox.On(h, func(tx *storage.Tx, user pressAnswer, r outbox.Result) error {
		// The portal would not update the pressed message (ACCESS_DENIED: not the
		// bot's own): the answer goes as a new message instead.
		if u, ok := r.Action.(bitrix24.UpdateMessage); ok && r.Failed && user > 0 {
			return enqueue(tx, r.PortalID, outbox.Entry{Lane: r.Lane},
				bitrix24.SendMessage{To: bitrix24.UserChat(int64(user)), Text: u.Text, Keyboard: u.Keyboard})
		}
		return nil
	})
	h.WriteAnswersWith(b.WriteAnswer)
	return h
}

// Outbox is what the dispatcher asks of the bot: what each result means, and how an
// answer that only reads is written.
func (b *Bot) Outbox() *outbox.Handlers { return b.outbox }

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
	return enqueue(tx, portalID, outbox.Entry{Lane: outbox.ClientLane(d.ClientID)},
		bitrix24.SendMessage{To: bitrix24.UserChat(d.ClientID), Text: ct.ChatFailed(d.Number, quote(question)), Keyboard: askAgain(ct, question)})
}
