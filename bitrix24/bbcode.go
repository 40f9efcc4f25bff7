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
// interpreted ([USER=all], [url=…], [send=…] stay literal text), and hidden
// characters (see Hidden) other than line breaks and tabs are dropped.
func Escape(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if Hidden(r) {
			return -1
		}
		return r
	}, s)
	return bbEscaper.Replace(s)
}

// Hidden reports a character that user text loses wherever the bot shows or keeps
// it: control characters (category Cc) and format characters (Cf), whose
// bidirectional overrides make "\u202egnp.exe" read as "exe.png", and whose
// invisible marks make two titles that look the same differ. The zero-width joiner
// and non-joiner stay: emoji sequences and several scripts are written with them,
// and they reorder nothing.
func Hidden(r rune) bool {
	if r == '\u200c' || r == '\u200d' {
		return false
	}
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

// EscapeLine is Escape for text that must stay on one line, such as a title.
func EscapeLine(s string) string {
	return Escape(strings.Join(strings.Fields(strings.ReplaceAll(s, "\t", " ")), " "))
}

// ChatLink is a [chat=ID] link; text must already be escaped.
func ChatLink(chatID int64, text string) string {
	return "[chat=" + strconv.FormatInt(chatID, 10) + "]" + text + "[/chat]"
}

// AwaitedChatLink is a link to the chat a ChatAwaiter waits for; text must already be
// escaped.
func AwaitedChatLink(text string) string { return "[chat=" + awaitedMarker + "]" + text + "[/chat]" }

// GroupChat is the address (DIALOG_ID) of a group chat.
func GroupChat(chatID int64) string { return "chat" + strconv.FormatInt(chatID, 10) }

// UserChat is the address (DIALOG_ID) of the bot's private chat with a user.
func UserChat(userID int64) string { return strconv.FormatInt(userID, 10) }
