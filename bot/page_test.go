package bot

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/outbox"
	"supportbot/storage"
)

// page runs fn in a transaction, as the page's routes do.
func (h *harness) page(fn func(tx *storage.Tx, p storage.Portal) error) {
	h.t.Helper()
	err := h.store.Update(context.Background(), func(tx *storage.Tx) error {
		p, err := tx.Portal(h.portal.ID)
		if err != nil {
			return err
		}
		return fn(tx, p)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) pageOf(v Viewer, lang string) Page {
	h.t.Helper()
	var pg Page
	h.page(func(tx *storage.Tx, p storage.Portal) (err error) {
		pg, err = h.bot.Page(tx, p, v, lang)
		return err
	})
	return pg
}

// TestPageListsAsAllChats: the page's list is "all chats": the same dialogs in the
// same order, numbers, statuses and unread counts, and the same header.
func TestPageListsAsAllChats(t *testing.T) {
	h := newHarness(t)
	for _, q := range []string{"first", "second", "third"} {
		h.process(h.private(admin, q))
	}
	chats := h.createChats()
	h.process(h.group(agent, chats[2], "", "Answer"))
	h.process(h.group(agent, chats[2], "", "And more"))
	h.process(h.group(agent, chats[1], "", "/close norate"))
	h.sent()
	h.process(h.private(admin, "all chats"))
	list := text(t, h.sent()[0])

	pg := h.pageOf(Viewer{UserID: admin, Name: "User 27"}, "en")
	if !pg.Client || pg.Agent || pg.Refusal != "" || pg.Limit != "" || pg.Lang != "en" {
		t.Fatalf("page %+v", pg)
	}
	if want := "Your questions: 3, unread messages: 3"; pg.Header != want || pg.Unread != 3 || !strings.Contains(list, "[b]Your questions[/b]: 3, unread messages: 3") {
		t.Fatalf("header %q (%d unread); list:\n%s", pg.Header, pg.Unread, list)
	}
	var order []int
	for _, d := range pg.Dialogs {
		order = append(order, d.Number)
		line := bitrix24.ChatLink(d.ChatID, "open")
		want := strings.Join([]string{"#" + strconv.Itoa(d.Number), d.Title, d.Status, "unread: " + strconv.Itoa(d.Unread), line}, " · ")
		if !strings.Contains(list, want) {
			t.Errorf("the page's #%d is not the list's line %q:\n%s", d.Number, want, list)
		}
	}
	if !(order[0] == 2 || order[0] == 3) || order[2] != 1 || pg.Dialogs[2].Active || pg.Dialogs[2].Status != "resolved" {
		t.Errorf("order %v: active first, then resolved", order)
	}
	if pg.Words.SectionActive != "Active" || pg.Words.OpenNew != "Open new" || pg.Words.Open != "open" {
		t.Errorf("words %+v", pg.Words)
	}

	// An agent sees the queue; a stranger the refusal; a free plan, its refusal.
	if pg := h.pageOf(Viewer{UserID: agent}, "ru"); !pg.Agent || pg.Client || pg.Refusal != "" || pg.QueueHeader == "" {
		t.Errorf("agent's page %+v", pg)
	}
	if pg := h.pageOf(Viewer{UserID: stranger}, "ru"); pg.Agent || pg.Client || pg.Refusal != plain(textsRU.NotAllowed) || len(pg.Dialogs) != 0 {
		t.Errorf("stranger's page %+v", pg)
	}
	// An administrator the portal confirmed is a client without being listed.
	if pg := h.pageOf(Viewer{UserID: 7, Admin: true}, "ru"); !pg.Client || pg.Header != "Ваши обращения: 0, непрочитанных сообщений: 0" {
		t.Errorf("a confirmed administrator's page %+v", pg)
	}
	free := newHarness(t, func(c *Config) { c.FreePlan = true })
	if pg := free.pageOf(Viewer{UserID: admin}, "ru"); pg.Client || pg.Refusal != textsRU.FreePlan {
		t.Errorf("free plan's page %+v", pg)
	}
}

// TestPageOpenNew: the page's Open new is the command's: the limit, the chat, the
// greeting with the question, the answer in the main chat; once per page.
func TestPageOpenNew(t *testing.T) {
	h := newHarness(t)
	v := Viewer{UserID: admin, Name: "Анна"}
	var r PageResult
	h.page(func(tx *storage.Tx, p storage.Portal) error { // the page seeds no roles, and with no agent nothing opens
		return tx.Grant(p.ID, storage.RoleAgent, []int64{agent}, admin)
	})
	h.page(func(tx *storage.Tx, p storage.Portal) (err error) {
		r, err = h.bot.PageOpenNew(tx, p, v, "ru", "  Как [USER=all] выгрузить сделки?  ", "page-1")
		return err
	})
	sent := h.sent()
	if r.Number != 1 || r.Refusal != "" || kinds(sent) != "create_chat,send_message,send_message" {
		t.Fatalf("result %+v, queued %s", r, kinds(sent))
	}
	if g := text(t, sent[1]); !strings.Contains(g, "[b]Вопрос:[/b] Как [\u200bUSER=all] выгрузить сделки?") {
		t.Errorf("greeting %q", g)
	}
	if sentTo(t, sent[2]) != "27" || !strings.Contains(text(t, sent[2]), "Открыто обращение №1") {
		t.Errorf("answer to %s: %q", sentTo(t, sent[2]), text(t, sent[2]))
	}
	h.page(func(tx *storage.Tx, p storage.Portal) (err error) {
		tr, err := tx.Transcript(1)
		if err == nil && (len(tr) != 1 || tr[0].AuthorRole != storage.RoleClient || tr[0].Text != "Как [USER=all] выгрузить сделки?") {
			t.Errorf("transcript %+v", tr)
		}
		if w, _ := tx.WaitingDialogs(p.ID); len(w) != 1 {
			t.Errorf("the question is not waiting for an answer: %+v", w)
		}
		// The same page's form again: nothing more.
		r, err = h.bot.PageOpenNew(tx, p, v, "ru", "again", "page-1")
		return err
	})
	if !r.Duplicate || len(h.sent()) != 0 {
		t.Fatalf("second Open new from one page: %+v", r)
	}
	for i := 2; i <= 5; i++ {
		h.page(func(tx *storage.Tx, p storage.Portal) (err error) {
			r, err = h.bot.PageOpenNew(tx, p, v, "ru", "", "page-"+strconv.Itoa(i))
			return err
		})
	}
	h.sent()
	pg := h.pageOf(v, "ru")
	want := "Сейчас у вас открыто максимальное число обращений — 5.\nЧтобы открыть новое, попросите поддержку закрыть те, вопросы по которым уже решены."
	if pg.Limit != want {
		t.Fatalf("limit %q, want %q", pg.Limit, want)
	}
	h.page(func(tx *storage.Tx, p storage.Portal) (err error) {
		r, err = h.bot.PageOpenNew(tx, p, v, "ru", "sixth", "page-6")
		return err
	})
	if r.Refusal != want || r.Number != 0 || len(h.sent()) != 0 {
		t.Fatalf("at the limit: %+v", r)
	}
	h.page(func(tx *storage.Tx, p storage.Portal) (err error) {
		r, err = h.bot.PageOpenNew(tx, p, Viewer{UserID: stranger}, "ru", "x", "page-7")
		return err
	})
	if r.Refusal != plain(textsRU.NotAllowed) || len(h.sent()) != 0 {
		t.Fatalf("a stranger's Open new: %+v", r)
	}
}

// TestPageRenameAndOpen: the pencil is "rename" and opening is the list's button.
func TestPageRenameAndOpen(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "mine"))
	h.process(h.private(integrator, "theirs"))
	chats := h.createChats()
	h.process(h.group(agent, chats[1], "", "Answer"))
	h.sent()
	v := Viewer{UserID: admin}
	var r PageResult
	do := func(fn func(tx *storage.Tx, p storage.Portal) (PageResult, error)) {
		h.page(func(tx *storage.Tx, p storage.Portal) (err error) {
			r, err = fn(tx, p)
			return err
		})
	}
	do(func(tx *storage.Tx, p storage.Portal) (PageResult, error) {
		return h.bot.PageRename(tx, p, v, "en", 1, "  <script>alert(1)</script>\n[USER=all] ")
	})
	sent := h.sent()
	if r.Title != "<script>alert(1)</script> [USER=all]" || kinds(sent) != "rename_chat" {
		t.Fatalf("rename: %+v, queued %s", r, kinds(sent))
	}
	for _, tt := range []struct {
		who    int64
		number int
		title  string
		want   string
	}{
		{admin, 2, "Mine now", "Question #2 is not among yours."},
		{admin, 9, "Nothing", "Question #9 is not among yours."},
		{admin, 1, " ", plain(textsEN.RenameUsage)},
		{admin, 1, strings.Repeat("x", 256), "The title is too long: at most 255 characters."},
		{stranger, 1, "Mine", plain(textsEN.NotAllowed)},
	} {
		do(func(tx *storage.Tx, p storage.Portal) (PageResult, error) {
			return h.bot.PageRename(tx, p, Viewer{UserID: tt.who}, "en", tt.number, tt.title)
		})
		if r.Refusal != tt.want || len(h.sent()) != 0 {
			t.Errorf("%d renames #%d to %q: %+v", tt.who, tt.number, tt.title, r)
		}
	}
	do(func(tx *storage.Tx, p storage.Portal) (PageResult, error) {
		return h.bot.PageRename(tx, p, Viewer{UserID: agent}, "en", 2, "Agent's title")
	})
	if r.Refusal != "" || r.Title != "Agent's title" {
		t.Errorf("an agent's rename: %+v", r)
	}
	h.sent()

	if pg := h.pageOf(v, "en"); pg.Unread != 1 {
		t.Fatalf("unread before opening: %d", pg.Unread)
	}
	do(func(tx *storage.Tx, p storage.Portal) (PageResult, error) { return h.bot.PageOpen(tx, p, v, "en", 1) })
	if r.ChatID != chats[1] || r.Refusal != "" || len(h.sent()) != 0 {
		t.Fatalf("open: %+v", r)
	}
	if pg := h.pageOf(v, "en"); pg.Unread != 0 || pg.Dialogs[0].Unread != 0 {
		t.Fatalf("unread after opening: %+v", pg)
	}
	do(func(tx *storage.Tx, p storage.Portal) (PageResult, error) { return h.bot.PageOpen(tx, p, v, "en", 2) })
	if r.Refusal != "Question #2 is not among yours." {
		t.Fatalf("opening someone else's: %+v", r)
	}
}

