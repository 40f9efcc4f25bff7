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
//
// A new limiter starts from a full bucket: the process before this one (a restart, a
// replica, `register` next to `serve`) may have just filled it, and the portal does
// not say. Requests go before polls (WaitLow), which take the bucket's spare room.
type Limiter struct {
	mu       sync.Mutex
	perSec   float64
	capacity float64
	level    float64   // requests in the bucket, including those waiting for room
	at       time.Time // when level was computed
	waiting  int       // Wait callers sleeping for room: polls let them go first
}

// NewLimiter returns a limiter for a portal that drains perSecond requests a second
// and holds burst, starting full.
func NewLimiter(perSecond float64, burst int) *Limiter {
	if perSecond <= 0 {
		perSecond = 2
	}
	capacity := float64(burst - 1)
	if capacity < 1 {
		capacity = 1
	}
	return &Limiter{perSec: perSecond, capacity: capacity, level: capacity, at: time.Now()}
}

// NewShare is a limiter for a share of a portal's limit that the bot keeps for
// itself (the part its checks may spend). Unlike the portal's bucket, which a
// process before this one may have filled, nothing has spent it yet: it starts empty.
func NewShare(perSecond float64, burst int) *Limiter {
	l := NewLimiter(perSecond, burst)
	l.level = 0
	return l
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
// it waited. If ctx ends first the place is given back. A request made with a
// Yielding context waits as WaitLow does.
func (l *Limiter) Wait(ctx context.Context) (time.Duration, error) {
	if until, ok := ctx.Value(lowPriority{}).(time.Time); ok {
		return l.WaitLow(ctx, until)
	}
	return l.take(ctx)
}

// take takes a place in the bucket, waiting until there is room.
func (l *Limiter) take(ctx context.Context) (time.Duration, error) {
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
	l.mu.Lock()
	l.waiting++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.waiting--
		l.mu.Unlock()
	}()
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

// WaitLow takes a place for a request that may yield to others (a poll of the event
// queue): while other requests wait for room, or there is none, it waits; at until it
// stops yielding and takes its place as Wait does. It returns how long it waited.
func (l *Limiter) WaitLow(ctx context.Context, until time.Time) (time.Duration, error) {
	start := time.Now()
	for yielded := false; ; yielded = true {
		now := time.Now()
		l.mu.Lock()
		l.drain(now)
		free := l.waiting == 0 && l.level+1 <= l.capacity
		// When the next place frees up, or a moment if others wait for it.
		next := max(time.Duration((l.level+1-l.capacity)/l.perSec*float64(time.Second)), time.Duration(float64(time.Second)/l.perSec))
		l.mu.Unlock()
		if free || !now.Before(until) {
			w, err := l.take(ctx)
			if yielded && err == nil {
				w = time.Since(start)
			}
			return w, err
		}
		t := time.NewTimer(min(next, until.Sub(now)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
	}
}

type lowPriority struct{}

// Yielding marks ctx's requests as ones that let others through the portal's limiter
// first (WaitLow), until until: a poll, which must not delay replies, nor be delayed
// without end by them.
func Yielding(ctx context.Context, until time.Time) context.Context {
	return context.WithValue(ctx, lowPriority{}, until)
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

// TakeFree takes a place only when one is free and no other request waits for one,
// waiting for that at most until; it reports whether it took one. For requests that
// would rather not be made than be ahead of any other (a page's checks): they never
// queue, so replies that wait always go first.
func (l *Limiter) TakeFree(ctx context.Context, until time.Time) bool {
	for {
		now := time.Now()
		l.mu.Lock()
		l.drain(now)
		if l.waiting == 0 && l.level+1 <= l.capacity {
			l.level++
			l.mu.Unlock()
			return true
		}
		next := max(time.Duration((l.level+1-l.capacity)/l.perSec*float64(time.Second)), time.Duration(float64(time.Second)/l.perSec))
		l.mu.Unlock()
		if !now.Before(until) {
			return false
		}
		t := time.NewTimer(min(next, until.Sub(now)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// A Pacer paces a client's requests: a *Limiter, or a share of one (see WithPacer).
type Pacer interface {
	// Wait takes a place for one request, or fails (then the request is not sent).
	Wait(ctx context.Context) (time.Duration, error)
	// Fill: the portal said its bucket is full.
	Fill()
}
