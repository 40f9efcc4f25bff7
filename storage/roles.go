package storage

import (
	"database/sql"
	"fmt"
	"slices"
)

// Roles are a user's roles on a portal.
type Roles struct{ Agent, Tech, Client bool }

// RolesOf reads a user's roles on a portal.
func (tx *Tx) RolesOf(portalID, userID int64) (Roles, error) {
	var r Roles
	if userID <= 0 {
		return r, nil
	}
	key := [2]int64{portalID, userID}
	if r, ok := tx.roles[key]; ok { // asked on every event; changed by Grant, Revoke and SeedRoles only
		return r, nil
	}
	rows, err := tx.query(`SELECT role FROM roles WHERE portal_id = ? AND user_id = ?`, portalID, userID)
	names, err := collect(rows, err, scanString)
	if err != nil {
		return r, fmt.Errorf("roles of user %d: %w", userID, err)
	}
	r.Agent, r.Tech, r.Client = slices.Contains(names, RoleAgent), slices.Contains(names, RoleTech), slices.Contains(names, RoleClient)
	if tx.roles == nil {
		tx.roles = map[[2]int64]Roles{}
	}
	tx.roles[key] = r
	return r, nil
}

// Members lists the users with a role on a portal, by ID.
func (tx *Tx) Members(portalID int64, role string) ([]int64, error) {
	rows, err := tx.query(`SELECT user_id FROM roles WHERE portal_id = ? AND role = ? ORDER BY user_id`, portalID, role)
	ids, err := collect(rows, err, scanInt64)
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", role, err)
	}
	return ids, nil
}

// Grant gives users a role on a portal; those who have it keep it.
func (tx *Tx) Grant(portalID int64, role string, userIDs []int64, by int64) error {
	clear(tx.roles)
	for _, id := range userIDs {
		_, err := tx.exec(`INSERT INTO roles (portal_id, role, user_id, added_by, added_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, portalID, role, id, by, millis(tx.now))
		if err != nil {
			return fmt.Errorf("grant %s to %d: %w", role, id, err)
		}
	}
	return nil
}

// Revoke takes a role on a portal from users.
func (tx *Tx) Revoke(portalID int64, role string, userIDs []int64) error {
	clear(tx.roles)
	for _, id := range userIDs {
		if _, err := tx.exec(`DELETE FROM roles WHERE portal_id = ? AND role = ? AND user_id = ?`, portalID, role, id); err != nil {
			return fmt.Errorf("revoke %s from %d: %w", role, id, err)
		}
	}
	return nil
}

// SeedRoles gives the portal its first roles, once: later changes are made in the
// chat, and a configuration edited afterwards does not undo them. It reports
// whether it seeded.
func (tx *Tx) SeedRoles(portalID int64, seed map[string][]int64) (bool, error) {
	clear(tx.portals)
	res, err := tx.exec(`UPDATE portals SET roles_seeded = TRUE WHERE id = ? AND NOT roles_seeded`, portalID)
	if err != nil {
		return false, fmt.Errorf("seed roles of portal %d: %w", portalID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	for _, role := range []string{RoleAgent, RoleTech, RoleClient} {
		if err := tx.Grant(portalID, role, seed[role], 0); err != nil {
			return false, err
		}
	}
	return true, nil
}

func scanString(r *sql.Rows) (s string, err error) { err = r.Scan(&s); return s, err }

func scanInt64(r *sql.Rows) (n int64, err error) { err = r.Scan(&n); return n, err }
