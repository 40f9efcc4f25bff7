package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bot"
	"supportbot/portals"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

const token = "831c76b092f9f135d9b6b36c3a720757"

func newServer(t *testing.T) (*httptest.Server, *storage.Store) {
	t.Helper()
	h, store := newServerTB(t)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, store
}

func newServerTB(t testing.TB, opts ...storage.Option) (http.Handler, *storage.Store) {
	t.Helper()
	return newServerOn(t, storagetest.Open(t, opts...))
}

func newServerOn(t testing.TB, store *storage.Store) (http.Handler, *storage.Store) {
	t.Helper()
	p, err := store.EnsurePortal(context.Background(), "test", "")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	e := NewServer(Routes{
		Events: &Events{Store: store, Bot: bot.New(bot.Config{Admins: []int64{27}}, log), Auth: portals.Webhook{PortalID: p.ID, Token: token}, Log: log},
		DB:     store,
		Log:    log,
	})
	return e, store
}

func event() []byte {
	return b24test.Event("v1/onimbotmessageadd-private.form", map[string]string{"auth[application_token]": token})
}

func TestEventsAnswers(t *testing.T) {
	srv, _ := newServer(t)
	for _, tt := range []struct {
		name string
		body string
		want int
	}{
		{"valid", string(event()), http.StatusOK},
		{"duplicate", string(event()), http.StatusOK},
		{"fixture's own token differs", string(b24test.Fixture("v1/onimbotmessageadd-private.form")), http.StatusUnauthorized},
		{"garbage", "\x00\xff%zz", http.StatusBadRequest},
		{"too large", "event=X&a=" + strings.Repeat("a", MaxEventBody), http.StatusRequestEntityTooLarge},
	} {
		status, body, err := b24test.Post(context.Background(), srv.URL+"/bitrix/events", []byte(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		if status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, status, body, tt.want)
		}
		if tt.name == "duplicate" && !strings.Contains(body, "duplicate") {
			t.Errorf("second delivery answered %s", body)
		}
	}
}

// A store that cannot commit gets no 200: Bitrix24 must not believe the event is safe.
func TestEventsNot200WhenNotStored(t *testing.T) {
	srv, store := newServer(t)
	store.Close()
	status, _, err := b24test.Post(context.Background(), srv.URL+"/bitrix/events", event())
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusServiceUnavailable {
		t.Fatalf("status %d", status)
	}
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with a closed database: %d", resp.StatusCode)
	}
}

