package b24test_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
)

func urlq(s string) string { return url.QueryEscape(s) }

// bot is a stand-in for the bot's event endpoint that keeps what it received.
type bot struct {
	url string
	mu  sync.Mutex
	got []*http.Request
	raw [][]byte
}

func botServer(t *testing.T) *bot {
	t.Helper()
	b := &bot{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.got = append(b.got, r)
		b.raw = append(b.raw, body)
		b.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	b.url = srv.URL + "/bitrix/events"
	return b
}

func allFixtures(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, dir := range []string{"v1", "v2/webhook", "app"} {
		entries, err := os.ReadDir(filepath.Join("..", "testdata", dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			// Events only: the sidebar placement is a page request, not an event.
			if strings.HasPrefix(strings.ToLower(e.Name()), "on") {
				names = append(names, dir+"/"+e.Name())
			}
		}
	}
	return names
}

func TestFixture(t *testing.T) {
	b := b24test.Fixture("v1/onimbotmessageadd-private.form")
	onDisk, err := os.ReadFile("../testdata/v1/onimbotmessageadd-private.form")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(onDisk) {
		t.Fatal("Fixture differs from the file")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a missing fixture did not panic")
		}
	}()
	b24test.Fixture("v1/missing.form")
}

// With nothing set, Event gives back the fixture: the same fields, decoding to the
// same event.
func TestEventUnchanged(t *testing.T) {
	for _, name := range allFixtures(t) {
		t.Run(name, func(t *testing.T) {
			raw := b24test.Fixture(name)
			out := b24test.Event(name, nil)
			if strings.HasSuffix(string(out), "\n") || strings.Contains(string(out), "[") {
				t.Fatalf("output has a newline or raw brackets: %.80s", out)
			}
			if f, _ := bitrix24.ParseForm(out); !reflect.DeepEqual(f, parse(t, raw)) {
				t.Fatalf("fields changed:\n%v\n%v", f, parse(t, raw))
			}
			want, err := bitrix24.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := bitrix24.Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func parse(t *testing.T, body []byte) bitrix24.Form {
	t.Helper()
	f, err := bitrix24.ParseForm(body)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestEventReplaces(t *testing.T) {
	body := b24test.Event("v1/onimbotmessageadd-group.form", map[string]string{
		"data[PARAMS][MESSAGE]":    "hello & [b]world[/b] = 100%",
		"data[PARAMS][MESSAGE_ID]": "90001",
		"data[PARAMS][DIALOG_ID]":  "chat2002",
		"data[PARAMS][CHAT_ID]":    "2002",
		"auth[application_token]":  "tok-new",
		"data[BOT][*][BOT_ID]":     "999",
		"data[USER][IS_BOT]":       b24test.Drop,
	})
	ev, err := bitrix24.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := ev.(*bitrix24.MessageAdd)
	if !ok {
		t.Fatalf("%T", ev)
	}
	if m.Message.Text != "hello & [b]world[/b] = 100%" || m.Message.ID != 90001 || m.Message.Chat != "chat2002" ||
		m.Message.ChatID != 2002 || m.Auth.ApplicationToken != "tok-new" || m.BotID != 567 {
		t.Fatalf("%+v", m)
	}
	f := parse(t, body)
	if f.String("data", "BOT", "567", "BOT_ID") != "999" {
		t.Error("wildcard did not replace data[BOT][567][BOT_ID]")
	}
	// The copy of the token under data[BOT] is not the top-level one and stays.
	if f.String("data", "BOT", "567", "application_token") != "831c76b092f9f135d9b6b36c3a720757" {
		t.Error("a field that was not asked for changed")
	}
	if _, ok := f.Group("data", "USER")["IS_BOT"]; ok {
		t.Error("Drop left the field")
	}
	if f.String("data", "USER", "NAME") != "Svetlana Ivanova" {
		t.Error("Drop took a neighbour")
	}
}

func TestEventCommandWildcard(t *testing.T) {
	body := b24test.Event("v1/onimcommandadd-group.form", map[string]string{
		"data[COMMAND][*][COMMAND]":         "take",
		"data[COMMAND][*][COMMAND_PARAMS]":  "ticket 42",
		"data[COMMAND][*][COMMAND_CONTEXT]": "KEYBOARD",
		"data[COMMAND][*][MESSAGE_ID]":      "5001",
		"data[USER][ID]":                    "31",
	})
	ev, err := bitrix24.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	c := ev.(*bitrix24.CommandAdd)
	if c.Command.Name != "take" || c.Command.Params != "ticket 42" || c.Command.Context != bitrix24.ContextKeyboard ||
		c.Command.MessageID != 5001 || c.User.ID != 31 {
		t.Fatalf("%+v", c.Command)
	}
}

func TestEventAddsAndDrops(t *testing.T) {
	const name = "v1/onimcommandadd-private.form"
	body := b24test.Event(name, map[string]string{
		"data[PARAMS][NEW_FIELD]":    "new",
		"data[COMMAND][*][EXTRA]":    "x",
		"brand_new":                  "top",
		"data[COMMAND][*][AUTH]":     b24test.Drop, // a whole group
		"data[PARAMS][NOT_THERE]":    b24test.Drop, // dropping what is absent is fine
		"data[PARAMS][MESSAGE_TYPE]": b24test.Drop,
	})
	f := parse(t, body)
	if f.String("data", "PARAMS", "NEW_FIELD") != "new" || f.String("data", "COMMAND", "103", "EXTRA") != "x" || f.String("brand_new") != "top" {
		t.Fatalf("added fields missing: %v", f.Group("data", "COMMAND", "103"))
	}
	if f.Group("data", "COMMAND", "103", "AUTH") != nil || f.String("data", "PARAMS", "MESSAGE_TYPE") != "" {
		t.Fatal("dropped fields remain")
	}
	// The other fields stay as they were.
	fixture := parse(t, b24test.Fixture(name))
	if f.String("data", "COMMAND", "103", "COMMAND") != fixture.String("data", "COMMAND", "103", "COMMAND") ||
		f.String("data", "PARAMS", "LANGUAGE") != fixture.String("data", "PARAMS", "LANGUAGE") {
		t.Errorf("a field that was not asked for changed: %v", f)
	}
	// Dropping a required field gives a body the decoder rejects.
	_, err := bitrix24.Decode(b24test.Event("v1/onimbotmessageadd-private.form", map[string]string{"data[PARAMS][FROM_USER_ID]": b24test.Drop, "data[PARAMS][AUTHOR_ID]": b24test.Drop}))
	if !errors.Is(err, bitrix24.ErrMalformed) {
		t.Fatalf("decode without author: %v", err)
	}
}

func TestEventPanicsOnMisuse(t *testing.T) {
	cases := map[string]map[string]string{
		"value on a group":       {"data[PARAMS]": "x"},
		"group under a value":    {"event[x]": "y"},
		"wildcard with no match": {"data[NOPE][*][X]": "1"},
		"malformed key":          {"data[PARAMS": "x"},
	}
	for name, set := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			b24test.Event("v1/onimbotmessageadd-private.form", set)
		})
	}
}

func TestPost(t *testing.T) {
	b := botServer(t)
	body := b24test.Event("v1/onimbotjoinchat-private.form", map[string]string{"auth[application_token]": "x"})
	status, resp, err := b24test.Post(t.Context(), b.url, body)
	if err != nil || status != 200 || resp != "ok" {
		t.Fatalf("Post = %d %q %v", status, resp, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.got[0]
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || string(b.raw[0]) != string(body) {
		t.Fatalf("bot got %s %s %q", r.Method, r.Header.Get("Content-Type"), b.raw[0])
	}
	if _, _, err := b24test.Post(t.Context(), "http://127.0.0.1:1/none", body); err == nil {
		t.Fatal("no error for an unreachable bot")
	}
}
