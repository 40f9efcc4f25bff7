package b24test

import (
	"testing"
	"time"
)

// The bucket's arithmetic on a synthetic clock: a client that sends a full burst and
// then paces itself at exactly the rate is never refused, however long it goes on.
func TestBucketExact(t *testing.T) {
	t0 := time.Now()
	for _, c := range []struct {
		rate  float64
		burst int
		step  time.Duration // exactly 1/rate, rounded up to a nanosecond
	}{
		{2, 50, 500 * time.Millisecond},
		{20, 5, 50 * time.Millisecond},
		{5, 250, 200 * time.Millisecond},
		{3, 10, 333333334 * time.Nanosecond},
		{7, 1, 142857143 * time.Nanosecond},
	} {
		b := bucket{rate: c.rate, burst: float64(c.burst)}
		for i := range c.burst {
			if !b.allow(t0) {
				t.Fatalf("rate %v burst %d: request %d of the burst refused", c.rate, c.burst, i+1)
			}
		}
		if b.allow(t0) {
			t.Fatalf("rate %v burst %d: a request past the burst passed", c.rate, c.burst)
		}
		now := t0
		for i := range 10000 {
			now = now.Add(c.step)
			if !b.allow(now) {
				t.Fatalf("rate %v burst %d: paced request %d refused (level %v)", c.rate, c.burst, i+1, b.level)
			}
			if i%1000 == 0 && b.allow(now) {
				t.Fatalf("rate %v burst %d: a second request in the same instant passed", c.rate, c.burst)
			}
		}
	}
}

func TestBucketDrainsAndIsOff(t *testing.T) {
	t0 := time.Now()
	b := bucket{rate: 2, burst: 50}
	for range 50 {
		b.allow(t0)
	}
	// A quiet minute empties the bucket: a full burst fits again, not more.
	later := t0.Add(time.Minute)
	for i := range 50 {
		if !b.allow(later) {
			t.Fatalf("request %d after a quiet minute refused", i+1)
		}
	}
	if b.allow(later) {
		t.Fatal("the bucket overflowed")
	}
	// 0.25 s drains half a request: not enough.
	if b.allow(later.Add(250 * time.Millisecond)) {
		t.Fatal("half a request of room let a request in")
	}
	if !b.allow(later.Add(500 * time.Millisecond)) {
		t.Fatal("a drained request's room was not given")
	}
	off := bucket{rate: 0, burst: 1}
	for range 1000 {
		if !off.allow(t0) {
			t.Fatal("a disabled bucket refused")
		}
	}
}
