package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/bot"
	"supportbot/outbox"
	"supportbot/storage"
	"supportbot/storage/storagetest"
	"supportbot/testwait"
)

// fixture is the dispatcher over a real SQLite file and the fake portal, with the
// real bot deciding what results mean.
type fixture struct {
	t      *testing.T
	store  *storage.Store
	portal storage.Portal
	fake   *b24test.Portal
	bot    *bot.Bot
	disp   *Dispatcher
	now    time.Time
	mu     sync.Mutex
	nextID int64
	path   string // of the database, for storagetest.Location
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), path: filepath.Join(t.TempDir(), "test.db")}
	store := storagetest.OpenAt(t, f.path, storage.WithClock(f.clock))
	f.store = store
	var err error
	f.portal, err = store.EnsurePortal(context.Background(), "test", "")
	if err != nil {
		t.Fatal(err)
	}
	f.fake = b24test.New(t)
	f.bot = bot.New(bot.Config{Admins: []int64{27}, Agents: []int64{50}}, nil)
	f.disp = New(store, Single(bitrix24.NewClient(f.fake.WebhookURL())), f.bot.Outbox(), nil, nil)
	return f
}

func (f *fixture) clock() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }

func (f *fixture) advance(d time.Duration) { f.mu.Lock(); f.now = f.now.Add(d); f.mu.Unlock() }

// newDialog has the bot open a dialog for client 27, whose question is "hello": it
// queues the chat, a greeting in it and an answer in the main chat that links to it.
func (f *fixture) newDialog() storage.Dialog {
	f.t.Helper()
	f.nextID++
	ev := &bitrix24.MessageAdd{
		Envelope: bitrix24.Envelope{Type: bitrix24.EventMessageAdd},
		Message:  bitrix24.Message{ID: f.nextID, Chat: "27", ChatType: "P", FromUserID: 27, Text: "hello", Language: "en"},
		User:     bitrix24.User{ID: 27},
	}
	var d storage.Dialog
	err := f.store.Update(context.Background(), func(tx *storage.Tx) error {
		if _, err := f.bot.Take(tx, bot.Arrival{PortalID: f.portal.ID, Event: ev}); err != nil {
			return err
		}
		list, err := tx.ClientDialogs(f.portal.ID, 27)
		if err == nil && len(list) > 0 {
			d = list[0].Dialog
		}
		return err
	})
	if err != nil || d.ID == 0 {
		f.t.Fatalf("new dialog: %v", err)
	}
	return d
}

