package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bot"
	"supportbot/delivery"
	"supportbot/handlers"
	"supportbot/metrics"
	"supportbot/portals"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// clockedBot is the bot wired as serve wires it — the event route, the bot, the
// outbox sent to the fake portal, the metrics — over a real SQLite file whose clock
// the test moves. Replies are sent when the test says (send), so every step happens
// at the time the test set.
type clockedBot struct {
	*runningBot
	store *storage.Store
	disp  *delivery.Dispatcher
	mu    sync.Mutex
	now   time.Time
}

func startClockedBot(t *testing.T, portal *b24test.Portal, start time.Time) *clockedBot {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stats.db")
	b := &clockedBot{now: start}
	b.store = storagetest.OpenAt(t, path, storage.WithClock(b.clock))
	ctx := context.Background()
	p, err := b.store.EnsurePortal(ctx, "webhook", "")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	brain := bot.New(bot.Config{Agents: []int64{agentID}, Admins: []int64{client}, Integrators: []int64{28},
		MaxActive: 5, Language: "en", RatingWindow: 7 * 24 * time.Hour}, log)
	m := metrics.New(b.store)
	m.WatchServiceTimes(b.store)
	b.disp = delivery.New(b.store, delivery.Single(bitrix24.NewClient(portal.WebhookURL())), brain.Outbox(), log, m)
	runDispatcher(t, b.disp)
	srv := httptest.NewServer(handlers.NewServer(handlers.Routes{
		Events: &handlers.Events{Store: b.store, Bot: brain, Auth: portals.Webhook{PortalID: p.ID, Token: testToken}, Log: log},
		DB:     b.store, Log: log, Metrics: m.Handler(),
	}))
	t.Cleanup(srv.Close)
	b.runningBot = &runningBot{t: t, portal: portal, dbPath: path, url: srv.URL, stop: func() {}}
	return b
}

func (b *clockedBot) clock() time.Time { b.mu.Lock(); defer b.mu.Unlock(); return b.now }

// at moves the clock to when.
func (b *clockedBot) at(when time.Time) { b.mu.Lock(); b.now = when; b.mu.Unlock() }

// do posts events at the current time, then sends everything they queued.
func (b *clockedBot) do(events ...[]byte) {
	b.t.Helper()
	for _, ev := range events {
		b.mustPost(ev)
	}
	drainOutbox(b.t, b.store)
}

// last is the newest bot message in dialogID, which must contain want.
func (b *clockedBot) last(dialogID, want string) b24test.Message {
	b.t.Helper()
	msgs := b.portal.Messages(dialogID)
	if len(msgs) == 0 || !strings.Contains(msgs[len(msgs)-1].Text, want) {
		b.t.Fatalf("the last message to %s does not contain %q: %+v", dialogID, want, msgs)
	}
	return msgs[len(msgs)-1]
}

// rate presses the rating button of the newest message in the client's main chat.
func (b *clockedBot) rate(clientID int64, helped bool) {
	b.t.Helper()
	notice := b.last("27", "as resolved")
	buttons := notice.Buttons()
	if len(buttons) != 2 {
		b.t.Fatalf("resolve notice without rating buttons: %+v", notice)
	}
	btn := buttons[1]
	if helped {
		btn = buttons[0]
	}
	b.do(press(clientID, "27", notice.ID, btn.Command, btn.CommandParams))
}

// scrape reads /metrics.
func (b *clockedBot) scrape() string {
	b.t.Helper()
	resp, err := http.Get(b.url + "/metrics")
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return string(raw)
}

