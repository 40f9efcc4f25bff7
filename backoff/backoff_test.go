package backoff

import (
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	for _, c := range []struct {
		base, limit time.Duration
		failures    int
		want        time.Duration
	}{
		{time.Second, time.Minute, 0, time.Second},
		{time.Second, time.Minute, -1, time.Second},
		{time.Second, time.Minute, 1, 2 * time.Second},
		{time.Second, time.Minute, 5, 32 * time.Second},
		{time.Second, time.Minute, 6, time.Minute},
		{2 * time.Second, 5 * time.Minute, 1 << 30, 5 * time.Minute}, // no overflow to a negative wait
		{50 * time.Millisecond, time.Second, 3, 400 * time.Millisecond},
		{time.Minute, time.Second, 3, time.Second}, // a base above the limit: the limit
	} {
		if got := Wait(c.base, c.limit, c.failures); got != c.want {
			t.Errorf("Wait(%v, %v, %d) = %v, want %v", c.base, c.limit, c.failures, got, c.want)
		}
	}
}