// enqueue queues one action in lane, as the bot would.
func (f *fixture) enqueue(chat string, a bitrix24.Action) {
	f.t.Helper()
	err := f.store.Update(context.Background(), func(tx *storage.Tx) error {
		return outbox.Put(tx, f.portal.ID, outbox.Entry{Lane: outbox.LaneOf(chat), Action: a})
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// runOnce sends one request to every portal with due work, one after another, and
// records the outcomes: the dispatcher without goroutines, for tests that step time.
// It returns how many entries it handled.
func (d *Dispatcher) runOnce(ctx context.Context) (int, error) {
	portals, err := d.store.DuePortals(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range portals {
		entries, err := d.choose(ctx, p, nil)
		if err != nil {
			return n, err
		}
		if err := d.deliver(ctx, p, entries); err != nil {
			return n, err
		}
		n += len(entries)
	}
	return n, nil
}

// drain runs the dispatcher until nothing more is due.
func (f *fixture) drain() {
	f.t.Helper()
	for range 20 {
		n, err := f.disp.runOnce(context.Background())
		if err != nil {
			f.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	f.t.Fatal("the outbox did not settle")
}

func (f *fixture) states() map[string]int {
	list, err := f.store.Outbox(context.Background(), f.portal.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range list {
		out[e.State]++
	}
	return out
}

func TestChatThenDependentsWithItsID(t *testing.T) {
	f := newFixture(t)
	d := f.newDialog()
	f.drain()
	chats := f.fake.Chats()
	if len(chats) != 1 {
		t.Fatalf("%d chats", len(chats))
	}
	chatID := chats[0].ID
	greeting := f.fake.Messages(bitrix24.GroupChat(chatID))
	answer := f.fake.Messages("27")
	if len(greeting) != 1 || !strings.Contains(greeting[0].Text, "hello") {
		t.Fatalf("greeting %+v", greeting)
	}
	if len(answer) != 1 || !strings.Contains(answer[0].Text, fmt.Sprintf("[chat=%d]", chatID)) {
		t.Fatalf("answer %+v", answer)
	}
	f.store.Update(context.Background(), func(tx *storage.Tx) error {
		got, _ := tx.Dialog(d.ID)
		if got.ChatID != chatID {
			t.Errorf("dialog chat %d, want %d", got.ChatID, chatID)
		}
		return nil
	})
	if s := f.states(); s[storage.OutboxDone] != 3 {
		t.Fatalf("states %v", s)
	}
}

func TestPermanentErrorGivesUpDependents(t *testing.T) {
	f := newFixture(t)
	f.fake.Handle("imbot.chat.add", func(bitrix24.Form) (any, *bitrix24.Error) {
		return nil, &bitrix24.Error{Code: "ACCESS_DENIED", Description: "no", HTTPStatus: 403}
	})
	d := f.newDialog()
	f.drain()
	if s := f.states(); s[storage.OutboxFailed] != 3 {
		t.Fatalf("states %v", s)
	}
	if n := len(f.fake.CallsTo("imbot.chat.add")); n != 1 {
		t.Fatalf("a permanent error was retried: %d calls", n)
	}
	f.store.Update(context.Background(), func(tx *storage.Tx) error {
		got, _ := tx.Dialog(d.ID)
		if !got.ChatFailed {
			t.Error("dialog not marked as without chat")
		}
		return nil
	})
}

// TestErrorTextWithNUL: a portal's error description with a NUL byte (JSON's \u0000)
// is recorded like any other, on both engines: the entry is given up after one call,
// not left pending and sent again because PostgreSQL refused the text.
func TestErrorTextWithNUL(t *testing.T) {
	f := newFixture(t)
	f.fake.Handle("imbot.message.add", func(bitrix24.Form) (any, *bitrix24.Error) {
		return nil, &bitrix24.Error{Code: "ACCESS_DENIED", Description: "no\x00", HTTPStatus: 403}
	})
	f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "hello"})
	for range 3 {
		if _, err := f.disp.runOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.advance(time.Minute)
	}
	if s, n := f.states(), len(f.fake.CallsTo("imbot.message.add")); s[storage.OutboxFailed] != 1 || n != 1 {
		t.Fatalf("states %v after %d calls", s, n)
	}
}

func TestTemporaryErrorRetriedLater(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	fail := 2
	f.fake.Handle("imbot.message.add", func(p bitrix24.Form) (any, *bitrix24.Error) {
		mu.Lock()
		defer mu.Unlock()
		if fail > 0 {
			fail--
			return nil, &bitrix24.Error{Code: "QUERY_LIMIT_EXCEEDED", HTTPStatus: 503}
		}
		return 7001, nil
	})
	for i := range 2 {
		f.enqueue("27", bitrix24.SendMessage{To: "27", Text: fmt.Sprint("m", i)})
	}
	f.drain()
	if s := f.states(); s[storage.OutboxPending] != 2 {
		t.Fatalf("after the first failure: %v", s)
	}
	f.advance(time.Second)
	f.drain()
	f.advance(2 * time.Second)
	f.drain()
	if s := f.states(); s[storage.OutboxDone] != 2 {
		t.Fatalf("after the retries: %v", s)
	}
	// The second message never overtook the first.
	calls := f.fake.CallsTo("imbot.message.add")
	var order []string
	for _, c := range calls {
		order = append(order, c.Params.String("MESSAGE"))
	}
	if fmt.Sprint(order) != "[m0 m0 m0 m1]" {
		t.Fatalf("call order %v", order)
	}
}

func TestRetryAt(t *testing.T) {
	d := New(nil, nil, nil, nil, nil)
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	transport := &bitrix24.TransportError{Method: "imbot.message.add", Err: context.DeadlineExceeded}
	for attempts, full := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		for range 20 {
			at, reason := d.retryAt(now, attempts, transport)
			if w := at.Sub(now); w < full/2 || w > full || reason != "transport" {
				t.Fatalf("attempt %d: wait %v (%s), want %v..%v", attempts, w, reason, full/2, full)
			}
		}
	}
	if at, _ := d.retryAt(now, 100, transport); at.Sub(now) > d.MaxBackoff {
		t.Errorf("wait beyond MaxBackoff: %v", at.Sub(now))
	}
	limit := &bitrix24.Error{Code: "QUERY_LIMIT_EXCEEDED", HTTPStatus: 503}
	if at, _ := d.retryAt(now, 10, limit); at.Sub(now) > 2*time.Second {
		t.Errorf("QUERY_LIMIT_EXCEEDED waits %v; the limiter paces, the retry needs no long wait", at.Sub(now))
	}
	overload := &bitrix24.Error{Code: "OVERLOAD_LIMIT", HTTPStatus: 503}
	if at, _ := d.retryAt(now, 0, overload); at.Sub(now) < 15*time.Second {
		t.Errorf("OVERLOAD_LIMIT (a manual block) retried after only %v", at.Sub(now))
	}
	reset := now.Add(7 * time.Minute)
	blocked := &bitrix24.Error{Code: "OPERATION_TIME_LIMIT", HTTPStatus: 429, ResetAt: reset}
	if at, reason := d.retryAt(now, 0, blocked); at.Before(reset) || at.After(reset.Add(time.Second)) || reason != "OPERATION_TIME_LIMIT" {
		t.Errorf("OPERATION_TIME_LIMIT retried at %v, reset at %v", at, reset)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	f := newFixture(t)
	f.newDialog()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.disp.Run(ctx, context.Background()); close(done) }()
	f.fake.WaitCalls(t, "imbot.message.add", 2, 5*time.Second)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// An imbot.chat.add whose answer was lost may have created the chat: the retry finds
// it by its entity instead of creating a second one.
func TestChatAddThatMayHaveRunIsFoundNotRepeated(t *testing.T) {
	f := newFixture(t)
	f.fake.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultDropAfter}, Methods: []string{"imbot.chat.add"}})
	d := f.newDialog()
	f.drain()
	if n := len(f.fake.Chats()); n != 1 {
		t.Fatalf("%d chats after the first attempt", n)
	}
	f.fake.InjectFaults(b24test.FaultPlan{})
	f.advance(2 * time.Second)
	f.drain()
	chats := f.fake.Chats()
	if len(chats) != 1 {
		t.Fatalf("%d chats: the retry created another one", len(chats))
	}
	if n := len(f.fake.CallsTo("imbot.chat.get")); n != 1 {
		t.Fatalf("%d imbot.chat.get calls", n)
	}
	f.store.Update(context.Background(), func(tx *storage.Tx) error {
		got, _ := tx.Dialog(d.ID)
		if got.ChatID != chats[0].ID {
			t.Errorf("dialog chat %d, portal chat %d", got.ChatID, chats[0].ID)
		}
		return nil
	})
	if msgs := f.fake.Messages(bitrix24.GroupChat(chats[0].ID)); len(msgs) != 1 {
		t.Fatalf("greeting: %+v", msgs)
	}
}

// A message whose answer was lost is sent again and counted: the portal may show it
// twice, and that is the only way it may.
type countingObserver struct {
	nopObserver
	mu      sync.Mutex
	dups    int
	expired int
	retries map[string]int // by reason
}

func (c *countingObserver) ObserveRetry(_, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.retries == nil {
		c.retries = map[string]int{}
	}
	c.retries[reason]++
}

func (c *countingObserver) ObserveMaybeDuplicate(string) { c.mu.Lock(); c.dups++; c.mu.Unlock() }

func (c *countingObserver) ObserveDelivery(_, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if outcome == "expired" {
		c.expired++
	}
}

func TestMaybeSentMessageCounted(t *testing.T) {
	f := newFixture(t)
	obs := &countingObserver{}
	f.disp = New(f.store, Single(bitrix24.NewClient(f.fake.WebhookURL())), f.bot.Outbox(), nil, obs)
	f.fake.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultDropAfter}})
	f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "once"})
	f.drain()
	f.fake.InjectFaults(b24test.FaultPlan{})
	f.advance(2 * time.Second)
	f.drain()
	if n := len(f.fake.Messages("27")); n != 2 || obs.dups != 1 {
		t.Fatalf("%d messages, %d counted", n, obs.dups)
	}
	if s := f.states(); s[storage.OutboxDone] != 1 {
		t.Fatalf("states %v", s)
	}
}

