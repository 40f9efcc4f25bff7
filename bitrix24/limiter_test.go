package bitrix24

import (
	"context"
	"testing"
	"time"
)

// The burst (less the reserve) goes at once, then requests are spaced by 1/rate.
func TestLimiterPaces(t *testing.T) {
	l := NewLimiter(50, 6) // 5 at once, then one each 20 ms
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
	l := NewLimiter(0.001, 4) // 3 places; draining takes for ever
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
