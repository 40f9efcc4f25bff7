package poller_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"supportbot/bitrix24"
	"supportbot/poller"
	"supportbot/storage/storagetest"
	"supportbot/testwait"
)

// TestTakeoverMovesThePolling: two replicas on PostgreSQL share a fetch portal, and
// only the holder of its claim polls it. When the session holding the claim is
// terminated (pg_terminate_backend; the rest of that replica's pool lives on), the
// first replica's poller looks at its claim again on its next rescan: it either
// takes the claim again on a new session or, the other having taken it, stops its
// loop. Either way, once it settles, one replica polls, and a question is taken in
// once.
func TestTakeoverMovesThePolling(t *testing.T) {
	url := storagetest.OnPostgres(t, filepath.Join(t.TempDir(), "takeover.db"))
	a, b := storagetest.OpenAt(t, url), storagetest.OpenAt(t, url)
	_, portal, fake, client := setUpOn(t, a)
	callers := func(int64) (bitrix24.Caller, error) { return client, nil }
	obsA, obsB := &observed{}, &observed{}
	replica := func(obs *observed) *poller.Poller {
		return &poller.Poller{Store: a, Bot: newBot(), Log: quiet(), Obs: obs, Interval: 20 * time.Millisecond,
			Rescan: 20 * time.Millisecond, Callers: callers}
	}
	pa := replica(obsA)
	run(t, pa)
	testwait.For(t, "the first replica's polls", func() bool { return obsA.polled(portal.ID) >= 3 })
	pb := replica(obsB)
	pb.Store = b
	run(t, pb)
	// The second finds the portal claimed: by the time the first polled 5 more times,
	// the second has looked at the claim as often, and polled nothing.
	n := obsA.polled(portal.ID)
	testwait.For(t, "5 more polls of the first replica", func() bool { return obsA.polled(portal.ID) >= n+5 })
	if got := obsB.polled(portal.ID); got != 0 {
		t.Fatalf("the second replica polled a portal the first holds %d times", got)
	}

	storagetest.TerminateClaims(t, a, url)
	// The claim is asked after at most a second, and the loops follow on the next
	// rescan; then one of the two polls and the other does not.
	both := func() (int, int) { return obsA.polled(portal.ID), obsB.polled(portal.ID) }
	testwait.For(t, "the claim settled on one replica", func() bool {
		a0, b0 := both()
		obsA.mu.Lock()
		forgot := slices.Contains(obsA.forgot, portal.ID)
		obsA.mu.Unlock()
		return (forgot && b0 > 0) || a0 > n+5+60 // the second polls, or the first kept polling for over a second
	})
	a1, b1 := both()
	testwait.For(t, "6 more polls", func() bool { a2, b2 := both(); return a2+b2 >= a1+b1+6 })
	a2, b2 := both()
	if a2 > a1 && b2 > b1 {
		t.Fatalf("both replicas poll the portal after the takeover: %d and %d more polls", a2-a1, b2-b1)
	}

	fake.Message(27, "27", "open new")
	testwait.For(t, "the question taken in", func() bool { return obsA.count("processed")+obsB.count("processed") >= 1 })
	a3, b3 := both()
	testwait.For(t, "6 more polls", func() bool { a4, b4 := both(); return a4+b4 >= a3+b3+6 })
	if got := obsA.count("processed") + obsB.count("processed"); got != 1 {
		t.Errorf("the question was taken in %d times", got)
	}
	if d := dialogCount(t, a, portal.ID); d != 1 {
		t.Errorf("%d dialogs, want 1", d)
	}
}
