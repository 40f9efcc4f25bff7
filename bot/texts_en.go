package bot

import (
	"fmt"
	"strings"
	"time"

	"supportbot/storage"
)

var textsEN = texts{
	DefaultTitle: func(n int) string { return fmt.Sprintf("Support question — #%d", n) },

	NotAllowed: "Only the portal's administrators and integrators can write to support. " +
		"If you need help, please ask your Bitrix24 administrator.",
	FreePlan: "Support chat is available on commercial Bitrix24 plans only. " +
		"Switch to a commercial plan to ask your questions here.",
	AgentsOnly: "Only support agents can use this command.",

	ClientHelp: func(max int) string {
		return "[b]Support[/b]\n" +
			"Write your question here and it gets its own chat with support.\n" +
			fmt.Sprintf("You can have up to %d questions open at a time.\n\n", max) +
			"[b]all chats[/b] — your questions, with unread messages\n" +
			"[b]open new[/b] [i]question[/i] — open a new question\n" +
			"[b]rename N title[/b] — rename question #N\n" +
			"[b]help[/b] — this help"
	},
	AdminHelp: "[b]Administrator[/b]: /agents, /tech (the second line, who join a question when it is escalated) and " +
		"/clients (who may ask besides the administrators) show who is who; add [i]add 50 51[/i] or [i]remove 50[/i] to change it.",
	AdminsOnly: "Only the portal's administrators manage who is who.",
	RolesUsage: func(command string) string {
		return "Use [b]/" + command + "[/b] to see the list, [b]/" + command + " add 50 51[/b] or [b]/" + command +
			" remove 50[/b] to change it (user IDs or mentions)."
	},
	RolesFull: func(max, now int) string {
		return fmt.Sprintf("This list can hold at most %d people and has %d: nobody was added. Remove someone first.", max, now)
	},
	RoleList: func(role string, total int, users []string) string {
		name := map[string]string{storage.RoleAgent: "Support agents", storage.RoleTech: "Second line", storage.RoleClient: "Clients besides the administrators"}[role]
		if len(users) == 0 {
			return name + ": nobody yet."
		}
		return fmt.Sprintf("%s (%d): %s", name, total, strings.Join(users, ", "))
	},
	NoAgentsLeft: "⚠ Nobody answers questions now: while there are no support agents, new questions are not opened " +
		"and the clients who ask are told so. Name agents with [b]/agents add[/b] [i]IDs[/i].",

	AgentHelp: "[b]Support commands[/b] (inside a question's chat)\n" +
		"/close — the question is resolved\n" +
		"/reopen — make it active again\n" +
		"/escalate — hand it to technical support (the client gets an access request)\n" +
		"/new [i]question[/i] — open a new question for the client, past the limit\n" +
		"/rename [i]title[/i] — rename the question\n" +
		"/queue — questions waiting for an answer, with their owners ([i]/queue mine[/i]: yours and the unowned)\n" +
		"/take — you own the question · /assign [i]@agent[/i] — give it to another agent · /release — leave it unowned\n" +
		"/stats [i]days[/i] — the service figures",

	BtnAllChats: "All chats",
	BtnOpenNew:  "Open new",
	BtnHelp:     "Help",
	BtnGoToChat: "Go to chat",

	ListHeader: func(total, unread int) string {
		return fmt.Sprintf("[b]Your questions[/b]: %d, unread messages: %d", total, unread)
	},
	ListEmpty:       "You have no questions yet. Write one here or press “Open new”.",
	SectionActive:   "[b]Active[/b]",
	SectionResolved: "[b]Resolved[/b]",
	ListLine: func(n int, title, status string, unread int, link string) string {
		return fmt.Sprintf("#%d · %s · %s · unread: %d · %s", n, title, status, unread, link)
	},
	StatusActive:    "active",
	StatusResolved:  "resolved",
	StatusEscalated: "with technical support",
	ChatPending:     "chat is being created",
	WorkPosition:    "Support",
	ButtonDialog: func(n int, title string, unread int) string {
		if unread > 0 {
			return fmt.Sprintf("#%d %s (%d)", n, title, unread)
		}
		return fmt.Sprintf("#%d %s", n, title)
	},
	OpenLink: "open",
	Showing: func(from, to, total int) string {
		return fmt.Sprintf("[i]showing %d–%d of %d[/i]", from, to, total)
	},
	BtnMore: "More",

	LimitReached: func(max int, lines []string) string {
		return fmt.Sprintf("You already have the maximum of %d open questions:\n", max) +
			strings.Join(lines, "\n") +
			"\n\nTo open a new one, ask support to close the questions that are resolved."
	},
	NoAgents: "Nobody can answer here yet: this portal has no support agents, so your question was not opened. " +
		"Please ask your Bitrix24 administrator to name them (/agents add), then ask again.",
	Opened: func(n int, link string) string {
		return fmt.Sprintf("Question #%d is open: %s\nSupport will answer in that chat.", n, link)
	},
	Greeting: func(n int, client, question string) string {
		s := fmt.Sprintf("[b]Question #%d[/b] from %s.", n, client)
		if question != "" {
			s += "\n[b]Question:[/b] " + question
		} else {
			s += "\nPlease describe your question."
		}
		return s + "\nA support agent will answer here."
	},
	OpenedFor: func(n int, link string) string { return fmt.Sprintf("Question #%d: %s", n, link) },

	RenameUsage: "To rename: [b]rename N new title[/b], for example “rename 2 CRM setup”. " +
		"Inside a question's chat the number may be left out.",
	Renamed:        func(n int, title string) string { return fmt.Sprintf("Question #%d renamed: “%s”.", n, title) },
	DialogNotFound: func(n int) string { return fmt.Sprintf("Question #%d is not among yours.", n) },
	TitleTooLong:   func(max int) string { return fmt.Sprintf("The title is too long: at most %d characters.", max) },

	Reopened: "The question is active again.",
	LimitInDialog: func(max int) string {
		return fmt.Sprintf("This question is resolved and you already have %d others open, the maximum. "+
			"Ask support to close the resolved ones, or write in one of the active questions.", max)
	},
	UnknownCommand: "I did not understand that command. Write “help” to see the list.",

	NotInDialog:     "This command works inside a question's chat.",
	AlreadyResolved: "The question is already resolved.",
	AlreadyActive:   "The question is already active.",
	Resolved: func(n int) string {
		return fmt.Sprintf("Question #%d is resolved. If something is left, write here and it opens again.", n)
	},
	ResolvedNotice: func(n int, link string) string {
		return fmt.Sprintf("Support marked your question #%d as resolved: %s\nDid the answer help?", n, link)
	},
	BtnHelped:    "👍 Helped",
	BtnNotHelped: "👎 Didn't help",
	RatedThanks: func(helped bool) string {
		if helped {
			return "Your rating: 👍 helped. Thank you!"
		}
		return "Your rating: 👎 didn't help. Thank you for telling us — we will look into it."
	},
	ReopenedByAgent: func(n int) string { return fmt.Sprintf("Question #%d is active again.", n) },
	OpenedByAgent: func(n int, link string) string {
		return fmt.Sprintf("Opened question #%d for the client: %s", n, link)
	},
	OpenedForClient: func(n int, link string) string {
		return fmt.Sprintf("Support opened question #%d for you: %s", n, link)
	},
	ChatFailed: func(n int, question string) string {
		s := fmt.Sprintf("Sorry: Bitrix24 did not let me create the chat for question #%d, so it is withdrawn "+
			"and does not count towards your open questions.", n)
		if question != "" {
			s += "\nYour question was:\n[i]" + question + "[/i]"
		}
		return s + "\nPlease ask it again in a moment."
	},
	BtnAskAgain: "Ask again",

	AccessRequest: func(n int, title, link string) string {
		return fmt.Sprintf("[b]Access request[/b]\nTo resolve question #%d “%s” (%s), "+
			"technical support needs access to your Bitrix24. Grant access?", n, title, link)
	},
	BtnGrant:   "Grant access",
	BtnDecline: "Decline",
	AccessAnswered: func(granted bool, when string) string {
		if granted {
			return "Answer: access granted (" + when + ")."
		}
		return "Answer: access declined (" + when + ")."
	},
	AccessAnnounced: func(n int, client string, granted bool, when string) string {
		if granted {
			return fmt.Sprintf("%s granted technical support access for question #%d (%s).", client, n, when)
		}
		return fmt.Sprintf("%s declined the access request for question #%d (%s).", client, n, when)
	},
	SecondLineJoined: func(mentions string) string { return "The second line joins the question: " + mentions + "." },
	AccessPending:    "An access request for this question is already waiting for the client's answer.",

	QueueEmpty:  "The queue is empty: every client has an answer.",
	QueueHeader: func(n int) string { return fmt.Sprintf("[b]Waiting for an answer[/b]: %d", n) },
	QueueLine: func(n int, title, client, waited string, unread int, link string) string {
		return fmt.Sprintf("#%d · %s · %s · waiting %s · new messages: %d · %s", n, title, client, waited, unread, link)
	},
	Duration: func(d time.Duration) string {
		h, m := int(d.Hours()), int(d.Minutes())%60
		switch {
		case h >= 24:
			return fmt.Sprintf("%d d %d h", h/24, h%24)
		case h > 0:
			return fmt.Sprintf("%d h %d min", h, m)
		}
		return fmt.Sprintf("%d min", m)
	},

	OwnerSet: func(n int, owner string) string { return fmt.Sprintf("Question #%d is now handled by %s.", n, owner) },
	OwnerReleased: func(n int, by string) string {
		return fmt.Sprintf("%s released question #%d: it has no owner now; the next agent to answer or /take it owns it.", by, n)
	},
	OwnerLeftSupport: func(n int, owner string) string {
		return fmt.Sprintf("%s no longer works in support: question #%d has no owner now; the next agent to answer or /take it owns it.", owner, n)
	},
	AlreadyOwner: func(owner string) string { return owner + " already owns this question." },
	NotOwned:     "This question has no owner.",
	AssignUsage:  "Use [b]/assign 50[/b] or [b]/assign @name[/b]: the support agent who takes the question.",
	NotAnAgent: func(user string) string {
		return user + " is not a support agent: only agents and the second line can own a question."
	},
	QueueOwner:   func(owner string) string { return " · owner " + owner },
	QueueUnowned: " · no owner",
	QueueNear:    " · ⏰ near its target",
	QueuePast:    " · 🔥 past its target",
	TargetKind: func(kind string) string {
		if kind == storage.TimeReply {
			return "reply"
		}
		return "first response"
	},
	TargetReminder: func(n int, who, kind, left string) string {
		return fmt.Sprintf("%s, question #%d is waiting for a %s: its target is reached in %s of working time.", who, n, kind, left)
	},
	TargetMissed: func(n int, who, kind, target string) string {
		return fmt.Sprintf("%s, question #%d missed its %s target (%s of working time).", who, n, kind, target)
	},
	OutOfHours: func(back string) string {
		return "Support is closed now. Your message is saved, and we will answer when we are back: " + back + "."
	},
	When:              func(t time.Time) string { return t.Format("Mon 2 Jan, 15:04") + " (" + t.Location().String() + ")" },
	StatsAgentsHeader: "[b]By agent[/b]",
	StatsAgent: func(agent string, owned, answers int, within string) string {
		line := fmt.Sprintf("%s: owns %d now · answers %d", agent, owned, answers)
		if within != "" {
			line += " · " + within
		}
		return line
	},
	StatsWithin: func(percent, within, total int) string {
		return fmt.Sprintf("within target %d%% (%d of %d)", percent, within, total)
	},

	StatsUsage: "Service figures: [b]/stats[/b] for the last 7 days, or [b]/stats N[/b] for the last N days (1 to 365).",
	StatsHeader: func(days int) string {
		if days == 1 {
			return "[b]Service figures[/b], the last 24 hours"
		}
		return fmt.Sprintf("[b]Service figures[/b], the last %d days", days)
	},
	StatsCounts: func(opened, resolved, autoClosed int) string {
		return fmt.Sprintf("Opened: %d · resolved by agents: %d · auto-closed: %d", opened, resolved, autoClosed)
	},
	StatsTime: func(name string, count int, median, p90 string) string {
		return fmt.Sprintf("%s (%d): median %s, 90th percentile %s", name, count, median, p90)
	},
	StatsNoTimes: func(name string) string { return name + ": none in this period" },
	StatsFirst:   "First response",
	StatsReply:   "Reply",
	StatsResolve: "Resolution",
	StatsCSAT: func(percent, helped, ratings int) string {
		return fmt.Sprintf("CSAT: %d%% (%d of %d ratings: helped)", percent, helped, ratings)
	},
	StatsNoRating: "CSAT: no ratings in this period",
	StatsBacklog: func(waiting int, oldest string) string {
		return fmt.Sprintf("Now waiting for an answer: %d, the longest for %s", waiting, oldest)
	},
	StatsNoQueue:       "Now waiting for an answer: none",
	Seconds:            func(n int) string { return fmt.Sprintf("%d s", n) },
	StatsSentPrivately: "The service figures are in your chat with the bot.",
	QueueSentPrivately: "The queue is in your chat with the bot.",
	AutoCloseWarning: func(n int, client, left string) string {
		return fmt.Sprintf("%s, support is waiting for your reply in question #%d. If nothing is left, "+
			"the question closes automatically in %s. To keep it open, press “Keep it open” or write here.", client, n, left)
	},
	BtnKeepOpen: "Keep it open",
	KeptOpen:    "The question stays open.",
	AutoClosed: func(n int, silent string) string {
		return fmt.Sprintf("Question #%d was closed automatically: no reply for %s. "+
			"If something is left, write here and it opens again.", n, silent)
	},
	Span: func(d time.Duration) string {
		n, unit := spanOf(d)
		word := map[time.Duration]string{24 * time.Hour: "day", time.Hour: "hour", time.Minute: "minute", time.Second: "second"}[unit]
		if n != 1 {
			word += "s"
		}
		return fmt.Sprintf("%d %s", n, word)
	},
	Sidebar: SidebarTexts{
		Title:    "Support",
		Number:   "#",
		Question: "Question (optional)",
		Rename:   "Rename",
		Save:     "Save",
		Unread:   "unread",
		ThisChat: "this chat",
		Waited:   "waiting",
		New:      "new",
		Opened: func(n int) string {
			return fmt.Sprintf("Question #%d is open. The link to its chat is in your chat with the bot.", n)
		},
		Renamed:     func(n int, title string) string { return fmt.Sprintf("Question #%d renamed: “%s”.", n, title) },
		Pending:     func(n int) string { return fmt.Sprintf("The chat of question #%d is still being created.", n) },
		Duplicate:   "That is done already.",
		NotGenuine:  "This page could not be confirmed as opened by your Bitrix24.",
		Expired:     "This page has expired.",
		Unavailable: "Your Bitrix24 is not answering now. Try again in a moment.",
		Malformed:   "The request could not be read.",
		TooLarge:    "The request is too long.",
		Failure:     "Something went wrong. Try again.",
		RefusalHint: "Close “Support” in the chat's sidebar and open it again.",
	},
}