// TestHotChatInOrder: 120 replies due in one chat go in batches of 50, several of the
// lane in each, in order; the least is 3 requests.
func TestHotChatInOrder(t *testing.T) {
	f := newFixture(t)
	for i := range 120 {
		f.enqueue("27", bitrix24.SendMessage{To: "27", Text: fmt.Sprint("m", i)})
	}
	f.drain()
	if n := f.fake.Requests(); n != 3 {
		t.Errorf("%d requests for 120 replies in one chat, want 3", n)
	}
	msgs := f.fake.Messages("27")
	if len(msgs) != 120 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		if m.Text != fmt.Sprint("m", i) {
			t.Fatalf("message %d is %q: out of order", i, m.Text)
		}
	}
}

// TestHaltKeepsOrder: a batch stops at a chat's failing call; what came after it in
// the batch did not run, is sent again without counting as a possible duplicate, and
// nothing of the failing chat overtakes it.
func TestHaltKeepsOrder(t *testing.T) {
	f := newFixture(t)
	obs := &countingObserver{}
	f.disp = New(f.store, Single(bitrix24.NewClient(f.fake.WebhookURL())), f.bot.Outbox(), nil, obs)
	var mu sync.Mutex
	failures := 1
	f.fake.Handle("imbot.message.add", func(p bitrix24.Form) (any, *bitrix24.Error) {
		mu.Lock()
		defer mu.Unlock()
		if p.String("MESSAGE") == "a1" && failures > 0 {
			failures--
			return nil, &bitrix24.Error{Code: "QUERY_LIMIT_EXCEEDED", HTTPStatus: 503}
		}
		return 7000, nil
	})
	for i := range 3 {
		f.enqueue("31", bitrix24.SendMessage{To: "31", Text: fmt.Sprint("a", i)})
		f.enqueue("32", bitrix24.SendMessage{To: "32", Text: fmt.Sprint("b", i)})
	}
	f.drain()
	f.advance(3 * time.Second)
	f.drain()
	if s := f.states(); s[storage.OutboxDone] != 6 {
		t.Fatalf("states %v", s)
	}
	var order []string
	for _, c := range f.fake.CallsTo("imbot.message.add") {
		order = append(order, c.Params.String("MESSAGE"))
	}
	// First batch: a0 b0 a1(fails) and nothing after; then the rest in order.
	if got := fmt.Sprint(order); got != "[a0 b0 a1 b1 b2 a1 a2]" {
		t.Fatalf("calls %s", got)
	}
	if obs.dups != 0 {
		t.Errorf("%d possible duplicates counted for calls that surely did not run", obs.dups)
	}
	list, _ := f.store.Outbox(context.Background(), f.portal.ID)
	for _, e := range list {
		if e.MaybeSent {
			t.Errorf("entry %d marked as maybe sent", e.ID)
		}
	}
}

