package bot

import "time"

// texts holds every sentence the bot writes, for one language. Each language fills
// it in its own file (texts_ru.go, texts_en.go), so a translator reads one place.
//
// Arguments named title, question or name are user text already escaped by the
// caller; links are BB-code the caller built.
type texts struct {
	DefaultTitle func(number int) string

	// Who may write.
	NotAllowed string
	FreePlan   string
	AgentsOnly string

	// Help.
	ClientHelp func(maxActive int) string
	AgentHelp  string

	// Buttons.
	BtnAllChats string
	BtnOpenNew  string
	BtnHelp     string
	BtnGoToChat string

	// The list of dialogs.
	ListHeader      func(total, unread int) string
	ListEmpty       string
	SectionActive   string
	SectionResolved string
	ListLine        func(number int, title, status string, unread int, link string) string
	StatusActive    string
	StatusResolved  string
	StatusEscalated string
	ChatPending     string // in place of a link while the chat is being created
	WorkPosition    string // under the bot's name in the messenger (its profile)
	ButtonDialog    func(number int, title string, unread int) string
	OpenLink        string                           // text of a [chat=…] link
	Showing         func(from, to, total int) string // a page of a long list
	BtnMore         string

	// Opening dialogs.
	LimitReached func(maxActive int, lines []string) string
	// NoAgents answers a question on a portal with no support agents: nothing is opened.
	NoAgents  string
	Opened    func(number int, link string) string
	Greeting  func(number int, client, question string) string
	OpenedFor func(number int, link string) string // reply in the chat where /open was pressed

	// Renaming.
	RenameUsage    string
	Renamed        func(number int, title string) string
	DialogNotFound func(number int) string
	TitleTooLong   func(max int) string

	// A resolved dialog the client writes into.
	Reopened       string
	LimitInDialog  func(maxActive int) string
	UnknownCommand string

	// Agents' commands.
	NotInDialog     string
	AlreadyResolved string
	AlreadyActive   string
	Resolved        func(number int) string              // in the dialog
	ResolvedNotice  func(number int, link string) string // to the client's main chat
	BtnHelped       string
	BtnNotHelped    string
	RatedThanks     func(helped bool) string
	ReopenedByAgent func(number int) string
	OpenedByAgent   func(number int, link string) string // where the agent typed /new
	OpenedForClient func(number int, link string) string // to the client's main chat
	// ChatFailed tells the client, in the main chat, that a dialog's chat could not be
	// created and the dialog is withdrawn; question is the escaped, shortened question.
	ChatFailed  func(number int, question string) string
	BtnAskAgain string

	// Escalation.
	AccessRequest   func(number int, title, link string) string
	BtnGrant        string
	BtnDecline      string
	AccessAnswered  func(granted bool, when string) string                            // appended to the request
	AccessAnnounced func(number int, client string, granted bool, when string) string // in the dialog
	AccessPending   string
	// SecondLineJoined: in the dialog, when /escalate adds the second line to it.
	SecondLineJoined func(mentions string) string

	// Roles, which the portal's administrators manage.
	AdminHelp  string
	AdminsOnly string
	RolesUsage func(command string) string
	RoleList   func(role string, total int, users []string) string // role: storage.RoleAgent, RoleTech or RoleClient; users: a page of "#50"…
	RolesFull  func(max, now int) string                           // adding would take the list past its bound
	// NoAgentsLeft follows the agents' list when it is empty: what that does to clients.
	NoAgentsLeft string

	// The agents' queue.
	QueueEmpty  string
	QueueHeader func(n int) string
	QueueLine   func(number int, title, client, waited string, unread int, link string) string
	Duration    func(d time.Duration) string

	// Owners and response targets (issue 22). owner and who are mentions; kind is
	// TargetKind's word for storage.TimeFirstResponse or storage.TimeReply.
	OwnerSet      func(number int, owner string) string // in the dialog: /take, /assign
	OwnerReleased func(number int, by string) string
	// OwnerLeftSupport: the owner's support roles were taken away.
	OwnerLeftSupport func(number int, owner string) string
	AlreadyOwner     func(owner string) string
	NotOwned         string
	AssignUsage      string
	NotAnAgent       func(user string) string
	QueueOwner       func(owner string) string // appended to a queue line: " · owner #50"
	QueueUnowned     string
	QueueNear        string // appended to a queue line whose wait has passed 80 % of its target
	QueuePast        string // … whose wait has passed its target
	TargetKind       func(kind string) string
	// TargetReminder mentions the owner (or all agents) at 80 % of the target; left is
	// the working time left.
	TargetReminder func(number int, who, kind, left string) string
	TargetMissed   func(number int, who, kind, target string) string
	// OutOfHours answers a client outside the working hours; back is when support
	// opens again, as When writes it.
	OutOfHours func(back string) string
	When       func(t time.Time) string
	// Per agent in /stats: within is the share of answers within target, or "".
	StatsAgentsHeader string
	StatsAgent        func(agent string, owned, answers int, within string) string
	StatsWithin       func(percent, within, total int) string

	// Service figures.
	StatsUsage    string
	StatsHeader   func(days int) string
	StatsCounts   func(opened, resolved, autoClosed int) string
	StatsTime     func(name string, count int, median, p90 string) string // one of the three times
	StatsNoTimes  func(name string) string                                // none measured in the window
	StatsFirst    string                                                  // the times' names
	StatsReply    string
	StatsResolve  string
	StatsCSAT     func(percent, helped, ratings int) string
	StatsNoRating string
	StatsBacklog  func(waiting int, oldest string) string
	StatsNoQueue  string
	Seconds       func(n int) string // a duration under a minute
	// StatsSentPrivately answers /stats in a dialog, whose client reads along: the
	// figures went to the agent's own chat with the bot. QueueSentPrivately is the
	// same for /queue, which names other clients and their questions.
	StatsSentPrivately string
	QueueSentPrivately string
	// Auto-close.
	// AutoCloseWarning tells the client, in the dialog, that it closes in left unless
	// they answer or press BtnKeepOpen; client is a mention.
	AutoCloseWarning func(number int, client, left string) string
	BtnKeepOpen      string
	KeptOpen         string                                 // appended to the warning once the client kept it open
	AutoClosed       func(number int, silent string) string // in the dialog: closed after silent without a reply
	Span             func(d time.Duration) string           // a configured duration in words: "3 days", "24 hours"

	// Sidebar is the sidebar page's own words; what the rules say there comes from the
	// texts above, through Page.
	Sidebar SidebarTexts
}

