package testwait_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"supportbot/testwait"
)

// The wait ends as soon as the condition holds, having checked it again and again.
func TestForEndsWhenTheConditionHolds(t *testing.T) {
	checks := 0
	testwait.For(t, "the third check", func() bool { checks++; return checks == 3 })
	if checks != 3 {
		t.Fatalf("the condition was checked %d times, want 3", checks)
	}
}

// failure is a testing.TB whose Fatalf records the message and ends its goroutine,
// as the real one does, so that the failing path can be watched from outside.
type failure struct {
	testing.TB
	message string
}

func (f *failure) Helper() {}

func (f *failure) Fatalf(format string, args ...any) {
	f.message = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// A condition that never holds fails the test after the limit, saying what was
// awaited.
func TestWithinFailsSayingWhat(t *testing.T) {
	f := &failure{TB: t}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		testwait.Within(f, 50*time.Millisecond, "the flag", func() bool { return false })
	}()
	<-done
	if f.message != "timed out after 50ms waiting for the flag" {
		t.Fatalf("failure %q", f.message)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("gave up after %v, before the limit", d)
	}
}
