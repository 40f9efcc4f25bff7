package bot

import (
	"strconv"

	"supportbot/bitrix24"
)

// Button colours: Bitrix24's blue for the main way on, green for "yes".
const (
	colorMain = "#29619b"
	colorYes  = "#2fc26e"
	colorText = "#fff"
)

// button sends a command; main marks the way on.
func button(text, command, params string, main bool) bitrix24.Button {
	b := bitrix24.Button{Text: text, Command: command, CommandParams: params, Display: "LINE"}
	if main {
		b.BgColor, b.TextColor = colorMain, colorText
	}
	return b
}

// answerButtons are a yes and a no that can be pressed once, for a question put to
// the client (a rating, an access request).
func answerButtons(command, yes, yesParams, no, noParams string) *bitrix24.Keyboard {
	return &bitrix24.Keyboard{Buttons: []bitrix24.Button{
		{Text: yes, Command: command, CommandParams: yesParams, Display: "LINE", BgColor: colorYes, TextColor: colorText, Block: "Y"},
		{Text: no, Command: command, CommandParams: noParams, Display: "LINE", Block: "Y"},
	}}
}

// clientKeyboard goes under the client's help.
func clientKeyboard(tx *texts) *bitrix24.Keyboard {
	return &bitrix24.Keyboard{Buttons: []bitrix24.Button{
		button(tx.BtnAllChats, cmdChats, "", false),
		button(tx.BtnOpenNew, cmdNew, "", true),
		button(tx.BtnHelp, cmdHelp, "", false),
	}}
}

// askAgain puts a question that was not opened back into the client's input field,
// to send again once it can be; nil when there is no question.
func askAgain(tx *texts, question string) *bitrix24.Keyboard {
	if question == "" {
		return nil
	}
	return &bitrix24.Keyboard{Buttons: []bitrix24.Button{{Text: tx.BtnAskAgain, Action: "PUT",
		ActionValue: bitrix24.Shorten(question, maxAskAgain), Display: "LINE", BgColor: colorMain, TextColor: colorText}}}
}

// goToChat opens a dialog's chat ("chatN", or bitrix24.AwaitedChat); with
// allChats, the list is one press away too.
func goToChat(tx *texts, chat string, allChats bool) *bitrix24.Keyboard {
	kb := &bitrix24.Keyboard{Buttons: []bitrix24.Button{{Text: tx.BtnGoToChat, Action: "DIALOG", ActionValue: chat,
		Display: "LINE", BgColor: colorMain, TextColor: colorText}}}
	if allChats {
		kb.Buttons = append(kb.Buttons, button(tx.BtnAllChats, cmdChats, "", false))
	}
	return kb
}

// openDialogButton opens dialog №number from a list, on a line of its own.
func openDialogButton(tx *texts, number int, title string, unread int) []bitrix24.Button {
	return []bitrix24.Button{button(tx.ButtonDialog(number, title, unread), cmdOpen, strconv.Itoa(number), false), bitrix24.NewLine()}
}
