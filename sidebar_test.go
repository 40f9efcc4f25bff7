package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/net/html"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/config"
	"supportbot/setup"
	"supportbot/sidebar"
	"supportbot/storage"
	"supportbot/testwait"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "rewrite docs/sidebar.png: the sidebar page (ru) as Chromium shows it")

// The sidebar page, tested as a portal's user meets it: Debian's Chromium, headless,
// opens the fake portal's messenger page, which posts the placement's opening into
// an iframe of sidebar width, as Bitrix24 does; the page is served by the real
// server in app mode over a real SQLite file.

// chromium is the browser the tests drive. Without it the test is skipped, except in
// CI, which must run it.
func chromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		path, err = exec.LookPath("/usr/bin/chromium")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but chromium is not installed: the sidebar's browser tests must run in CI (.ci/run installs it: apt-get install -y chromium)")
		}
		t.Skip("chromium is not installed, so the sidebar's browser tests are skipped: apt-get install -y chromium to run them")
	}
	return path
}

// newBrowser starts Chromium for the test, with a profile of its own; the machine's
// network is closed, so everything it could fetch on its own is turned off. Start it
// after the server: it closes first then, and its idle connections do not hold up
// the server's shutdown.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(900, 1000))
	t.Cleanup(cancel)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// sidebarBot is the bot in app mode with one portal that installed the application,
// and a browser tab on that portal's messenger.
type sidebarBot struct {
	*runningBot
	o   *b24test.OAuth
	tab context.Context

	mu       sync.Mutex
	openings map[string]opening
}

// opening is a placement's opening, as the messenger page posts it into its frame.
type opening struct {
	action string
	fields url.Values
}

func newSidebarBot(t *testing.T) *sidebarBot {
	t.Helper()
	browser := chromium(t)
	o := b24test.NewOAuth(t, appClientID, appClientSecret)
	p := b24test.NewAppPortal(t, o)
	p.SetScopes("imbot", "im", "user", "placement")
	p.SetAdmins(1, client, 7)
	dbPath := filepath.Join(t.TempDir(), "sidebar.db")
	s := &sidebarBot{runningBot: startApp(t, o, p, dbPath), o: o, openings: map[string]opening{}}
	s.tab = newBrowser(t, browser)
	s.host(p)
	if status := postTo(t, s.runningBot, p, p.InstallEvent()); status != http.StatusOK {
		t.Fatalf("ONAPPINSTALL answered %d", status)
	}
	testwait.For(t, "the bot and the sidebar's item", func() bool { return len(p.Bots()) == 1 && len(p.Placements()) == 1 })
	s.say(1, "/agents add "+strconv.Itoa(agentID))
	waitIdle(t, dbPath)
	return s
}

// host serves the messenger page on p: the opening posted into a frame 380 pixels
// wide, and the page a chat opens as without BX24.
func (s *sidebarBot) host(p *b24test.Portal) {
	frame := template.Must(template.New("").Parse(`<!doctype html><html><head><meta charset="utf-8"><title>Messenger</title></head>
<body style="margin:0;background:#eef2f4"><form id="open" method="post" target="sidebar" action="{{.action}}">
{{range $k, $v := .fields}}<input type="hidden" name="{{$k}}" value="{{index $v 0}}">{{end}}</form>
<iframe id="sidebar" name="sidebar" style="border:0;width:380px;height:720px;background:#fff"></iframe>
<script>document.getElementById("open").submit()</script></body></html>`))
	p.HandlePage("/online/", func(w http.ResponseWriter, r *http.Request) {
		if chat := r.URL.Query().Get("IM_DIALOG"); chat != "" {
			fmt.Fprintf(w, `<!doctype html><title>Messenger</title><h1 id="chat">%s</h1>`, html.EscapeString(chat))
			return
		}
		s.mu.Lock()
		o, ok := s.openings[r.URL.Query().Get("open")]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_ = frame.Execute(w, map[string]any{"action": o.action, "fields": o.fields})
	})
}

// say is a message from user in their chat with the bot.
func (s *sidebarBot) say(user int64, text string, set ...string) {
	s.t.Helper()
	if status := postTo(s.t, s.runningBot, s.portal, appMessage(s.portal, user, text, set...)); status != http.StatusOK {
		s.t.Fatalf("%q answered %d", text, status)
	}
}

// answer is an agent's message in a dialog's chat.
func (s *sidebarBot) answer(chatID int64, text string) {
	s.t.Helper()
	chat, ok := s.portal.Chat(chatID)
	if !ok {
		s.t.Fatalf("no chat %d", chatID)
	}
	body := s.portal.AppEvent("v1/onimbotmessageadd-group.form", agentID, groupFields(chat, agentID, strconv.FormatInt(nextMessageID.Add(1), 10), text))
	if status := postTo(s.t, s.runningBot, s.portal, body); status != http.StatusOK {
		s.t.Fatalf("agent's answer answered %d", status)
	}
}

