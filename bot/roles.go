package bot

import (
	"errors"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// Roles per portal: a portal's administrators name its agents, its second line and
// its clients beyond the administrators, in the chat with the bot. Nothing about
// one portal's people applies to another's.

// NoRoleListsInAppMode refuses the configuration's role lists in app mode: they are
// user IDs of one portal, and user 50 on one portal is someone else on another.
func NoRoleListsInAppMode(appMode bool, lists ...[]int64) error {
	if !appMode || len(slices.Concat(lists...)) == 0 {
		return nil
	}
	return errors.New("support.agents, access.admins and access.integrators name users of one portal and are not used in app mode: " +
		"leave them empty; each portal's administrators name its agents, second line and clients in the chat with the bot " +
		"(/agents, /tech, /clients)")
}

// The roles are bounded, so that no administrator's command (nor a forged one) can
// make every question's chat enormous or an answer endless.
const (
	// maxRoleChange bounds how many users one command names.
	maxRoleChange = 100
	// maxUserID is the largest user ID taken: the REST docs type user IDs as
	// `integer`, Bitrix24 keeps them as 32-bit numbers counted from 1, and the largest
	// plan holds 10,000 users; "9223372036854775807" names nobody.
	maxUserID = math.MaxInt32
	// rolePage is how many IDs one answer of /agents, /tech or /clients lists; the
	// next page is a button away.
	rolePage = 100
)

// maxMembers bounds each role on a portal. The docs set no limit on a chat's members
// (imbot.chat.add USERS, imbot.v2.Chat.add userIds), so the bounds are ours: every
// question's chat is created with all the agents, and an escalated one gets all the
// second line, each of whom every message there notifies, so a hundred is already
// more than a desk that works; clients only gain the right to ask, so a thousand.
var maxMembers = map[string]int{storage.RoleAgent: 100, storage.RoleTech: 100, storage.RoleClient: 1000}

// roleOfCommand maps /agents, /tech and /clients to the role they manage.
var roleOfCommand = map[string]string{cmdAgents: storage.RoleAgent, cmdTech: storage.RoleTech, cmdClients: storage.RoleClient}

// manageRoles: "/agents" lists (a page of it: "/agents 2" is the second), "/agents
// add 50 51" and "/agents remove 50" change, and every answer is the resulting list.
// Only the portal's administrators may.
func (t *turn) manageRoles(name, args string) error {
	if !t.from.admin {
		return t.reply(t.t.AdminsOnly, nil)
	}
	if t.dialog != nil {
		// The main chat's command (SPEC.md): the lists name people, which is no
		// business of the dialog's client, who reads along. Typed in a dialog, it is
		// answered in the administrator's own chat with the bot.
		return t.own().manageRoles(name, args)
	}
	role := roleOfCommand[name]
	verb, rest, _ := strings.Cut(strings.TrimSpace(args), " ")
	verb = strings.ToLower(verb)
	adding := slices.Contains([]string{"add", "добавить"}, verb)
	removing := slices.Contains([]string{"remove", "убрать", "удалить"}, verb)
	pageArg := ""
	_, notPage := strconv.Atoi(verb)
	switch {
	case verb == "":
	case notPage == nil && rest == "":
		pageArg = verb
	case !adding && !removing:
		return t.reply(t.t.RolesUsage(name), nil)
	default:
		ids, ok := parseUsers(rest)
		if !ok || len(ids) == 0 || len(ids) > maxRoleChange {
			return t.reply(t.t.RolesUsage(name), nil)
		}
		refusal, err := t.changeRole(role, ids, adding)
		if err != nil {
			return err
		}
		if refusal != "" {
			return t.reply(refusal, nil)
		}
	}
	members, err := t.tx.Members(t.portal.ID, role)
	if err != nil {
		return err
	}
	from, to, next := pageOf(pageArg, len(members), rolePage)
	list := make([]string, 0, to-from)
	for _, id := range members[from:to] {
		list = append(list, "#"+strconv.FormatInt(id, 10))
	}
	text := t.t.RoleList(role, len(members), list)
	if from > 0 || to < len(members) {
		text += "\n" + t.t.Showing(from+1, to, len(members))
	}
	if role == storage.RoleAgent && len(members) == 0 {
		text += "\n\n" + t.t.NoAgentsLeft
	}
	var kb *bitrix24.Keyboard
	if next > 0 {
		kb = &bitrix24.Keyboard{Buttons: []bitrix24.Button{button(t.t.BtnMore, name, strconv.Itoa(next), false)}}
	}
	return t.reply(text, kb)
}

// changeRole gives the role to ids (adding) or takes it from them, unless adding
// would take the role past its bound: then it changes nothing and returns the
// refusal to say.
func (t *turn) changeRole(role string, ids []int64, adding bool) (string, error) {
	members, err := t.tx.Members(t.portal.ID, role)
	if err != nil {
		return "", err
	}
	n := len(members)
	for _, id := range ids {
		if adding && !slices.Contains(members, id) {
			n++
		}
	}
	if n > maxMembers[role] {
		return t.t.RolesFull(maxMembers[role], len(members)), nil
	}
	before := make([]storage.Roles, len(ids))
	for i, id := range ids {
		if before[i], err = t.tx.RolesOf(t.portal.ID, id); err != nil {
			return "", err
		}
	}
	if adding {
		err = t.tx.Grant(t.portal.ID, role, ids, t.from.id)
	} else {
		err = t.tx.Revoke(t.portal.ID, role, ids)
	}
	if err != nil {
		return "", err
	}
	t.b.log.Info("roles changed", "portal", t.portal.ID, "role", role, "by", t.from.id, "add", adding, "users", ids)
	return "", t.regroup(ids, before)
}

// placedIn reports whether roles put person id in a dialog's chat: an agent is in
// every dialog's chat, the second line in those handed to it (escalated, or given to
// them with /assign).
func placedIn(id int64, r storage.Roles, d storage.Dialog) bool {
	return r.Agent || (r.Tech && (!d.EscalatedAt.IsZero() || d.Owner == id))
}

// regroup brings the chats of the open dialogs in line with a change of roles: a
// new agent joins them all, so that every open question reaches them; a removed
// one leaves them, and no longer reads the clients' questions; the second line
// likewise in the dialogs handed to it. Nobody leaves a dialog they asked. Someone
// left with no support role no longer owns a dialog: it is released, and the dialog
// told, so that the next agent takes it and no response target waits on them.
func (t *turn) regroup(ids []int64, before []storage.Roles) error {
	after := make([]storage.Roles, len(ids))
	changed := false
	for i, id := range ids {
		var err error
		if after[i], err = t.tx.RolesOf(t.portal.ID, id); err != nil {
			return err
		}
		changed = changed || after[i].Agent != before[i].Agent || after[i].Tech != before[i].Tech
	}
	if !changed {
		return nil // a client's role: clients are in their own dialogs only
	}
	dialogs, err := t.tx.OpenDialogs(t.portal.ID)
	if err != nil {
		return err
	}
	for _, d := range dialogs {
		// A chat still being created was asked for with the people of the roles as they
		// were: what changes waits for it.
		chat, awaits := bitrix24.GroupChat(d.ChatID), int64(0)
		if d.ChatID == 0 {
			chat, awaits = bitrix24.AwaitedChat, d.ID
		}
		var join []int64
		for i, id := range ids {
			if d.Owner == id && !after[i].Agent && !after[i].Tech {
				if err := t.releaseOwner(d, chat, awaits); err != nil {
					return err
				}
			}
			was, is := placedIn(id, before[i], d), placedIn(id, after[i], d)
			switch {
			case id == d.ClientID || was == is:
			case is:
				join = append(join, id)
			default:
				err := t.enqueue(outbox.Entry{Lane: outbox.DialogLane(d.ID), Awaits: awaits}, bitrix24.RemoveUser{Chat: chat, User: id})
				if err != nil {
					return err
				}
			}
		}
		if len(join) > 0 {
			err := t.enqueue(outbox.Entry{Lane: outbox.DialogLane(d.ID), Awaits: awaits}, bitrix24.AddUsers{Chat: chat, Users: join})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// releaseOwner releases a dialog whose owner no longer works in support, and tells
// the dialog, in its client's language, as its other owner messages are.
func (t *turn) releaseOwner(d storage.Dialog, chat string, awaits int64) error {
	changed, err := t.tx.SetOwner(d, 0, t.from.id)
	if err != nil || !changed {
		return err
	}
	return t.enqueue(outbox.Entry{Lane: outbox.DialogLane(d.ID), Awaits: awaits},
		bitrix24.SendMessage{To: chat, Text: clientTexts(&d).OwnerLeftSupport(d.Number, ownerName(d.Owner))})
}

// mentionRE is a mention as Bitrix24 writes it when a user is picked: [USER=50]Name[/USER].
var mentionRE = regexp.MustCompile(`(?i)\[user=(\d{1,18})\].*?\[/user\]`)

// parseUsers reads user IDs and mentions, separated by spaces or commas; ok is
// false when anything else is there.
func parseUsers(s string) (ids []int64, ok bool) {
	s = mentionRE.ReplaceAllString(s, " $1 ")
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\n' || r == '\t' }) {
		id, err := strconv.ParseInt(strings.TrimPrefix(f, "#"), 10, 64)
		if err != nil || id <= 0 || id > maxUserID {
			return nil, false
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, true
}
