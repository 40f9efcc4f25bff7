package bitrix24

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeV2Fetched(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "v2", "fetch", "event-get.json"))
	if err != nil {
		t.Fatal(err)
	}
	var answer struct{ Result json.RawMessage }
	if err := json.Unmarshal(raw, &answer); err != nil {
		t.Fatal(err)
	}
	page, err := DecodeFetched(answer.Result)
	if err != nil {
		t.Fatal(err)
	}
	if page.NextOffset != 1011 || page.HasMore || len(page.Events) != 10 {
		t.Fatalf("page: next %d more %v events %d", page.NextOffset, page.HasMore, len(page.Events))
	}
	at := time.Date(2025, 1, 15, 8, 30, 0, 0, time.UTC)
	user := User{ID: 1, Name: "John Smith", FirstName: "John", LastName: "Smith"}
	env := func(id int64, typ string) Envelope { return Envelope{Type: typ, ID: id, Time: at} }
	want := []Event{
		&JoinChat{Envelope: env(1001, EventV2JoinChat), BotID: 456, Chat: "chat5", ChatID: 5, ChatType: "C", UserID: 1, Language: "en", User: user},
		&MessageAdd{Envelope: env(1002, EventV2MessageAdd), BotID: 456, User: user, Message: Message{ID: 791, Chat: "1", ChatID: 7,
			ChatType: "P", FromUserID: 1, Text: "Не работает печать из CRM", Language: "ru"}},
	}
	for i, w := range want {
		if !reflect.DeepEqual(page.Events[i], w) {
			t.Errorf("event %d:\n got %#v\nwant %#v", i, page.Events[i], w)
		}
	}
	for i, check := range []func(Event) bool{
		nil, nil,
		func(e Event) bool {
			m, ok := e.(*MessageAdd)
			return ok && m.Message.Private() == false && m.Message.ChatTitle != ""
		},
		func(e Event) bool {
			c, ok := e.(*CommandAdd)
			return ok && c.Command.Name == "help" && c.Command.Params == "topic" && c.Command.Context == ContextTextarea && c.Command.MessageID == 790
		},
		func(e Event) bool {
			c, ok := e.(*CommandAdd)
			return ok && c.Command.Name == "open" && c.Command.Params == "2" && c.Command.Context == ContextKeyboard && c.User.ID == 1
		},
		func(e Event) bool { u, ok := e.(*MessageUpdate); return ok && u.Message.ID > 0 && u.Message.Text != "" },
		func(e Event) bool {
			d, ok := e.(*MessageDelete)
			return ok && d.Message.ID == 789 && d.Message.ChatID == 5
		},
		func(e Event) bool { _, ok := e.(*Unknown); return ok && e.Head().Type == "ONIMBOTV2REACTIONCHANGE" },
		func(e Event) bool { _, ok := e.(*Unknown); return ok && e.Head().Type == "ONIMBOTV2CONTEXTGET" },
		func(e Event) bool { d, ok := e.(*BotDelete); return ok && d.BotID == 456 },
	} {
		if check != nil && !check(page.Events[i]) {
			t.Errorf("event %d (%T) decoded to %#v", i, page.Events[i], page.Events[i])
		}
	}
}

