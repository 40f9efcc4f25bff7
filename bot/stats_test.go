package bot

import (
	"regexp"
	"testing"
)

// TestStatsInRussian: /stats speaks the event's language; an empty window says so
// for each figure, and a time under a minute is given in seconds.
func TestStatsInRussian(t *testing.T) {
	h := newHarness(t)
	stats := func(command string) string {
		t.Helper()
		ev := h.private(agent, command)
		ev.Message.Language = "ru"
		h.process(ev)
		sent := h.sent()
		if len(sent) != 1 || sentTo(t, sent[0]) != "50" {
			t.Fatalf("%s queued %s", command, kinds(sent))
		}
		return text(t, sent[0])
	}
	want := "[b]Показатели поддержки[/b] за последние 7 дн.\n" +
		"Открыто: 0 · решено агентами: 0 · закрыто автоматически: 0\n" +
		"Первый ответ: за период нет\n" +
		"Ответ клиенту: за период нет\n" +
		"Решение: за период нет\n" +
		"CSAT: за период оценок нет\n" +
		"Сейчас ждут ответа: никто"
	if got := stats("/stats"); got != want {
		t.Errorf("empty figures:\n%s\nwant\n%s", got, want)
	}

	h.process(h.private(admin, "Как выгрузить сделки?"))
	chats := h.createChats()
	h.process(h.group(agent, chats[1], "", "Кнопкой «Экспорт»"))
	h.sent()
	got := stats("/stats 1")
	for _, re := range []string{
		`^\[b\]Показатели поддержки\[/b\] за последние 24 часа\n`,
		`\nОткрыто: 1 · `,
		`\nПервый ответ \(1\): медиана \d+ с, 90-й перцентиль \d+ с\n`,
		`\nОтвет клиенту \(1\): медиана \d+ с, `,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("figures lack %s:\n%s", re, got)
		}
	}
}