// TestRenamesCoalesce: three renames of one chat waiting together send only the last
// title, and the dialog takes titles from its chat's events again afterwards.
func TestRenamesCoalesce(t *testing.T) {
	f := newFixture(t)
	d := f.newDialog()
	f.drain()
	err := f.store.Update(context.Background(), func(tx *storage.Tx) error {
		for _, title := range []string{"one", "two", "three"} {
			ev := &bitrix24.MessageAdd{Envelope: bitrix24.Envelope{Type: bitrix24.EventMessageAdd},
				Message: bitrix24.Message{ID: 9000 + int64(len(title)), Chat: "27", ChatType: "P", FromUserID: 27,
					Text: "rename 1 " + title, Language: "en"}, User: bitrix24.User{ID: 27}}
			if _, err := f.bot.Take(tx, bot.Arrival{PortalID: f.portal.ID, Event: ev}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.fake.Reset()
	f.drain()
	calls := f.fake.CallsTo("imbot.chat.updateTitle")
	if len(calls) != 1 || calls[0].Params.String("TITLE") != "three" {
		t.Fatalf("renames sent: %+v", calls)
	}
	f.store.View(context.Background(), func(tx *storage.Tx) error {
		got, _ := tx.Dialog(d.ID)
		if got.Title != "three" || got.TitlePending {
			t.Errorf("dialog title %q, pending %v", got.Title, got.TitlePending)
		}
		return nil
	})
}

// TestGivenUpAfterMaxAge: an entry that keeps failing is given up once MaxAge has
// passed since it was queued, counted as expired; a dialog's chat given up so is
// withdrawn and the client told.
func TestGivenUpAfterMaxAge(t *testing.T) {
	f := newFixture(t)
	obs := &countingObserver{}
	f.disp = New(f.store, Single(bitrix24.NewClient(f.fake.WebhookURL())), f.bot.Outbox(), nil, obs)
	f.disp.MaxAge = time.Hour
	f.fake.Handle("imbot.chat.add", func(bitrix24.Form) (any, *bitrix24.Error) {
		return nil, &bitrix24.Error{Code: "INTERNAL_SERVER_ERROR", HTTPStatus: 500}
	})
	d := f.newDialog()
	for range 30 {
		f.drain()
		f.advance(5 * time.Minute)
	}
	if obs.expired != 1 {
		t.Fatalf("%d expired, want 1", obs.expired)
	}
	f.store.View(context.Background(), func(tx *storage.Tx) error {
		got, _ := tx.Dialog(d.ID)
		if !got.ChatFailed || got.Active() {
			t.Errorf("dialog after giving up: %+v", got)
		}
		return nil
	})
	if msgs := f.fake.Messages("27"); len(msgs) != 1 || !strings.Contains(msgs[0].Text, "withdrawn") {
		t.Fatalf("the client was not told: %+v", msgs)
	}
}

// TestHungChatDelaysOnlyItself: one chat's call hangs; replies to other chats of the
// same portal, and to another portal, keep flowing meanwhile; the hung entry is
// retried in ever smaller requests.
func TestHungChatDelaysOnlyItself(t *testing.T) {
	f := newFixture(t)
	other := b24test.New(t)
	otherPortal, _ := f.store.EnsurePortal(context.Background(), "other", "")
	clients := map[int64]Caller{
		f.portal.ID:    bitrix24.NewClient(f.fake.WebhookURL(), bitrix24.WithHTTPClient(&http.Client{Timeout: 2 * time.Second})),
		otherPortal.ID: bitrix24.NewClient(other.WebhookURL()),
	}
	f.disp = New(f.store, func(id int64) (Caller, error) { return clients[id], nil }, f.bot.Outbox(), nil, nil)
	f.fake.HangChat("200")
	f.enqueue("200", bitrix24.SendMessage{To: "200", Text: "stuck"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.disp.Run(ctx, context.Background()); close(done) }()
	defer func() { cancel(); <-done }()
	f.fake.WaitCalls(t, "imbot.message.add", 1, 5*time.Second) // the hung call is under way
	start := time.Now()
	for i := range 20 {
		f.enqueue(fmt.Sprint(201+i), bitrix24.SendMessage{To: fmt.Sprint(201 + i), Text: "fine"})
	}
	f.store.Update(context.Background(), func(tx *storage.Tx) error {
		return outbox.Put(tx, otherPortal.ID, outbox.Entry{Lane: outbox.ClientLane(300), Action: bitrix24.SendMessage{To: "300", Text: "elsewhere"}})
	})
	testwait.For(t, "the other chats' replies", func() bool {
		return len(f.fake.AllMessages()) == 20 && len(other.AllMessages()) == 1
	})
	if d := time.Since(start); d > time.Second {
		t.Errorf("the other chats waited %v behind the hung one", d)
	}
}

// TestTimeoutHalvesTheBatch: the entries of a request that timed out go in requests
// half as large, until the one that hangs goes alone and the rest are delivered.
func TestTimeoutHalvesTheBatch(t *testing.T) {
	f := newFixture(t)
	f.disp = New(f.store, Single(bitrix24.NewClient(f.fake.WebhookURL(), bitrix24.WithHTTPClient(&http.Client{Timeout: 200 * time.Millisecond}))),
		f.bot.Outbox(), nil, nil)
	f.fake.HangChat("208")
	for i := range 8 {
		f.enqueue(fmt.Sprint(201+i), bitrix24.SendMessage{To: fmt.Sprint(201 + i), Text: "x"})
	}
	for range 6 {
		if _, err := f.disp.runOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.advance(10 * time.Minute)
	}
	got := map[string]bool{}
	for _, m := range f.fake.AllMessages() {
		got[m.DialogID] = true // a timed-out batch may have run in part: repeats are counted duplicates
	}
	if len(got) != 7 || got["208"] {
		t.Fatalf("%d of the 7 chats that do not hang got their message: %v", len(got), got)
	}
	list, _ := f.store.Outbox(context.Background(), f.portal.ID)
	for _, e := range list {
		if e.Lane == outbox.ClientLane(208).String() && (e.State != storage.OutboxPending || e.BatchLimit != 1) {
			t.Fatalf("the hung entry: %+v", e)
		}
	}
}

// futureEffect is an effect this build's bot does not register, as a newer release
// may put on an entry.
type futureEffect int64

func (e futureEffect) Effect() (string, int64) { return "from_a_newer_release", int64(e) }

// TestNewerReleaseEntryWaits: during a rolling upgrade an older replica reads an
// entry a newer one wrote, with an effect it does not know. It neither sends it nor
// gives it up: the entry keeps its lane's head, retried with a log line and a
// metric, until a replica that knows the effect sends it, and what follows it in the
// lane after it, in order; as one that may have run, if the newer replica died with
// it under way. Past MaxAge it is given up like any entry that keeps failing, and its
// lane moves on.
func TestNewerReleaseEntryWaits(t *testing.T) {
	for _, knownLater := range []bool{true, false} {
		t.Run(fmt.Sprint("known later: ", knownLater), func(t *testing.T) {
			f := newFixture(t)
			obs := &countingObserver{}
			f.disp = New(f.store, Single(bitrix24.NewClient(f.fake.WebhookURL())), f.bot.Outbox(), nil, obs)
			f.disp.MaxAge = time.Hour
			err := f.store.Update(context.Background(), func(tx *storage.Tx) error {
				kind, data, err := bitrix24.EncodeAction(bitrix24.SendMessage{To: "27", Text: "first"})
				if err != nil {
					return err
				}
				id, err := tx.Enqueue(storage.OutboxRow{PortalID: f.portal.ID, Lane: outbox.ClientLane(27).String(),
					Kind: kind, Action: data, Effect: "from_a_newer_release", EffectRef: 9})
				if err != nil {
					return err
				}
				// The newer replica died with it under way: it may have run.
				return tx.MarkInFlight([]int64{id})
			})
			if err != nil {
				t.Fatal(err)
			}
			f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "second"})
			for range 3 {
				f.drain()
				f.advance(3 * time.Minute)
			}
			if calls := f.fake.CallsTo("imbot.message.add"); len(calls) != 0 {
				t.Fatalf("the old replica sent %d messages of a lane whose head it cannot read", len(calls))
			}
			list, _ := f.store.Outbox(context.Background(), f.portal.ID)
			if s := f.states(); s[storage.OutboxPending] != 2 || list[0].Attempts != 3 || !strings.Contains(list[0].LastError, "newer release") ||
				!list[0].MaybeSent {
				t.Fatalf("after the old replica's tries: %v, head %+v", s, list[0])
			}
			if obs.retries[newerRelease] != 3 {
				t.Errorf("retries counted: %v", obs.retries)
			}

			if knownLater {
				h := f.bot.Outbox()
				var settled []int64
				outbox.On(h, func(_ *storage.Tx, e futureEffect, r outbox.Result) error {
					settled = append(settled, int64(e), r.ID)
					return nil
				})
				f.disp = New(f.store, Single(bitrix24.NewClient(f.fake.WebhookURL())), h, nil, obs)
				f.drain()
				if len(settled) != 2 || settled[0] != 9 || settled[1] == 0 {
					t.Errorf("the newer effect settled as %v, want [9 and the message's ID]", settled)
				}
				if obs.dups != 1 {
					t.Errorf("%d sent as may-have-run, want the one the dead replica had under way", obs.dups)
				}
			} else {
				f.advance(time.Hour)
				f.drain()
				if obs.expired != 1 {
					t.Fatalf("%d expired, want the newer release's entry", obs.expired)
				}
			}
			var order []string
			for _, c := range f.fake.CallsTo("imbot.message.add") {
				order = append(order, c.Params.String("MESSAGE"))
			}
			want := "[first second]"
			if !knownLater {
				want = "[second]"
			}
			if fmt.Sprint(order) != want {
				t.Errorf("sent %v, want %s", order, want)
			}
		})
	}
}

// gate is a portal's pacer that holds every request until it is opened, and says
// when one waits: a bucket with no room, for as long as the test wants.
type gate struct {
	waiting chan struct{}
	open    chan struct{}
}

func (g *gate) Wait(ctx context.Context) (time.Duration, error) {
	select {
	case g.waiting <- struct{}{}:
	default:
	}
	select {
	case <-g.open:
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (g *gate) Fill() {}

// TestBucketWaitHoldsNoSlot: a request waiting for room in its portal's bucket holds
// none of the slots every portal shares. With one slot, a portal whose bucket has no
// room does not keep another portal's reply waiting: that reply is delivered while
// the first still waits.
func TestBucketWaitHoldsNoSlot(t *testing.T) {
	f := newFixture(t)
	other := b24test.New(t)
	otherPortal, _ := f.store.EnsurePortal(context.Background(), "other", "")
	full := &gate{waiting: make(chan struct{}, 1), open: make(chan struct{})}
	clients := map[int64]Caller{
		f.portal.ID:    bitrix24.NewClient(f.fake.WebhookURL(), bitrix24.WithPacer(full)),
		otherPortal.ID: bitrix24.NewClient(other.WebhookURL(), bitrix24.WithLimiter(bitrix24.NewShare(50, 50))),
	}
	f.disp = New(f.store, func(id int64) (Caller, error) { return clients[id], nil }, f.bot.Outbox(), nil, nil)
	f.disp.Workers = 1
	f.enqueue("200", bitrix24.SendMessage{To: "200", Text: "waits for its bucket"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.disp.Run(ctx, context.Background()); close(done) }()
	var opened sync.Once
	openGate := func() { opened.Do(func() { close(full.open) }) }
	defer func() { openGate(); cancel(); <-done }()
	select {
	case <-full.waiting:
	case <-time.After(30 * time.Second):
		t.Fatal("the first portal's request never waited for its bucket")
	}
	f.store.Update(context.Background(), func(tx *storage.Tx) error {
		return outbox.Put(tx, otherPortal.ID, outbox.Entry{Lane: outbox.ClientLane(300), Action: bitrix24.SendMessage{To: "300", Text: "has room"}})
	})
	testwait.Within(t, 10*time.Second, "the other portal's reply, while the first waits for its bucket", func() bool {
		return len(other.AllMessages()) == 1
	})
	openGate()
	testwait.For(t, "the reply that waited for its bucket", func() bool { return len(f.fake.AllMessages()) == 1 })
}

// TestResetAtFarAway: an operating_reset_at years away (a clock gone wrong, a hostile
// answer) holds the entry no longer than maxResetWait: it is tried again, and sent
// once the portal lets it.
func TestResetAtFarAway(t *testing.T) {
	f := newFixture(t)
	f.fake.BlockMethod("imbot.message.add", time.Now().Add(10*365*24*time.Hour))
	f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "one"})
	f.drain()
	if list, _ := f.store.Outbox(context.Background(), f.portal.ID); list[0].NextAttemptAt.After(f.clock().Add(maxResetWait + time.Second)) {
		t.Fatalf("next attempt %v, %v from now", list[0].NextAttemptAt, list[0].NextAttemptAt.Sub(f.clock()))
	}
	f.fake.BlockMethod("imbot.message.add", time.Time{}) // the portal is fine again
	f.advance(f.disp.MaxAge + time.Hour)
	f.drain()
	list, _ := f.store.Outbox(context.Background(), f.portal.ID)
	for _, e := range list {
		if e.State == storage.OutboxPending {
			t.Errorf("entry %d still pending %v after it was queued (attempts %d, next attempt %v): no retry bound, no MaxAge",
				e.ID, f.clock().Sub(e.CreatedAt), e.Attempts, e.NextAttemptAt)
		}
	}
}

// TestLateOutcomeOfATakenOverCall: replica A's chat creation hangs; B takes the
// portal over, creates the chat again and sends the greeting there. When A's call
// ends at last, its outcome changes nothing: the entry is B's, and so is the chat.
func TestLateOutcomeOfATakenOverCall(t *testing.T) {
	f := newFixture(t)
	if err := f.store.Update(context.Background(), func(tx *storage.Tx) error {
		return tx.SetBotV2(f.portal.ID, 1, "token", storage.EventsHook)
	}); err != nil {
		t.Fatal(err)
	}
	release, called := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	chats := 0
	f.fake.Handle("imbot.v2.Chat.add", func(bitrix24.Form) (any, *bitrix24.Error) {
		mu.Lock()
		chats++
		n := chats
		mu.Unlock()
		if n == 1 {
			close(called)
			<-release // A's call hangs
		}
		return map[string]any{"chat": map[string]any{"id": 1000 + n}}, nil
	})
	sentTo := map[string]int{}
	f.fake.Handle("imbot.v2.Chat.Message.send", func(p bitrix24.Form) (any, *bitrix24.Error) {
		mu.Lock()
		defer mu.Unlock()
		sentTo[p.String("dialogId")]++
		return map[string]any{"id": 5000 + len(sentTo)}, nil
	})
	d := f.newDialog()
	ctx := context.Background()
	a := f.disp // replica A
	entries, err := a.choose(ctx, f.portal.ID, nil)
	if err != nil || len(entries) != 1 {
		t.Fatalf("A chose %d: %v", len(entries), err)
	}
	doneA := make(chan error)
	go func() { doneA <- a.deliver(ctx, f.portal.ID, entries) }()
	<-called
	// B has taken the portal over, and TakeoverGrace is over: it sends A's lane again.
	b := New(f.store, Single(bitrix24.NewClient(f.fake.WebhookURL())), f.bot.Outbox(), nil, nil)
	for range 10 {
		if n, err := b.runOnce(ctx); err != nil || n == 0 {
			break
		}
	}
	close(release)
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	f.store.Update(ctx, func(tx *storage.Tx) error {
		got, _ := tx.Dialog(d.ID)
		if got.ChatID != 1002 {
			t.Errorf("the dialog's chat is %d, not 1002 where its greeting went (messages sent to %v)", got.ChatID, sentTo)
		}
		return nil
	})
}

// TestUnreadableBatchAnswerMayHaveRun: a batch the portal answered 200 in a shape that
// cannot be read may have run: its entries are retried as possibly sent (so a chat's
// creation is looked up first, and a repeat is counted), not as surely not run.
func TestUnreadableBatchAnswerMayHaveRun(t *testing.T) {
	f := newFixture(t)
	f.fake.HandleHTTP("batch", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"result":{"result":["o1","o2"],"result_error":"none"},"time":{}}`))
	})
	f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "one"})
	f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "two"})
	if _, err := f.disp.runOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	list, _ := f.store.Outbox(context.Background(), f.portal.ID)
	for _, e := range list {
		if !e.MaybeSent || e.Attempts != 1 {
			t.Errorf("entry %d (%d attempts): a request the portal answered 200 is recorded as surely not run: %s", e.ID, e.Attempts, e.LastError)
		}
	}
}

// TestBatchAnswerSayingNothing: a batch answered with neither a result nor an error
// for any of its v1 commands is a failed attempt of the first, which may have run:
// it backs off and is given up after MaxAge, and the lane then moves on. It used to
// be put back uncounted and sent again at once, for ever.
func TestBatchAnswerSayingNothing(t *testing.T) {
	f := newFixture(t)
	f.fake.SetClock(f.clock)
	f.fake.HandleHTTP("batch", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"result":{"result":[],"result_error":[],"result_total":[],"result_next":[],"result_time":[]},"time":{}}`))
	})
	f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "one"})
	f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "two"})
	for range 100 {
		if _, err := f.disp.runOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.advance(time.Hour)
	}
	list, _ := f.store.Outbox(context.Background(), f.portal.ID)
	for _, e := range list {
		if e.State == storage.OutboxPending {
			t.Errorf("entry %d still pending after %d batches and %v: never counted, never given up", e.ID, len(f.fake.CallsTo("batch")), f.clock().Sub(e.CreatedAt))
		}
	}
}

