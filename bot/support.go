package bot

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// agentInDialog checks that an agent command comes from an agent, inside a dialog.
// When not, it queues the refusal and reports false; nothing else changes.
func (t *turn) agentInDialog() (bool, error) {
	if !t.from.agent {
		return false, t.reply(t.t.AgentsOnly, nil)
	}
	if t.dialog == nil {
		return false, t.reply(t.t.NotInDialog, nil)
	}
	return true, nil
}

// clientTexts are the texts in the dialog's client's language, for what the bot
// tells the client on an agent's behalf.
func clientTexts(d *storage.Dialog) *texts { return textsFor(d.Language) }

// closeDialog: /close, /resolve; "/close norate" asks the client for no rating.
func (t *turn) closeDialog(args string) error {
	if ok, err := t.agentInDialog(); !ok {
		return err
	}
	d := t.dialog
	if !d.Active() {
		return t.reply(t.t.AlreadyResolved, nil)
	}
	if err := t.tx.SetDialogStatus(d.ID, storage.StatusResolved); err != nil {
		return err
	}
	d.Status = storage.StatusResolved
	if err := t.tx.AddDialogEvent(*d, storage.LifeResolved, t.from.id); err != nil {
		return err
	}
	if err := t.reply(t.t.Resolved(d.Number), nil); err != nil {
		return err
	}
	ct := clientTexts(d)
	var kb *bitrix24.Keyboard
	if a := strings.ToLower(strings.TrimSpace(args)); a != "norate" && a != "без оценки" {
		// The buttons name this resolve, so that a press on an older one is not taken
		// for a rating of the newest.
		resolved, err := t.tx.Dialog(d.ID)
		if err != nil {
			return err
		}
		ref := strconv.Itoa(d.Number) + " %s " + strconv.FormatInt(resolved.ResolvedAt.UnixMilli(), 10)
		kb = answerButtons(cmdRate, ct.BtnHelped, fmt.Sprintf(ref, "up"), ct.BtnNotHelped, fmt.Sprintf(ref, "down"))
	}
	return t.send(outbox.ClientLane(d.ClientID), bitrix24.UserChat(d.ClientID), ct.ResolvedNotice(d.Number, t.chatLink(*d, bitrix24.EscapeLine(d.Title))), kb, 0)
}

// reopenDialog: /reopen. An agent may reopen past the client's limit, as with /new.
func (t *turn) reopenDialog() error {
	if ok, err := t.agentInDialog(); !ok {
		return err
	}
	d := t.dialog
	if d.Active() {
		return t.reply(t.t.AlreadyActive, nil)
	}
	if err := t.tx.SetDialogStatus(d.ID, storage.StatusActive); err != nil {
		return err
	}
	d.Status = storage.StatusActive
	if err := t.tx.AddDialogEvent(*d, storage.LifeReopened, t.from.id); err != nil {
		return err
	}
	return t.reply(t.t.ReopenedByAgent(d.Number), nil)
}

// agentNew: /new typed by an agent in a dialog opens a dialog for that dialog's
// client, past the limit.
func (t *turn) agentNew(question string, sourceMessageID int64) error {
	src := t.dialog
	d, err := t.createDialog(newDialog{
		clientID: src.ClientID, clientName: src.ClientName, lang: src.Language,
		question: question, questionMsgID: sourceMessageID, questionBy: t.from.id, questionRole: storage.RoleAgent,
	})
	if err != nil {
		return err
	}
	link := pendingChatLink(d)
	if err := t.send(t.replyLane(), t.chat, t.t.OpenedByAgent(d.Number, link), nil, d.ID); err != nil {
		return err
	}
	ct := clientTexts(src)
	return t.send(outbox.ClientLane(src.ClientID), bitrix24.UserChat(src.ClientID), ct.OpenedForClient(d.Number, link), goToChat(ct, bitrix24.AwaitedChat, true), d.ID)
}

