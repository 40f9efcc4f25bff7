package handlers

import (
	"context"
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

func newServerTB(t testing.TB) (http.Handler, *storage.Store) {
	t.Helper()
	store := storagetest.Open(t)
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
