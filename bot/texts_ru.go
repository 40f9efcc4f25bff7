package bot

import (
	"fmt"
	"strings"
	"time"

	"supportbot/storage"
)

var textsRU = texts{
	DefaultTitle: func(n int) string { return fmt.Sprintf("Вопрос в поддержку — №%d", n) },

	NotAllowed: "Писать в поддержку могут администраторы и интеграторы портала. " +
		"Если вам нужна помощь, обратитесь к администратору вашего Битрикс24.",
	FreePlan: "Чат с поддержкой доступен только на коммерческих тарифах Битрикс24. " +
		"Подключите коммерческий тариф, чтобы задавать вопросы здесь.",
	AgentsOnly: "Эта команда доступна только сотрудникам поддержки.",

	ClientHelp: func(max int) string {
		return "[b]Поддержка[/b]\n" +
			"Напишите вопрос сюда — для него откроется отдельный чат с поддержкой.\n" +
			fmt.Sprintf("Одновременно может быть открыто до %d обращений.\n\n", max) +
			"[b]все чаты[/b] — список ваших обращений с непрочитанными сообщениями\n" +
			"[b]открыть новый[/b] [i]вопрос[/i] — открыть новое обращение\n" +
			"[b]переименовать N название[/b] — переименовать обращение №N\n" +
			"[b]помощь[/b] — эта справка"
	},
	AdminHelp: "[b]Администратору[/b]: /agents (агенты), /tech (вторая линия: подключаются к обращению при передаче " +
		"в техподдержку) и /clients (кто ещё может задавать вопросы) — списки; [i]add 50 51[/i] или [i]remove 50[/i] меняют их.",
	AdminsOnly: "Роли назначают только администраторы портала.",
	RolesUsage: func(command string) string {
		return "[b]/" + command + "[/b] — список, [b]/" + command + " add 50 51[/b] или [b]/" + command +
			" remove 50[/b] — изменить его (ID пользователей или упоминания)."
	},
	RolesFull: func(max, now int) string {
		return fmt.Sprintf("В этом списке может быть не больше %d человек, сейчас в нём %d: никто не добавлен. Сначала уберите кого-нибудь.", max, now)
	},
	RoleList: func(role string, total int, users []string) string {
		name := map[string]string{storage.RoleAgent: "Агенты поддержки", storage.RoleTech: "Вторая линия", storage.RoleClient: "Клиенты, кроме администраторов"}[role]
		if len(users) == 0 {
			return name + ": пока никого."
		}
		return fmt.Sprintf("%s (%d): %s", name, total, strings.Join(users, ", "))
	},
	NoAgentsLeft: "⚠ Сейчас на вопросы некому отвечать: пока нет ни одного агента поддержки, новые обращения не открываются, " +
		"а спросившим клиентам сообщается об этом. Назначьте агентов: [b]/agents add[/b] [i]ID[/i].",

	AgentHelp: "[b]Команды поддержки[/b] (в чате обращения)\n" +
		"/close — вопрос решён\n" +
		"/reopen — вернуть обращение в работу\n" +
		"/escalate — передать в техническую поддержку (клиент получит запрос доступа)\n" +
		"/new [i]вопрос[/i] — открыть клиенту новое обращение сверх лимита\n" +
		"/rename [i]название[/i] — переименовать обращение\n" +
		"/queue — обращения, ожидающие ответа, и кто их ведёт ([i]/queue mine[/i]: ваши и без ответственного)\n" +
		"/take — вести обращение самому · /assign [i]@агент[/i] — передать другому агенту · /release — снять с себя\n" +
		"/stats [i]дни[/i] — показатели поддержки",

	BtnAllChats: "Все чаты",
	BtnOpenNew:  "Открыть новый",
	BtnHelp:     "Помощь",
	BtnGoToChat: "Перейти в чат",

	ListHeader: func(total, unread int) string {
		return fmt.Sprintf("[b]Ваши обращения[/b]: %d, непрочитанных сообщений: %d", total, unread)
	},
	ListEmpty:       "У вас пока нет обращений. Напишите вопрос сюда или нажмите «Открыть новый».",
	SectionActive:   "[b]Активные[/b]",
	SectionResolved: "[b]Решённые[/b]",
	ListLine: func(n int, title, status string, unread int, link string) string {
		return fmt.Sprintf("№%d · %s · %s · непрочитанных: %d · %s", n, title, status, unread, link)
	},
	StatusActive:    "активно",
	StatusResolved:  "решено",
	StatusEscalated: "в технической поддержке",
	ChatPending:     "чат создаётся",
	WorkPosition:    "Поддержка",
	ButtonDialog: func(n int, title string, unread int) string {
		if unread > 0 {
			return fmt.Sprintf("№%d %s (%d)", n, title, unread)
		}
		return fmt.Sprintf("№%d %s", n, title)
	},
	Showing: func(from, to, total int) string {
		return fmt.Sprintf("[i]показаны %d–%d из %d[/i]", from, to, total)
	},
	BtnMore:  "Ещё",
	OpenLink: "открыть",

	LimitReached: func(max int, lines []string) string {
		return fmt.Sprintf("Сейчас у вас открыто максимальное число обращений — %d:\n", max) +
			strings.Join(lines, "\n") +
			"\n\nЧтобы открыть новое, попросите поддержку закрыть те, вопросы по которым уже решены."
	},
	NoAgents: "Здесь пока некому ответить: на портале не назначены агенты поддержки, поэтому обращение не открыто. " +
		"Попросите администратора Битрикс24 назначить их (/agents add) и задайте вопрос снова.",
	Opened: func(n int, link string) string {
		return fmt.Sprintf("Открыто обращение №%d: %s\nПоддержка ответит в этом чате.", n, link)
	},
	Greeting: func(n int, client, question string) string {
		s := fmt.Sprintf("[b]Обращение №%d[/b] от %s.", n, client)
		if question != "" {
			s += "\n[b]Вопрос:[/b] " + question
		} else {
			s += "\nОпишите, пожалуйста, ваш вопрос."
		}
		return s + "\nСотрудник поддержки ответит здесь."
	},
	OpenedFor: func(n int, link string) string { return fmt.Sprintf("Обращение №%d: %s", n, link) },

	RenameUsage: "Как переименовать: [b]переименовать N новое название[/b], например «переименовать 2 Настройка CRM». " +
		"В чате обращения номер можно не указывать.",
	Renamed: func(n int, title string) string {
		return fmt.Sprintf("Обращение №%d переименовано: «%s».", n, title)
	},
	DialogNotFound: func(n int) string {
		return fmt.Sprintf("Обращение №%d не найдено среди ваших.", n)
	},
	TitleTooLong: func(max int) string {
		return fmt.Sprintf("Название слишком длинное: не больше %d символов.", max)
	},

	Reopened: "Обращение снова активно.",
	LimitInDialog: func(max int) string {
		return fmt.Sprintf("Это обращение закрыто, а открыто уже %d других — больше нельзя. "+
			"Попросите поддержку закрыть решённые обращения или напишите в одно из активных.", max)
	},
	UnknownCommand: "Не понял команду. Напишите «помощь», чтобы увидеть список.",

	NotInDialog:     "Эта команда работает в чате обращения.",
	AlreadyResolved: "Обращение уже решено.",
	AlreadyActive:   "Обращение и так активно.",
	Resolved: func(n int) string {
		return fmt.Sprintf("Обращение №%d решено. Если вопрос остался, напишите сюда — обращение откроется снова.", n)
	},
	ResolvedNotice: func(n int, link string) string {
		return fmt.Sprintf("Поддержка отметила обращение №%d как решённое: %s\nПомог ли ответ?", n, link)
	},
	BtnHelped:    "👍 Помогло",
	BtnNotHelped: "👎 Не помогло",
	RatedThanks: func(helped bool) string {
		if helped {
			return "Ваша оценка: 👍 помогло. Спасибо!"
		}
		return "Ваша оценка: 👎 не помогло. Спасибо, что сказали — мы разберёмся."
	},
	ReopenedByAgent: func(n int) string { return fmt.Sprintf("Обращение №%d снова в работе.", n) },
	OpenedByAgent: func(n int, link string) string {
		return fmt.Sprintf("Для клиента открыто обращение №%d: %s", n, link)
	},
	OpenedForClient: func(n int, link string) string {
		return fmt.Sprintf("Поддержка открыла для вас обращение №%d: %s", n, link)
	},
	ChatFailed: func(n int, question string) string {
		s := fmt.Sprintf("К сожалению, Битрикс24 не дал создать чат для обращения №%d: оно снято "+
			"и не считается среди ваших открытых.", n)
		if question != "" {
			s += "\nВаш вопрос:\n[i]" + question + "[/i]"
		}
		return s + "\nПожалуйста, задайте его ещё раз чуть позже."
	},
	BtnAskAgain: "Спросить снова",

	AccessRequest: func(n int, title, link string) string {
		return fmt.Sprintf("[b]Запрос доступа[/b]\nЧтобы решить вопрос по обращению №%d «%s» (%s), "+
			"технической поддержке нужен доступ к вашему Битрикс24. Предоставить доступ?", n, title, link)
	},
	BtnGrant:   "Предоставить доступ",
	BtnDecline: "Отклонить",
	AccessAnswered: func(granted bool, when string) string {
		if granted {
			return "Ответ: доступ предоставлен (" + when + ")."
		}
		return "Ответ: в доступе отказано (" + when + ")."
	},
	AccessAnnounced: func(n int, client string, granted bool, when string) string {
		if granted {
			return fmt.Sprintf("%s предоставил(а) доступ технической поддержке по обращению №%d (%s).", client, n, when)
		}
		return fmt.Sprintf("%s отклонил(а) запрос доступа по обращению №%d (%s).", client, n, when)
	},
	SecondLineJoined: func(mentions string) string {
		return "К обращению подключается вторая линия: " + mentions + "."
	},
	AccessPending: "Запрос доступа по этому обращению уже отправлен и ждёт ответа клиента.",

	QueueEmpty:  "Очередь пуста: все клиенты получили ответ.",
	QueueHeader: func(n int) string { return fmt.Sprintf("[b]Ждут ответа[/b]: %d", n) },
	QueueLine: func(n int, title, client, waited string, unread int, link string) string {
		return fmt.Sprintf("№%d · %s · %s · ждёт %s · новых сообщений: %d · %s", n, title, client, waited, unread, link)
	},
	Duration: func(d time.Duration) string {
		h, m := int(d.Hours()), int(d.Minutes())%60
		switch {
		case h >= 24:
			return fmt.Sprintf("%d д %d ч", h/24, h%24)
		case h > 0:
			return fmt.Sprintf("%d ч %d мин", h, m)
		}
		return fmt.Sprintf("%d мин", m)
	},

	OwnerSet: func(n int, owner string) string {
		return fmt.Sprintf("Обращение №%d теперь ведёт %s.", n, owner)
	},
	OwnerReleased: func(n int, by string) string {
		return fmt.Sprintf("%s снял(а) с себя обращение №%d: у него нет ответственного; его возьмёт тот, кто ответит первым или наберёт /take.", by, n)
	},
	OwnerLeftSupport: func(n int, owner string) string {
		return fmt.Sprintf("%s больше не работает в поддержке: у обращения №%d нет ответственного; его возьмёт тот, кто ответит первым или наберёт /take.", owner, n)
	},
	AlreadyOwner: func(owner string) string { return owner + " уже ведёт это обращение." },
	NotOwned:     "У этого обращения нет ответственного.",
	AssignUsage:  "Наберите [b]/assign 50[/b] или [b]/assign @имя[/b]: агент поддержки, который возьмёт обращение.",
	NotAnAgent: func(user string) string {
		return user + " — не агент поддержки: вести обращение могут только агенты и вторая линия."
	},
	QueueOwner:   func(owner string) string { return " · ведёт " + owner },
	QueueUnowned: " · без ответственного",
	QueueNear:    " · ⏰ скоро срок",
	QueuePast:    " · 🔥 срок прошёл",
	TargetKind: func(kind string) string {
		if kind == storage.TimeReply {
			return "ответа"
		}
		return "первого ответа"
	},
	TargetReminder: func(n int, who, kind, left string) string {
		return fmt.Sprintf("%s, обращение №%d ждёт %s: срок наступит через %s рабочего времени.", who, n, kind, left)
	},
	TargetMissed: func(n int, who, kind, target string) string {
		return fmt.Sprintf("%s, обращение №%d пропустило срок %s (%s рабочего времени).", who, n, kind, target)
	},
	OutOfHours: func(back string) string {
		return "Сейчас поддержка не работает. Ваше сообщение сохранено, мы ответим, когда вернёмся: " + back + "."
	},
	When: func(t time.Time) string {
		days := [...]string{"вс", "пн", "вт", "ср", "чт", "пт", "сб"}
		months := [...]string{"января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября", "ноября", "декабря"}
		return fmt.Sprintf("%s, %d %s, %s (%s)", days[t.Weekday()], t.Day(), months[t.Month()-1], t.Format("15:04"), t.Location().String())
	},
	StatsAgentsHeader: "[b]По агентам[/b]",
	StatsAgent: func(agent string, owned, answers int, within string) string {
		line := fmt.Sprintf("%s: ведёт сейчас %d · ответов %d", agent, owned, answers)
		if within != "" {
			line += " · " + within
		}
		return line
	},
	StatsWithin: func(percent, within, total int) string {
		return fmt.Sprintf("в срок %d%% (%d из %d)", percent, within, total)
	},

	StatsUsage: "Показатели поддержки: [b]/stats[/b] — за последние 7 дней, [b]/stats N[/b] — за последние N дней (от 1 до 365).",
	StatsHeader: func(days int) string {
		if days == 1 {
			return "[b]Показатели поддержки[/b] за последние 24 часа"
		}
		return fmt.Sprintf("[b]Показатели поддержки[/b] за последние %d дн.", days)
	},
	StatsCounts: func(opened, resolved, autoClosed int) string {
		return fmt.Sprintf("Открыто: %d · решено агентами: %d · закрыто автоматически: %d", opened, resolved, autoClosed)
	},
	StatsTime: func(name string, count int, median, p90 string) string {
		return fmt.Sprintf("%s (%d): медиана %s, 90-й перцентиль %s", name, count, median, p90)
	},
	StatsNoTimes: func(name string) string { return name + ": за период нет" },
	StatsFirst:   "Первый ответ",
	StatsReply:   "Ответ клиенту",
	StatsResolve: "Решение",
	StatsCSAT: func(percent, helped, ratings int) string {
		return fmt.Sprintf("CSAT: %d%% (помогло — %d из %d оценок)", percent, helped, ratings)
	},
	StatsNoRating: "CSAT: за период оценок нет",
	StatsBacklog: func(waiting int, oldest string) string {
		return fmt.Sprintf("Сейчас ждут ответа: %d, дольше всех — %s", waiting, oldest)
	},
	StatsNoQueue:       "Сейчас ждут ответа: никто",
	Seconds:            func(n int) string { return fmt.Sprintf("%d с", n) },
	StatsSentPrivately: "Показатели поддержки отправлены вам в чат с ботом.",
	QueueSentPrivately: "Очередь отправлена вам в чат с ботом.",
	AutoCloseWarning: func(n int, client, left string) string {
		return fmt.Sprintf("%s, поддержка ждёт вашего ответа по обращению №%d. Если вопросов не осталось, "+
			"обращение закроется автоматически через %s. Чтобы оставить его открытым, "+
			"нажмите «Оставить открытым» или напишите сюда.", client, n, left)
	},
	BtnKeepOpen: "Оставить открытым",
	KeptOpen:    "Обращение остаётся открытым.",
	AutoClosed: func(n int, silent string) string {
		return fmt.Sprintf("Обращение №%d закрыто автоматически: ответа не было %s. "+
			"Если вопрос остался, напишите сюда — обращение откроется снова.", n, silent)
	},
	// Accusative, as both sentences need it: «через 1 минуту», «не было 3 дня».
	Span: func(d time.Duration) string {
		n, unit := spanOf(d)
		forms := map[time.Duration][3]string{
			24 * time.Hour: {"день", "дня", "дней"},
			time.Hour:      {"час", "часа", "часов"},
			time.Minute:    {"минуту", "минуты", "минут"},
			time.Second:    {"секунду", "секунды", "секунд"},
		}[unit]
		return fmt.Sprintf("%d %s", n, ruPlural(n, forms))
	},
	Sidebar: SidebarTexts{
		Title:    "Поддержка",
		Number:   "№",
		Question: "Вопрос (необязательно)",
		Rename:   "Переименовать",
		Save:     "Сохранить",
		Unread:   "непрочитанных",
		ThisChat: "этот чат",
		Waited:   "ждёт",
		New:      "новых",
		Opened: func(n int) string {
			return fmt.Sprintf("Открыто обращение №%d. Ссылка на его чат — в чате с ботом.", n)
		},
		Renamed: func(n int, title string) string {
			return fmt.Sprintf("Обращение №%d переименовано: «%s».", n, title)
		},
		Pending: func(n int) string {
			return fmt.Sprintf("Чат обращения №%d ещё создаётся.", n)
		},
		Duplicate:   "Это уже сделано.",
		NotGenuine:  "Не удалось подтвердить, что страницу открыл ваш Битрикс24.",
		Expired:     "Страница устарела.",
		Unavailable: "Битрикс24 сейчас не отвечает. Попробуйте чуть позже.",
		Malformed:   "Запрос не удалось прочитать.",
		TooLarge:    "Слишком длинный запрос.",
		Failure:     "Что-то пошло не так. Попробуйте ещё раз.",
		RefusalHint: "Закройте «Поддержку» в боковой панели чата и откройте её снова.",
	},
}

// ruPlural picks the Russian form for n: one (1, 21…), few (2–4, 22–24…) or many.
func ruPlural(n int, forms [3]string) string {
	switch {
	case n%10 == 1 && n%100 != 11:
		return forms[0]
	case n%10 >= 2 && n%10 <= 4 && (n%100 < 12 || n%100 > 14):
		return forms[1]
	}
	return forms[2]
}
