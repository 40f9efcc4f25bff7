package bitrix24

import (
	"context"
	"testing"
)

func TestDryRunAnswersLikeAPortal(t *testing.T) {
	d := NewDryRun(nil)
	a, _ := d.Call(context.Background(), "imbot.chat.add", map[string]any{"TITLE": "x"})
	b, _ := d.Call(context.Background(), "imbot.message.add", map[string]any{})
	c, _ := d.Call(context.Background(), "imbot.chat.updateTitle", map[string]any{})
	if ida, err := ResultID(a); err != nil || ida <= 0 {
		t.Fatalf("chat.add %s", a)
	}
	if string(a) == string(b) || string(c) != "true" {
		t.Fatalf("results %s %s %s", a, b, c)
	}
}