// allChats is the bot's answer to "все чаты" from user, in Russian.
func (s *sidebarBot) allChats(user int64) string {
	s.t.Helper()
	waitIdle(s.t, s.dbPath)
	dialog := strconv.FormatInt(user, 10)
	sent := len(s.portal.Messages(dialog))
	s.say(user, "все чаты", "data[PARAMS][LANGUAGE]", "ru")
	testwait.For(s.t, "the list", func() bool { return len(s.portal.Messages(dialog)) > sent })
	return s.portal.Messages(dialog)[sent].Text
}

// open has the messenger page on host (the bot's portal when nil) open the sidebar
// for user in dialogID's chat, with set applied to the opening, and waits for the
// frame to show a page.
func (s *sidebarBot) open(tab context.Context, host *b24test.Portal, user int64, dialogID string, set map[string]string) string {
	s.t.Helper()
	if host == nil {
		host = s.portal
	}
	query, body := s.portal.PlacementOpen(user, dialogID, set)
	fields, err := url.ParseQuery(string(body))
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	key := strconv.Itoa(len(s.openings))
	s.openings[key] = opening{action: s.url + "/bitrix/sidebar?" + string(query), fields: fields}
	s.mu.Unlock()
	if err := chromedp.Do(tab, chromedp.Navigate(host.URL()+"/online/?open="+key)); err != nil {
		s.t.Fatal(err)
	}
	return s.waitFrame(tab, "the sidebar page", func(doc string) bool { return strings.Contains(doc, "</h1>") })
}

// frameDoc is the sidebar frame's document as the browser has it now, "" while it
// has none.
func frameDoc(tab context.Context) string {
	ctx, cancel := context.WithTimeout(tab, 2*time.Second)
	defer cancel()
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS("iframe#sidebar")))
	if err != nil || len(nodes) == 0 {
		return ""
	}
	doc, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html"), chromedp.FromNode(nodes[0])))
	if err != nil {
		return ""
	}
	return doc
}

// waitFrame waits until the frame's document satisfies cond, and returns it.
func (s *sidebarBot) waitFrame(tab context.Context, what string, cond func(doc string) bool) string {
	s.t.Helper()
	var doc string
	testwait.For(s.t, what, func() bool {
		doc = frameDoc(tab)
		return doc != "" && cond(doc)
	})
	return doc
}

// inFrame runs a query action in the sidebar frame.
func inFrame[T any](t *testing.T, tab context.Context, action func(opts ...chromedp.QueryOption) chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS("iframe#sidebar")))
	if err != nil {
		t.Fatal(err)
	}
	v, err := chromedp.Run(ctx, action(chromedp.FromNode(nodes[0])))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// click clicks the element sel in the frame.
func click(t *testing.T, tab context.Context, sel string) {
	t.Helper()
	inFrame(t, tab, func(o ...chromedp.QueryOption) chromedp.Action[chromedp.Void] {
		return chromedp.Click(chromedp.CSS(sel), o...)
	})
}

// shownDialog is a dialog as the page shows it.
type shownDialog struct {
	Number, Unread int
	Title, Status  string
	Current        bool
	Chat           string // the chat its "open" opens
}

// dialogsIn reads the list of a page.
func dialogsIn(t *testing.T, doc string) []shownDialog {
	t.Helper()
	root, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	var out []shownDialog
	for n := range root.Descendants() {
		if n.Type != html.ElementNode || n.Data != "li" || !hasClass(n, "dialog") {
			continue
		}
		d := shownDialog{Current: hasClass(n, "current")}
		d.Number, _ = strconv.Atoi(attr(n, "data-number"))
		d.Unread, _ = strconv.Atoi(attr(n, "data-unread"))
		for c := range n.Descendants() {
			switch {
			case hasClass(c, "title"):
				d.Title = textOf(c)
			case hasClass(c, "status"):
				d.Status = textOf(c)
			case hasClass(c, "badge") && textOf(c) != strconv.Itoa(d.Unread):
				t.Errorf("№%d: counter %q, data-unread %d", d.Number, textOf(c), d.Unread)
			case c.Data == "form" && hasClass(c, "open"):
				d.Chat = attr(c, "data-dialog")
			}
		}
		out = append(out, d)
	}
	return out
}

// byID is the text of the element with id in doc, "" when there is none.
func byID(t *testing.T, doc, id string) string {
	t.Helper()
	root, err := html.Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	for n := range root.Descendants() {
		if n.Type == html.ElementNode && attr(n, "id") == id {
			return textOf(n)
		}
	}
	return ""
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	return n.Type == html.ElementNode && strings.Contains(" "+attr(n, "class")+" ", " "+class+" ")
}

func textOf(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	}
	return strings.TrimSpace(b.String())
}

// tokenIn is the token the page's forms carry.
func tokenIn(t *testing.T, doc string) string {
	t.Helper()
	m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("no token on the page:\n%s", doc)
	}
	return html.UnescapeString(m[1])
}

// postForm sends one of the page's forms as a client other than the page would.
func (s *sidebarBot) postForm(form string, values url.Values, header ...string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), http.MethodPost, s.url+"/bitrix/sidebar/"+form, strings.NewReader(values.Encode()))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var allChatsLine = regexp.MustCompile(`(?m)^№(\d+) · (.*) · (активно|решено|в технической поддержке) · непрочитанных: (\d+) · (.*)$`)

