package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"supportbot/bitrix24/b24test"
	"supportbot/localportal"
	"supportbot/storage"
	"supportbot/testwait"
)

var updateLocalScreenshot = flag.Bool("update-local-screenshot", false, "rewrite docs/local.png: the local portal's messenger, a dialog with its keyboard and the sidebar")

// The local portal, played as a person meets it: `supportbot serve` with no portal
// configured, Debian's Chromium on its messenger page at /, the people of the seed
// taking turns.

// The seeded people the story needs.
const (
	localAdmin    = 1
	localAgent    = 3
	localAgentTwo = 4
	localTech     = 5
	localNobody   = 6
)

// messenger is the messenger page in a browser tab, on a bot serving the local portal.
type messenger struct {
	t   *testing.T
	tab context.Context
	url string
}

// shownChat is a chat of the page's list.
type shownChat struct {
	Dialog, Title string
	Unread        int
}

// shownMessage is a message of the page's thread.
type shownMessage struct {
	ID      int64
	Author  string
	Text    string
	Buttons []string
	Mine    bool
}

// eval runs a script in the page, tolerating a page that is being replaced.
func eval[T any](d *messenger, script string) (T, error) {
	ctx, cancel := context.WithTimeout(d.tab, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](script))
}

// open shows the page of person as with dialog open.
func (d *messenger) open(as int64, dialog string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.tab, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(d.url+localportal.PageURL(as, dialog)), chromedp.WaitVisible(chromedp.CSS("#people"))); err != nil {
		d.t.Fatal(err)
	}
}

// chats is the chat list the page shows now.
func (d *messenger) chats() []shownChat {
	out, _ := eval[[]shownChat](d, `Array.from(document.querySelectorAll("#chats .chat-item")).map(a => ({
		Dialog: a.dataset.dialog, Title: a.querySelector(".title").textContent,
		Unread: parseInt((a.querySelector(".unread") || {}).textContent || "0", 10)}))`)
	return out
}

// thread is the messages the page shows now.
func (d *messenger) thread() []shownMessage {
	out, _ := eval[[]shownMessage](d, `Array.from(document.querySelectorAll("#thread .msg")).map(m => ({
		ID: parseInt(m.dataset.id, 10), Author: m.querySelector(".meta b").textContent, Text: m.querySelector(".text").innerText,
		Buttons: Array.from(m.querySelectorAll(".keyboard .key")).map(b => b.textContent), Mine: m.classList.contains("mine")}))`)
	return out
}

// waitMessage waits for the page to show, by itself, a message containing text, and
// returns it.
func (d *messenger) waitMessage(text string) shownMessage {
	d.t.Helper()
	var shown []shownMessage
	found := -1
	defer func() {
		if found < 0 { // the wait failed: say what the page shows instead
			d.t.Logf("the page shows %+v", shown)
		}
	}()
	testwait.For(d.t, fmt.Sprintf("the page to show %q", text), func() bool {
		shown = d.thread()
		found = slices.IndexFunc(shown, func(m shownMessage) bool { return strings.Contains(m.Text, text) })
		return found >= 0
	})
	return shown[found]
}

// do runs a script that submits one of the page's forms, and waits for the page
// it leads to.
func (d *messenger) do(what, script string) {
	d.t.Helper()
	marker, err := eval[string](d, `document.body.dataset.marker = "before"`)
	if err != nil || marker != "before" {
		d.t.Fatalf("%s: the page does not answer: %v", what, err)
	}
	if _, err := eval[bool](d, "(function(){"+script+"; return true})()"); err != nil {
		d.t.Fatalf("%s: %v", what, err)
	}
	testwait.For(d.t, what, func() bool {
		m, err := eval[string](d, `document.readyState === "complete" && document.querySelector("#people") ? (document.body.dataset.marker || "after") : "before"`)
		return err == nil && m == "after"
	})
}

// send writes text in the open chat.
func (d *messenger) send(text string) {
	d.t.Helper()
	quoted, _ := json.Marshal(text)
	d.do("send "+text, `var f = document.getElementById("send"); f.elements.text.value = `+string(quoted)+`; f.querySelector("button").click()`)
}

