// Package backoff is the one rule for how long to wait after failures: doubling
// from a base, to a limit. It imports nothing of ours, so every room may use it
// (storage too, which otherwise imports only the standard library and the drivers).
package backoff

import "time"

// Wait is the wait after failures failed tries: base doubled failures times, at
// most limit (base itself for none). It never overflows, however many failures.
func Wait(base, limit time.Duration, failures int) time.Duration {
	wait := base
	for i := 0; i < failures && wait < limit; i++ {
		wait *= 2
	}
	return min(wait, limit)
}
