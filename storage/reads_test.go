package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"modernc.org/sqlite"
)

// TestReadsCostTheDialogsShown: a client who floods one dialog with unanswered
// messages does not make the agents' queue, their /stats, anyone's "all chats" or
// an agent's answer read the dialog once per message (issue 17: 10,000 messages made /queue take 15 s).
// Counted in database pages each read touches, on the engine under test: a range
// of an index is a page per ~100 messages; a look-up per message was thousands of
// pages per message.
func TestReadsCostTheDialogsShown(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	const flood = 3000
	var portalID, clientID int64 = 0, 27
	var flooded, answered, quiet Dialog
	mustUpdate(t, s, func(tx *Tx) error {
		p, err := tx.EnsurePortal("reads", "")
		if err != nil {
			return err
		}
		portalID = p.ID
		open := func(client int64) (Dialog, error) {
			d, err := tx.CreateDialog(NewDialog{PortalID: p.ID, ClientID: client, Language: "en", Title: title})
			if err == nil {
				err = tx.AddDialogEvent(d, LifeOpened, client)
			}
			return d, err
		}
		if flooded, err = open(clientID); err != nil {
			return err
		}
		if answered, err = open(clientID); err != nil {
			return err
		}
		if quiet, err = open(28); err != nil {
			return err
		}
		return nil
	})
	// The answered dialog: the client asked twice, an agent answered, the client
	// wrote twice more (waiting: 2) and deleted the first of those (waiting: 1);
	// then two other members wrote, which the client has not seen (unread: 2). The
	// quiet dialog, another client's, was answered.
	var msgID int64
	add := func(tx *Tx, d Dialog, author int64, role string) (int64, error) {
		msgID++
		seq, _, err := tx.AddMessage(Message{DialogID: d.ID, BitrixMessageID: msgID, AuthorID: author, AuthorRole: role, Text: "x"})
		if err == nil && role == RoleClient {
			err = tx.SetLastSeen(d.ID, author, seq)
		}
		if err == nil && role != RoleOther {
			kind := map[string]string{RoleClient: LifeClientMessage, RoleAgent: LifeAgentAnswer}[role]
			err = tx.AddDialogEvent(d, kind, author)
		}
		return msgID, err
	}
	mustUpdate(t, s, func(tx *Tx) error {
		for _, step := range []struct {
			d    Dialog
			by   int64
			role string
		}{{answered, clientID, RoleClient}, {answered, clientID, RoleClient}, {answered, 50, RoleAgent},
			{answered, clientID, RoleClient}, {answered, clientID, RoleClient},
			{quiet, 28, RoleClient}, {quiet, 50, RoleAgent}, {answered, 51, RoleOther}, {answered, 52, RoleOther}} {
			if _, err := add(tx, step.d, step.by, step.role); err != nil {
				return err
			}
		}
		_, err := tx.DeleteMessage(answered.ID, 4, clientID)
		return err
	})
	for from := 0; from < flood; from += 500 {
		mustUpdate(t, s, func(tx *Tx) error {
			for range 500 {
				if _, err := add(tx, flooded, clientID, RoleClient); err != nil {
					return err
				}
			}
			return nil
		})
	}

	// The answers first: the reads still say what they said.
	var waiting []WaitingDialog
	var list []DialogSummary
	var figures ServiceFigures
	err := s.View(ctx, func(tx *Tx) (err error) {
		if waiting, err = tx.WaitingDialogs(portalID); err != nil {
			return err
		}
		if list, err = tx.ClientDialogs(portalID, clientID); err != nil {
			return err
		}
		figures, err = tx.ServiceFigures(portalID, tx.Now().AddDate(0, 0, -1), tx.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, w := range waiting {
		got += fmt.Sprintf("№%d waits %d; ", w.Number, w.Waiting)
	}
	if want := fmt.Sprintf("№%d waits 1; №%d waits %d; ", answered.Number, flooded.Number, flood); got != want {
		t.Errorf("queue: %s, want %s", got, want)
	}
	got = ""
	for _, d := range list {
		got += fmt.Sprintf("№%d unread %d; ", d.Number, d.Unread)
	}
	if want := fmt.Sprintf("№%d unread 2; №%d unread 0; ", answered.Number, flooded.Number); got != want {
		t.Errorf("all chats: %s, want %s", got, want)
	}
	if figures.Opened != 3 || figures.FirstResponse.Count != 2 {
		t.Errorf("figures: %+v", figures)
	}

	// Then what they cost: the queue reads the flood once, as one range of an index
	// (a page holds ~100 entries); "all chats", /stats and the service times an
	// agent's answer records do not read it at all.
	for _, read := range []struct {
		name string
		sql  string
		args []any
		most int
	}{
		{"queue", waitingSQL, []any{portalID}, flood / 10},
		{"all chats", clientDialogsSQL, []any{portalID, clientID}, 30},
		{"stats", figureCountsSQL, []any{portalID, 0, millis(s.Now()) + 1}, 30},
		// In the writer: what an agent's answer to the flood measures.
		{"an answer's service times", serviceTimesSQL, []any{flooded.ID, int64(1) << 40}, 30},
	} {
		pages := pagesTouched(t, s, read.sql, read.args...)
		t.Logf("%s: %d pages", read.name, pages)
		if pages > read.most {
			t.Errorf("%s touched %d pages, more than %d, with %d messages in one dialog", read.name, pages, read.most, flood)
		}
	}
}

// pagesTouched runs a read and counts the database pages it touched: on SQLite the
// reading connection's page cache hits and misses, on PostgreSQL the shared buffers
// EXPLAIN (ANALYZE, BUFFERS) reports.
func pagesTouched(t *testing.T, s *Store, q string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	if s.pg {
		var plan string
		if err := s.read.QueryRowContext(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+rebind(q), args...).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		var top []struct {
			Plan struct {
				Hit  int `json:"Shared Hit Blocks"`
				Read int `json:"Shared Read Blocks"`
			}
		}
		if err := json.Unmarshal([]byte(plan), &top); err != nil || len(top) != 1 {
			t.Fatalf("plan %s: %v", plan, err)
		}
		return top[0].Plan.Hit + top[0].Plan.Read
	}
	conn, err := s.read.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	counters := func() (n int) {
		err := conn.Raw(func(dc any) error {
			st, ok := dc.(sqlite.DBStatus)
			if !ok {
				return fmt.Errorf("%T has no counters", dc)
			}
			for _, op := range []sqlite.DBStatusOp{sqlite.DBStatusCacheHit, sqlite.DBStatusCacheMiss} {
				v, _, err := st.Status(op, true)
				if err != nil {
					return err
				}
				n += v
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	counters() // from zero
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	return counters()
}
