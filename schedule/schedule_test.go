package schedule

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunRepeatsAndStops: a job runs at once and again every interval, a failure does
// not stop it, and Run returns once the context ends.
func TestRunRepeatsAndStops(t *testing.T) {
	var runs atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Run(ctx, slog.New(slog.DiscardHandler), Job{Name: "j", Every: 10 * time.Millisecond, Run: func(context.Context) error {
			if runs.Add(1) == 3 {
				cancel()
			}
			return errors.New("fails every time")
		}})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if n := runs.Load(); n != 3 {
		t.Fatalf("%d runs", n)
	}
}
