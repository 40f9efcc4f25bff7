package storage

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"
)

// TestPortalLife: a portal's life says the same in Go (the Portal's methods) and in
// SQL (the fragments every query uses), through a webhook-mode portal, an
// installation, a removal in the very instant of the installation, a reinstall, and
// a deleted bot.
func TestPortalLife(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	s, _ := openTest(t, WithClock(func() time.Time { return now }))
	ctx := context.Background()
	install := func(tx *Tx, member string) (int64, error) {
		p, err := tx.InstallPortal(Installation{MemberID: member, Domain: member + ".bitrix24.ru", ApplicationToken: "a"})
		return p.ID, err
	}
	cases := []struct {
		name                     string
		build                    func(tx *Tx) (int64, error)
		removed, installed, live bool
	}{
		{"webhook", func(tx *Tx) (int64, error) {
			p, err := tx.EnsurePortal("hook", "hook.bitrix24.ru")
			return p.ID, err
		}, false, false, true},
		{"installed", func(tx *Tx) (int64, error) { return install(tx, "inst") }, false, true, true},
		{"removed at once", func(tx *Tx) (int64, error) {
			id, err := install(tx, "gone")
			if err == nil {
				err = tx.MarkUninstalled(id)
			}
			return id, err
		}, true, false, false},
		{"installed again", func(tx *Tx) (int64, error) {
			id, err := install(tx, "again")
			if err == nil {
				err = tx.MarkUninstalled(id)
			}
			if err == nil {
				id, err = install(tx, "again")
			}
			return id, err
		}, false, true, true},
		{"bot deleted", func(tx *Tx) (int64, error) {
			id, err := install(tx, "nobot")
			if err == nil {
				err = tx.MarkBotDeleted(id)
			}
			return id, err
		}, false, true, false},
	}
	ids := make([]int64, len(cases))
	for i, c := range cases {
		if err := s.Update(ctx, func(tx *Tx) (err error) { ids[i], err = c.build(tx); return err }); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	installations, err := s.Installations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.readRows(ctx, "SELECT p.id FROM portals p WHERE "+portalLive("p")+" ORDER BY p.id")
	live, err := collect(rows, err, func(r *sql.Rows) (id int64, err error) { return id, r.Scan(&id) })
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		p, err := s.Portal(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if p.Removed() != c.removed || p.Installed() != c.installed || p.Live() != c.live {
			t.Errorf("%s: removed %v installed %v live %v, want %v %v %v", c.name, p.Removed(), p.Installed(), p.Live(),
				c.removed, c.installed, c.live)
		}
		inSQL := slices.ContainsFunc(installations, func(q Portal) bool { return q.ID == p.ID })
		if inSQL != p.Installed() {
			t.Errorf("%s: Installations lists it: %v; Installed: %v", c.name, inSQL, p.Installed())
		}
		if slices.Contains(live, p.ID) != p.Live() {
			t.Errorf("%s: live in SQL: %v; Live: %v", c.name, slices.Contains(live, p.ID), p.Live())
		}
	}
}
