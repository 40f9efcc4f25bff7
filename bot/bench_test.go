package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// The read benchmarks (issue 17): a client who wrote 20,000 messages nobody answered
// in one dialog, and what that costs the agents' /queue and everyone else.
//
//	go test -run XXX -bench Queue -benchtime 1x -count 3 ./bot/
//	SUPPORTBOT_TEST_ENGINE=postgres go test -run XXX -bench Queue -benchtime 1x -count 3 ./bot/

// floodMessages is how many; SUPPORTBOT_BENCH_FLOOD sets another number (today's
// main needs a smaller one to finish: its /queue grew with the square).
func floodMessages() int {
	if n, err := strconv.Atoi(os.Getenv("SUPPORTBOT_BENCH_FLOOD")); err == nil && n > 0 {
		return n
	}
	return 20000
}

// floodDesk is a store with two portals: on the first, one dialog holding
// floodMessages unanswered client messages, recorded as the bot records them; on
// the second, a dialog of its own for the other portal's events.
type floodDesk struct {
	store     *storage.Store
	bot       *Bot
	flooded   storage.Portal
	other     storage.Portal
	otherChat int64
	nextID    int64
}

func newFloodDesk(b *testing.B) *floodDesk {
	b.Helper()
	ctx := context.Background()
	f := &floodDesk{store: storagetest.Open(b), bot: New(Config{Agents: []int64{agent}, Admins: []int64{admin}, MaxActive: 5}, nil),
		nextID: 1000}
	var err error
	if f.flooded, err = f.store.EnsurePortal(ctx, "flooded", ""); err != nil {
		b.Fatal(err)
	}
	if f.other, err = f.store.EnsurePortal(ctx, "other", ""); err != nil {
		b.Fatal(err)
	}
	flooded := f.open(b, f.flooded, 3001)
	f.otherChat = 4001
	f.open(b, f.other, f.otherChat)
	for from := 0; from < floodMessages(); from += 1000 {
		err := f.store.Update(ctx, func(tx *storage.Tx) error {
			for i := range min(1000, floodMessages()-from) {
				if _, err := f.bot.record(tx, flooded, int64(100000+from+i), admin, "still waiting"); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// open has the administrator ask a question on portal p and gives its dialog chat.
func (f *floodDesk) open(b *testing.B, p storage.Portal, chat int64) storage.Dialog {
	b.Helper()
	f.process(b, p, f.message(admin, "Why?", ""))
	var d storage.Dialog
	err := f.store.Update(context.Background(), func(tx *storage.Tx) error {
		list, err := storagetest.Dialogs(tx, p.ID)
		if err != nil {
			return err
		}
		d = list[0]
		d.ChatID = chat
		return tx.SetDialogChat(d.ID, chat)
	})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func (f *floodDesk) message(user int64, text, dialogID string) *bitrix24.MessageAdd {
	f.nextID++
	m := bitrix24.Message{ID: f.nextID, Chat: fmt.Sprint(user), ChatType: "P", FromUserID: user, Text: text, Language: "en"}
	if dialogID != "" {
		m.Chat, m.ChatType = dialogID, "C"
		fmt.Sscanf(dialogID, "chat%d", &m.ChatID)
	}
	return &bitrix24.MessageAdd{Envelope: bitrix24.Envelope{Type: bitrix24.EventMessageAdd}, BotID: botID, Message: m,
		User: bitrix24.User{ID: user, Name: "User"}}
}

// process takes an event in as the handler does: one write transaction.
func (f *floodDesk) process(b *testing.B, p storage.Portal, ev bitrix24.Event) {
	err := f.store.Update(context.Background(), func(tx *storage.Tx) error {
		_, err := f.bot.Take(tx, Arrival{PortalID: p.ID, Event: ev})
		return err
	})
	if err != nil {
		b.Error(err)
	}
}

// queue is an agent's /queue on the flooded portal, until its answer is written:
// the event's transaction, then the text as the dispatcher writes it before sending.
func (f *floodDesk) queue(b *testing.B) string {
	f.process(b, f.flooded, f.message(agent, "/queue", ""))
	note, _ := json.Marshal(answer{Command: cmdQueue, User: agent, Lang: "en"})
	a, err := New(Config{}, nil).WriteAnswer(context.Background(), f.store, string(note), f.flooded.ID,
		bitrix24.SendMessage{To: fmt.Sprint(agent)})
	if err != nil {
		b.Error(err)
		return ""
	}
	return a.(bitrix24.SendMessage).Text
}

// BenchmarkQueue: an agent's /queue with 20,000 unanswered messages in one dialog,
// until the answer is written.
func BenchmarkQueue(b *testing.B) {
	f := newFloodDesk(b)
	// Warm (statements prepared, pages cached), and the answer counts the flood and
	// the question.
	if text := f.queue(b); !strings.Contains(text, fmt.Sprintf("new messages: %d ", floodMessages()+1)) {
		b.Fatalf("the queue does not count the flood:\n%s", text)
	}
	for b.Loop() {
		f.queue(b)
	}
}

// BenchmarkQueueOtherPortal: the other portal's events, one after another, alone
// and while agents of the flooded portal keep asking for /queue; p99 of their
// latency, from the handler's Update to its commit.
func BenchmarkQueueOtherPortal(b *testing.B) {
	for _, beside := range []bool{false, true} {
		name := "alone"
		if beside {
			name = "beside-queue"
		}
		b.Run(name, func(b *testing.B) {
			f := newFloodDesk(b)
			f.queue(b) // warm
			stop := make(chan struct{})
			var wg sync.WaitGroup
			queues := 0
			if beside {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						f.queue(b)
						queues++
					}
				})
			}
			var lat []time.Duration
			for b.Loop() {
				for range 1000 {
					ev := f.message(admin, "one more detail", bitrix24.GroupChat(f.otherChat))
					start := time.Now()
					f.process(b, f.other, ev)
					lat = append(lat, time.Since(start))
				}
			}
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(queues), "queues")
		})
	}
}

// BenchmarkRoleChange: an administrator adds an agent and removes them again, on a
// portal with 20,000 resolved dialogs (SUPPORTBOT_BENCH_FLOOD sets another number)
// and 5 open ones: each change moves the person in or out of the open dialogs'
// chats, in the writer, so it should cost what the open ones cost.
//
//	go test -run XXX -bench RoleChange -count 5 ./bot/
func BenchmarkRoleChange(b *testing.B) {
	f := &floodDesk{store: storagetest.Open(b), bot: New(Config{Agents: []int64{agent}, Admins: []int64{admin}, MaxActive: 5}, nil),
		nextID: 1000}
	ctx := context.Background()
	p, err := f.store.EnsurePortal(ctx, "roles", "")
	if err != nil {
		b.Fatal(err)
	}
	for from := 0; from < floodMessages(); from += 1000 {
		err := f.store.Update(ctx, func(tx *storage.Tx) error {
			for i := range min(1000, floodMessages()-from) {
				d, err := tx.CreateDialog(storage.NewDialog{PortalID: p.ID, ClientID: int64(100000 + from + i), Language: "en",
					Title: func(n int) string { return fmt.Sprint("Q", n) }})
				if err != nil {
					return err
				}
				if err := tx.SetDialogChat(d.ID, int64(500000+from+i)); err != nil {
					return err
				}
				if err := tx.SetDialogStatus(d.ID, storage.StatusResolved); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for i := range 5 {
		f.open(b, p, int64(9001+i))
	}
	for b.Loop() {
		f.process(b, p, f.message(admin, "/agents add 77", ""))
		f.process(b, p, f.message(admin, "/agents remove 77", ""))
	}
}
