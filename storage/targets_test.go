package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"
)

// steps lists the due steps at the script's time as "kind/step" per dialog ID.
func (l *lifeScript) steps() map[int64]TargetStep {
	l.t.Helper()
	out := map[int64]TargetStep{}
	l.at(l.now.Sub(l.t0), func(tx *Tx) error {
		list, err := tx.DueTargetSteps(100)
		for _, s := range list {
			out[s.DialogID] = s
		}
		return err
	})
	return out
}

// TestWaitFollowsLife: an opening starts a wait for the first response, the client's
// further messages do not move it, an agent's answer ends it and takes the unowned
// dialog; the client's next message starts a wait for a reply, a resolve ends it, a
// reopening starts a first-response wait again.
func TestWaitFollowsLife(t *testing.T) {
	l := newLifeScript(t)
	p, _ := l.s.EnsurePortal(context.Background(), "a", "")
	l.open(0, p.ID, "q")
	d := l.byKey["q"]
	l.at(time.Minute, func(tx *Tx) error { return tx.SetDialogChat(d.ID, 2001) })
	record := func(offset time.Duration, kind string, actor int64) {
		l.t.Helper()
		l.at(offset, func(tx *Tx) error { return tx.AddDialogEvent(d, kind, actor) })
	}
	want := func(kind string, started time.Duration, owner int64) {
		t.Helper()
		s, ok := l.steps()[d.ID]
		if kind == "" {
			if ok {
				t.Fatalf("a step %+v, want none", s)
			}
			return
		}
		if !ok || s.WaitKind != kind || !s.WaitStarted.Equal(l.t0.Add(started)) || s.Step != StepSchedule || !s.Live || s.Owner != owner {
			t.Fatalf("step %+v (listed %v), want a %s wait from +%v owned by %d", s, ok, kind, started, owner)
		}
	}
	want(TimeFirstResponse, 0, 0)
	record(2*time.Minute, LifeClientMessage, 27)
	want(TimeFirstResponse, 0, 0)
	record(3*time.Minute, LifeAgentAnswer, 50)
	want("", 0, 0)
	record(4*time.Minute, LifeClientMessage, 27)
	want(TimeReply, 4*time.Minute, 50)
	record(5*time.Minute, LifeAgentAnswer, 51) // a second agent's answer takes nothing
	record(6*time.Minute, LifeClientMessage, 27)
	want(TimeReply, 6*time.Minute, 50)
	record(7*time.Minute, LifeResolved, 50)
	want("", 0, 0)
	record(8*time.Minute, LifeReopened, 50)
	want(TimeFirstResponse, 8*time.Minute, 50)

	var owners []int64
	l.at(9*time.Minute, func(tx *Tx) error {
		events, err := tx.dialogEvents(d.ID)
		for _, e := range events {
			if e.Kind == LifeOwner {
				owners = append(owners, e.ActorID)
			}
		}
		return err
	})
	if len(owners) != 1 || owners[0] != 50 {
		t.Fatalf("owner events by %v, want one by 50", owners)
	}
}

// TestClaimTargetStepOnce: of two transactions that read the same step, only the
// first claim wins; a claim for a wait that ended and started again loses too.
func TestClaimTargetStepOnce(t *testing.T) {
	l := newLifeScript(t)
	p, _ := l.s.EnsurePortal(context.Background(), "a", "")
	l.open(0, p.ID, "q")
	d := l.byKey["q"]
	s := l.steps()[d.ID]
	claim := func(s TargetStep, next string) (won bool) {
		l.at(l.now.Sub(l.t0), func(tx *Tx) (err error) {
			won, err = tx.ClaimTargetStep(s, next, l.t0.Add(time.Hour))
			return err
		})
		return won
	}
	if !claim(s, StepRemind) || claim(s, StepRemind) {
		t.Fatal("the same step was claimed twice, or not at all")
	}
	l.at(2*time.Minute, func(tx *Tx) error { return tx.AddDialogEvent(d, LifeAgentAnswer, 50) })
	l.at(3*time.Minute, func(tx *Tx) error { return tx.AddDialogEvent(d, LifeClientMessage, 27) })
	old := s
	old.Step, old.DueAt = StepRemind, l.t0.Add(time.Hour)
	if claim(old, StepMiss) {
		t.Fatal("a step of an ended wait was claimed")
	}
	if s := l.steps()[d.ID]; s.WaitKind != TimeReply || s.Step != StepSchedule {
		t.Fatalf("the new wait's step %+v", s)
	}
}

