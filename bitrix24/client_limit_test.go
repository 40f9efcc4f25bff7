package bitrix24_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"supportbot/bitrix24"
)

type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	waits int
}

func (r *recorder) ObserveCall(method, outcome string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[method+" "+outcome]++
}

func (r *recorder) ObserveRateLimitWait(time.Duration) {
	r.mu.Lock()
	r.waits++
	r.mu.Unlock()
}

// The client paces itself: with a limiter of 20/s and burst 4 (3 at once, one place
// in reserve), 9 calls take at least 6/20 s, and the observer sees the waits.
func TestClientRateLimited(t *testing.T) {
	var n atomic.Int32
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		writeBody(w, 200, "application/json", `{"result":true}`)
	})
	rec := &recorder{}
	c := bitrix24.NewClient(base, bitrix24.WithLimiter(bitrix24.NewLimiter(20, 4)), bitrix24.WithObserver(rec))
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 9; i++ {
		wg.Go(func() {
			if _, err := c.Call(context.Background(), "scope", nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d < 290*time.Millisecond {
		t.Fatalf("9 calls took %v", d)
	}
	if rec.calls["scope ok"] != 9 || rec.waits < 5 {
		t.Fatalf("observed %v, %d waits", rec.calls, rec.waits)
	}
}

// QUERY_LIMIT_EXCEEDED means the portal's bucket is full: the limiter fills up and the
// next call waits.
func TestQueryLimitFillsLimiter(t *testing.T) {
	var n atomic.Int32
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			writeBody(w, 503, "application/json", `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`)
			return
		}
		writeBody(w, 200, "application/json", `{"result":true}`)
	})
	rec := &recorder{}
	c := bitrix24.NewClient(base, bitrix24.WithLimiter(bitrix24.NewLimiter(20, 10)), bitrix24.WithObserver(rec))
	_, err := c.Call(context.Background(), "scope", nil)
	if !errors.Is(err, bitrix24.ErrQueryLimitExceeded) {
		t.Fatalf("err = %v", err)
	}
	start := time.Now()
	if _, err := c.Call(context.Background(), "scope", nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("the call after QUERY_LIMIT_EXCEEDED waited only %v", d)
	}
	if rec.calls["scope QUERY_LIMIT_EXCEEDED"] != 1 || rec.calls["scope ok"] != 1 {
		t.Fatalf("observed %v", rec.calls)
	}
}

func TestOperatingResetAt(t *testing.T) {
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/rest/1/s3cr3tw3bh00kc0de/batch.json" {
			writeBody(w, 200, "application/json", `{"result":{"result":{"a":1},"result_error":{"b":{"error":"OPERATION_TIME_LIMIT","error_description":"blocked"}},
				"result_time":{"b":{"start":1,"operating_reset_at":1795600000}}},"time":{}}`)
			return
		}
		writeBody(w, 429, "application/json", `{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked due to operation time limit.","time":{"start":1795590000.5,"operating_reset_at":1795600000}}`)
	})
	c := bitrix24.NewClient(base)
	_, err := c.Call(context.Background(), "imbot.message.add", map[string]any{"DIALOG_ID": "1"})
	var be *bitrix24.Error
	if !errors.As(err, &be) || !be.ResetAt.Equal(time.Unix(1795600000, 0)) || !be.Temporary() {
		t.Fatalf("err = %#v", err)
	}
	res, err := c.Batch(context.Background(), []bitrix24.BatchCommand{{Key: "a", Method: "scope"}, {Key: "b", Method: "imbot.message.add"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.As(res[1].Err, &be) || !be.ResetAt.Equal(time.Unix(1795600000, 0)) {
		t.Fatalf("batch error = %#v", res[1].Err)
	}
}

// TestReserve: a place reserved in the portal's bucket is the next request's under
// the context Reserve returns, which does not wait again, and only that one's: the
// request after it waits for a place of its own. Reserve waits under its first
// context and fails if that ends first.
func TestReserve(t *testing.T) {
	base := handServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, 200, "application/json", `{"result":true}`)
	})
	rec := &recorder{}
	// 20/s, burst 2: one place, taken at the start (a new limiter starts full).
	c := bitrix24.NewClient(base, bitrix24.WithLimiter(bitrix24.NewLimiter(20, 2)), bitrix24.WithObserver(rec))
	waits := func() int { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.waits }
	ctx, err := c.Reserve(context.Background(), context.Background())
	if err != nil || waits() != 1 {
		t.Fatalf("reserve: %v, %d waits, want the one for the full bucket", err, waits())
	}
	if _, err := c.Call(ctx, "scope", nil); err != nil || waits() != 1 {
		t.Fatalf("the request with the reserved place: %v, %d waits", err, waits())
	}
	if _, err := c.Call(ctx, "scope", nil); err != nil || waits() != 2 {
		t.Fatalf("the request after it: %v, %d waits, want a wait of its own", err, waits())
	}
	// A reservation whose wait ends fails.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Reserve(cancelled, context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("a reservation whose wait ended: %v", err)
	}
}