// TestDependentsOfAChatGivenUpUnread: a dialog's chat creation given up without
// being read (a damaged row, or a newer release's kind that expired) still tells the
// bot it failed: what waited for the chat is given up, and the client's main chat
// goes on. It used to wait for ever, never tried and so never given up.
func TestDependentsOfAChatGivenUpUnread(t *testing.T) {
	for name, damage := range map[string]string{
		"damaged":       `UPDATE outbox SET action = '{damaged' WHERE id = (SELECT MIN(id) FROM outbox)`,
		"newer release": `UPDATE outbox SET kind = 'create_space' WHERE id = (SELECT MIN(id) FROM outbox)`,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.newDialog()
			storagetest.Exec(t, storagetest.Location(t, f.path), damage)
			f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "later in the client's chat"})
			f.drain()
			for range 30 {
				f.advance(f.disp.MaxAge / 10)
				f.drain()
			}
			list, _ := f.store.Outbox(context.Background(), f.portal.ID)
			for _, e := range list {
				if e.State == storage.OutboxPending {
					t.Errorf("entry %d (%s %s) still pending after %d attempts", e.ID, e.Lane, e.Kind, e.Attempts)
				}
			}
			if len(f.fake.Messages("27")) == 0 {
				t.Error("nothing reached the client's main chat")
			}
		})
	}
}

