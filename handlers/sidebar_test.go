package handlers

import (
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bot"
	"supportbot/portals"
	"supportbot/sidebar"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// TestSidebarDemotedAdmin: the page's token carried an administrator's rights for up
// to an hour; now a form asks again, at most a minute stale. An administrator who
// opened the page and is demoted on the portal can no longer open a dialog from it a
// minute later; before that, and once the portal says so again, they can.
func TestSidebarDemotedAdmin(t *testing.T) {
	const clientID, secret = "local.6741a1b2c3d4e5.12345678", "Xy7secretOfTheApplication0123456789abcdefGHIJ"
	o := b24test.NewOAuth(t, clientID, secret)
	p := b24test.NewAppPortal(t, o)
	p.SetAdmins(1, 7)
	store := storagetest.Open(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: secret, URL: o.URL() + "/"}
	var mu sync.Mutex
	now := time.Now()
	auth := &portals.App{Store: store, OAuth: app, Connections: portals.NewConnections(store, app, 50, 250, nil, nil),
		Clock: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	srv := sidebarServer(t, p, auth, secret)

	query, body := p.PlacementOpen(7, "7", map[string]string{"LANG": "en"})
	page := post(t, srv.URL+"/bitrix/sidebar?"+string(query), string(body))
	// Each answer brings the token for the next form, as the page uses them.
	openNew := func(question string) {
		t.Helper()
		token := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page)
		if token == nil {
			t.Fatalf("no token on the page:\n%s", page)
		}
		page = post(t, srv.URL+"/bitrix/sidebar/new", url.Values{"token": {html.UnescapeString(token[1])}, "question": {question}}.Encode())
	}
	dialogs := func() int {
		t.Helper()
		var n int
		err := store.View(context.Background(), func(tx *storage.Tx) error {
			list, err := storagetest.Dialogs(tx, 1)
			n = len(list)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	openNew("first, as an administrator")
	if n := dialogs(); n != 1 {
		t.Fatalf("%d dialogs after the administrator's Open new", n)
	}
	p.SetAdmins(1) // demoted on the portal
	openNew("second, within the minute")
	if n := dialogs(); n != 2 {
		t.Fatalf("%d dialogs: the answer of less than a minute ago stands", n)
	}
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	openNew("third, a minute after the demotion")
	if n := dialogs(); n != 2 {
		t.Fatalf("%d dialogs: a demoted administrator opened one a minute later", n)
	}
}

// TestSidebarFloodGets503: thirty openings at once on a portal with the cloud's limit
// (2 a second, 50 deep): those beyond the pages' share of it (12) are answered 503 at
// once, without a request to the portal.
func TestSidebarFloodGets503(t *testing.T) {
	const clientID, secret = "local.6741a1b2c3d4e5.12345678", "Xy7secretOfTheApplication0123456789abcdefGHIJ"
	o := b24test.NewOAuth(t, clientID, secret)
	p := b24test.NewAppPortal(t, o)
	store := storagetest.Open(t)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: secret, URL: o.URL() + "/"}
	auth := &portals.App{Store: store, OAuth: app, Connections: portals.NewConnections(store, app, 2, 50, nil, nil)}
	srv := sidebarServer(t, p, auth, secret)
	before := p.Requests()
	statuses := make(chan int, 30)
	var wg sync.WaitGroup
	for user := int64(100); user < 130; user++ {
		query, body := p.PlacementOpen(user, "", nil)
		wg.Go(func() {
			resp, err := http.Post(srv.URL+"/bitrix/sidebar?"+string(query), "application/x-www-form-urlencoded", strings.NewReader(string(body)))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusOK] > 12 || count[http.StatusServiceUnavailable] == 0 || count[http.StatusOK]+count[http.StatusServiceUnavailable] != 30 {
		t.Errorf("answers %v: want at most 12 pages, the rest 503", count)
	}
	if n := p.Requests() - before; n != count[http.StatusOK] {
		t.Errorf("%d requests to the portal for %d pages", n, count[http.StatusOK])
	}
}

// post posts a form and returns the answer's body.
func post(t *testing.T, target, form string) string {
	t.Helper()
	resp, err := http.Post(target, "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// sidebarServer installs the application on p through auth, gives the portal an agent
// (no agents, no dialog) and serves the sidebar page.
func sidebarServer(t *testing.T, p *b24test.Portal, auth *portals.App, secret string) *httptest.Server {
	t.Helper()
	ev, err := bitrix24.Decode(p.InstallEvent())
	if err != nil {
		t.Fatal(err)
	}
	origin, err := auth.Authenticate(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.Store.Update(context.Background(), func(tx *storage.Tx) error {
		return tx.Grant(origin.PortalID, storage.RoleAgent, []int64{50}, 0)
	}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(NewServer(Routes{DB: auth.Store, Log: log, Sidebar: &Sidebar{Store: auth.Store, Bot: bot.New(bot.Config{}, log),
		Auth: auth, Tokens: sidebar.NewSigner(secret), Log: log}}))
	t.Cleanup(srv.Close)
	return srv
}
