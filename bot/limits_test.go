package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// hostile makes text that is as long as allowed and grows when escaped: brackets
// (each escaped to two characters), #BR#, multi-byte letters and emoji.
func hostile(r *rand.Rand, n int) string {
	parts := []string{"[", "[USER=all]", "#BR#", "я", "🙂", "[url=http://x]", " ", "a"}
	var b strings.Builder
	for runes := 0; runes < n; {
		p := parts[r.IntN(len(parts))]
		b.WriteString(p)
		runes += utf8.RuneCountInString(p)
	}
	return bitrix24.Shorten(b.String(), n)
}

// TestMessagesFitLimits: whatever is stored (hundreds of dialogs with the longest
// titles escaping can make, questions of 20,000 characters, titles of 200,000 set with
// the pencil, long names, a large limit), every message and keyboard the bot builds is
// within Bitrix24's limits before the wire's last guard (bitrix24.Fit) has to cut.
func TestMessagesFitLimits(t *testing.T) {
	for seed := range uint64(2) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			maxActive := 150 + r.IntN(100)
			h := newHarness(t, func(c *Config) { c.MaxActive = maxActive })
			name := hostile(r, 5000)
			ask := func(text string) {
				ev := h.private(admin, text)
				ev.User.Name = name
				h.process(ev)
			}
			for range 120 + r.IntN(40) {
				ask(hostile(r, 20000))
			}
			chats := h.createChats()
			for n, chat := range chats {
				// Titles set with the pencil arrive as CHAT_TITLE, of any length.
				h.process(h.group(admin, chat, hostile(r, 200000), "renamed"))
				h.process(h.group(agent, chat, "", "an answer"))
				if n%3 == 0 {
					h.process(h.group(admin, chat, "", hostile(r, 300)))
				}
				if n%5 == 0 {
					h.process(h.group(agent, chat, "", "/close"))
				}
			}
			h.process(h.group(agent, chats[2], "", "/escalate"))
			for p := range 20 {
				h.process(h.press(admin, "27", 0, cmdChats, fmt.Sprint(p)))
			}
			h.process(h.private(admin, "all chats"))
			h.process(h.private(admin, "help"))
			h.process(h.private(agent, "/queue"))
			h.process(h.group(agent, chats[1], "", "/new "+hostile(r, 20000)))
			h.process(h.private(admin, "rename 1 "+hostile(r, 255)))
			// At the limit: the refusal lists the open ones.
			h2 := newHarness(t, func(c *Config) { c.MaxActive = maxActive })
			for range maxActive {
				ev := h2.private(admin, "q")
				ev.User.Name = name
				h2.process(ev)
			}
			h2.createChats()
			h2.store.Update(context.Background(), func(tx *storage.Tx) error {
				list, _ := tx.ClientDialogs(h2.portal.ID, admin)
				for _, d := range list {
					if err := tx.RenameDialog(d.ID, hostile(r, maxTitle), false); err != nil {
						return err
					}
				}
				return nil
			})
			h2.process(h2.private(admin, "open new"))

			checked := 0
			for _, hh := range []*harness{h, h2} {
				all, err := hh.store.Outbox(context.Background(), hh.portal.ID)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range all {
					var text string
					var kb *bitrix24.Keyboard
					switch a := act(t, e).(type) {
					case bitrix24.SendMessage:
						text, kb = a.Text, a.Keyboard
					case bitrix24.UpdateMessage:
						text, kb = a.Text, a.Keyboard
					default:
						continue
					}
					checked++
					if n := utf8.RuneCountInString(text); n > bitrix24.MaxMessage {
						t.Fatalf("entry %d: a message of %d characters: %.200s…", e.ID, n, text)
					}
					if b, _ := json.Marshal(kb); kb != nil && len(b) > bitrix24.MaxKeyboard {
						t.Fatalf("entry %d: a keyboard of %d bytes", e.ID, len(b))
					}
				}
			}
			if checked < 150 {
				t.Fatalf("only %d messages checked", checked)
			}
		})
	}
}