// TestMaxAgeCountsFromTheFirstFailure: the head of a lane fails for MaxAge and is
// given up; the replies behind it, queued as long ago, then meet one refused request
// (QUERY_LIMIT_EXCEEDED: the portal ran none of it). They have not been failing for
// MaxAge, only waiting: they are tried again and arrive.
func TestMaxAgeCountsFromTheFirstFailure(t *testing.T) {
	f := newFixture(t)
	f.fake.SetClock(f.clock) // the portal's bucket drains with the test's time
	f.fake.Handle("imbot.message.add", func(p bitrix24.Form) (any, *bitrix24.Error) {
		if p.String("MESSAGE") == "head" {
			return nil, &bitrix24.Error{Code: "INTERNAL_SERVER_ERROR", HTTPStatus: 500}
		}
		return 77, nil
	})
	for _, text := range []string{"head", "one", "two", "three"} {
		f.enqueue("27", bitrix24.SendMessage{To: "27", Text: text})
	}
	ctx := context.Background()
	for range 2000 {
		if _, err := f.disp.runOnce(ctx); err != nil {
			t.Fatal(err)
		}
		list, _ := f.store.Outbox(ctx, f.portal.ID)
		if list[0].State != storage.OutboxPending {
			break
		}
		f.advance(time.Minute)
	}
	f.fake.InjectFaults(b24test.FaultPlan{Share: 1, Kinds: []b24test.Fault{b24test.FaultQueryLimit}})
	f.disp.runOnce(ctx)
	f.fake.InjectFaults(b24test.FaultPlan{})
	f.advance(time.Minute) // past their retry
	f.drain()
	list, _ := f.store.Outbox(ctx, f.portal.ID)
	for _, e := range list[1:] {
		if e.State != storage.OutboxDone {
			t.Errorf("entry %d, queued behind the head, %s after %d attempts: %s", e.ID, e.State, e.Attempts, e.LastError)
		}
	}
}

