package bot

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Command names: the slash forms registered as the bot's commands, which the
// Russian and English phrases map to. Keyboard buttons send these too.
const (
	cmdChats    = "chats"
	cmdNew      = "new"
	cmdRename   = "rename"
	cmdHelp     = "help"
	cmdClose    = "close"
	cmdResolve  = "resolve"
	cmdReopen   = "reopen"
	cmdEscalate = "escalate"
	cmdQueue    = "queue"
	cmdAgents   = "agents"  // the portal's roles, for its administrators
	cmdTech     = "tech"    // the second line
	cmdClients  = "clients" // clients beyond the administrators
	// Hidden commands only keyboard buttons send.
	cmdOpen   = "open"   // open dialog N from the list, marking it read
	cmdRate   = "rate"   // rate a resolved dialog: "N up" / "N down"
	cmdAccess = "access" // answer an access request: "ID grant" / "ID decline"
	// Service figures, for agents: "/stats [days]".
	cmdStats = "stats"
	cmdKeep  = "keep" // keep dialog N open past an auto-close warning: "N"
	// Owners, for agents in a dialog.
	cmdTake    = "take"
	cmdAssign  = "assign" // "ID" or a mention
	cmdRelease = "release"
)

// command is a parsed command: its name and the rest of the text as typed. phrase is
// set for the plain-text forms, which are also ordinary words someone may begin a
// sentence with.
type command struct {
	name   string
	args   string
	phrase bool
}

// phrases are the plain-text forms, matched as whole leading words. A rename's phrase
// needs its number ("rename 2 CRM"): "Rename of a deal stage fails" is a question, and
// "rename button is missing" in a dialog a message; only "/rename" may leave it out.
var phrases = []struct {
	text     string
	name     string
	takesArg bool
	numbered bool
}{
	{"все чаты", cmdChats, false, false},
	{"all chats", cmdChats, false, false},
	{"открыть новый", cmdNew, true, false},
	{"open new", cmdNew, true, false},
	{"переименовать", cmdRename, true, true},
	{"rename", cmdRename, true, true},
	{"помощь", cmdHelp, false, false},
	{"help", cmdHelp, false, false},
}

// knownSlash lists the slash commands; any other "/word" is not ours and is plain text.
var knownSlash = map[string]bool{
	cmdChats: true, cmdNew: true, cmdRename: true, cmdHelp: true, cmdClose: true, cmdResolve: true,
	cmdReopen: true, cmdEscalate: true, cmdQueue: true, cmdOpen: true, cmdRate: true, cmdAccess: true,
	cmdAgents: true, cmdTech: true, cmdClients: true,
	cmdStats: true,
	cmdKeep:  true,
	cmdTake:  true, cmdAssign: true, cmdRelease: true,
}

// parseCommand recognises a command in message text. Matching ignores case,
// surrounding spaces and a trailing period; arguments keep their case. Bitrix24 strips
// mentions of the bot from group messages and leaves the punctuation after them
// (", all chats"), so leading commas and colons are ignored too.
func parseCommand(text string) (command, bool) {
	s := strings.TrimLeftFunc(text, func(r rune) bool { return unicode.IsSpace(r) || r == ',' || r == ':' })
	s = strings.TrimRightFunc(s, unicode.IsSpace)
	if s == "" {
		return command{}, false
	}
	if s[0] == '/' {
		word, rest, _ := strings.Cut(s[1:], " ")
		if i := strings.IndexAny(word, "\n\t"); i >= 0 {
			rest = word[i:] + " " + rest
			word = word[:i]
		}
		name := strings.ToLower(strings.TrimSuffix(word, "."))
		if !knownSlash[name] {
			return command{}, false
		}
		return command{name: name, args: strings.TrimSpace(rest)}, true
	}
	for _, p := range phrases {
		head := runePrefix(s, utf8.RuneCountInString(p.text))
		if !strings.EqualFold(head, p.text) {
			continue
		}
		rest := s[len(head):]
		if strings.TrimSpace(rest) == "." || rest == "" { // "rename" alone asks how
			return command{name: p.name, phrase: true}, true
		}
		if !p.takesArg || !unicode.IsSpace(rune(rest[0])) {
			continue
		}
		args := strings.TrimSpace(rest)
		if n, _, _ := strings.Cut(args, " "); p.numbered && strings.Trim(n, "0123456789") != "" {
			continue
		}
		return command{name: p.name, args: args, phrase: true}, true
	}
	return command{}, false
}

// runePrefix returns the first n runes of s (all of s if it is shorter).
func runePrefix(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// fromButton turns ONIMCOMMANDADD's command into the same shape.
func fromButton(name, params string) command {
	return command{name: strings.ToLower(strings.TrimPrefix(strings.TrimSpace(name), "/")), args: strings.TrimSpace(params)}
}