// escalate: /escalate marks the dialog escalated and asks the client, in their main
// chat and nowhere else, to grant technical support access.
func (t *turn) escalate() error {
	if ok, err := t.agentInDialog(); !ok {
		return err
	}
	d := t.dialog
	_, err := t.tx.PendingAccessRequest(d.ID)
	if err == nil {
		return t.reply(t.t.AccessPending, nil)
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err := t.tx.EscalateDialog(d.ID, t.from.id); err != nil {
		return err
	}
	if err := t.tx.AddDialogEvent(*d, storage.LifeEscalated, t.from.id); err != nil {
		return err
	}
	req, err := t.tx.CreateAccessRequest(d.ID, d.ClientID, t.from.id)
	if err != nil {
		return err
	}
	// The second line joins the dialog's chat, and is told so there.
	if techs, err := t.secondLine(); err != nil {
		return err
	} else if len(techs) > 0 {
		if err := t.enqueue(outbox.Entry{Lane: outbox.DialogLane(d.ID)}, bitrix24.AddUsers{Chat: bitrix24.GroupChat(d.ChatID), Users: techs}); err != nil {
			return err
		}
		if err := t.send(outbox.DialogLane(d.ID), bitrix24.GroupChat(d.ChatID), t.t.SecondLineJoined(mentions(techs)), nil, 0); err != nil {
			return err
		}
	}
	ct := clientTexts(d)
	id := strconv.FormatInt(req.ID, 10)
	return t.enqueue(outbox.Entry{Lane: outbox.ClientLane(d.ClientID), Effect: accessRequestMessage(req.ID)}, bitrix24.SendMessage{
		To:       bitrix24.UserChat(d.ClientID),
		Text:     t.accessRequestText(ct, d),
		Keyboard: answerButtons(cmdAccess, ct.BtnGrant, id+" grant", ct.BtnDecline, id+" decline"),
	})
}

// secondLine is the portal's technical agents who are not agents, whom every
// dialog's chat has already.
func (t *turn) secondLine() ([]int64, error) {
	techs, err := t.tx.Members(t.portal.ID, storage.RoleTech)
	if err != nil || len(techs) == 0 {
		return nil, err
	}
	agents, err := t.tx.Members(t.portal.ID, storage.RoleAgent)
	return slices.DeleteFunc(techs, func(id int64) bool { return slices.Contains(agents, id) }), err
}

// mentions names users so that Bitrix24 notifies them.
func mentions(ids []int64) string {
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = mention(id, "")
	}
	return strings.Join(list, ", ")
}

func (t *turn) accessRequestText(ct *texts, d *storage.Dialog) string {
	return ct.AccessRequest(d.Number, bitrix24.EscapeLine(d.Title), t.chatLink(*d, ct.OpenLink))
}

// answerAccess handles Grant access / Decline. Only the dialog's client may answer,
// and only once: anything else changes nothing and says nothing, since the press came
// from a message only the client can see.
func (t *turn) answerAccess(args string, keyboardMessageID int64) error {
	idText, verb, _ := strings.Cut(strings.TrimSpace(args), " ")
	id, err := strconv.ParseInt(idText, 10, 64)
	granted := verb == "grant"
	if err != nil || (verb != "grant" && verb != "decline") {
		return t.reply(t.t.UnknownCommand, nil)
	}
	req, err := t.tx.AccessRequest(id)
	if errors.Is(err, storage.ErrNotFound) {
		t.b.log.Warn("press for an unknown access request", "request", id, "user", t.from.id)
		return nil
	}
	if err != nil {
		return err
	}
	if req.ClientID != t.from.id {
		t.b.log.Warn("access request answered by someone other than its client: ignored",
			"request", id, "user", t.from.id, "client", req.ClientID)
		return nil
	}
	d, err := t.tx.Dialog(req.DialogID)
	if err != nil {
		return err
	}
	if d.PortalID != t.portal.ID {
		return nil
	}
	status := storage.AccessDeclined
	if granted {
		status = storage.AccessGranted
	}
	changed, err := t.tx.DecideAccessRequest(req.ID, status, t.from.id)
	if err != nil || !changed {
		return err
	}
	ct := clientTexts(&d)
	when := t.tx.Now().UTC().Format("2006-01-02 15:04 UTC")
	// Replace the request's buttons by the answer, so they cannot be pressed again.
	msgID := req.MessageID
	if msgID == 0 {
		msgID = keyboardMessageID
	}
	if msgID > 0 {
		err := t.enqueue(outbox.Entry{Lane: outbox.ClientLane(d.ClientID), Effect: pressAnswer(d.ClientID)}, bitrix24.UpdateMessage{
			MessageID: msgID, Text: t.accessRequestText(ct, &d) + "\n\n" + ct.AccessAnswered(granted, when), DropKeyboard: true,
		})
		if err != nil {
			return err
		}
	}
	announce := ct.AccessAnnounced(d.Number, mention(d.ClientID, d.ClientName), granted, when)
	if techs, err := t.secondLine(); err != nil {
		return err
	} else if len(techs) > 0 {
		announce += "\n" + mentions(techs) // the second line decides what to do next: tell them by name
	}
	return t.send(outbox.DialogLane(d.ID), bitrix24.GroupChat(d.ChatID), announce, nil, d.ID)
}

