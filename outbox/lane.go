package outbox

import (
	"fmt"
	"strconv"
	"strings"

	"supportbot/bitrix24"
)

// A Lane orders entries: those of one lane are sent one after another in the order
// they were put, and one that fails holds up only its lane. It names an ordering,
// not an address: where a message goes is the action's own (bitrix24.SendMessage.To).
type Lane struct {
	kind laneKind
	id   int64
}

type laneKind uint8

const (
	setupKind  laneKind = iota + 1
	dialogKind          // id: our dialog's
	clientKind          // id: the user's
	groupKind           // id: the portal's chat's
)

// SetupLane is the lane of the bot's registration on a portal: the bot first, then
// its commands, which need its ID.
var SetupLane = Lane{kind: setupKind}

// DialogLane is the lane of everything sent into a dialog's chat, starting with the
// chat's creation.
func DialogLane(dialogID int64) Lane { return Lane{dialogKind, dialogID} }

// ClientLane is the lane of a user's private chat with the bot: a client's main
// chat (where the access requests arrive), or an agent's.
func ClientLane(userID int64) Lane { return Lane{clientKind, userID} }

// GroupLane is the lane of a group chat that is no dialog's (the bot was added to it).
func GroupLane(chatID int64) Lane { return Lane{groupKind, chatID} }

// LaneOf is the lane of answers to a chat that is no dialog's, by its address: a
// user's private chat ("27") or a group chat ("chat5").
func LaneOf(chat string) Lane {
	if id, err := bitrix24.ChatIDOf(chat); err == nil {
		return GroupLane(id)
	}
	id, _ := strconv.ParseInt(chat, 10, 64)
	return ClientLane(id)
}

// String is the lane as the outbox row keeps it: "setup", "dialog:12", "client:27",
// "chat:5".
func (l Lane) String() string {
	switch l.kind {
	case setupKind:
		return "setup"
	case dialogKind:
		return "dialog:" + strconv.FormatInt(l.id, 10)
	case clientKind:
		return "client:" + strconv.FormatInt(l.id, 10)
	case groupKind:
		return "chat:" + strconv.FormatInt(l.id, 10)
	}
	return ""
}

// ParseLane reads a lane back from its row.
func ParseLane(s string) (Lane, error) {
	if s == "setup" {
		return SetupLane, nil
	}
	name, id, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(id, 10, 64)
	if ok && err == nil {
		switch name {
		case "dialog":
			return DialogLane(n), nil
		case "client":
			return ClientLane(n), nil
		case "chat":
			return GroupLane(n), nil
		}
	}
	if wellFormed(name) && (!ok || err == nil) {
		return Lane{}, fmt.Errorf("%w: lane %q", ErrNewer, s)
	}
	return Lane{}, fmt.Errorf("not a lane: %q", s)
}

// wellFormed: a lane's name as this build writes them, lowercase ASCII letters, so
// that one it does not know may be a newer release's rather than a damaged row.
func wellFormed(name string) bool {
	if name == "" || len(name) > 32 {
		return false
	}
	for _, r := range name {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}