// TestInstallBindsTheSidebar: installing the application binds the sidebar's item
// last, after ONAPPUNINSTALL, when the page has an address.
func TestInstallBindsTheSidebar(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.SidebarURL = "https://support.example.com/bitrix/sidebar"
		c.Profile = bitrix24.BotProfile{Code: "supportbot", HandlerURL: "https://support.example.com/bitrix/events", Color: "AQUA"}
	})
	h.process(&bitrix24.AppInstall{Envelope: bitrix24.Envelope{Type: bitrix24.EventAppInstall, Time: time.Unix(1696527000, 0), Auth: bitrix24.Auth{AccessToken: "a", RefreshToken: "r"}}})
	sent := h.sent()
	last := sent[len(sent)-1]
	bind, ok := act(t, last).(bitrix24.BindPlacement)
	if !ok || last.Lane != outbox.SetupLane.String() || bind.Handler != "https://support.example.com/bitrix/sidebar" || bind.Placement != "IM_SIDEBAR" ||
		bind.Context != "ALL" || bind.Icon == "" || bind.Color != "AQUA" || len(bind.Titles) != 2 {
		t.Fatalf("last set-up call %s %s", last.Kind, last.Action)
	}
	if sent[len(sent)-2].Kind != bitrix24.KindBindEvent {
		t.Errorf("before it: %s", sent[len(sent)-2].Kind)
	}
}