// TestStatsOnScriptedHistory: a scripted history of real events at controlled times;
// /stats gives the figures computed here by hand (opened, resolved, first response,
// reply and resolution times with median and 90th percentile, CSAT, the queue), over
// the default 7 days and over 30, and the histograms on /metrics count the same
// intervals with the same sums.
func TestStatsOnScriptedHistory(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	b := startClockedBot(t, portal, t0)
	m, h := time.Minute, time.Hour

	// Nine days before: dialog №1, answered after 2 h, resolved after a day.
	b.do(privateMessage(client, "en", "How do I export deals?"))
	chats := b.chats()
	b.at(t0.Add(2 * h))
	b.do(b.groupMessage(agentID, chats[0], "Use the export button"))
	b.at(t0.Add(24 * h))
	b.do(b.groupMessage(agentID, chats[0], "/close"))

	day := t0.Add(9 * 24 * h)
	// Dialog №2: the question answered in 4 min.
	b.at(day)
	b.do(privateMessage(client, "en", "The deal export fails"))
	chats = b.chats()
	b.at(day.Add(4 * m))
	b.do(b.groupMessage(agentID, chats[1], "Which file format?"))
	// The client writes twice; the answer comes 30 min after the first.
	b.at(day.Add(10 * m))
	b.do(b.groupMessage(client, chats[1], "CSV"))
	b.at(day.Add(12 * m))
	b.do(b.groupMessage(client, chats[1], "Any news?"))
	// Dialog №3, opened empty by the integrator, answered after 20 min.
	b.at(day.Add(30 * m))
	b.do(privateMessage(28, "en", "open new"))
	chats = b.chats()
	b.at(day.Add(40 * m))
	b.do(b.groupMessage(agentID, chats[1], "Fixed: try again"))
	// "Thanks", then /close at once: a command answers no one, so no reply time.
	b.at(day.Add(41 * m))
	b.do(b.groupMessage(client, chats[1], "Thanks!"))
	b.at(day.Add(45 * m))
	b.do(b.groupMessage(agentID, chats[1], "/close"))
	b.at(day.Add(50 * m))
	b.rate(client, true)
	b.do(b.groupMessage(agentID, chats[2], "Hello, how can I help?"))
	// №3's client asks, and waits until the end of the script.
	b.at(day.Add(1 * h))
	b.do(b.groupMessage(28, chats[2], "How do I set up permissions?"))
	// №2 again: the client's message reopens it; answered after 1 h, resolved after 3 h.
	b.at(day.Add(2 * h))
	b.do(b.groupMessage(client, chats[1], "It broke again"))
	b.last(chatDialog(chats[1]), "active again")
	b.at(day.Add(3 * h))
	b.do(b.groupMessage(agentID, chats[1], "Now it is fixed for good"))
	b.at(day.Add(5 * h))
	b.do(b.typedCommand(agentID, chats[1], "close", ""))
	b.at(day.Add(5*h + 10*m))
	b.rate(client, false)

	b.at(day.Add(6 * h))
	// Over 7 days (day - 3 d 18 h onwards): №2 and №3.
	//   first responses 4 min (№2), 20 min (№3), 1 h (№2 reopened): median 20 min, p90 1 h;
	//   replies 4 min, 30 min (from "CSV"), 1 h (from "It broke again"): median 30 min, p90 1 h;
	//   resolutions 45 min, 3 h: the median is the lower middle, p90 the second;
	//   ratings 👍 and 👎: 50 %; №3 waits since day + 1 h: 5 h.
	b.do(privateMessage(agentID, "en", "/stats"))
	want := "[b]Service figures[/b], the last 7 days\n" +
		"Opened: 2 · resolved by agents: 2 · auto-closed: 0\n" +
		"First response (3): median 20 min, 90th percentile 1 h 0 min\n" +
		"Reply (3): median 30 min, 90th percentile 1 h 0 min\n" +
		"Resolution (2): median 45 min, 90th percentile 3 h 0 min\n" +
		"CSAT: 50% (1 of 2 ratings: helped)\n" +
		"Now waiting for an answer: 1, the longest for 5 h 0 min\n" +
		"[b]By agent[/b]\n" + // no targets configured: no shares (issue 22)
		"#50: owns 1 now · answers 4"
	if got := b.last("50", "Service figures").Text; got != want {
		t.Errorf("/stats:\n%s\nwant\n%s", got, want)
	}
	// Over 30 days №1 counts too: first response and reply 2 h, resolution 1 day.
	b.do(privateMessage(agentID, "en", "/stats 30"))
	want = "[b]Service figures[/b], the last 30 days\n" +
		"Opened: 3 · resolved by agents: 3 · auto-closed: 0\n" +
		"First response (4): median 20 min, 90th percentile 2 h 0 min\n" +
		"Reply (4): median 30 min, 90th percentile 2 h 0 min\n" +
		"Resolution (3): median 3 h 0 min, 90th percentile 1 d 0 h\n" +
		"CSAT: 50% (1 of 2 ratings: helped)\n" +
		"Now waiting for an answer: 1, the longest for 5 h 0 min\n" +
		"[b]By agent[/b]\n" +
		"#50: owns 1 now · answers 5"
	if got := b.last("50", "Service figures").Text; got != want {
		t.Errorf("/stats 30:\n%s\nwant\n%s", got, want)
	}

	// The histograms count the same intervals as /stats 30, which holds them all.
	for _, line := range []string{
		"supportbot_first_response_seconds_count 4",
		"supportbot_first_response_seconds_sum 12240", // 4 min + 20 min + 1 h + 2 h
		`supportbot_first_response_seconds_bucket{le="300"} 1`,
		`supportbot_first_response_seconds_bucket{le="3600"} 3`,
		"supportbot_reply_seconds_count 4",
		"supportbot_reply_seconds_sum 12840", // 4 min + 30 min + 1 h + 2 h
		`supportbot_reply_seconds_bucket{le="1800"} 2`,
		"supportbot_resolution_seconds_count 3",
		"supportbot_resolution_seconds_sum 99900", // 45 min + 3 h + 1 d
		`supportbot_resolution_seconds_bucket{le="28800"} 2`,
		`supportbot_resolution_seconds_bucket{le="86400"} 3`,
	} {
		if !strings.Contains(b.scrape(), line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}

	// Typed in a dialog, which its client reads, the figures go to the agent's own
	// chat. The command answers no one: №3's reply time runs on to the real answer.
	seen := len(portal.Messages("50"))
	b.do(b.groupMessage(agentID, chats[2], "/stats"))
	b.last(chatDialog(chats[2]), "in your chat with the bot")
	if msgs := portal.Messages("50"); len(msgs) != seen+1 || !strings.HasPrefix(msgs[seen].Text, "[b]Service figures[/b], the last 7 days") {
		t.Errorf("/stats in a dialog: the agent's chat got %+v", msgs[seen:])
	}
	b.at(day.Add(7 * h))
	b.do(b.groupMessage(agentID, chats[2], "Settings → Permissions"))
	for _, line := range []string{"supportbot_reply_seconds_count 5", "supportbot_reply_seconds_sum 34440"} { // + 6 h
		if !strings.Contains(b.scrape(), line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}

	// Only agents; a window that is not a number of days gets the usage; more than
	// 365 days are 365.
	b.do(privateMessage(client, "en", "/stats"))
	b.last("27", "Only support agents")
	b.do(privateMessage(agentID, "en", "/stats week"))
	b.last("50", "/stats N")
	b.do(privateMessage(agentID, "en", "/stats 1000"))
	b.last("50", "the last 365 days")
}

// TestServeExposesServiceHistograms: serve wires the histograms to its database: a
// question answered once shows up as one first response and one reply.
func TestServeExposesServiceHistograms(t *testing.T) {
	t.Parallel()
	portal := b24test.New(t)
	b := startBot(t, portal, filepath.Join(t.TempDir(), "histograms.db"))
	chats := b.openDialogs(1)
	b.mustPost(b.groupMessage(agentID, chats[0], "Here is how"))
	for metric, want := range map[string]float64{
		"supportbot_first_response_seconds_count": 1,
		"supportbot_reply_seconds_count":          1,
		"supportbot_resolution_seconds_count":     0,
	} {
		if got := metricValue(t, b.url, metric); got != want {
			t.Errorf("%s = %v, want %v", metric, got, want)
		}
	}
}
