package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"supportbot/bitrix24/b24test"
)

// TestWalkOneMessage is the walk of one client message that bench/walk measures, from
// each source: a client asks a question and, with SUPPORTBOT_WALK_SECOND set, a
// second one, each until its chat is created and every reply it caused is delivered
// and recorded. The code that runs more in the second run than in the first is the
// code one message crosses, from its arrival to its replies' outcomes. With
// SUPPORTBOT_WALK_PAD (a duration) both runs last that long after the first question,
// so that the loops that run on a timer tick as often in each. "webhook" posts the
// message (v1); "fetch" has the poller fetch it from the portal's imbot.v2 queue, and
// its replies go through imbot.v2.
func TestWalkOneMessage(t *testing.T) {
	t.Parallel()
	sources := map[string]func(t *testing.T) (ask func(n int, text string)){
		"webhook": func(t *testing.T) func(int, string) {
			portal := b24test.New(t)
			b := startBot(t, portal, filepath.Join(t.TempDir(), "walk.db"))
			return func(n int, text string) {
				b.mustPost(privateMessage(client, "en", text))
				portal.WaitCalls(t, "imbot.chat.add", n, 30*time.Second)
				waitIdle(t, b.dbPath)
			}
		},
		"fetch": func(t *testing.T) func(int, string) {
			portal, fake, env, _ := fetchPortal(t, t.TempDir())
			b := startFetch(t, portal, env)
			return func(n int, text string) {
				fake.Message(client, "27", text)
				portal.WaitCalls(t, "imbot.v2.Chat.add", n, 30*time.Second)
				waitIdle(t, b.dbPath)
			}
		},
	}
	for name, start := range sources {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ask := start(t)
			ask(1, "First question")
			pad, _ := time.ParseDuration(os.Getenv("SUPPORTBOT_WALK_PAD"))
			until := time.Now().Add(pad)
			if os.Getenv("SUPPORTBOT_WALK_SECOND") != "" {
				ask(2, "Second question")
			}
			time.Sleep(time.Until(until)) // a measurement's padding; no assertion follows it
		})
	}
}
