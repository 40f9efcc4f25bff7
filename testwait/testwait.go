// Package testwait waits, in tests, for what happens in its own time: a reply another
// goroutine sends, a row another process writes, a page that changes. It is the one
// way the tests wait for a condition; none sleeps and then asserts.
package testwait

import (
	"testing"
	"time"
)

// Limit is how long For waits. It is generous because a loaded CI machine runs many
// times slower than a laptop, and it costs nothing when the condition comes true:
// the wait ends at once.
const Limit = 30 * time.Second

// step is how often the condition is checked: often enough to measure latencies to
// a hundredth of a second, seldom enough not to load what is being waited for.
const step = 10 * time.Millisecond

// For waits until cond holds, and fails the test if it does not within Limit. what
// says what is awaited, for the failure: "timed out after 30s waiting for <what>".
// cond runs on the test's goroutine, so it may fail the test itself.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Limit, what, cond)
}

// Within is For with another limit: a longer one for the long loads, or a shorter one
// where the limit is what the test proves (an answer before a backoff would end).
func Within(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(step)
	}
}
