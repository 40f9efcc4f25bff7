package bitrix24

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestShorten(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{{"hello", 10, "hello"}, {"hello", 5, "hello"}, {"hello", 4, "hel…"}, {"привет", 3, "пр…"}, {"x", 0, ""}, {"🙂🙂🙂", 2, "🙂…"}} {
		if got := Shorten(c.in, c.n); got != c.want {
			t.Errorf("Shorten(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// FuzzFit: whatever the bot hands the wire, the rendered message is within
// Bitrix24's limits.
func FuzzFit(f *testing.F) {
	f.Add("short", 3, "Go")
	f.Add(strings.Repeat("[я", 15000), 400, strings.Repeat("[", 200))
	f.Fuzz(func(t *testing.T, text string, buttons int, label string) {
		if buttons < 0 || buttons > 2000 {
			return
		}
		kb := &Keyboard{}
		for range buttons {
			kb.Buttons = append(kb.Buttons, Button{Text: label, Command: "open", CommandParams: label, Display: "LINE"})
		}
		call, err := V1.Render(SendMessage{To: "27", Text: text, Keyboard: kb}, Context{BotID: 1})
		if err != nil {
			t.Fatal(err)
		}
		if n := utf8.RuneCountInString(call.Params["MESSAGE"].(string)); n > MaxMessage {
			t.Fatalf("message of %d characters", n)
		}
		if k, ok := call.Params["KEYBOARD"]; ok {
			if b, _ := json.Marshal(k); len(b) > MaxKeyboard {
				t.Fatalf("keyboard of %d bytes", len(b))
			}
		}
	})
}
