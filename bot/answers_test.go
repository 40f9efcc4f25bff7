package bot

import (
	"context"
	"strings"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/storage"
)

// TestReadAnswersAreWrittenWhenSent: /queue, /stats and "all chats" are answered
// with how things stand when the answer is written — after the command's
// transaction, from a read snapshot — not inside the transaction that took the
// command in. Messages committed after /queue and /stats are in their answers; the
// command's own transaction read nothing of the queue.
func TestReadAnswersAreWrittenWhenSent(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "How do I export deals?"))
	chat := h.createChats()[1]
	h.sent()

	h.process(h.private(agent, "/queue"))
	h.process(h.private(agent, "/stats"))
	h.process(h.private(admin, "all chats"))
	h.process(h.group(admin, chat, "", "Anyone there?"))
	h.process(h.group(agent, chat, "", "Yes, one moment"))
	h.process(h.group(admin, chat, "", "Thanks"))
	h.process(h.group(admin, chat, "", "And one more thing"))

	texts := map[string]string{}
	for _, e := range h.sent() {
		texts[sentTo(t, e)] += text(t, e)
	}
	for who, want := range map[string]string{
		"50": "new messages: 2 ", // the question and "Anyone there?" were answered; the last two wait
		"27": "Your questions",
	} {
		if !strings.Contains(texts[who], want) {
			t.Errorf("the answer to %s lacks %q:\n%s", who, want, texts[who])
		}
	}
	if want := "First response (1)"; !strings.Contains(texts["50"], want) {
		t.Errorf("the figures lack %q, the answer that came after /stats:\n%s", want, texts["50"])
	}
}

// TestReadAnswersNeedNoWriter: the answer to /queue is written while the writer is
// held by another transaction: building it waits for no writer, so it holds up
// no other portal's events, however long it takes.
func TestReadAnswersNeedNoWriter(t *testing.T) {
	h := newHarness(t)
	h.process(h.private(admin, "How do I export deals?"))
	h.createChats()
	h.sent()
	h.process(h.private(agent, "/queue"))
	var queue storage.OutboxRow
	for _, e := range h.rawSent() {
		if e.Answer != "" {
			queue = e
		}
	}
	if queue.ID == 0 {
		t.Fatal("/queue queued no answer to write")
	}

	held, release := make(chan struct{}), make(chan struct{})
	writer := make(chan error, 1)
	go func() {
		writer <- h.store.Update(context.Background(), func(*storage.Tx) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	written := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	a, err := h.bot.WriteAnswer(ctx, h.store, queue.Answer, queue.PortalID, act(t, queue))
	cancel()
	if err == nil {
		written++
	}
	close(release)
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	if written != 1 {
		t.Fatalf("no answer written while the writer was held: %v", err)
	}
	if msg := a.(bitrix24.SendMessage); !strings.Contains(msg.Text, "Waiting for an answer[/b]: 1") || msg.To != "50" {
		t.Errorf("answer to %s:\n%s", msg.To, msg.Text)
	}
}