// press presses the button labelled label of the message with ID id.
func (d *messenger) press(id int64, label string) {
	d.t.Helper()
	quoted, _ := json.Marshal(label)
	d.do("press "+label, `var b = Array.from(document.querySelectorAll('#thread .msg[data-id="`+strconv.FormatInt(id, 10)+`"] .key')).find(b => b.textContent === `+string(quoted)+`);
		b.click()`)
}

// frame is the text of the sidebar's frame, "" before it shows a page.
func (d *messenger) frame() string {
	s, _ := eval[string](d, `(function(){ var f = document.getElementById("sidebar");
		return f && f.contentDocument && f.contentDocument.body ? f.contentDocument.body.innerText : "" })()`)
	return s
}

// chatOf is the chat of the list whose title contains title.
func chatOf(chats []shownChat, title string) (shownChat, bool) {
	i := slices.IndexFunc(chats, func(c shownChat) bool { return strings.Contains(c.Title, title) })
	if i < 0 {
		return shownChat{}, false
	}
	return chats[i], true
}

// TestLocalPortalStory (issue 21): with no portal configured, the messenger page
// plays the whole messenger. The administrator asks; a dialog chat appears with the
// agents; "all chats" lists it with its unread count; the pencil renames it; the bot
// is restarted; an agent answers, escalates (the access request arrives in the
// administrator's chat with the bot, not in the dialog) and closes; the
// administrator rates it with the button; the sidebar lists it as resolved; the user
// with no role is refused.
func TestLocalPortalStory(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "supportbot.db")
	env := []string{"SUPPORTBOT_HTTP_ADDR=" + freeAddr(t), "SUPPORTBOT_DB_PATH=" + dbPath}
	b := startServe(t, nil, dbPath, env)
	d := &messenger{t: t, tab: newBrowser(t, browser), url: b.url}

	// Who are you: every person of the seed, with a name.
	d.open(0, "")
	names, _ := eval[[]string](d, `Array.from(document.querySelectorAll(".pick a.person")).map(a => a.textContent)`)
	if len(names) != len(localportal.People) || !slices.Contains(names, "Anna Petrova") {
		t.Fatalf("the people to pick: %q", names)
	}

	// The administrator asks in the chat with the bot, once the application has
	// installed itself and registered it: the page shows its name by itself.
	d.open(localAdmin, "1")
	testwait.For(t, "the bot's chat", func() bool { c := d.chats(); return len(c) > 0 && c[0].Title == "Поддержка" })
	d.send("How do I export deals to Excel? [USER=all]")
	opened := d.waitMessage("Question #1 is open")
	if !slices.Contains(opened.Buttons, "Go to chat") {
		t.Errorf("the answer's keyboard: %q", opened.Buttons)
	}
	mine := d.thread()[0]
	if !mine.Mine || mine.Text != "How do I export deals to Excel? [USER=all]" {
		t.Errorf("the question as shown: %+v", mine)
	}
	var dialog shownChat
	testwait.For(t, "the dialog's chat in the administrator's list", func() bool {
		var ok bool
		dialog, ok = chatOf(d.chats(), "Support question — #1")
		return ok
	})
	// The keyboard's "Go to chat" opens the dialog's chat.
	d.press(opened.ID, "Go to chat")
	if here, _ := eval[string](d, `location.search`); !strings.Contains(here, "chat="+dialog.Dialog) {
		t.Errorf("Go to chat led to %s", here)
	}
	for _, agent := range []int64{localAgent, localAgentTwo} {
		d.open(agent, "")
		if _, ok := chatOf(d.chats(), "Support question — #1"); !ok {
			t.Errorf("agent %d is not in the dialog's chat: %+v", agent, d.chats())
		}
	}

	// "all chats" lists it with its unread count.
	d.open(localAdmin, "1")
	d.send("all chats")
	list := d.waitMessage("Your questions")
	if !strings.Contains(list.Text, "Support question — #1 · active · unread: 0") {
		t.Errorf("all chats: %q", list.Text)
	}

	// The pencil renames it.
	d.open(localAdmin, dialog.Dialog)
	d.do("rename", `document.querySelector("#pencil summary").click(); var f = document.getElementById("rename");
		f.elements.title.value = "Export deals <Excel>"; f.querySelector("button").click()`)
	if title, _ := eval[string](d, `document.getElementById("title").textContent`); title != "Export deals <Excel>" {
		t.Errorf("the renamed chat's title: %q", title)
	}

	// An agent answers and escalates; the bot stops at once, before it fetched the
	// escalation, and starts again: nothing is lost or done twice.
	d.open(localAgent, dialog.Dialog)
	d.send("Use CRM › Deals › Export, [b]Excel[/b].")
	if got := d.thread(); !strings.Contains(got[len(got)-1].Text, "Use CRM › Deals › Export, Excel.") {
		t.Errorf("the answer as shown: %+v", got[len(got)-1])
	}
	// The agent corrects the answer, and deletes a slip: the transcript follows.
	d.send("a slip")
	slip := d.thread()[len(d.thread())-1]
	d.do("edit", `var m = document.querySelector('#thread .msg.mine:nth-last-child(2)'); m.querySelector("details.edit").open = true;
		var f = m.querySelector("form.edit"); f.elements.text.value = "Use CRM › Deals › Export, then Excel."; f.querySelector("button").click()`)
	d.do("delete", `document.querySelector('#thread .msg[data-id="`+strconv.FormatInt(slip.ID, 10)+`"] form.delete button').click()`)
	shown := d.thread()
	if len(shown) < 2 || shown[len(shown)-2].Text != "Use CRM › Deals › Export, then Excel." || shown[len(shown)-1].Text != "This message was deleted." {
		t.Errorf("after the edit and the deletion: %+v", shown)
	}
	testwait.For(t, "the transcript to follow the edit and the deletion", func() bool {
		edited, deleted := false, false
		view(t, dbPath, func(tx *storage.Tx) error {
			tr, err := tx.Transcript(dialogsAt(t, dbPath)[0].ID)
			for _, m := range tr {
				edited = edited || m.Text == "Use CRM › Deals › Export, then Excel." && !m.EditedAt.IsZero()
				deleted = deleted || m.BitrixMessageID == slip.ID && !m.DeletedAt.IsZero()
			}
			return err
		})
		return edited && deleted
	})
	waitIdle(t, dbPath)
	d.send("/escalate")
	b.stop()
	startServe(t, nil, dbPath, env) // it stops when the test ends
	// The escalation is announced in the dialog, naming the second line.
	d.waitMessage("The second line joins the question: Elena Sokolova")
	d.open(localAdmin, "1")
	request := d.waitMessage("technical support needs access")
	if !slices.Contains(request.Buttons, "Grant access") || !strings.Contains(request.Text, "Export deals <Excel>") {
		t.Errorf("the access request: %+v", request)
	}
	d.open(localAdmin, dialog.Dialog)
	for _, m := range d.thread() {
		if strings.Contains(m.Text, "needs access") {
			t.Errorf("the access request is in the dialog: %q", m.Text)
		}
	}
	d.open(localTech, "")
	if _, ok := chatOf(d.chats(), "Export deals <Excel>"); !ok {
		t.Errorf("the second line is not in the escalated dialog: %+v", d.chats())
	}
	if n := countDialogs(t, dbPath, anyDialog); n != 1 {
		t.Errorf("%d dialogs after the restart", n)
	}
	waitIdle(t, dbPath)
	d.open(localAdmin, "1")
	requests := 0
	for _, m := range d.thread() {
		if strings.Contains(m.Text, "technical support needs access") {
			requests++
		}
	}
	if requests != 1 {
		t.Errorf("%d access requests after the restart", requests)
	}

	// The agent closes it; the administrator rates it with the button.
	d.open(localAgent, dialog.Dialog)
	d.send("/close")
	d.open(localAdmin, "1")
	resolved := d.waitMessage("marked your question #1 as resolved")
	d.press(resolved.ID, "👍 Helped")
	d.waitMessage("Your rating: 👍 helped")

	// The sidebar lists it as resolved.
	d.open(localAdmin, dialog.Dialog)
	testwait.For(t, "the sidebar to list the dialog as resolved", func() bool {
		doc := d.frame()
		return strings.Contains(doc, "Export deals <Excel>") && strings.Contains(doc, "resolved")
	})

	// Its "open" in the sidebar (no BX24 here) opens the dialog's chat around the frame.
	d.open(localAdmin, "1")
	testwait.For(t, "the sidebar", func() bool { return strings.Contains(d.frame(), "Export deals <Excel>") })
	d.do("open from the sidebar", `document.getElementById("sidebar").contentDocument.querySelector("form.open button").click()`)
	testwait.For(t, "the dialog's chat opened from the sidebar", func() bool {
		here, _ := eval[string](d, `location.search`)
		return strings.Contains(here, "chat="+dialog.Dialog) && strings.Contains(here, "as=1")
	})

	// The user with no role is refused, and nothing is created.
	d.open(localNobody, "6")
	d.send("Hello, I have a question")
	d.waitMessage("Only the portal's administrators and integrators can write to support")
	if n := countDialogs(t, dbPath, anyDialog); n != 1 {
		t.Errorf("%d dialogs", n)
	}

	// The administrator's list counts what was not seen; opening the chat clears it.
	d.open(localAgent, dialog.Dialog)
	d.send("One more thing: see the docs.")
	waitIdle(t, dbPath)
	d.open(localAdmin, "1")
	if c, _ := chatOf(d.chats(), "Export deals <Excel>"); c.Unread != 1 {
		t.Errorf("the dialog's unread mark: %+v", c)
	}
	d.open(localAdmin, dialog.Dialog)
	if c, _ := chatOf(d.chats(), "Export deals <Excel>"); c.Unread != 0 {
		t.Errorf("the dialog's unread mark once read: %+v", c)
	}

	// At a phone's width nothing is wider than the screen.
	ctx, cancel := context.WithTimeout(d.tab, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 800, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	d.open(localAdmin, "1")
	if width, _ := eval[int](d, `document.documentElement.scrollWidth`); width > 390 {
		t.Errorf("at 390 pixels the page is %d wide", width)
	}
	if os.Getenv("SUPPORTBOT_PHONE_SCREENSHOT") != "" {
		png, _ := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		_ = os.WriteFile(os.Getenv("SUPPORTBOT_PHONE_SCREENSHOT"), png, 0o644)
	}
	if *updateLocalScreenshot {
		screenshotLocal(t, d)
	}
}

