package bitrix24

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The values below are read off the fixture files by hand; every fixture must decode
// to exactly what it holds.
func TestDecodeFixtures(t *testing.T) {
	const token = "831c76b092f9f135d9b6b36c3a720757"
	const cmdToken = "8e3ab48a764a9b02700e759d59e91125"
	user27 := User{ID: 27, Name: "Svetlana Ivanova", FirstName: "Svetlana", LastName: "Ivanova"}
	user1269 := User{ID: 1269, Name: "John Smith", FirstName: "John", LastName: "Smith"}
	tests := []struct {
		fixture string
		want    Event
	}{
		{"v1/onimbotmessageadd-private.form", &MessageAdd{
			Envelope: Envelope{Type: EventMessageAdd, HandlerID: 403, Time: time.Unix(1771928985, 0).UTC(),
				Auth: Auth{
					// This fixture's top-level token differs from the copy under data[BOT]:
					// only the top-level one counts.
					ApplicationToken: "831c76b092f9f135d9b66c3a720757",
					AccessToken:      "a98b9d690000071b000008440000001b0000071d8a2",
					RefreshToken:     "990ac569071b000008440000001b000007f80ccc35b5e3",
					ExpiresIn:        3600, Expires: 1771932585, Scope: "imbot",
					Domain: "some-domain.bitrix24.com", ServerEndpoint: "https://oauth.bitrix.info/rest/",
					ClientEndpoint: "https://some-domain.bitrix24.com/rest/", MemberID: "bac1cd5c8940947a75e0d71b1a84e348",
					UserID: 27, Status: "F",
				}},
			BotID: 567,
			Message: Message{ID: 84331, Chat: "27", ChatID: 1407, ChatType: "P", FromUserID: 27, Text: "Hello",
				Language: "en", CommandContext: ContextTextarea},
			User: user27,
		}},
		{"v1/onimbotmessageadd-group.form", &MessageAdd{
			Envelope: Envelope{Type: EventMessageAdd, HandlerID: 403, Time: time.Unix(1771940028, 0).UTC(),
				Auth: Auth{
					ApplicationToken: token,
					AccessToken:      "ccb69d690000071b000008440000001b0000078c69a6b996b744c26b73e80ddeda0052",
					RefreshToken:     "bc35c5690000071b000008440000001b000007b7a839f68bc2cdd19de2677410425077",
					ExpiresIn:        3600, Expires: 1771943628, Scope: "imbot",
					Domain: "some-domain.bitrix24.com", ServerEndpoint: "https://oauth.bitrix.info/rest/",
					ClientEndpoint: "https://some-domain.bitrix24.com/rest/", MemberID: "bac1cd5c8940947a75e0d71b1a84e348",
					UserID: 27, Status: "F",
				}},
			BotID: 567,
			Message: Message{ID: 84351, Chat: "chat1157", ChatID: 1157, ChatType: "C", FromUserID: 27,
				Text: ", how to set up the left menu", Original: "[USER=567]NewBot[/USER] , how to set up the left menu",
				ChatTitle: "Brown Chat #18", ChatEntityType: "THREAD", Language: "en", CommandContext: ContextTextarea},
			User: user27,
		}},
		{"v1/onimbotmessageupdate-private.form", &MessageUpdate{
			Envelope: envelope(EventMessageUpdate, 455, 1772092536, token, 27,
				"880aa06900071b00084400001b0007dff360d21523410a45b4f7c12", "7889c769000071b000084400001b00007c0063d012b7284", 1772096136),
			BotID: 571,
			Message: Message{ID: 84531, Chat: "27", ChatID: 1453, ChatType: "P", FromUserID: 27,
				Text: "How to add an observer to the task?", Language: "en"},
			User: user27,
		}},
		{"v1/onimbotmessageupdate-group.form", &MessageUpdate{
			Envelope: envelope(EventMessageUpdate, 455, 1772097308, token, 27,
				"2c1da06900071b00084400001b00077e03d155e8", "1c9cc76900071b00084400001b00007b2dbee904c1", 1772100908),
			BotID: 571,
			Message: Message{ID: 84537, Chat: "chat1157", ChatID: 1157, ChatType: "C", FromUserID: 27,
				Text: "create a task list", Original: "[USER=571]NewBot[/USER], create a task list",
				ChatEntityType: "THREAD", Language: "en"},
		}},
		{"v1/onimbotmessagedelete-private.form", &MessageDelete{
			Envelope: envelope(EventMessageDelete, 457, 1772092554, token, 27,
				"9a0aa06900071b00084400001b0000781c0546d93491d81d", "8a89c769000071b00084400001b000c1b724e4652017b0ea7051ffb8e", 1772096154),
			BotID: 571,
			Message: Message{ID: 84525, Chat: "27", ChatID: 1453, ChatType: "P", FromUserID: 27,
				Text: "Message from 02/26/2026 09:27:30 has been deleted", Language: "de"},
			User: user27,
		}},
		{"v1/onimbotmessagedelete-group.form", &MessageDelete{
			Envelope: envelope(EventMessageDelete, 457, 1772097333, token, 27,
				"451da069000071b00084400001b00075b8bc870e6dbc3", "359cc76900071b0000084400001b00071a54cd7aad70b5d2fa", 1772100933),
			BotID: 571,
			Message: Message{ID: 84537, Chat: "chat1157", ChatID: 1157, ChatType: "C", FromUserID: 27,
				Text: "Message from 02/26/2026 11:14:02 has been deleted", ChatEntityType: "THREAD", Language: "de"},
		}},
		{"v1/onimcommandadd-private.form", &CommandAdd{
			Envelope: envelope(EventCommandAdd, 1045, 1772109486, cmdToken, 1269,
				"be4ca06900071b006e2cf200004f50005243fd374178cf59f7831", "aecbc76900071b006e2cf200004f50000f2e62ee8e8baa598968", 1772113086),
			Command: Command{ID: 103, BotID: 1291, BotCode: "BOT_GM", Name: "echo", Params: "test", Context: ContextTextarea, MessageID: 33899},
			Message: Message{ID: 33899, Chat: "1269", ChatID: 2737, ChatType: "P", FromUserID: 1269, Text: "/echo test", Language: "en"},
			User:    user1269,
		}},
		{"v1/onimcommandadd-group.form", &CommandAdd{
			Envelope: envelope(EventCommandAdd, 1035, 1772097199, cmdToken, 1269,
				"bf1ca06900071b006e2cf200004f500031d5d527f58a97b0768", "af9bc76900071b006e2cf200004f50080d2934573350daabf8", 1772100799),
			Command: Command{ID: 99, BotID: 1291, BotCode: "BOT_GM", Name: "echo", Params: "test", Context: ContextTextarea, MessageID: 33871},
			Message: Message{ID: 33871, Chat: "chat2725", ChatID: 2725, ChatType: "C", FromUserID: 1269, Text: "/echo test",
				ChatTitle: "New chat name", ChatEntityType: "CHAT", ChatEntityID: "13", Language: "en"},
			User: user1269,
		}},
		{"v1/onimbotjoinchat-private.form", &JoinChat{
			Envelope: envelope(EventJoinChat, 459, 1772090839, token, 27, "e703a069000071b00084400001b00074523806a5537056abff", "", 1772094439),
			BotID:    571, Chat: "27", ChatType: "P", UserID: 27, Language: "de", User: user27,
		}},
		{"v1/onimbotjoinchat-group.form", &JoinChat{
			Envelope: envelope(EventJoinChat, 459, 1772094525, token, 27, "4e12a06900071b00084400001b000070de69612254f5f11a912b908", "", 1772098126),
			BotID:    571, Chat: "chat1157", ChatID: 1157, ChatType: "C", UserID: 27, Language: "de", User: user27,
		}},
		{"v1/onimbotdelete.form", &BotDelete{
			Envelope: envelope(EventBotDelete, 439, 1772090363, token, 27, "0b02a0690000071b0008440001b0007a16b39202c2490f015", "", 1772093963),
			BotID:    567, BotCode: "BOT",
		}},
		{"app/onappinstall.form", &AppInstall{
			Envelope: Envelope{Type: EventAppInstall, Time: time.Unix(1696527000, 0).UTC(), Auth: Auth{
				ApplicationToken: "51856fefc120afa4b628cc82d3935cce",
				AccessToken:      "s6p6eclrvim6da22ft9ch94ekreb52lv", RefreshToken: "4s386p3q0tr8dy89xvmt96234v3dljg8",
				ExpiresIn: 3600, Scope: "imbot", Domain: "some-domain.bitrix24.com",
				ServerEndpoint: "https://oauth.bitrix.info/rest/", ClientEndpoint: "https://some-domain.bitrix24.com/rest/",
				MemberID: "a223c6b3710f85df22e9377d6c4f7553", Status: "F",
			}},
			Version: "1.0.0", LanguageID: "de", Active: true, Installed: true,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			got, err := Decode(readFixture(t, tt.fixture))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// envelope fills the auth block the v1 fixtures share.
func envelope(typ string, handler, ts int64, token string, user int64, access, refresh string, expires int64) Envelope {
	a := Auth{
		ApplicationToken: token, AccessToken: access, RefreshToken: refresh, ExpiresIn: 3600, Expires: expires,
		Scope: "imbot", Domain: "some-domain.bitrix24.com", ServerEndpoint: "https://oauth.bitrix.info/rest/",
		ClientEndpoint: "https://some-domain.bitrix24.com/rest/", MemberID: "bac1cd5c8940947a75e0d71b1a84e348",
		UserID: user, Status: "F",
	}
	if typ == EventCommandAdd {
		a.MemberID = "d897063e1ce7c5eb9f04b9751eef5915"
	}
	return Envelope{Type: typ, HandlerID: handler, Time: time.Unix(ts, 0).UTC(), Auth: a}
}

func TestDecodeFixtureDedupKeys(t *testing.T) {
	add, _ := Decode(readFixture(t, "v1/onimbotmessageadd-private.form"))
	if got := add.DedupKey(); got != "message:84331" {
		t.Errorf("message add key = %q", got)
	}
	// A typed command shares the key of the message that carried it, so the command
	// runs once whether it arrives as text, as ONIMCOMMANDADD, or both.
	cmd, _ := Decode(readFixture(t, "v1/onimcommandadd-private.form"))
	if got := cmd.DedupKey(); got != "message:33899" {
		t.Errorf("typed command key = %q", got)
	}
	press := *cmd.(*CommandAdd)
	press.Command.Context = ContextKeyboard
	other := press
	other.User.ID = 1
	if press.DedupKey() == other.DedupKey() {
		t.Error("presses by different users share a key")
	}
	param := press
	param.Command.Params = "other"
	if press.DedupKey() == param.DedupKey() {
		t.Error("presses with different parameters share a key")
	}
	// The same button pressed again later is a new event; only a redelivery of the
	// same press (the same body) repeats its key.
	again := press
	again.Time = press.Time.Add(time.Minute)
	if press.DedupKey() == again.DedupKey() {
		t.Error("a second press of the same button shares the first one's key")
	}
	redelivered, _ := Decode(readFixture(t, "v1/onimcommandadd-private.form"))
	redelivered.(*CommandAdd).Command.Context = ContextKeyboard
	if press.DedupKey() != redelivered.DedupKey() {
		t.Error("a redelivered press has a new key")
	}
	up, _ := Decode(readFixture(t, "v1/onimbotmessageupdate-private.form"))
	up2 := *up.(*MessageUpdate)
	up2.Message.Text = "edited again"
	up2.Time = up2.Time.Add(time.Second)
	if up.DedupKey() == up2.DedupKey() {
		t.Error("two different edits of one message share a key")
	}
	// Edited back to the first text: A → B → A is three edits.
	back := *up.(*MessageUpdate)
	back.Time = up2.Time.Add(time.Second)
	if back.DedupKey() == up.DedupKey() {
		t.Error("an edit back to an earlier text shares that edit's key")
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := map[string]string{
		"empty":                  "",
		"no event":               "data[PARAMS][MESSAGE]=hi",
		"bad percent":            "event=ONIMBOTMESSAGEADD&data%ZZ=1",
		"bad percent in value":   "event=ONIMBOTMESSAGEADD&a=%G0",
		"unbalanced":             "event=ONIMBOTMESSAGEADD&data[PARAMS=1",
		"stray close":            "event=ONIMBOTMESSAGEADD&data]=1",
		"no name":                "event=X&[a]=1",
		"text after brackets":    "event=X&a[b]c=1",
		"value then group":       "event=X&a=1&a[b]=2",
		"group then value":       "event=X&a[b]=2&a=1",
		"message without ID":     "event=ONIMBOTMESSAGEADD&data[PARAMS][DIALOG_ID]=27&data[PARAMS][FROM_USER_ID]=27",
		"message id not number":  "event=ONIMBOTMESSAGEADD&data[PARAMS][MESSAGE_ID]=x&data[PARAMS][DIALOG_ID]=27&data[PARAMS][FROM_USER_ID]=27",
		"message without from":   "event=ONIMBOTMESSAGEADD&data[PARAMS][MESSAGE_ID]=1&data[PARAMS][DIALOG_ID]=27",
		"command without name":   "event=ONIMCOMMANDADD&data[COMMAND][1][MESSAGE_ID]=5&data[PARAMS][FROM_USER_ID]=1&data[PARAMS][DIALOG_ID]=1",
		"bot delete without id":  "event=ONIMBOTDELETE",
		"install without member": "event=ONAPPINSTALL&auth[domain]=x",
		"too deep":               "event=X&a" + strings.Repeat("[a]", 20) + "=1",
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			ev, err := Decode([]byte(body))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode(%q) = %v, %v; want ErrMalformed", body, ev, err)
			}
		})
	}
}

func TestDecodeUnknownAndUnencoded(t *testing.T) {
	ev, err := Decode([]byte("event=onSomethingElse&auth[application_token]=abc&data[X]=1"))
	if err != nil {
		t.Fatal(err)
	}
	u, ok := ev.(*Unknown)
	if !ok || u.Type != "ONSOMETHINGELSE" || u.Auth.ApplicationToken != "abc" {
		t.Fatalf("got %#v", ev)
	}
	// Brackets need not be percent-encoded, values may use + for spaces.
	ev, err = Decode([]byte("event=ONIMBOTMESSAGEADD&data[PARAMS][MESSAGE_ID]=7&data[PARAMS][DIALOG_ID]=27&data[PARAMS][FROM_USER_ID]=27&data[PARAMS][MESSAGE]=all+chats%21"))
	if err != nil {
		t.Fatal(err)
	}
	if m := ev.(*MessageAdd).Message; m.Text != "all chats!" || !m.Private() {
		t.Fatalf("got %+v", m)
	}
}

func TestParseFormShapes(t *testing.T) {
	f, err := ParseForm([]byte("a[]=x&a[]=y&b[k][]=1&c=3&c=4&&d="))
	if err != nil {
		t.Fatal(err)
	}
	want := Form{
		"a": Form{"0": "x", "1": "y"},
		"b": Form{"k": Form{"0": "1"}},
		"c": "4", // the last value wins, as in PHP
		"d": "",
	}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("got %#v", f)
	}
	if got := f.Group("a").Keys(); !reflect.DeepEqual(got, []string{"0", "1"}) {
		t.Fatalf("keys %v", got)
	}
	if f.String("a") != "" || f.Group("c") != nil || f.String() != "" || f.String("zz", "y") != "" {
		t.Fatal("wrong-kind lookups must return zero values")
	}
}

func TestAuthLogValueHidesSecrets(t *testing.T) {
	a := Auth{ApplicationToken: "SECRET1", AccessToken: "SECRET2", RefreshToken: "SECRET3", Domain: "x.bitrix24.ru"}
	if s := a.LogValue().String(); strings.Contains(s, "SECRET") || !strings.Contains(s, "x.bitrix24.ru") {
		t.Fatalf("LogValue = %s", s)
	}
}

// FuzzDecode: no body may panic the decoder, and whatever decodes must give a key or
// be Unknown.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{
		"v1/onimbotmessageadd-private.form", "v1/onimbotmessageadd-group.form",
		"v1/onimbotmessageupdate-group.form", "v1/onimbotmessagedelete-private.form",
		"v1/onimcommandadd-group.form", "v1/onimbotjoinchat-private.form",
		"v1/onimbotdelete.form", "app/onappinstall.form",
	} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte("event=X&a[]=1&a[][b]=2"))
	f.Add([]byte("event=ONIMCOMMANDADD&data[COMMAND][1][COMMAND]=x&data[COMMAND][1][MESSAGE_ID]=1&data[PARAMS][FROM_USER_ID]=1&data[PARAMS][DIALOG_ID]=1"))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Decode(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if _, unknown := ev.(*Unknown); !unknown && ev.DedupKey() == "" {
			t.Fatalf("%T has no dedup key", ev)
		}
		_ = ev.Head().Auth.LogValue()
	})
}