// SidebarTexts are the words of the sidebar page (the sidebar package) that are not
// the commands': its frame, its notices and its refusals. They are plain text, not
// BB-code: the page escapes them, and the user text in them, where it shows them.
type SidebarTexts struct {
	Title    string // the page's and the sidebar item's name
	Number   string // before a dialog's number: "№" or "#"
	Question string // Open new's field
	Rename   string
	Save     string
	Unread   string // the counter's tooltip
	ThisChat string // marks the dialog whose chat the sidebar is in
	Waited   string // in the queue: "waiting 2 h"
	New      string // in the queue: "new: 3"

	// The notices after a form.
	Opened    func(number int) string
	Renamed   func(number int, title string) string // title as the client gave it
	Pending   func(number int) string               // a dialog opened while its chat is being created
	Duplicate string

	// The refusals, one per sidebar.Refusal, and what to do about them.
	NotGenuine  string
	Expired     string
	Unavailable string
	Malformed   string
	TooLarge    string
	Failure     string
	RefusalHint string
}

// SidebarTextsFor is the sidebar page's words in lang: English for "en", else Russian
// (the caller has mapped the portal's language already, PageLang).
func SidebarTextsFor(lang string) *SidebarTexts { return &textsFor(lang).Sidebar }

// textsFor returns the texts for a language code; anything but "en" is Russian,
// except that the caller has already mapped unknown codes to the configured fallback.
// WorkPosition is what the messenger shows under the bot's name, in the bot's
// language: the profile's work position.
func WorkPosition(lang string) string { return textsFor(lang).WorkPosition }

func textsFor(lang string) *texts {
	if lang == "en" {
		return &textsEN
	}
	return &textsRU
}

// spanOf is a configured duration as a count of its largest whole unit: days from two
// days up (so 24 h stays "24 hours"), hours, minutes, else seconds (at least one), so
// that "10s" reads "10 seconds", not "1 minute".
func spanOf(d time.Duration) (int, time.Duration) {
	const day = 24 * time.Hour
	switch {
	case d >= 2*day && d%day == 0:
		return int(d / day), day
	case d >= time.Hour && d%time.Hour == 0:
		return int(d / time.Hour), time.Hour
	case d >= time.Minute && d%time.Minute == 0:
		return int(d / time.Minute), time.Minute
	}
	return max(int(d.Round(time.Second)/time.Second), 1), time.Second
}