func TestDecodeV2Webhook(t *testing.T) {
	decode := func(name string) Event {
		t.Helper()
		ev, err := Decode(readFixture(t, "v2/webhook/"+name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return ev
	}
	add := decode("onimbotv2messageadd.form").(*MessageAdd)
	if add.Type != EventV2MessageAdd || add.BotID != 456 || add.Message.ID != 789 || add.Message.Chat != "chat5" ||
		add.Message.ChatID != 5 || add.Message.Text != "Hello bot!" || add.Message.FromUserID != 1 || add.Message.System ||
		add.User.ID != 1 || add.User.IsBot || add.Message.Language != "en" {
		t.Errorf("message add %#v", add)
	}
	if add.Auth.ApplicationToken != "831c76b092f9f135d9b6b36c3a720757" || add.Auth.MemberID != "bac1cd5c8940947a75e0d71b1a84e348" ||
		add.Auth.Domain != "some-domain.bitrix24.com" || add.Time.Unix() != 1772093963 {
		t.Errorf("envelope %#v", add.Envelope)
	}
	if p := decode("onimbotv2messageadd-private.form").(*MessageAdd); !p.Message.Private() {
		t.Errorf("private message %#v", p.Message)
	}
	press := decode("onimbotv2commandadd-keyboard.form").(*CommandAdd)
	if press.Command.Name != "open" || press.Command.Params != "2" || press.Command.Context != ContextKeyboard || press.Command.MessageID != 792 {
		t.Errorf("press %#v", press.Command)
	}
	if c := decode("onimbotv2commandadd.form").(*CommandAdd); c.Command.Context != ContextTextarea || c.Command.Name == "" {
		t.Errorf("typed command %#v", c.Command)
	}
	if j := decode("onimbotv2joinchat.form").(*JoinChat); j.Chat == "" || j.UserID == 0 {
		t.Errorf("join %#v", j)
	}
	if d := decode("onimbotv2messagedelete.form").(*MessageDelete); d.Message.ID == 0 {
		t.Errorf("delete %#v", d)
	}
	if b := decode("onimbotv2delete.form").(*BotDelete); b.BotID != 456 {
		t.Errorf("bot delete %#v", b)
	}
	if _, ok := decode("onimbotv2contextget.form").(*Unknown); !ok {
		t.Error("context get is not ignored")
	}
}

func FuzzDecodeFetched(f *testing.F) {
	raw, _ := os.ReadFile(filepath.Join("testdata", "v2", "fetch", "event-get.json"))
	var answer struct{ Result json.RawMessage }
	_ = json.Unmarshal(raw, &answer)
	f.Add([]byte(answer.Result))
	f.Add([]byte(`{"events":[{"eventId":"x","type":"ONIMBOTV2MESSAGEADD","data":{"message":{"id":[]}}}],"nextOffset":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		page, err := DecodeFetched(body)
		if err == nil && page.NextOffset < 0 {
			t.Fatal("negative offset")
		}
	})
}

func FuzzDecodeV2Form(f *testing.F) {
	for _, name := range []string{"onimbotv2messageadd.form", "onimbotv2commandadd-keyboard.form", "onimbotv2joinchat.form", "onimbotv2delete.form"} {
		body, _ := os.ReadFile(filepath.Join("testdata", "v2", "webhook", name))
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if ev, err := Decode(body); err == nil && ev == nil {
			t.Fatal("no event and no error")
		}
	})
}

// TestDecodedTextIsStorable: a message holding NUL (U+0000) or bytes that are not
// UTF-8 — which PostgreSQL's text refuses, so the question was lost there while
// SQLite kept it — decodes, from every source, to text both engines store alike.
func TestDecodedTextIsStorable(t *testing.T) {
	form := func(name, field, value string) func(t *testing.T) Event {
		return func(t *testing.T) Event {
			body := strings.Replace(string(readFixture(t, name)), field+"=", field+"="+value, 1)
			ev, err := Decode([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
	}
	for _, c := range []struct {
		source string
		decode func(t *testing.T) Event
		want   string
	}{
		{"v1 form", form("v1/onimbotmessageadd-private.form", "MESSAGE%5D", "a%00b%FF"), "ab\uFFFDHello"},
		{"v2 webhook form", form("v2/webhook/onimbotv2messageadd-private.form", "data%5Bmessage%5D%5Btext%5D", "%00%00x"),
			"xНе работает печать из CRM"},
		{"v2 fetched", func(t *testing.T) Event {
			raw, _ := os.ReadFile(filepath.Join("testdata", "v2", "fetch", "event-get.json"))
			raw = []byte(strings.Replace(string(raw), "Не работает печать", `Не\u0000 работает печать`, 1))
			var answer struct{ Result json.RawMessage }
			if err := json.Unmarshal(raw, &answer); err != nil {
				t.Fatal(err)
			}
			page, err := DecodeFetched(answer.Result)
			if err != nil {
				t.Fatal(err)
			}
			return page.Events[1]
		}, "Не работает печать из CRM"},
	} {
		t.Run(c.source, func(t *testing.T) {
			m, ok := c.decode(t).(*MessageAdd)
			if !ok || m.Message.Text != c.want {
				t.Errorf("decoded %#v, want the text %q", m, c.want)
			}
		})
	}
}

// TestDecodeFetchedQuotesNothing: a portal (or whatever answers in its place) that
// echoes the request puts the webhook's secret and the bot's token in its answer; a
// decode error must not carry them into the log or doctor's report.
func TestDecodeFetchedQuotesNothing(t *testing.T) {
	const secret = "https://portal.example/rest/1/s3cr3tw3bh00k/ botToken=tok-0123456789"
	for _, raw := range []string{
		`{"events":[],"nextOffset":"` + secret + `"}`,
		`{"events":"` + secret + `","nextOffset":1}`,
		`{"events":[],"hasMore":"` + secret + `"}`,
		`["` + secret + `"]`,
		`{"events":[],"nextOffset":` + `1e999, "x":"` + secret + `"}`,
	} {
		_, err := DecodeFetched(json.RawMessage(raw))
		if err == nil {
			t.Errorf("%s decoded", raw)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3tw3bh00k") || strings.Contains(err.Error(), "tok-0123456789") {
			t.Errorf("the error quotes the answer: %v", err)
		}
	}
	// An empty queue's nextOffset may be missing, null or 0: nothing new, not an error.
	for _, raw := range []string{`{"events":[],"hasMore":false}`, `{"events":[],"nextOffset":null}`, `{"events":[],"nextOffset":0}`} {
		if page, err := DecodeFetched(json.RawMessage(raw)); err != nil || page.NextOffset != 0 || len(page.Events) != 0 {
			t.Errorf("%s: %+v %v", raw, page, err)
		}
	}
}
