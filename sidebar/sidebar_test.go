package sidebar

import (
	"net/http/httptest"
	"strings"
	"testing"

	"supportbot/bot"
)

func testPage() bot.Page {
	return bot.Page{Lang: "ru", Client: true, Header: "Ваши обращения: 3, непрочитанных сообщений: 2", Unread: 2,
		Dialogs: []bot.PageDialog{
			{Number: 3, Title: `<script>alert(1)</script> [USER=all] "q" & 'a'`, Status: "активно", Active: true, Unread: 2, ChatID: 1003},
			{Number: 2, Title: "Печать из CRM", Status: "в технической поддержке", Active: true, Escalated: true},
			{Number: 1, Title: "Настройка", Status: "решено", ChatID: 1001},
		},
		Words: bot.PageWords{Empty: "У вас пока нет обращений.", SectionActive: "Активные", SectionResolved: "Решённые",
			ChatPending: "чат создаётся", OpenNew: "Открыть новый", Open: "открыть", QueueEmpty: "Очередь пуста"},
	}
}

// TestPageEscapesAndFrames: every user text is escaped wherever it goes (text,
// attribute, the rename field), the page may be framed only by the portal, and
// carries no script or style but its own.
func TestPageEscapesAndFrames(t *testing.T) {
	rec := httptest.NewRecorder()
	v := View{Page: testPage(), Token: "v1.abc.def", Portal: "https://x.bitrix24.ru", Dialog: "chat1003", Opened: true,
		Notice: `Обращение №3 переименовано: «<b>x</b>».`}
	if err := Write(rec, 200, v); err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	for _, bad := range []string{"<script>alert", "<b>x</b>", `"q" & 'a'`} {
		if strings.Contains(body, bad) {
			t.Errorf("unescaped %q in the page", bad)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt; [USER=all] &#34;q&#34; &amp; &#39;a&#39;",
		`value="&lt;script&gt;alert(1)&lt;/script&gt; [USER=all] &#34;q&#34; &amp; &#39;a&#39;"`,
		`action="sidebar/new"`, `action="sidebar/rename"`, `action="sidebar/open"`,
		`class="dialog current" data-number="3" data-unread="2"`, `data-dialog="chat1003"`,
		"<h2>Активные</h2>", "<h2>Решённые</h2>", "чат создаётся", "№2", `name="token" value="v1.abc.def"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if n := strings.Count(body, "<script"); n != 1 {
		t.Errorf("%d scripts", n)
	}
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors https://x.bitrix24.ru") || !strings.Contains(csp, "default-src 'none'") ||
		!strings.Contains(csp, "form-action 'self' https://x.bitrix24.ru") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("policy %q", csp)
	}
	nonce := csp[strings.Index(csp, "'nonce-")+7:]
	nonce = nonce[:strings.Index(nonce, "'")]
	if !strings.Contains(body, `<script nonce="`+nonce+`">`) || !strings.Contains(body, `<style nonce="`+nonce+`">`) {
		t.Errorf("nonce %q not on the page's script and style", nonce)
	}
	if rec.Header().Get("X-Frame-Options") != "" || rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("headers %v", rec.Header())
	}
	if len(body) > 16<<10 {
		t.Errorf("the page is %d bytes", len(body))
	}

	// The answer of a form posts to its siblings; the page with the limit explains it.
	pg := testPage()
	pg.Limit = "Сейчас у вас открыто максимальное число обращений — 5."
	rec = httptest.NewRecorder()
	if err := Write(rec, 200, View{Page: pg, Portal: "https://x.bitrix24.ru"}); err != nil {
		t.Fatal(err)
	}
	body = rec.Body.String()
	if !strings.Contains(body, `action="new"`) || !strings.Contains(body, `disabled aria-describedby="why"`) ||
		!strings.Contains(body, `<p class="why" id="why">Сейчас у вас открыто`) {
		t.Errorf("page at the limit:\n%s", body)
	}
}

// TestRefusalFramesOnlyWhoAsked: a refusal may be framed by the portal the request
// names, or by nobody.
func TestRefusalFramesOnlyWhoAsked(t *testing.T) {
	for origin, want := range map[string]string{"https://x.bitrix24.ru": "frame-ancestors https://x.bitrix24.ru", "": "frame-ancestors 'none'"} {
		rec := httptest.NewRecorder()
		if err := WriteRefusal(rec, 403, "en", origin, Expired); err != nil {
			t.Fatal(err)
		}
		if rec.Code != 403 || !strings.Contains(rec.Header().Get("Content-Security-Policy"), want) ||
			!strings.Contains(rec.Body.String(), "This page has expired.") || strings.Contains(rec.Body.String(), "<script") {
			t.Errorf("%q: %d %s\n%s", origin, rec.Code, rec.Header(), rec.Body)
		}
	}
}

// TestQueueAndRefusal: an agent's queue; someone who may not ask, the refusal.
func TestQueueAndRefusal(t *testing.T) {
	pg := bot.Page{Lang: "en", Agent: true, QueueHeader: "Waiting for an answer: 1",
		Queue: []bot.PageWaiting{{Number: 4, Title: "<i>x</i>", Client: "Ann <Admin>", Waited: "2 h 5 min", Waiting: 3, ChatID: 1004, Owner: "owner #50 · <near>"}}}
	rec := httptest.NewRecorder()
	if err := Write(rec, 200, View{Page: pg, Portal: "https://x.bitrix24.com", Opened: true}); err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	for _, want := range []string{"Waiting for an answer: 1", "&lt;i&gt;x&lt;/i&gt;", "Ann &lt;Admin&gt;", "waiting 2 h 5 min",
		`href="https://x.bitrix24.com/online/?IM_DIALOG=chat1004"`, `data-waiting="3"`, `<span class="owner">owner #50 · &lt;near&gt;</span>`} {
		if !strings.Contains(body, want) {
			t.Errorf("the queue lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `class="new"`) {
		t.Error("Open new on an agent's page")
	}
	rec = httptest.NewRecorder()
	if err := Write(rec, 200, View{Page: bot.Page{Lang: "en", Refusal: "Only administrators may write."}}); err != nil {
		t.Fatal(err)
	}
	if body := rec.Body.String(); !strings.Contains(body, `<p class="refusal" id="refusal">Only administrators may write.</p>`) || strings.Contains(body, "<form") {
		t.Errorf("refusal page:\n%s", body)
	}
}

// TestEveryRefusalHasItsWords: each refusal says its own thing, in both languages.
func TestEveryRefusalHasItsWords(t *testing.T) {
	for _, lang := range []string{"ru", "en"} {
		seen := map[string]Refusal{}
		for r := NotGenuine; r <= Failure; r++ {
			words := r.in(bot.SidebarTextsFor(lang))
			if prev, ok := seen[words]; ok || words == "" {
				t.Errorf("%s: refusal %d says %q, as %d does", lang, r, words, prev)
			}
			seen[words] = r
		}
	}
}
