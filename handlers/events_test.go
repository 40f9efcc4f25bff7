package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
