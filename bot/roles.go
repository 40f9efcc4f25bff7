package bot

import (
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"

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

// maxRoleChange bounds how many users one command names.
const maxRoleChange = 100

// roleOfCommand maps /agents, /tech and /clients to the role they manage.
var roleOfCommand = map[string]string{cmdAgents: storage.RoleOfAgent, cmdTech: storage.RoleOfTech, cmdClients: storage.RoleOfClient}

// manageRoles: "/agents" lists, "/agents add 50 51" and "/agents remove 50" change,
// and every answer is the resulting list. Only the portal's administrators may.
func (t *turn) manageRoles(name, args string) error {
	if !t.from.admin {
		return t.reply(t.t.AdminsOnly, nil)
	}
	role := roleOfCommand[name]
	verb, rest, _ := strings.Cut(strings.TrimSpace(args), " ")
	verb = strings.ToLower(verb)
	adding := slices.Contains([]string{"add", "добавить"}, verb)
	removing := slices.Contains([]string{"remove", "убрать", "удалить"}, verb)
	switch {
	case verb == "":
	case !adding && !removing:
		return t.reply(t.t.RolesUsage(name), nil)
	default:
		ids, ok := parseUsers(rest)
		if !ok || len(ids) == 0 || len(ids) > maxRoleChange {
			return t.reply(t.t.RolesUsage(name), nil)
		}
		var err error
		if adding {
			err = t.tx.Grant(t.portal.ID, role, ids, t.from.id)
		} else {
			err = t.tx.Revoke(t.portal.ID, role, ids)
		}
		if err != nil {
			return err
		}
		t.b.log.Info("roles changed", "portal", t.portal.ID, "role", role, "by", t.from.id, "add", adding, "users", ids)
	}
	members, err := t.tx.Members(t.portal.ID, role)
	if err != nil {
		return err
	}
	list := make([]string, len(members))
	for i, id := range members {
		list[i] = "#" + strconv.FormatInt(id, 10)
	}
	return t.reply(t.t.RoleList(role, list), nil)
}

// mentionRE is a mention as Bitrix24 writes it when a user is picked: [USER=50]Name[/USER].
var mentionRE = regexp.MustCompile(`(?i)\[user=(\d{1,18})\].*?\[/user\]`)

// parseUsers reads user IDs and mentions, separated by spaces or commas; ok is
// false when anything else is there.
func parseUsers(s string) (ids []int64, ok bool) {
	s = mentionRE.ReplaceAllString(s, " $1 ")
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\n' || r == '\t' }) {
		id, err := strconv.ParseInt(strings.TrimPrefix(f, "#"), 10, 64)
		if err != nil || id <= 0 {
			return nil, false
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, true
}
