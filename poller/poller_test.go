package poller_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bitrix24/b24test/botv2"
	"supportbot/bot"
	"supportbot/poller"
	"supportbot/storage"
	"supportbot/storage/storagetest"
	"supportbot/testwait"
)

const token = "poller-test-bot-token"

// setUp registers a fetch-mode v2 bot on a fake portal and records it in a real
// database, as `supportbot register` does.
func setUp(t testing.TB) (*storage.Store, storage.Portal, *botv2.Fake, *bitrix24.Client) {
	t.Helper()
	return setUpOn(t, storagetest.Open(t))
}

// setUpOn is setUp on a given store.
func setUpOn(t testing.TB, store *storage.Store) (*storage.Store, storage.Portal, *botv2.Fake, *bitrix24.Client) {
	t.Helper()
	portal := b24test.New(t)
	portal.SetRateLimit(100, 200)
	fake := botv2.Attach(portal)
	client := bitrix24.NewClient(portal.WebhookURL())
	id, err := bitrix24.Perform(t.Context(), client, bitrix24.V2,
		bitrix24.RegisterBot{Profile: bitrix24.BotProfile{Code: "supportbot", Name: "Support", EventMode: "fetch"}},
		bitrix24.Context{BotToken: token})
	if err != nil {
		t.Fatal(err)
	}
	// Named as config names a webhook's portal: each fake is a portal of its own.
	p, err := store.EnsurePortal(t.Context(), "webhook:"+strings.TrimPrefix(portal.URL(), "http://"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Update(t.Context(), func(tx *storage.Tx) error { return tx.SetBotV2(p.ID, id, token, storage.EventsFetch) }); err != nil {
		t.Fatal(err)
	}
	p, _ = store.Portal(t.Context(), p.ID)
	return store, p, fake, client
}

func newBot() *bot.Bot {
	return bot.New(bot.Config{Admins: []int64{27}, Agents: []int64{50}, MaxActive: 500, Language: "en"}, quiet())
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type observed struct {
	mu        sync.Mutex
	anomalies map[string]int
	outcomes  map[string]int
	polls     int
	pollsOf   map[int64]int // the successful polls of each portal
	lag       time.Duration
	forgot    []int64
}

func (o *observed) ObserveEvent(_, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.outcomes == nil {
		o.outcomes = map[string]int{}
	}
	o.outcomes[outcome]++
}

func (o *observed) ObservePoll(portalID int64, ok bool, lag time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ok {
		o.polls++
		if o.pollsOf == nil {
			o.pollsOf = map[int64]int{}
		}
		o.pollsOf[portalID]++
		o.lag = max(o.lag, lag)
	}
}

func (o *observed) ForgetPortal(id int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.forgot = append(o.forgot, id)
}

func (o *observed) ObserveOffsetAnomaly(_ int64, kind string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.anomalies == nil {
		o.anomalies = map[string]int{}
	}
	o.anomalies[kind]++
}

func (o *observed) polled(portalID int64) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pollsOf[portalID]
}

func (o *observed) count(outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.outcomes[outcome]
}

// TestPollOncePages: 250 queued questions come in pages of 100; each page is
// handled with its offset in one transaction; the offset confirms them at the
// portal on the next poll; every question opens exactly one dialog.
func TestPollOncePages(t *testing.T) {
	store, portal, fake, client := setUp(t)
	var last int64
	for i := range 250 {
		last = fake.Message(27, "27", "open new question "+strconv.Itoa(i))
	}
	obs := &observed{}
	p := &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Obs: obs, Limit: 100,
		Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	var rounds []bool
	for {
		more, err := p.PollOnce(t.Context(), portal.ID)
		if err != nil {
			t.Fatal(err)
		}
		rounds = append(rounds, more)
		if !more {
			break
		}
	}
	if len(rounds) != 3 || !rounds[0] || !rounds[1] {
		t.Fatalf("polls said more: %v", rounds)
	}
	stored, _ := store.Portal(t.Context(), portal.ID)
	if stored.FetchOffset != last+1 {
		t.Fatalf("stored offset %d, want %d", stored.FetchOffset, last+1)
	}
	// The portal forgets a page only when the next poll confirms it.
	if fake.Pending() != 50 {
		t.Fatalf("pending before the confirming poll: %d, want the last page's 50", fake.Pending())
	}
	if more, err := p.PollOnce(t.Context(), portal.ID); err != nil || more {
		t.Fatalf("empty poll: %v %v", more, err)
	}
	if fake.Pending() != 0 || fake.Confirmed() != last+1 {
		t.Fatalf("pending %d, confirmed %d", fake.Pending(), fake.Confirmed())
	}
	var dialogs []storage.Dialog
	err := store.View(t.Context(), func(tx *storage.Tx) (err error) { dialogs, err = storagetest.Dialogs(tx, portal.ID); return err })
	if err != nil || len(dialogs) != 250 {
		t.Fatalf("%d dialogs (%v)", len(dialogs), err)
	}
	if obs.count("processed") != 250 || obs.polls != 4 {
		t.Errorf("observed %v, %d polls", obs.outcomes, obs.polls)
	}
	if obs.lag <= 0 {
		t.Error("no lag reported for a page of waiting events")
	}
}

// failing is the real bot, except that it cannot store the event with one message.
type failing struct {
	*bot.Bot
	poison int64
	tries  int
}

func (f *failing) Take(tx *storage.Tx, a bot.Arrival) (bot.Outcome, error) {
	if m, ok := a.Event.(*bitrix24.MessageAdd); ok && m.Message.ID == f.poison {
		f.tries++
		return 0, errors.New("disk full")
	}
	return f.Bot.Take(tx, a)
}

// TestPoisonEventSkipped: an event that cannot be stored is tried a bounded number
// of times, then skipped, logged and counted; the events around it are handled and
// the queue moves on.
func TestPoisonEventSkipped(t *testing.T) {
	store, portal, fake, client := setUp(t)
	fake.Message(27, "27", "open new first")
	poisonEvent := fake.Message(27, "27", "open new poison")
	fake.Message(27, "27", "open new third")
	obs := &observed{}
	proc := &failing{Bot: newBot(), poison: fake.MessageID(poisonEvent)}
	p := &poller.Poller{Store: store, Bot: proc, Log: quiet(), Obs: obs, Attempts: 3,
		Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	if _, err := p.PollOnce(t.Context(), portal.ID); err != nil {
		t.Fatal(err)
	}
	// Once in the page, then three times alone.
	if proc.tries != 4 || obs.count("failed") != 1 || obs.count("processed") != 2 {
		t.Fatalf("tries %d, outcomes %v", proc.tries, obs.outcomes)
	}
	var dialogs []storage.Dialog
	_ = store.View(t.Context(), func(tx *storage.Tx) (err error) { dialogs, err = storagetest.Dialogs(tx, portal.ID); return err })
	if len(dialogs) != 2 {
		t.Fatalf("%d dialogs", len(dialogs))
	}
	if stored, _ := store.Portal(t.Context(), portal.ID); stored.FetchOffset != poisonEvent+2 {
		t.Fatalf("offset %d, want %d", stored.FetchOffset, poisonEvent+2)
	}
}

// TestRunFollowsThePortals: Run polls every portal whose bot fetches; when one's bot
// is gone it stops polling that one, forgetting its gauges, and goes on with the rest.
func TestRunFollowsThePortals(t *testing.T) {
	store, portal, fake, client := setUp(t)
	_, other, _, otherClient := setUpOn(t, store)
	clients := map[int64]bitrix24.Caller{portal.ID: client, other.ID: otherClient}
	obs := &observed{}
	p := &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Obs: obs, Interval: 20 * time.Millisecond, Rescan: 20 * time.Millisecond,
		Callers: func(id int64) (bitrix24.Caller, error) { return clients[id], nil }}
	run(t, p)

	fake.Message(27, "27", "open new")
	testwait.For(t, "the question processed", func() bool { return obs.count("processed") == 1 })
	if err := store.Update(t.Context(), func(tx *storage.Tx) error { return tx.MarkBotDeleted(portal.ID) }); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the portal forgotten", func() bool { obs.mu.Lock(); defer obs.mu.Unlock(); return slices.Equal(obs.forgot, []int64{portal.ID}) })
	fake.Message(27, "27", "open new")
	// Both portals were polled every 20 ms and looked at as often: by the time the
	// other has been polled three more times, this one would have been too.
	polled := obs.polled(other.ID)
	testwait.For(t, "three more polls of the other portal", func() bool { return obs.polled(other.ID) >= polled+3 })
	if obs.count("processed") != 1 {
		t.Error("a deleted bot's portal is still polled")
	}
}

// dialogCount is how many dialogs the portal's clients have.
func dialogCount(t *testing.T, store *storage.Store, portalID int64) int {
	t.Helper()
	var dialogs []storage.Dialog
	if err := store.View(t.Context(), func(tx *storage.Tx) (err error) { dialogs, err = storagetest.Dialogs(tx, portalID); return err }); err != nil {
		t.Fatal(err)
	}
	return len(dialogs)
}

// TestEmptyQueueNextOffset: an empty queue whose nextOffset is missing, null or 0
// means nothing new: no error, no backoff, and the offset stays where it was.
func TestEmptyQueueNextOffset(t *testing.T) {
	for name, mode := range map[string]botv2.OffsetMode{"missing": botv2.OffsetsEmptyMissing, "null": botv2.OffsetsEmptyNull,
		"zero": botv2.OffsetsEmptyZero} {
		t.Run(name, func(t *testing.T) {
			store, portal, fake, client := setUp(t)
			fake.SetOffsets(mode)
			last := fake.Message(27, "27", "open new first")
			p := &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
			for range 3 {
				if more, err := p.PollOnce(t.Context(), portal.ID); err != nil || more {
					t.Fatalf("poll: more %v, %v", more, err)
				}
			}
			if stored, _ := store.Portal(t.Context(), portal.ID); stored.FetchOffset != last+1 || fake.Pending() != 0 {
				t.Fatalf("offset %d, want %d; %d pending", stored.FetchOffset, last+1, fake.Pending())
			}
			fake.Message(27, "27", "open new second")
			if _, err := p.PollOnce(t.Context(), portal.ID); err != nil || dialogCount(t, store, portal.ID) != 2 {
				t.Fatalf("after an empty queue: %v, %d dialogs", err, dialogCount(t, store, portal.ID))
			}
		})
	}
}

// TestNextOffsetBeyondClamped: a faulty portal's nextOffset 153 past the page's last
// event would confirm events never fetched; the poller confirms only what it got, and
// logs and counts the anomaly. All 256 questions open dialogs.
func TestNextOffsetBeyondClamped(t *testing.T) {
	store, portal, fake, client := setUp(t)
	fake.SetOffsets(botv2.OffsetsBeyond)
	for i := range 256 {
		fake.Message(27, "27", "open new question "+strconv.Itoa(i))
	}
	obs := &observed{}
	p := &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Obs: obs, Limit: 100,
		Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	for range 10 {
		if more, err := p.PollOnce(t.Context(), portal.ID); err != nil {
			t.Fatal(err)
		} else if !more && fake.Pending() == 0 {
			break
		}
	}
	if n := dialogCount(t, store, portal.ID); n != 256 || obs.anomalies["beyond"] != 3 {
		t.Fatalf("%d dialogs for 256 questions; anomalies %v", n, obs.anomalies)
	}
}

// TestNextOffsetStuck: a nextOffset that does not move past a page of events is
// detected (ErrOffsetStuck, on which the loop backs off), logged and counted; the
// page's own events say how far it goes, so the next poll does not bring it again.
func TestNextOffsetStuck(t *testing.T) {
	store, portal, fake, client := setUp(t)
	fake.SetOffsets(botv2.OffsetsStuck)
	var last int64
	for i := range 5 {
		last = fake.Message(27, "27", "open new question "+strconv.Itoa(i))
	}
	obs := &observed{}
	p := &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Obs: obs,
		Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	if _, err := p.PollOnce(t.Context(), portal.ID); !errors.Is(err, poller.ErrOffsetStuck) {
		t.Fatalf("poll of a stuck queue: %v", err)
	}
	if more, err := p.PollOnce(t.Context(), portal.ID); err != nil || more {
		t.Fatalf("the next poll: more %v, %v", more, err)
	}
	stored, _ := store.Portal(t.Context(), portal.ID)
	if stored.FetchOffset != last+1 || fake.Pending() != 0 || obs.anomalies["stuck"] != 1 || dialogCount(t, store, portal.ID) != 5 {
		t.Fatalf("offset %d (want %d), %d pending, anomalies %v, %d dialogs", stored.FetchOffset, last+1, fake.Pending(),
			obs.anomalies, dialogCount(t, store, portal.ID))
	}
}

// TestOffsetBelongsToItsBot: the offset stored for one bot is never sent for another
// (the bot registered again after unregister, or an application reinstalled): the new
// bot's first poll carries none, and its events are handled.
func TestOffsetBelongsToItsBot(t *testing.T) {
	store, portal, fake, client := setUp(t)
	fake.Message(27, "27", "open new first")
	p := &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	if _, err := p.PollOnce(t.Context(), portal.ID); err != nil {
		t.Fatal(err)
	}
	cx := bitrix24.Context{BotID: portal.BotID, BotToken: token}
	if _, err := bitrix24.Perform(t.Context(), client, bitrix24.V2, bitrix24.UnregisterBot{BotID: portal.BotID}, cx); err != nil {
		t.Fatal(err)
	}
	id, err := bitrix24.Perform(t.Context(), client, bitrix24.V2,
		bitrix24.RegisterBot{Profile: bitrix24.BotProfile{Code: "supportbot2", Name: "Support", EventMode: "fetch"}},
		bitrix24.Context{BotToken: token})
	if err != nil || id == portal.BotID {
		t.Fatalf("a new bot: %d %v", id, err)
	}
	if err := store.Update(t.Context(), func(tx *storage.Tx) error { return tx.SetBotV2(portal.ID, id, token, storage.EventsFetch) }); err != nil {
		t.Fatal(err)
	}
	fake.QueueFor(id, "ONIMBOTV2MESSAGEADD", nil)
	before := len(fake.Portal().CallsTo("imbot.v2.Event.get"))
	if _, err := p.PollOnce(t.Context(), portal.ID); err != nil {
		t.Fatal(err)
	}
	calls := fake.Portal().CallsTo("imbot.v2.Event.get")[before:]
	if len(calls) != 1 || calls[0].Params.String("botId") != strconv.FormatInt(id, 10) || calls[0].Params.String("offset") != "" {
		t.Fatalf("the new bot's first poll: %+v", calls)
	}
	if stored, _ := store.Portal(t.Context(), portal.ID); stored.FetchBotID != id || stored.Offset() == 0 {
		t.Fatalf("offset %d stored for bot %d, the portal's is %d", stored.FetchOffset, stored.FetchBotID, id)
	}
}

// TestSeveralCommandsInOneMessage: a message holding two slash commands brings an
// event for each, with the same message ID (events.md); each is handled, the second
// not taken for a duplicate of the first.
func TestSeveralCommandsInOneMessage(t *testing.T) {
	store, portal, fake, client := setUp(t)
	cx := bitrix24.Context{BotID: portal.BotID, BotToken: token}
	for _, c := range bot.Commands() {
		if c.Name == "chats" || c.Name == "help" {
			if _, err := bitrix24.Perform(t.Context(), client, bitrix24.V2, bitrix24.RegisterCommand{Command: c}, cx); err != nil {
				t.Fatal(err)
			}
		}
	}
	fake.SlashCommands(27, "27", [2]string{"help", ""}, [2]string{"chats", ""})
	obs := &observed{}
	p := &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Obs: obs, Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	if _, err := p.PollOnce(t.Context(), portal.ID); err != nil {
		t.Fatal(err)
	}
	entries, err := store.Outbox(t.Context(), portal.ID)
	if err != nil || obs.count("processed") != 2 || len(entries) != 2 {
		t.Fatalf("outcomes %v, %d replies (%v)", obs.outcomes, len(entries), err)
	}
}

// TestWakeCutsTheWait: a portal in the bot's own process (the local portal) says when
// it queues an event, and the poller polls then instead of a whole interval later.
func TestWakeCutsTheWait(t *testing.T) {
	store, _, fake, client := setUp(t)
	obs := &observed{}
	wake := make(chan struct{}, 1)
	p := &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Obs: obs, Interval: time.Minute, Wake: wake,
		Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	run(t, p)
	polls := func() int { obs.mu.Lock(); defer obs.mu.Unlock(); return obs.polls }
	testwait.For(t, "the first poll", func() bool { return polls() == 1 }) // the empty queue: the next poll is a minute away
	fake.OnQueue(func() { wake <- struct{}{} })
	fake.Message(27, "27", "open new")
	testwait.For(t, "the question processed", func() bool { return obs.count("processed") == 1 })
}

// TestPollingPace: as the docs ask (chat-bots-v2/index.md), a poll asks for the most
// Event.get gives (1,000), and after a page with hasMore the next waits at least
// MorePause (2 s), not at once.
func TestPollingPace(t *testing.T) {
	store, portal, fake, client := setUp(t)
	p := &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Obs: &observed{},
		Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	if _, err := p.PollOnce(t.Context(), portal.ID); err != nil {
		t.Fatal(err)
	}
	calls := fake.Portal().CallsTo("imbot.v2.Event.get")
	if len(calls) != 1 || calls[0].Params.String("limit") != strconv.Itoa(poller.MaxLimit) {
		t.Fatalf("Event.get asked for %v events, not %d", calls, poller.MaxLimit)
	}

	for i := range 3 {
		fake.Message(27, "27", "question "+strconv.Itoa(i))
	}
	obs := &observed{}
	p = &poller.Poller{Store: store, Bot: newBot(), Log: quiet(), Obs: obs, Interval: time.Minute, Limit: 2,
		Callers: func(int64) (bitrix24.Caller, error) { return client, nil }}
	run(t, p)
	polls := func() int { obs.mu.Lock(); defer obs.mu.Unlock(); return obs.polls }
	testwait.For(t, "the first poll", func() bool { return polls() >= 1 }) // two of three: hasMore
	first := time.Now()
	testwait.For(t, "the second poll", func() bool { return polls() >= 2 })
	if gap := time.Since(first); gap < poller.MorePause-100*time.Millisecond {
		t.Errorf("the poll after a page with hasMore came %v after it, not %v", gap, poller.MorePause)
	}
}

// run runs p until the test ends.
func run(t *testing.T, p *poller.Poller) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}