// screenshotLocal writes docs/local.png: the administrator's dialog, its keyboard and
// the sidebar.
func screenshotLocal(t *testing.T, d *messenger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(d.tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 760)); err != nil {
		t.Fatal(err)
	}
	d.open(localAdmin, "1")
	testwait.For(t, "the sidebar", func() bool { return strings.Contains(d.frame(), "Export") })
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("docs", "local.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("docs/local.png: %d bytes", len(png))
}

// TestLocalPortalOnlyWithoutPortal: with a portal configured, / is 404 and nothing of
// the local portal runs: no REST API, no OAuth server, no state file.
func TestLocalPortalOnlyWithoutPortal(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	dbPath := filepath.Join(t.TempDir(), "configured.db")
	b := startBot(t, portal, dbPath)
	for _, path := range []string{"/", "/?as=1", "/rest/imbot.v2.Event.get", "/oauth/token/", "/local/changes", "/online/"} {
		resp, err := http.Get(b.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	if _, err := os.Stat(localportal.StatePath(dbPath)); !os.IsNotExist(err) {
		t.Errorf("a local portal's state file: %v", err)
	}
	ps, err := storeAt(t, dbPath).Portals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].MemberID == localportal.ClientID || strings.Contains(ps[0].ClientEndpoint, b.url) {
		t.Errorf("portals: %+v", ps)
	}
}
