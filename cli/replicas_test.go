package cli

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"supportbot/schedule"
	"supportbot/storage"
	"supportbot/storage/storagetest"
)

// TestJobsRunOnOneReplica: three replicas on one PostgreSQL database run the
// scheduled jobs' work once per round, not three times; when the replica that runs
// them is gone, another takes them over.
func TestJobsRunOnOneReplica(t *testing.T) {
	path := storagetest.OnPostgres(t, filepath.Join(t.TempDir(), "jobs.db"))
	ran := map[*storage.Store]*atomic.Int32{}
	var replicas [][]schedule.Job
	var stores []*storage.Store
	for range 3 {
		s := storagetest.OpenAt(t, path)
		n := &atomic.Int32{}
		ran[s] = n
		stores = append(stores, s)
		replicas = append(replicas, onOneReplica(s, []schedule.Job{
			{Name: "prune", Run: func(context.Context) error { n.Add(1); return nil }},
			{Name: "auto-close", Run: func(context.Context) error { n.Add(100); return nil }},
		}))
	}
	round := func() {
		for _, jobs := range replicas {
			for _, j := range jobs {
				if err := j.Run(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	total := func() (sum int32) {
		for _, n := range ran {
			sum += n.Load()
		}
		return sum
	}
	for range 3 {
		round()
	}
	if got := total(); got != 3*101 {
		t.Fatalf("3 rounds of two jobs ran %d units of work, want %d (each job once a round)", got, 3*101)
	}
	// The replica that ran them stops: the others take over.
	for i, s := range stores {
		if ran[s].Load() > 0 {
			s.Close()
			replicas = append(replicas[:i], replicas[i+1:]...)
			break
		}
	}
	round()
	if got := total(); got != 4*101 {
		t.Fatalf("after the runner stopped, a round ran %d units in all, want %d", got, 4*101)
	}
}
