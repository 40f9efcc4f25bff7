package bitrix24

import (
	"encoding/json"
	"unicode/utf8"
)

// Bitrix24's limits on what a bot sends: a message's text in characters, a
// keyboard's size as JSON.
const (
	MaxMessage  = 20000
	MaxKeyboard = 30 * 1024
)

// Shorten cuts s to at most n characters, the last of them "…" when it had to cut.
func Shorten(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n || utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}

// Fit makes a message fit Bitrix24's limits whatever the data: the text is cut to
// MaxMessage characters, and buttons are dropped from the end of the keyboard until
// it is at most MaxKeyboard bytes. Every message the bot sends or updates goes
// through it when it is rendered, so no caller can exceed them. The bot pages and
// shortens what it writes so that this rarely has to cut.
func Fit(text string, kb *Keyboard) (string, *Keyboard) {
	text = Shorten(text, MaxMessage)
	if kb == nil || keyboardSize(kb) <= MaxKeyboard {
		return text, kb
	}
	fitted := &Keyboard{Buttons: append([]Button(nil), kb.Buttons...)}
	for len(fitted.Buttons) > 0 && keyboardSize(fitted) > MaxKeyboard {
		fitted.Buttons = fitted.Buttons[:len(fitted.Buttons)-1]
	}
	return text, fitted
}

// KeyboardSize is the size of a keyboard as the portal receives it.
func keyboardSize(kb *Keyboard) int {
	b, err := json.Marshal(kb)
	if err != nil {
		return MaxKeyboard + 1
	}
	return len(b)
}
