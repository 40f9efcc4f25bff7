package delivery

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/bitrix24/b24test"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// TestTakeoverRespectsTheBucket: a replica that takes a portal over from one that
// has just spent the portal's bucket starts as if the bucket were full, so the two
// together never exceed it.
func TestTakeoverRespectsTheBucket(t *testing.T) {
	url := storagetest.OnPostgres(t, filepath.Join(t.TempDir(), "takeover.db"))
	fake := b24test.New(t)
	fake.SetRateLimit(2, 5)
	var sent atomic.Int64
	fake.Handle("imbot.v2.Chat.Message.send", func(bitrix24.Form) (any, *bitrix24.Error) {
		return map[string]any{"id": 100 + sent.Add(1)}, nil
	})
	a, b := storagetest.OpenAt(t, url), storagetest.OpenAt(t, url)
	portal, err := a.EnsurePortal(t.Context(), "takeover", "")
	if err != nil {
		t.Fatal(err)
	}
	// A v2 bot: one call a request, so every reply spends the bucket.
	if err := a.Update(t.Context(), func(tx *storage.Tx) error { return tx.SetBotV2(portal.ID, 1, "token", storage.EventsHook) }); err != nil {
		t.Fatal(err)
	}
	run := func(s *storage.Store) (stop func()) {
		d := New(s, Single(bitrix24.NewClient(fake.WebhookURL(), bitrix24.WithLimiter(bitrix24.NewLimiter(2, 5)))), settle(), nil, nil)
		d.Poll = 20 * time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.Run(ctx, ctx); close(done) }()
		return func() { cancel(); <-done }
	}
	// A sends five at once: the portal's bucket is full.
	queue(t, a, portal.ID, lanes(1, 5), 1)
	stopA := run(a)
	waitUntil(t, func() bool { return len(fake.CallsTo("imbot.v2.Chat.Message.send")) == 5 })
	stopA() // A stops sending but still holds the portal
	// B has five more due, and finds the portal A's until A is gone.
	queue(t, b, portal.ID, lanes(6, 5), 1)
	stopB := run(b)
	defer stopB()
	time.Sleep(100 * time.Millisecond)
	a.Close()
	waitUntil(t, func() bool { return len(fake.CallsTo("imbot.v2.Chat.Message.send")) == 10 })
	if n := fake.LimitRejections(); n != 0 {
		t.Fatalf("the portal refused %d requests over its limit after the takeover", n)
	}
}
