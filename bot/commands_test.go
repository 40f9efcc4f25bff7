package bot

import "testing"

func TestParseCommand(t *testing.T) {
	tests := []struct {
		text string
		want command
		ok   bool
	}{
		{"все чаты", command{name: cmdChats, phrase: true}, true},
		{"  Все Чаты.  ", command{name: cmdChats, phrase: true}, true},
		{"ВСЕ ЧАТЫ", command{name: cmdChats, phrase: true}, true},
		{"All chats", command{name: cmdChats, phrase: true}, true},
		{"all chats.", command{name: cmdChats, phrase: true}, true},
		{", all chats", command{name: cmdChats, phrase: true}, true}, // a stripped mention leaves the comma
		{"/chats", command{name: cmdChats}, true},
		{"/CHATS.", command{name: cmdChats}, true},
		{"all chats please", command{}, false},
		{"открыть новый", command{name: cmdNew, phrase: true}, true},
		{"Открыть новый Как настроить CRM?", command{name: cmdNew, args: "Как настроить CRM?", phrase: true}, true},
		{"open new", command{name: cmdNew, phrase: true}, true},
		{"Open New.", command{name: cmdNew, phrase: true}, true},
		{"open newsletter", command{}, false},
		{"/new How do I export deals?", command{name: cmdNew, args: "How do I export deals?"}, true},
		{"/new\nmultiline\nquestion", command{name: cmdNew, args: "multiline\nquestion"}, true},
		{"переименовать 2 Настройка CRM", command{name: cmdRename, args: "2 Настройка CRM", phrase: true}, true},
		{"rename 3 CRM Setup", command{name: cmdRename, args: "3 CRM Setup", phrase: true}, true},
		{"rename 3", command{name: cmdRename, args: "3", phrase: true}, true},
		{"rename", command{name: cmdRename, phrase: true}, true}, // asks how
		// Sentences that begin with the word: a question, a message.
		{"Rename of a deal stage fails with an error", command{}, false},
		{"rename button is missing in the report", command{}, false},
		{"переименование сделки не работает", command{}, false},
		{"/rename 2024 budget", command{name: cmdRename, args: "2024 budget"}, true},
		{"/rename Better title", command{name: cmdRename, args: "Better title"}, true},
		{"renamed the file", command{}, false},
		{"помощь", command{name: cmdHelp, phrase: true}, true},
		{"Help.", command{name: cmdHelp, phrase: true}, true},
		{"/help", command{name: cmdHelp}, true},
		{"help me with the CRM", command{}, false},
		{"/close", command{name: cmdClose}, true},
		{"/Resolve", command{name: cmdResolve}, true},
		{"/escalate", command{name: cmdEscalate}, true},
		{"/echo test", command{}, false},
		{"/", command{}, false},
		{"", command{}, false},
		{"   ", command{}, false},
		{"Hello", command{}, false},
		{"\u212aelvin", command{}, false},
	}
	for _, tt := range tests {
		got, ok := parseCommand(tt.text)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseCommand(%q) = %+v, %v; want %+v, %v", tt.text, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFromButton(t *testing.T) {
	if got := fromButton(" /Open ", " 3 "); got != (command{name: cmdOpen, args: "3"}) {
		t.Fatalf("got %+v", got)
	}
}

func TestCleanTitle(t *testing.T) {
	if got := cleanTitle("  New\n\ttitle\x00  here "); got != "New title here" {
		t.Fatalf("got %q", got)
	}
}
