package bitrix24

import (
	"context"
	"testing"
	"time"

	"supportbot/testwait"
)

// The burst (less the reserve) goes at once, then requests are spaced by 1/rate.
func TestLimiterPaces(t *testing.T) {
	l := NewLimiter(50, 6) // 5 at once, then one each 20 ms
	l.level = 0            // an empty bucket
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < 5; i++ {
		if w, err := l.Wait(ctx); err != nil || w != 0 {
			t.Fatalf("request %d of the burst waited %v (%v)", i, w, err)
		}
	}
	for i := 0; i < 5; i++ {
		if _, err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Five more at 50/s take at least 100 ms.
	if d := time.Since(start); d < 95*time.Millisecond {
		t.Fatalf("ten requests took %v; the limiter let them through too fast", d)
	}
}

func TestLimiterCancelGivesBack(t *testing.T) {
	l := NewLimiter(1, 2) // one at once, then one a second
	l.level = 0
	l.Wait(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := l.Wait(ctx); err == nil {
		t.Fatal("no error when the context ended first")
	}
	l.mu.Lock()
	level := l.level
	l.mu.Unlock()
	if level > 1.01 {
		t.Fatalf("the cancelled wait kept its place: level %.2f", level)
	}
}

func TestLimiterFill(t *testing.T) {
	l := NewLimiter(100, 11)
	l.Fill()
	w, err := l.Wait(context.Background())
	if err != nil || w < 5*time.Millisecond {
		t.Fatalf("after Fill the next request waited %v (%v)", w, err)
	}
}

// TryTake takes a free place and never waits for one.
func TestLimiterTryTake(t *testing.T) {
	l := NewShare(0.001, 4) // 3 places, none spent; draining takes for ever
	for i := range 3 {
		if !l.TryTake() {
			t.Fatalf("place %d of 3 refused", i+1)
		}
	}
	if l.TryTake() {
		t.Fatal("a fourth place taken from a full bucket")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Wait(ctx); err == nil {
		t.Fatal("Wait on a full bucket did not wait")
	}
}

// A new limiter assumes the bucket full: the process before it may have filled it,
// and a restart must not cost a QUERY_LIMIT_EXCEEDED.
func TestLimiterStartsFull(t *testing.T) {
	l := NewLimiter(2, 50)
	w, err := l.Wait(context.Background())
	if err != nil || w < 400*time.Millisecond {
		t.Fatalf("the first request of a new limiter waited %v (%v)", w, err)
	}
}

// A poll (WaitLow) lets a request waiting for room go first.
func TestWaitLowYields(t *testing.T) {
	l := NewLimiter(20, 2) // full: one place each 50 ms
	done := make(chan struct{})
	go func() {
		l.Wait(context.Background())
		close(done)
	}()
	testwait.For(t, "the request to wait", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.waiting == 1 })
	if _, err := l.WaitLow(context.Background(), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	default:
		t.Fatal("the poll went before the request that waited")
	}
}

// A poll yields only until its time is up: a steady stream of requests cannot hold it
// back for ever.
func TestWaitLowNotStarved(t *testing.T) {
	l := NewLimiter(50, 2)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	for range 3 {
		go func() {
			for ctx.Err() == nil {
				l.Wait(ctx)
			}
		}()
	}
	until := time.Now().Add(100 * time.Millisecond)
	w, err := l.WaitLow(context.Background(), until)
	if err != nil || time.Now().Before(until) || w > 2*time.Second {
		t.Fatalf("the poll waited %v (%v)", w, err)
	}
}