// poisoning fails every batch that holds a "poison" message as a whole (a PHP fatal
// error in one command: the portal answers an HTML 500 page), as a portal does.
type poisoning struct{ *bitrix24.Client }

func (p poisoning) Batch(ctx context.Context, cmds []bitrix24.BatchCommand, halt bool) ([]bitrix24.BatchResult, error) {
	for _, c := range cmds {
		if c.Params["MESSAGE"] == "poison" {
			return nil, &bitrix24.TransportError{Method: "batch", HTTPStatus: 500, MaybeSent: true,
				Err: errors.New("answer is not a Bitrix24 envelope (text/html, 120 bytes)")}
		}
	}
	return p.Client.Batch(ctx, cmds, halt)
}

// TestOneCommandBreakingItsBatch: a command that breaks its whole request (an HTML
// 500, not a timeout) no longer takes the other chats of that request with it until
// MaxAge gives them all up: the request is split in halves, and the other chat's
// reply arrives, once.
func TestOneCommandBreakingItsBatch(t *testing.T) {
	f := newFixture(t)
	f.fake.SetClock(f.clock)
	f.disp = New(f.store, Single(poisoning{bitrix24.NewClient(f.fake.WebhookURL())}), f.bot.Outbox(), nil, nil)
	f.enqueue("27", bitrix24.SendMessage{To: "27", Text: "poison"})
	f.enqueue("28", bitrix24.SendMessage{To: "28", Text: "fine"})
	ctx := context.Background()
	for range 10 {
		if _, err := f.disp.runOnce(ctx); err != nil {
			t.Fatal(err)
		}
		f.advance(2 * time.Minute)
	}
	if n := len(f.fake.Messages("28")); n != 1 {
		t.Errorf("chat 28's reply arrived %d times: held up by chat 27's failing call", n)
	}
}
