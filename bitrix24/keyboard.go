package bitrix24

// Keyboard is the KEYBOARD parameter of imbot.message.add / imbot.command.answer.
type Keyboard struct {
	Buttons []Button `json:"BUTTONS"`
}

// Button is one keyboard button. It sends a command (COMMAND + COMMAND_PARAMS, which
// arrives as ONIMCOMMANDADD with COMMAND_CONTEXT=KEYBOARD), opens a link, or runs a
// client-side action such as ACTION=DIALOG (open a chat).
type Button struct {
	Text          string `json:"TEXT,omitempty"`
	Command       string `json:"COMMAND,omitempty"`
	CommandParams string `json:"COMMAND_PARAMS,omitempty"`
	Link          string `json:"LINK,omitempty"`
	Action        string `json:"ACTION,omitempty"`
	ActionValue   string `json:"ACTION_VALUE,omitempty"`
	Display       string `json:"DISPLAY,omitempty"`
	BgColor       string `json:"BG_COLOR,omitempty"`
	TextColor     string `json:"TEXT_COLOR,omitempty"`
	Block         string `json:"BLOCK,omitempty"` // "Y": disabled after the first press
	Type          string `json:"TYPE,omitempty"`  // "NEWLINE" for a line break
}

// NewLine is the pseudo-button that starts a new row.
func NewLine() Button { return Button{Type: "NEWLINE"} }