// TestOwnerChanges: SetOwner records each change once, and reports no change.
func TestOwnerChanges(t *testing.T) {
	l := newLifeScript(t)
	p, _ := l.s.EnsurePortal(context.Background(), "a", "")
	l.open(0, p.ID, "q")
	d := l.byKey["q"]
	var got []bool
	var owner int64
	l.at(time.Minute, func(tx *Tx) error {
		for _, o := range []int64{50, 50, 51, 0, 0} {
			changed, err := tx.SetOwner(d, o, 50)
			if err != nil {
				return err
			}
			got = append(got, changed)
		}
		desk, err := tx.DeskStates(d.PortalID)
		owner = desk[d.ID].Owner
		return err
	})
	if want := []bool{true, false, true, true, false}; len(got) != len(want) || owner != 0 {
		t.Fatalf("changes %v, owner %d", got, owner)
	}
	for i, w := range []bool{true, false, true, true, false} {
		if got[i] != w {
			t.Fatalf("changes %v", got)
		}
	}
	l.at(2*time.Minute, func(tx *Tx) error {
		if _, err := tx.SetOwner(d, 52, 52); err != nil {
			return err
		}
		states, err := tx.DeskStates(p.ID)
		if s := states[d.ID]; err == nil && (s.Owner != 52 || s.WaitKind != TimeFirstResponse) {
			t.Errorf("desk state %+v", s)
		}
		return err
	})
}

// BenchmarkDueTargetSteps: the sweep's read costs O(steps due), not O(dialogs): with
// 10 steps due among 2,000 or 20,000 active dialogs whose clients wait, it reads
// through the index on the due instant and takes about as long.
//
//	go test -run XXX -bench DueTargetSteps -benchtime 100x -count 3 ./storage/
func BenchmarkDueTargetSteps(b *testing.B) {
	for _, active := range []int{2000, 20000} {
		b.Run(fmt.Sprintf("dialogs=%d", active), func(b *testing.B) {
			t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
			s, _ := openTest(b, WithClock(func() time.Time { return t0 }))
			p, err := s.EnsurePortal(context.Background(), "a", "")
			if err != nil {
				b.Fatal(err)
			}
			const due = 10
			err = s.Update(context.Background(), func(tx *Tx) error {
				for i := range active {
					at := t0.Add(24 * time.Hour) // waiting, the reminder tomorrow
					if i%(active/due) == 0 {
						at = t0.Add(-time.Minute)
					}
					_, err := tx.exec(`INSERT INTO dialogs (portal_id, number, client_id, client_name, title, status, language,
						created_at, updated_at, last_activity_at, chat_id, wait_kind, wait_started_at, target_step, target_due_at)
						VALUES (?, ?, ?, '', 'q', 'active', 'en', ?, ?, ?, ?, ?, ?, ?, ?)`,
						p.ID, i+1, 1000+i, millis(t0), millis(t0), millis(t0), 100000+i, TimeReply, millis(t0), StepRemind, millis(at))
					if err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				err := s.View(context.Background(), func(tx *Tx) error {
					list, err := tx.DueTargetSteps(500)
					if err == nil && len(list) != due {
						return fmt.Errorf("%d steps due, want %d", len(list), due)
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDueTargetStepsUseTheIndex: SQLite reads the due steps through their index, so
// the sweep's cost follows the steps due (BenchmarkDueTargetSteps measures it).
func TestDueTargetStepsUseTheIndex(t *testing.T) {
	s, _ := openTest(t)
	if s.pg {
		// PostgreSQL's planner picks by its statistics: the benchmark shows the cost there.
		return
	}
	var plan []string
	err := s.View(context.Background(), func(tx *Tx) error {
		rows, err := tx.query(`EXPLAIN QUERY PLAN SELECT `+targetStepColumns+` FROM dialogs d JOIN portals p ON p.id = d.portal_id
			WHERE d.target_due_at IS NOT NULL AND d.target_due_at <= ? ORDER BY d.target_due_at, d.id LIMIT ?`, 0, 10)
		list, err := collect(rows, err, func(r *sql.Rows) (string, error) {
			var id, parent, unused int
			var detail string
			err := r.Scan(&id, &parent, &unused, &detail)
			return detail, err
		})
		plan = list
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "dialogs_target_due") {
		t.Fatalf("the due steps are not read through their index:\n%s", strings.Join(plan, "\n"))
	}
}