// TestSidebarList (done when 1): the placement's opening, built from the fixture,
// shows the client's dialogs as "все чаты" lists them — the same numbers, titles,
// statuses, unread counts, order and totals — in Russian, framed by the portal;
// a forged application token, an unknown member_id, another portal's token or
// AUTH_ID get the refusal and change nothing; another site cannot frame the page.
// With -update-screenshot it writes docs/sidebar.png.
func TestSidebarList(t *testing.T) {
	t.Parallel()
	s := newSidebarBot(t)
	p := s.portal
	bind := p.Placements()[0]
	if bind.Placement != "IM_SIDEBAR" || bind.Handler != "https://support.example.com/bitrix/sidebar" || bind.ClientID != appClientID ||
		bind.LangAll["ru"] != "Поддержка" || bind.LangAll["en"] != "Support" || bind.Options["iconName"] != "fa-life-ring" ||
		bind.Options["context"] != "ALL" {
		t.Fatalf("bound %+v", bind)
	}
	for _, c := range p.CallsTo("placement.bind") {
		if c.Auth == "webhook" {
			t.Errorf("placement.bind through the webhook: %+v", c)
		}
	}

	for _, q := range []string{"Не печатаются счета из CRM", "Настроить телефонию", "Импорт контактов из Excel", "Права доступа к сделкам"} {
		s.say(client, q, "data[PARAMS][LANGUAGE]", "ru")
	}
	waitIdle(t, s.dbPath)
	chats := s.chats()
	for i, title := range []string{"Печать счетов из CRM", "Телефония", "Импорт контактов", "Права на сделки"} {
		s.say(client, "переименовать "+strconv.Itoa(i+1)+" "+title, "data[PARAMS][LANGUAGE]", "ru")
	}
	waitIdle(t, s.dbPath)
	s.answer(chats[0], "Проверьте шаблон счёта")
	s.answer(chats[0], "И права на печать")
	s.answer(chats[1], "Какой у вас оператор?")
	s.answer(chats[2], "/escalate")
	s.answer(chats[3], "Готово, проверьте")
	s.answer(chats[3], "/close norate")
	waitIdle(t, s.dbPath)
	list := s.allChats(client)
	// Another portal has the application too.
	pb := b24test.NewAppPortal(t, s.o)
	pb.SetScopes("imbot", "im", "user", "placement")
	if status := postTo(t, s.runningBot, pb, pb.InstallEvent()); status != http.StatusOK {
		t.Fatal("portal B's installation refused")
	}
	testwait.For(t, "portal B's sidebar item", func() bool { return len(pb.Placements()) == 1 })
	waitIdle(t, s.dbPath)

	before := state(t, s.dbPath, "dialogs", "messages", "unread", "outbox", "events")
	doc := s.open(s.tab, nil, client, bitrix24.GroupChat(chats[1]), map[string]string{"LANG": "ru"})
	shown := dialogsIn(t, doc)
	lines := allChatsLine.FindAllStringSubmatch(list, -1)
	if len(lines) != 4 || len(shown) != 4 {
		t.Fatalf("the page shows %d dialogs, the list %d:\n%s\n%s", len(shown), len(lines), list, doc)
	}
	for i, l := range lines {
		want := shownDialog{Number: atoi(l[1]), Title: l[2], Status: l[3], Unread: atoi(l[4])}
		got := shown[i]
		got.Current, got.Chat = false, ""
		if got != want {
			t.Errorf("line %d: the page shows %+v, \"все чаты\" %+v", i+1, got, want)
		}
		if want.Status != "решено" && shown[i].Chat != bitrix24.GroupChat(chats[want.Number-1]) {
			t.Errorf("№%d opens %q", want.Number, shown[i].Chat)
		}
	}
	for _, d := range shown {
		if d.Current != (d.Number == 2) { // the sidebar is open in №2's chat
			t.Errorf("№%d marked as the chat the sidebar is in: %v", d.Number, d.Current)
		}
	}
	header := regexp.MustCompile(`\[b\]Ваши обращения\[/b\]: (\d+), непрочитанных сообщений: (\d+)`).FindStringSubmatch(list)
	if got := byID(t, doc, "summary"); header == nil || got != "Ваши обращения: "+header[1]+", непрочитанных сообщений: "+header[2] || header[2] != "6" {
		t.Errorf("page's header %q, list's %q", got, header)
	}
	if !strings.Contains(doc, `lang="ru"`) || !strings.Contains(doc, "Открыть новый") {
		t.Errorf("not the Russian page:\n%s", doc)
	}
	if *updateScreenshot {
		png := inFrameScreenshot(t, s.tab)
		if err := os.WriteFile(filepath.Join("docs", "sidebar.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("docs/sidebar.png: %d bytes", len(png))
	}

	// Forgeries: each gets the refusal in the frame, and nothing changes.
	_, bBody := pb.PlacementOpen(client, "", nil)
	bAuth, _ := url.ParseQuery(string(bBody))
	refusal := "Не удалось подтвердить, что страницу открыл ваш Битрикс24."
	for name, set := range map[string]map[string]string{
		"a forged application token": {"APPLICATION_TOKEN": "ec1b2074a9d3f5c81b6e40d27a95cf38"},
		"an unknown member_id":       {"member_id": "da45a03b265ed12127f8a258d793cc5d"},
		"portal B's token":           {"APPLICATION_TOKEN": pb.ApplicationToken()},
		"portal B's user's AUTH_ID":  {"AUTH_ID": bAuth.Get("AUTH_ID")},
	} {
		set["LANG"] = "ru"
		doc := s.open(s.tab, nil, client, "", set)
		if got := byID(t, doc, "refusal"); got != refusal || strings.Contains(doc, "<form") || strings.Contains(doc, "Печать счетов") {
			t.Errorf("%s: the frame shows %q:\n%s", name, got, doc)
		}
	}
	waitIdle(t, s.dbPath)
	if after := state(t, s.dbPath, "dialogs", "messages", "unread", "outbox", "events"); after != before {
		t.Errorf("the pages changed the database:\n%s\nthen\n%s", before, after)
	}

	// Framed by another site (portal B's messenger), the genuine page does not show:
	// Chromium refuses it, naming the policy.
	s.host(pb)
	query, body := p.PlacementOpen(client, "", map[string]string{"LANG": "ru"})
	fields, _ := url.ParseQuery(string(body))
	s.mu.Lock()
	s.openings["framed"] = opening{action: s.url + "/bitrix/sidebar?" + string(query), fields: fields}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.tab, 10*time.Second)
	defer cancel()
	refusals := chromedp.Console(ctx)
	if err := chromedp.Do(s.tab, chromedp.Navigate(pb.URL()+"/online/?open=framed")); err != nil {
		t.Fatal(err)
	}
	for m, err := range refusals {
		if err != nil {
			t.Fatalf("Chromium did not refuse to frame the page on another site: %v", err)
		}
		if strings.Contains(m.Text, "frame-ancestors "+p.URL()) {
			break
		}
	}
	if strings.Contains(frameDoc(s.tab), "Печать счетов") {
		t.Error("the page shows framed by another site")
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// inFrameScreenshot is a picture of the sidebar frame, as tall as its page.
func inFrameScreenshot(t *testing.T, tab context.Context) []byte {
	t.Helper()
	height := inFrame(t, tab, func(o ...chromedp.QueryOption) chromedp.Action[int] {
		return chromedp.JavascriptAttribute[int](chromedp.CSS("body"), "scrollHeight", o...)
	})
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("sidebar").style.height = "`+strconv.Itoa(height+8)+`px"`)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("iframe#sidebar")))
	if err != nil {
		t.Fatal(err)
	}
	return png
}

// TestSidebarOpenNew (done when 2): Open new with a question opens one dialog (one
// imbot.chat.add) and the list shows it; at the limit the button is disabled and
// says why, in the command's words, and a form sent anyway opens nothing.
func TestSidebarOpenNew(t *testing.T) {
	t.Parallel()
	s := newSidebarBot(t)
	s.say(client, "Первый вопрос", "data[PARAMS][LANGUAGE]", "ru")
	waitIdle(t, s.dbPath)
	created := len(s.portal.CallsTo("imbot.chat.add"))
	s.open(s.tab, nil, client, "", map[string]string{"LANG": "ru"})
	inFrame(t, s.tab, func(o ...chromedp.QueryOption) chromedp.Action[chromedp.Void] {
		return chromedp.SendKeys(chromedp.CSS(`textarea[name="question"]`), "Как выгрузить сделки в Excel?", o...)
	})
	click(t, s.tab, "#open-new")
	doc := s.waitFrame(s.tab, "the page after Open new", func(doc string) bool { return strings.Contains(doc, `id="notice"`) })
	if got := byID(t, doc, "notice"); got != "Открыто обращение №2. Ссылка на его чат — в чате с ботом." {
		t.Fatalf("notice %q", got)
	}
	if shown := dialogsIn(t, doc); len(shown) != 2 || shown[0].Number != 2 || shown[0].Title != "Вопрос в поддержку — №2" {
		t.Fatalf("the list after Open new: %+v", shown)
	}
	s.portal.WaitCalls(t, "imbot.chat.add", created+1, 10*time.Second)
	waitIdle(t, s.dbPath)
	if n := len(s.portal.CallsTo("imbot.chat.add")) - created; n != 1 {
		t.Fatalf("%d chats created by one Open new", n)
	}
	d := dialogNumbered(t, s.dbPath, 2)
	if greeting := s.portal.Messages(bitrix24.GroupChat(d.ChatID)); len(greeting) != 1 || !strings.Contains(greeting[0].Text, "Как выгрузить сделки в Excel?") {
		t.Errorf("greeting %+v", greeting)
	}
	if _, n := s.waitMessage(strconv.Itoa(client), 0, "Открыто обращение №2"); n == 0 {
		t.Error("no answer in the main chat")
	}
	// Its chat is there on the next render.
	doc = s.open(s.tab, nil, client, "", map[string]string{"LANG": "ru"})
	if shown := dialogsIn(t, doc); shown[0].Chat != bitrix24.GroupChat(d.ChatID) {
		t.Errorf("the new dialog's chat: %+v", shown[0])
	}

	for i := 3; i <= 5; i++ {
		s.say(client, "Вопрос "+strconv.Itoa(i), "data[PARAMS][LANGUAGE]", "ru")
	}
	waitIdle(t, s.dbPath)
	created = len(s.portal.CallsTo("imbot.chat.add"))
	doc = s.open(s.tab, nil, client, "", map[string]string{"LANG": "ru"})
	limit := "Сейчас у вас открыто максимальное число обращений — 5.\nЧтобы открыть новое, попросите поддержку закрыть те, вопросы по которым уже решены."
	disabled := inFrame(t, s.tab, func(o ...chromedp.QueryOption) chromedp.Action[bool] {
		return chromedp.JavascriptAttribute[bool](chromedp.CSS("#open-new"), "disabled", o...)
	})
	why := inFrame(t, s.tab, func(o ...chromedp.QueryOption) chromedp.Action[string] {
		return chromedp.JavascriptAttribute[string](chromedp.CSS("#why"), "innerText", o...)
	})
	if !disabled || why != limit || !strings.Contains(doc, `aria-describedby="why"`) {
		t.Fatalf("at the limit: disabled %v, why %q", disabled, why)
	}
	// The form sent anyway, as a page from before the limit would: the limit message.
	status, answer := s.postForm(sidebar.FormNew, url.Values{"token": {tokenIn(t, doc)}, "question": {"шестой"}})
	if status != http.StatusOK || byID(t, answer, "notice") != limit {
		t.Fatalf("Open new at the limit: %d %q", status, byID(t, answer, "notice"))
	}
	waitIdle(t, s.dbPath)
	if n := len(s.portal.CallsTo("imbot.chat.add")) - created; n != 0 || countDialogs(t, s.dbPath, anyDialog) != 5 {
		t.Fatalf("%d chats created at the limit", n)
	}
}

// TestSidebarRename (done when 3): the pencil renames the dialog in place (one
// imbot.chat.updateTitle) and the new title shows; a title with [USER=all] and
// <script> is shown as the text it is.
func TestSidebarRename(t *testing.T) {
	t.Parallel()
	s := newSidebarBot(t)
	s.say(client, "Вопрос", "data[PARAMS][LANGUAGE]", "ru")
	waitIdle(t, s.dbPath)
	chat := s.chats()[0]
	s.portal.Reset()
	inMainChat := len(s.portal.Messages(strconv.Itoa(client)))
	s.open(s.tab, nil, client, "", map[string]string{"LANG": "ru"})
	click(t, s.tab, `li[data-number="1"] .rename summary`)
	title := `[USER=all] <script>alert("x")</script> & "Печать"`
	inFrame(t, s.tab, func(o ...chromedp.QueryOption) chromedp.Action[chromedp.Void] {
		return chromedp.Clear(chromedp.CSS(`li[data-number="1"] input[name="title"]`), o...)
	})
	inFrame(t, s.tab, func(o ...chromedp.QueryOption) chromedp.Action[chromedp.Void] {
		return chromedp.SendKeys(chromedp.CSS(`li[data-number="1"] input[name="title"]`), title, o...)
	})
	click(t, s.tab, `li[data-number="1"] .rename button`)
	doc := s.waitFrame(s.tab, "the page after the rename", func(doc string) bool { return strings.Contains(doc, `id="notice"`) })
	if got := byID(t, doc, "notice"); got != "Обращение №1 переименовано: «"+title+"»." {
		t.Errorf("notice %q", got)
	}
	shown := inFrame(t, s.tab, func(o ...chromedp.QueryOption) chromedp.Action[string] {
		return chromedp.TextContent(chromedp.CSS(`li[data-number="1"] .title`), o...)
	})
	inner := inFrame(t, s.tab, func(o ...chromedp.QueryOption) chromedp.Action[string] {
		return chromedp.InnerHTML(chromedp.CSS(`li[data-number="1"] .title`), o...)
	})
	scripts := inFrame(t, s.tab, func(o ...chromedp.QueryOption) chromedp.Action[[]*chromedp.Node] {
		return chromedp.Nodes(chromedp.CSS("script"), append(o, chromedp.AtLeast(0))...)
	})
	if shown != title || strings.Contains(inner, "<") || len(scripts) != 1 {
		t.Errorf("title shown %q, as %q, %d scripts", shown, inner, len(scripts))
	}
	s.portal.WaitCalls(t, "imbot.chat.updateTitle", 1, 10*time.Second)
	waitIdle(t, s.dbPath)
	if calls := s.portal.CallsTo("imbot.chat.updateTitle"); len(calls) != 1 || calls[0].Params.String("TITLE") != title {
		t.Fatalf("renames sent: %+v", calls)
	}
	if c, _ := s.portal.Chat(chat); c.Title != title || dialogNumbered(t, s.dbPath, 1).Title != title {
		t.Errorf("chat titled %q", c.Title)
	}
	if msgs := s.portal.Messages(strconv.Itoa(client)); len(msgs) != inMainChat {
		t.Errorf("the pencil answered in the main chat: %+v", msgs[inMainChat:])
	}
}

// TestSidebarOpenMarksRead (done when 4): opening a dialog from the page clears its
// unread count on the next render: without BX24 the portal's messenger opens the
// chat; with BX24, BX24.im.openMessenger does, and the page shows the count gone.
func TestSidebarOpenMarksRead(t *testing.T) {
	t.Parallel()
	s := newSidebarBot(t)
	s.say(client, "Первый", "data[PARAMS][LANGUAGE]", "ru")
	s.say(client, "Второй", "data[PARAMS][LANGUAGE]", "ru")
	waitIdle(t, s.dbPath)
	chats := s.chats()
	s.answer(chats[0], "Ответ 1")
	s.answer(chats[0], "Ответ 2")
	s.answer(chats[1], "Ответ")
	waitIdle(t, s.dbPath)
	unread := func(doc string, number int) int {
		for _, d := range dialogsIn(t, doc) {
			if d.Number == number {
				return d.Unread
			}
		}
		t.Fatalf("no №%d on the page", number)
		return 0
	}
	doc := s.open(s.tab, nil, client, "", map[string]string{"LANG": "ru"})
	if unread(doc, 1) != 2 || byID(t, doc, "summary") != "Ваши обращения: 2, непрочитанных сообщений: 3" {
		t.Fatalf("before: №1 %d unread; %q", unread(doc, 1), byID(t, doc, "summary"))
	}
	// Without BX24: the form takes the whole window to the portal's chat.
	click(t, s.tab, `li[data-number="1"] form.open button`)
	want := s.portal.URL() + "/online/?IM_DIALOG=" + bitrix24.GroupChat(chats[0])
	testwait.For(t, "the portal's chat", func() bool {
		loc, err := chromedp.Run(s.tab, chromedp.Location())
		return err == nil && loc == want
	})
	doc = s.open(s.tab, nil, client, "", map[string]string{"LANG": "ru"})
	if unread(doc, 1) != 0 || unread(doc, 2) != 1 || byID(t, doc, "summary") != "Ваши обращения: 2, непрочитанных сообщений: 1" {
		t.Fatalf("after opening №1: %+v, %q", dialogsIn(t, doc), byID(t, doc, "summary"))
	}

	// With BX24 (a stand-in for Bitrix24's library in the frame): the messenger opens
	// the chat, and the page shows №2 read at once.
	tab, cancel := chromedp.NewContext(s.tab)
	defer cancel()
	if _, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
		if (location.origin === ` + strconv.Quote(s.url) + `) {
			window.BX24 = {init: function (f) { f(); }, im: {openMessenger: function (d) {
				document.documentElement.setAttribute("data-opened", d);
			}}};
		}`}); err != nil {
		t.Fatal(err)
	}
	s.open(tab, nil, client, "", map[string]string{"LANG": "ru"})
	click(t, tab, `li[data-number="2"] form.open button`)
	doc = s.waitFrame(tab, "the page after BX24 opened №2", func(doc string) bool {
		return strings.Contains(doc, `data-opened="`+bitrix24.GroupChat(chats[1])+`"`) && strings.Contains(doc, "непрочитанных сообщений: 0")
	})
	if unread(doc, 2) != 0 {
		t.Errorf("№2 still unread: %+v", dialogsIn(t, doc))
	}
	if loc, _ := chromedp.Run(tab, chromedp.Location()); !strings.HasPrefix(loc, s.portal.URL()+"/online/?open=") {
		t.Errorf("the window left the messenger for %s", loc)
	}
	doc = s.open(tab, nil, client, "", map[string]string{"LANG": "ru"})
	if unread(doc, 2) != 0 {
		t.Errorf("№2 unread on the next render: %+v", dialogsIn(t, doc))
	}
}

// TestSidebarTokens (done when 5): a form with an expired token, or with another
// user's, is refused and changes nothing; so is one whose token was altered, or one
// a browser says another site sent.
func TestSidebarTokens(t *testing.T) {
	t.Parallel()
	s := newSidebarBot(t)
	s.say(client, "Вопрос клиента", "data[PARAMS][LANGUAGE]", "ru")
	s.say(7, "Вопрос другого администратора", "data[PARAMS][LANGUAGE]", "ru")
	waitIdle(t, s.dbPath)
	chats := s.chats()
	s.answer(chats[0], "Ответ")
	waitIdle(t, s.dbPath)
	s.portal.Reset()
	before := state(t, s.dbPath, "dialogs", "messages", "unread", "outbox", "events")

	// User 7's genuine token, from 7's own page.
	otherTab, cancel := chromedp.NewContext(s.tab)
	defer cancel()
	othersToken := tokenIn(t, s.open(otherTab, nil, 7, "", map[string]string{"LANG": "ru"}))
	// An expired token for the client, signed as the bot signs them.
	signer := sidebar.NewSigner(appClientSecret)
	signer.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expired, err := signer.Issue(sidebar.Claims{Portal: portalOf(t, s.dbPath, s.portal).ID, User: client, Admin: true, Lang: "ru"})
	if err != nil {
		t.Fatal(err)
	}

	setToken := func(sel, token string) {
		inFrame(t, s.tab, func(o ...chromedp.QueryOption) chromedp.Action[chromedp.Void] {
			return chromedp.SetJavascriptAttribute(chromedp.CSS(sel+` input[name="token"]`), "value", token, o...)
		})
	}
	// The pencil on the client's №1 with user 7's token: not among 7's dialogs.
	s.open(s.tab, nil, client, "", map[string]string{"LANG": "ru"})
	click(t, s.tab, `li[data-number="1"] .rename summary`)
	setToken(`li[data-number="1"] .rename`, othersToken)
	click(t, s.tab, `li[data-number="1"] .rename button`)
	doc := s.waitFrame(s.tab, "the refusal", func(doc string) bool { return strings.Contains(doc, `id="notice"`) })
	if got := byID(t, doc, "notice"); got != "Обращение №1 не найдено среди ваших." {
		t.Errorf("rename with another user's token: %q", got)
	}
	// Opening №1 with 7's token: the same, and №1 stays unread.
	s.open(s.tab, nil, client, "", map[string]string{"LANG": "ru"})
	setToken(`li[data-number="1"] form.open`, othersToken)
	click(t, s.tab, `li[data-number="1"] form.open button`)
	testwait.For(t, "the refusal of the open", func() bool {
		top, err := chromedp.Run(s.tab, chromedp.Text(chromedp.CSS("body")))
		return err == nil && strings.Contains(top, "Обращение №1 не найдено среди ваших.")
	})
	// The pencil with an expired token: the refusal, in the frame.
	s.open(s.tab, nil, client, "", map[string]string{"LANG": "ru"})
	click(t, s.tab, `li[data-number="1"] .rename summary`)
	setToken(`li[data-number="1"] .rename`, expired)
	click(t, s.tab, `li[data-number="1"] .rename button`)
	doc = s.waitFrame(s.tab, "the expired refusal", func(doc string) bool { return strings.Contains(doc, `id="refusal"`) })
	if got := byID(t, doc, "refusal"); got != "Страница устарела." {
		t.Errorf("rename with an expired token: %q", got)
	}

	// Outside the browser: an expired token, an altered one, no token, a form another
	// site sent with a genuine token.
	genuine := tokenIn(t, s.open(s.tab, nil, client, "", map[string]string{"LANG": "ru"}))
	last := "A"
	if strings.HasSuffix(genuine, "A") {
		last = "B"
	}
	altered := genuine[:len(genuine)-1] + last
	for name, tt := range map[string]struct {
		token  string
		header []string
	}{
		"an expired token":      {expired, nil},
		"an altered token":      {altered, nil},
		"no token":              {"", nil},
		"another site's form":   {genuine, []string{"Sec-Fetch-Site", "cross-site"}},
		"a sibling site's form": {genuine, []string{"Sec-Fetch-Site", "same-site"}},
		// An older browser sends no Sec-Fetch-Site, but says where the form comes from.
		"another origin's form, no Sec-Fetch-Site":     {genuine, []string{"Origin", "https://evil.example"}},
		"another site's referrer, no Origin":           {genuine, []string{"Referer", "https://evil.example/sidebar"}},
		"a null origin (a sandboxed frame's)":          {genuine, []string{"Origin", "null"}},
		"our origin in the Referer, another in Origin": {genuine, []string{"Origin", "https://evil.example", "Referer", "https://support.example.com/bitrix/sidebar"}},
	} {
		for _, form := range []string{sidebar.FormRename, sidebar.FormOpen, sidebar.FormNew} {
			status, body := s.postForm(form, url.Values{"token": {tt.token}, "number": {"1"}, "title": {"Чужое"}, "question": {"x"}}, tt.header...)
			if status != http.StatusForbidden || byID(t, body, "refusal") == "" {
				t.Errorf("%s, %s: %d %q", name, form, status, byID(t, body, "refusal"))
			}
		}
	}
	waitIdle(t, s.dbPath)
	if after := state(t, s.dbPath, "dialogs", "messages", "unread", "outbox", "events"); after != before {
		t.Errorf("refused forms changed the database:\n%s\nthen\n%s", before, after)
	}
	if calls := s.portal.CallsTo("imbot.chat.updateTitle"); len(calls) != 0 {
		t.Errorf("renamed: %+v", calls)
	}
	// The same older browser on the page itself (its origin, http.public_url's), or
	// with the portal's that frames it: taken.
	for _, origin := range []string{"https://support.example.com", s.portal.URL()} {
		status, body := s.postForm(sidebar.FormRename, url.Values{"token": {genuine}, "number": {"1"}, "title": {"Своё"}}, "Origin", origin)
		if status != http.StatusOK {
			t.Errorf("a form from %s: %d %q", origin, status, byID(t, body, "refusal"))
		}
	}
}

// TestSidebarQueueAndRefusal: an agent sees the queue as /queue lists it; someone
// who may not ask, the polite refusal; both in English for LANG=en.
func TestSidebarQueueAndRefusal(t *testing.T) {
	t.Parallel()
	s := newSidebarBot(t)
	s.say(client, "First question")
	s.say(client, "Second question")
	waitIdle(t, s.dbPath)
	chats := s.chats()
	s.answer(chats[0], "Answered")
	waitIdle(t, s.dbPath)
	s.say(agentID, "/queue")
	queue, _ := s.waitMessage(strconv.Itoa(agentID), 0, "Waiting for an answer")

	doc := s.open(s.tab, nil, agentID, "", map[string]string{"LANG": "en"})
	if got := byID(t, doc, "queue"); !strings.Contains(queue.Text, "[b]Waiting for an answer[/b]: 1") || got != "Waiting for an answer: 1" {
		t.Errorf("queue header %q; /queue:\n%s", got, queue.Text)
	}
	if !strings.Contains(queue.Text, "#2 · Support question — #2 · User 27") || !strings.Contains(doc, `data-number="2" data-waiting="1"`) ||
		strings.Contains(doc, `data-number="1" data-waiting`) || strings.Contains(doc, `class="new"`) {
		t.Errorf("queue:\n%s\npage:\n%s", queue.Text, doc)
	}
	doc = s.open(s.tab, nil, strangerID, "", map[string]string{"LANG": "en"})
	if got := byID(t, doc, "refusal"); got != "Only the portal's administrators and integrators can write to support. If you need help, please ask your Bitrix24 administrator." ||
		strings.Contains(doc, "<form") {
		t.Errorf("a stranger sees %q:\n%s", got, doc)
	}
}

// TestSidebarHTTPStatuses: what the routes answer what is not the page's: too large,
// malformed, the wrong method; and no routes at all in webhook mode.
func TestSidebarHTTPStatuses(t *testing.T) {
	t.Parallel()
	o := b24test.NewOAuth(t, appClientID, appClientSecret)
	p := b24test.NewAppPortal(t, o) // without the placement scope
	dbPath := filepath.Join(t.TempDir(), "statuses.db")
	b := startApp(t, o, p, dbPath)
	if status := postTo(t, b, p, p.InstallEvent()); status != http.StatusOK {
		t.Fatal("installation refused")
	}
	// The portal refuses the sidebar's item; the bot works, and doctor says why.
	testwait.For(t, "the refused placement.bind", func() bool {
		return slices.ContainsFunc(outboxAt(t, dbPath), func(e storage.OutboxRow) bool {
			return e.Kind == bitrix24.KindBindPlacement && e.State == storage.OutboxFailed
		})
	})
	cfg, err := config.LoadFrom(nil, dbEnv(t, appEnv(o, dbPath), ""))
	if err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	ok := (&setup.Doctor{Config: cfg, Out: &report}).Run(t.Context())
	if want := "! portal " + p.Domain() + ": the portal refused the chat sidebar's item: "; !ok || !strings.Contains(report.String(), want) ||
		!strings.Contains(report.String(), "insufficient_scope") {
		t.Errorf("doctor (passed %v) did not say %q:\n%s", ok, want, report.String())
	}
	query, body := p.PlacementOpen(client, "", nil)
	post := func(url string, body []byte) (int, http.Header) {
		resp, err := http.Post(url, "application/x-www-form-urlencoded", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header
	}
	page := b.url + "/bitrix/sidebar?" + string(query)
	for name, tt := range map[string]struct {
		url    string
		body   []byte
		status int
	}{
		"the page":             {page, body, http.StatusOK},
		"too large":            {page, append(body, "&x="+strings.Repeat("a", 200<<10)...), http.StatusRequestEntityTooLarge},
		"malformed":            {page, []byte("AUTH_ID=%zz"), http.StatusBadRequest},
		"options not JSON":     {page, append(body, "&PLACEMENT_OPTIONS=%7B"...), http.StatusBadRequest},
		"a form too large":     {b.url + "/bitrix/sidebar/new", []byte("question=" + strings.Repeat("a", 200<<10)), http.StatusRequestEntityTooLarge},
		"a malformed form":     {b.url + "/bitrix/sidebar/rename", []byte("number=x"), http.StatusBadRequest},
		"a form with no token": {b.url + "/bitrix/sidebar/open", []byte("number=1"), http.StatusForbidden},
		"a route that is none": {b.url + "/bitrix/sidebar/delete", []byte("number=1"), http.StatusNotFound},
	} {
		status, h := post(tt.url, tt.body)
		if status != tt.status {
			t.Errorf("%s: %d, want %d", name, status, tt.status)
		}
		if status != http.StatusNotFound && (!strings.HasPrefix(h.Get("Content-Type"), "text/html") || h.Get("Content-Security-Policy") == "") {
			t.Errorf("%s: headers %v", name, h)
		}
		if name == "the page" && !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors "+p.URL()) {
			t.Errorf("the page may be framed by %q", h.Get("Content-Security-Policy"))
		}
	}
	resp, err := http.Get(b.url + "/bitrix/sidebar")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	hook := startBot(t, b24test.New(t), filepath.Join(t.TempDir(), "webhook.db"))
	if status, _ := post(hook.url+"/bitrix/sidebar?"+string(query), body); status != http.StatusNotFound {
		t.Errorf("webhook mode serves the page: %d", status)
	}
}