// TestReadyzTellsTheTruth: while the database cannot commit (the disk full: here a
// page quota reached), events get 500 and /readyz says not ready, although reads
// still work; once there is room, both recover.
func TestReadyzTellsTheTruth(t *testing.T) {
	h, store := newServerOn(t, storagetest.OpenSQLite(t)) // a page quota is SQLite's full disk
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ready := func() int {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := ready(); s != http.StatusOK {
		t.Fatalf("readyz %d at the start", s)
	}
	if err := store.SetMaxPages(context.Background(), 1); err != nil { // no more room than there is
		t.Fatal(err)
	}
	failed := 0
	for i := range 200 {
		body := b24test.Event("v1/onimbotmessageadd-private.form", map[string]string{"auth[application_token]": token,
			"data[PARAMS][MESSAGE_ID]": fmt.Sprint(5000 + i), "data[PARAMS][MESSAGE]": strings.Repeat("q", 3000)})
		if status, _, _ := b24test.Post(context.Background(), srv.URL+"/bitrix/events", body); status == http.StatusInternalServerError {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no event failed: the test proves nothing")
	}
	if s := ready(); s != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d while events fail", s)
	}
	if err := store.SetMaxPages(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if s := ready(); s != http.StatusOK {
		t.Fatalf("readyz %d after room was made", s)
	}
	if status, _, _ := b24test.Post(context.Background(), srv.URL+"/bitrix/events", b24test.Event("v1/onimbotmessageadd-private.form",
		map[string]string{"auth[application_token]": token, "data[PARAMS][MESSAGE_ID]": "9999"})); status != http.StatusOK {
		t.Fatalf("event after room was made: %d", status)
	}
}

// keeping is an app portal whose installation went through, a bot with an agent
// behind the events route, and a clock the test moves: for the tests of kept events.
type keeping struct {
	portal   *b24test.Portal
	store    *storage.Store
	events   *Events
	srv      *httptest.Server
	outcomes map[string]int // guarded by mu, as Observe counts them
	mu       sync.Mutex
	now      time.Time
}

func newKeeping(t *testing.T, processor func(*bot.Bot) Processor) *keeping {
	const clientID, secret = "local.6741a1b2c3d4e5.12345678", "Xy7secretOfTheApplication0123456789abcdefGHIJ"
	k := &keeping{now: time.Now(), outcomes: map[string]int{}}
	o := b24test.NewOAuth(t, clientID, secret)
	k.portal = b24test.NewAppPortal(t, o)
	k.portal.SetAdmins(1, 27)
	k.store = storagetest.Open(t, storage.WithClock(func() time.Time { k.mu.Lock(); defer k.mu.Unlock(); return k.now }))
	log := slog.New(slog.DiscardHandler)
	app := portals.OAuthApp{ClientID: clientID, ClientSecret: secret, URL: o.URL() + "/"}
	auth := &portals.App{Store: k.store, OAuth: app, Connections: portals.NewConnections(k.store, app, 50, 250, nil, nil),
		CheckTimeout: 100 * time.Millisecond}
	k.events = &Events{Store: k.store, Bot: processor(bot.New(bot.Config{Agents: []int64{50}, MaxActive: 5}, log)), Auth: auth, Log: log,
		Observe: func(_, outcome string) { k.mu.Lock(); k.outcomes[outcome]++; k.mu.Unlock() }}
	k.srv = httptest.NewServer(NewServer(Routes{Events: k.events, DB: k.store, Log: log}))
	t.Cleanup(k.srv.Close)
	if status, body, _ := b24test.Post(context.Background(), k.srv.URL+"/bitrix/events", k.portal.InstallEvent()); status != http.StatusOK {
		t.Fatalf("installation: %d %s", status, body)
	}
	return k
}

func (k *keeping) advance(d time.Duration) { k.mu.Lock(); k.now = k.now.Add(d); k.mu.Unlock() }

// TestKeptEventGivenUp: an event whose author the portal never confirms is kept, and
// checked again, until its author's token has surely expired (an hour); then it is
// given up — counted and dropped — and has changed nothing. One the portal then
// refuses is dropped at once.
func TestKeptEventGivenUp(t *testing.T) {
	k := newKeeping(t, func(b *bot.Bot) Processor { return b })
	p, store, events, srv, outcomes, advance := k.portal, k.store, k.events, k.srv, k.outcomes, k.advance
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the portal closes
	p.HandleHTTP("batch", func(w http.ResponseWriter, r *http.Request) {
		select { // the portal never answers in time
		case <-release:
		case <-r.Context().Done():
		}
	})
	question := p.AppEvent("v1/onimbotmessageadd-private.form", 27, nil)
	if status, body, _ := b24test.Post(context.Background(), srv.URL+"/bitrix/events", question); status != http.StatusOK || !strings.Contains(body, "kept") {
		t.Fatalf("the question: %d %s, want 200 kept", status, body)
	}
	for range 3 { // checked again, in vain, while the token may live
		advance(5 * time.Minute)
		if err := events.RetryPending(context.Background(), store); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := store.KeptEvents(context.Background()); n != 1 || outcomes["given_up"] != 0 {
		t.Fatalf("%d kept, %d given up within the hour", n, outcomes["given_up"])
	}
	advance(time.Hour)
	if err := events.RetryPending(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	if n, _ := store.KeptEvents(context.Background()); n != 0 || outcomes["given_up"] != 1 {
		t.Fatalf("%d kept, %d given up after the hour", n, outcomes["given_up"])
	}
	// Another, which the portal refuses once it answers (the token is not its own).
	p.HandleHTTP("batch", nil)
	forged := p.AppEvent("v1/onimbotmessageadd-private.form", 27, map[string]string{"auth[access_token]": p.OtherAppToken(27, "local.x.y")})
	if err := store.Update(context.Background(), func(tx *storage.Tx) error {
		_, err := tx.KeepPending(1, "ONIMBOTMESSAGEADD", forged, tx.Now(), 10)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := events.RetryPending(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	if n, _ := store.KeptEvents(context.Background()); n != 0 || outcomes["rejected"] != 1 {
		t.Fatalf("%d kept, %d rejected", n, outcomes["rejected"])
	}
	var dialogs []storage.Dialog
	if err := store.View(context.Background(), func(tx *storage.Tx) (err error) { dialogs, err = storagetest.Dialogs(tx, 1); return err }); err != nil || len(dialogs) != 0 {
		t.Fatalf("dialogs %v, %v", dialogs, err)
	}
}

// refusing is the real bot, except that it cannot apply one message's event: an
// event that breaks on something of its own, as a bug would make it.
type refusing struct {
	*bot.Bot
	msg int64
}

func (r refusing) Take(tx *storage.Tx, a bot.Arrival) (bot.Outcome, error) {
	if m, ok := a.Event.(*bitrix24.MessageAdd); ok && m.Message.ID == r.msg {
		return 0, errors.New("this event cannot be applied")
	}
	return r.Bot.Take(tx, a)
}

// TestKeptEventThatCannotBeApplied: of two kept events whose author the portal then
// confirms, the first cannot be applied. It waits, as one the portal cannot confirm
// does, and is given up after the hour; the second is applied at the first run,
// not held up behind it.
func TestKeptEventThatCannotBeApplied(t *testing.T) {
	k := newKeeping(t, func(b *bot.Bot) Processor { return refusing{Bot: b, msg: 5001} })
	p, store, events, srv, outcomes, advance := k.portal, k.store, k.events, k.srv, k.outcomes, k.advance
	release := make(chan struct{})
	p.HandleHTTP("batch", func(w http.ResponseWriter, r *http.Request) {
		select { // the portal does not answer in time
		case <-release:
		case <-r.Context().Done():
		}
	})
	for _, id := range []string{"5001", "5002"} {
		ev := p.AppEvent("v1/onimbotmessageadd-private.form", 27, map[string]string{"data[PARAMS][MESSAGE_ID]": id, "data[PARAMS][MESSAGE]": "open new question " + id})
		if status, body, _ := b24test.Post(context.Background(), srv.URL+"/bitrix/events", ev); status != http.StatusOK || !strings.Contains(body, "kept") {
			t.Fatalf("question %s: %d %s, want 200 kept", id, status, body)
		}
	}
	close(release)
	p.HandleHTTP("batch", nil) // the portal answers again
	dialogs := func() int {
		var list []storage.Dialog
		if err := store.View(context.Background(), func(tx *storage.Tx) (err error) { list, err = storagetest.Dialogs(tx, 1); return err }); err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	advance(5 * time.Minute)
	err := events.RetryPending(context.Background(), store)
	if n, _ := store.KeptEvents(context.Background()); err != nil || n != 1 || dialogs() != 1 {
		t.Fatalf("after the first run: %v, %d kept, %d dialogs, outcomes %v; want the second question applied and the first kept", err, n, dialogs(), outcomes)
	}
	for range 3 { // tried again while the hour lasts
		advance(10 * time.Minute)
		if err := events.RetryPending(context.Background(), store); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := store.KeptEvents(context.Background()); n != 1 || outcomes["given_up"] != 0 || outcomes["failed"] < 2 {
		t.Fatalf("within the hour: %d kept, outcomes %v", n, outcomes)
	}
	advance(time.Hour)
	if err := events.RetryPending(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	if n, _ := store.KeptEvents(context.Background()); n != 0 || outcomes["given_up"] != 1 || dialogs() != 1 {
		t.Fatalf("after the hour: %d kept, outcomes %v, %d dialogs", n, outcomes, dialogs())
	}
}
