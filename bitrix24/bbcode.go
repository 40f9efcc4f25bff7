package bitrix24

import (
	"strconv"
	"strings"
	"unicode"
)

// zwsp is a zero-width space. Bitrix24 has no escape character for BB-codes; a
// zero-width space right after "[" (or inside "#BR#") keeps the text looking the same
// while no tag pattern matches it any more.
const zwsp = "\u200b"

var bbEscaper = strings.NewReplacer(
	"[", "["+zwsp,
	"#BR#", "#"+zwsp+"BR#",
	"#br#", "#"+zwsp+"br#",
)

// Escape makes user text safe to put inside a bot message: no BB-code in it is
// interpreted ([USER=all], [url=…], [send=…] stay literal text), and control
// characters other than line breaks and tabs are dropped.
func Escape(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	return bbEscaper.Replace(s)
}

// EscapeLine is Escape for text that must stay on one line, such as a title.
func EscapeLine(s string) string {
	return Escape(strings.Join(strings.Fields(strings.ReplaceAll(s, "\t", " ")), " "))
}

// ChatLink is a [chat=ID] link; text must already be escaped.
func ChatLink(chatID int64, text string) string {
	return "[chat=" + strconv.FormatInt(chatID, 10) + "]" + text + "[/chat]"
}

// AwaitedChatLink is a link to the awaited chat (see AwaitedChatID); text must already
// be escaped.
func AwaitedChatLink(text string) string { return "[chat=" + AwaitedChatID + "]" + text + "[/chat]" }

// DialogIDForChat is the DIALOG_ID of a group chat.
func DialogIDForChat(chatID int64) string { return "chat" + strconv.FormatInt(chatID, 10) }