// rate records the client's 👍/👎 for a resolved dialog and turns the buttons into
// the answer.
func (t *turn) rate(args string, keyboardMessageID int64) error {
	fields := strings.Fields(args)
	if len(fields) < 2 || (fields[1] != "up" && fields[1] != "down") {
		return t.reply(t.t.UnknownCommand, nil)
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil {
		return t.reply(t.t.UnknownCommand, nil)
	}
	verb := fields[1]
	var resolvedAt int64 // which resolve the buttons were for; 0 on buttons sent before they said
	if len(fields) > 2 {
		resolvedAt, _ = strconv.ParseInt(fields[2], 10, 64)
	}
	d, err := t.tx.DialogByNumber(t.portal.ID, n)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (d.ClientID != t.from.id || d.ResolvedAt.IsZero())) {
		t.b.log.Warn("rating ignored", "dialog", n, "user", t.from.id)
		return nil
	}
	if err != nil {
		return err
	}
	helped := verb == "up"
	// A press for an earlier resolve, or after the window, is thanked but not recorded.
	late := t.tx.Now().Sub(d.ResolvedAt) > t.b.cfg.RatingWindow
	if stale := resolvedAt != 0 && resolvedAt != d.ResolvedAt.UnixMilli(); late || stale || d.Active() {
		t.b.log.Info("rating not recorded", "dialog", d.ID, "late", late, "stale", stale)
	} else if err := t.tx.RateDialog(d, t.from.id, helped); err != nil {
		return err
	}
	if keyboardMessageID <= 0 {
		return nil
	}
	ct := clientTexts(&d)
	return t.enqueue(outbox.Entry{Lane: outbox.ClientLane(d.ClientID), Effect: pressAnswer(d.ClientID)}, bitrix24.UpdateMessage{
		MessageID:    keyboardMessageID,
		Text:         ct.ResolvedNotice(d.Number, t.chatLink(d, bitrix24.EscapeLine(d.Title))) + "\n\n" + ct.RatedThanks(helped),
		DropKeyboard: true,
	})
}

// displayName is a person's name as a message shows it: escaped and, since events
// may carry any length, shortened.
func displayName(userID int64, name string) string {
	if strings.TrimSpace(name) == "" {
		return "#" + strconv.FormatInt(userID, 10)
	}
	return bitrix24.EscapeLine(bitrix24.Shorten(name, maxName))
}

// queueAnswer is the answer to /queue: for agents, the active dialogs waiting for an
// answer, longest waiting first, with their owners and how near their targets they
// are; "/queue mine" only the agent's own and the unowned. It only reads (answers.go).
func (t *turn) queueAnswer(args string) (string, error) {
	list, err := t.tx.WaitingDialogs(t.portal.ID)
	if err != nil {
		return "", err
	}
	desk, err := t.tx.DeskStates(t.portal.ID)
	if err != nil {
		return "", err
	}
	list = t.onlyMine(args, list, desk)
	if len(list) == 0 {
		return t.t.QueueEmpty, nil
	}
	var b strings.Builder
	b.WriteString(t.t.QueueHeader(len(list)))
	now := t.tx.Now()
	if len(list) > pageSize {
		b.WriteString("\n" + t.t.Showing(1, pageSize, len(list)))
	}
	for _, w := range list[:min(len(list), pageSize)] {
		waited := max(now.Sub(w.WaitingSince), time.Duration(0))
		// The client's name as text, not a mention: a mention would notify the client.
		b.WriteString("\n" + t.t.QueueLine(w.Number, bitrix24.EscapeLine(w.Title), displayName(w.ClientID, w.ClientName),
			t.t.Duration(waited), w.Waiting, t.chatLink(w.Dialog, t.t.OpenLink)) + t.deskNote(desk[w.ID], now))
	}
	return b.String(), nil
}
