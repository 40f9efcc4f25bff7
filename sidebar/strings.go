package sidebar

import "fmt"

// words are the page's own words, for one language. What the rules say (the list's
// header, statuses, the limit, refusals) comes from the bot's texts in bot.Page.
type words struct {
	Title       string // the page's and the sidebar item's name
	Number      string // before a dialog's number: "№" or "#"
	Question    string // Open new's field
	Rename      string
	Save        string
	Unread      string // the counter's tooltip
	ThisChat    string // marks the dialog whose chat the sidebar is in
	Waited      string // in the queue: "waiting 2 h"
	New         string // in the queue: "new: 3"
	Opened      func(number int) string
	Renamed     func(number int, title string) string // title is escaped by the template
	Pending     func(number int) string
	Duplicate   string
	Refusals    map[Refusal]string
	RefusalHint string
}

var wordsRU = words{
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
	Duplicate: "Это уже сделано.",
	Refusals: map[Refusal]string{
		NotGenuine:  "Не удалось подтвердить, что страницу открыл ваш Битрикс24.",
		Expired:     "Страница устарела.",
		Unavailable: "Битрикс24 сейчас не отвечает. Попробуйте чуть позже.",
		Malformed:   "Запрос не удалось прочитать.",
		TooLarge:    "Слишком длинный запрос.",
		Failure:     "Что-то пошло не так. Попробуйте ещё раз.",
	},
	RefusalHint: "Закройте «Поддержку» в боковой панели чата и откройте её снова.",
}

var wordsEN = words{
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
	Renamed:   func(n int, title string) string { return fmt.Sprintf("Question #%d renamed: “%s”.", n, title) },
	Pending:   func(n int) string { return fmt.Sprintf("The chat of question #%d is still being created.", n) },
	Duplicate: "That is done already.",
	Refusals: map[Refusal]string{
		NotGenuine:  "This page could not be confirmed as opened by your Bitrix24.",
		Expired:     "This page has expired.",
		Unavailable: "Your Bitrix24 is not answering now. Try again in a moment.",
		Malformed:   "The request could not be read.",
		TooLarge:    "The request is too long.",
		Failure:     "Something went wrong. Try again.",
	},
	RefusalHint: "Close “Support” in the chat's sidebar and open it again.",
}

func wordsFor(lang string) *words {
	if lang == "en" {
		return &wordsEN
	}
	return &wordsRU
}
