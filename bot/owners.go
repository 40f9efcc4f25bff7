package bot

import (
	"slices"
	"strings"
	"time"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// Owners (README, "Owners and response targets"): the first agent or second-line
// engineer to answer in an unowned dialog owns it (storage records that with the
// answer, unannounced: the answer is there to see); /take, /assign and /release
// change the owner, and the change is announced in the dialog and recorded in its
// life.

// take: /take makes the agent typing it the owner.
func (t *turn) take() error {
	if ok, err := t.agentInDialog(); !ok {
		return err
	}
	return t.giveTo(t.from.id)
}

// assign: /assign ID or /assign @mention gives the dialog to another agent (or
// second-line engineer), who is added to the chat if they are not in it.
func (t *turn) assign(args string) error {
	if ok, err := t.agentInDialog(); !ok {
		return err
	}
	ids, ok := parseUsers(args)
	if !ok || len(ids) != 1 {
		return t.reply(t.t.AssignUsage, nil)
	}
	to := ids[0]
	roles, err := t.tx.RolesOf(t.portal.ID, to)
	if err != nil {
		return err
	}
	if !roles.Agent && !roles.Tech {
		return t.reply(t.t.NotAnAgent(displayName(to, "")), nil)
	}
	if !roles.Agent { // every agent is in every dialog's chat; the second line joins on /escalate
		techs, err := t.secondLine()
		if err != nil {
			return err
		}
		if slices.Contains(techs, to) {
			err := t.enqueue(outbox.Entry{Lane: outbox.DialogLane(t.dialog.ID)}, bitrix24.AddUsers{
				Chat: bitrix24.GroupChat(t.dialog.ChatID), Users: []int64{to}})
			if err != nil {
				return err
			}
		}
	}
	return t.giveTo(to)
}

// giveTo makes to the owner and announces it, or says that it already is.
func (t *turn) giveTo(to int64) error {
	changed, err := t.tx.SetOwner(*t.dialog, to, t.from.id)
	if err != nil {
		return err
	}
	if !changed {
		return t.reply(t.t.AlreadyOwner(mention(to, "")), nil)
	}
	if err := t.ownerMoved(to); err != nil {
		return err
	}
	return t.reply(t.t.OwnerSet(t.dialog.Number, mention(to, "")), nil)
}

// ownerMoved takes the previous owner out of the dialog's chat when only owning it
// put them there (second line, given a dialog not escalated with /assign): the
// chat's people follow the one rule, placedIn.
func (t *turn) ownerMoved(to int64) error {
	d := *t.dialog
	prev := d.Owner
	if prev == 0 || prev == to {
		return nil
	}
	roles, err := t.tx.RolesOf(t.portal.ID, prev)
	if err != nil {
		return err
	}
	after := d
	after.Owner = to
	if prev == d.ClientID || !placedIn(prev, roles, d) || placedIn(prev, roles, after) {
		return nil
	}
	return t.enqueue(outbox.Entry{Lane: outbox.DialogLane(d.ID)},
		bitrix24.RemoveUser{Chat: bitrix24.GroupChat(d.ChatID), User: prev})
}

// release: /release leaves the dialog unowned.
func (t *turn) release() error {
	if ok, err := t.agentInDialog(); !ok {
		return err
	}
	changed, err := t.tx.SetOwner(*t.dialog, 0, t.from.id)
	if err != nil {
		return err
	}
	if !changed {
		return t.reply(t.t.NotOwned, nil)
	}
	if err := t.ownerMoved(0); err != nil {
		return err
	}
	return t.reply(t.t.OwnerReleased(t.dialog.Number, mention(t.from.id, t.from.name)), nil)
}

// ownerName is an owner as the agents' lists show it: a name that does not notify.
func ownerName(id int64) string { return displayName(id, "") }

// onlyMine keeps, for "/queue mine", the agent's own dialogs and the unowned.
func (t *turn) onlyMine(args string, list []storage.WaitingDialog, desk map[int64]storage.DeskState) []storage.WaitingDialog {
	if a := strings.ToLower(strings.TrimSpace(args)); a != "mine" && a != "мои" {
		return list
	}
	return slices.DeleteFunc(list, func(w storage.WaitingDialog) bool {
		owner := desk[w.ID].Owner
		return owner != 0 && owner != t.from.id
	})
}

// deskNote is what a queue line adds: the owner, and a mark when the wait is near
// (80 %) or past its target.
func (t *turn) deskNote(s storage.DeskState, now time.Time) string {
	note := t.t.QueueUnowned
	if s.Owner != 0 {
		note = t.t.QueueOwner(ownerName(s.Owner))
	}
	switch t.b.targetState(s.WaitKind, s.WaitStarted, now) {
	case targetPast:
		note += t.t.QueuePast
	case targetNear:
		note += t.t.QueueNear
	}
	return note
}
