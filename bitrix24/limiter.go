package bitrix24

import (
	"context"
	"sync"
	"time"
)

// Limiter paces the requests to one portal the way the portal's own leaky bucket
// counts them: each request adds one, the bucket drains at a steady rate, and a
// request that would overflow it waits instead of being refused. Share one Limiter
// between every caller of a portal.
//
// It keeps one place of the bucket in reserve: the portal counts requests when they
// arrive, and network jitter can bring two of them closer together than they left.
type Limiter struct {
	mu       sync.Mutex
	perSec   float64
	capacity float64
	level    float64   // requests in the bucket, including those waiting for room
	at       time.Time // when level was computed
}

// NewLimiter returns a limiter for a portal that drains perSecond requests a second
// and holds burst.
func NewLimiter(perSecond float64, burst int) *Limiter {
	if perSecond <= 0 {
		perSecond = 2
	}
	capacity := float64(burst - 1)
	if capacity < 1 {
		capacity = 1
	}
	return &Limiter{perSec: perSecond, capacity: capacity}
}

// drain brings level to now.
func (l *Limiter) drain(now time.Time) {
	if !l.at.IsZero() {
		l.level -= now.Sub(l.at).Seconds() * l.perSec
		if l.level < 0 {
			l.level = 0
		}
	}
	l.at = now
}

// Wait takes a place in the bucket, waiting until there is room. It returns how long
// it waited. If ctx ends first the place is given back.
func (l *Limiter) Wait(ctx context.Context) (time.Duration, error) {
	l.mu.Lock()
	l.drain(time.Now())
	l.level++
	over := l.level - l.capacity
	l.mu.Unlock()
	if over <= 0 {
		return 0, nil
	}
	wait := time.Duration(over / l.perSec * float64(time.Second))
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return wait, nil
	case <-ctx.Done():
		l.mu.Lock()
		l.drain(time.Now())
		l.level = max(l.level-1, 0)
		l.mu.Unlock()
		return 0, ctx.Err()
	}
}

// Fill records that the portal found its bucket full (QUERY_LIMIT_EXCEEDED): other
// applications on the portal, or on the same IP, share it. The next requests then
// wait for it to drain.
func (l *Limiter) Fill() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drain(time.Now())
	if l.level < l.capacity {
		l.level = l.capacity
	}
}

// TryTake takes a place in the bucket only if one is free now; it never waits. For
// requests that would rather not be made than wait (a page's checks, in their share).
func (l *Limiter) TryTake() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drain(time.Now())
	if l.level+1 > l.capacity {
		return false
	}
	l.level++
	return true
}

// A Pacer paces a client's requests: a *Limiter, or a share of one (see WithPacer).
type Pacer interface {
	// Wait takes a place for one request, or fails (then the request is not sent).
	Wait(ctx context.Context) (time.Duration, error)
	// Fill: the portal said its bucket is full.
	Fill()
}
