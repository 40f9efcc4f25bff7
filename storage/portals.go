package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Portal is a Bitrix24 portal the bot serves.
type Portal struct {
	ID           int64
	MemberID     string
	Domain       string
	BotID        int64
	BotDeletedAt time.Time // the bot was removed from the portal: send nothing more
	CreatedAt    time.Time
}

// BotDeleted reports whether the portal removed the bot.
func (p Portal) BotDeleted() bool { return !p.BotDeletedAt.IsZero() }

const portalColumns = "id, member_id, domain, bot_id, bot_deleted_at, created_at"

func scanPortal(row interface{ Scan(...any) error }) (Portal, error) {
	var p Portal
	var deleted, created sql.NullInt64
	if err := row.Scan(&p.ID, &p.MemberID, &p.Domain, &p.BotID, &deleted, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Portal{}, ErrNotFound
		}
		return Portal{}, err
	}
	p.BotDeletedAt = fromMillis(deleted)
	p.CreatedAt = fromMillis(created)
	return p, nil
}

// EnsurePortal returns the portal with memberID, creating it if it does not exist.
func (s *Store) EnsurePortal(ctx context.Context, memberID, domain string) (Portal, error) {
	var p Portal
	err := s.Update(ctx, func(tx *Tx) error {
		var err error
		p, err = tx.EnsurePortal(memberID, domain)
		return err
	})
	return p, err
}

// EnsurePortal returns the portal with memberID, creating it if it does not exist.
func (tx *Tx) EnsurePortal(memberID, domain string) (Portal, error) {
	clear(tx.portals)
	now := millis(tx.now)
	_, err := tx.exec(`INSERT INTO portals (member_id, domain, created_at, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (member_id) DO NOTHING`, memberID, domain, now, now)
	if err != nil {
		return Portal{}, fmt.Errorf("ensure portal: %w", err)
	}
	p, err := scanPortal(tx.queryRow("SELECT "+portalColumns+" FROM portals WHERE member_id = ?", memberID))
	if err != nil {
		return Portal{}, fmt.Errorf("ensure portal: %w", err)
	}
	return p, nil
}

// Portal reads a portal by ID. Every event reads its portal, so the writer keeps
// them cached; every write to portals drops the cache.
func (tx *Tx) Portal(id int64) (Portal, error) {
	if p, ok := tx.portals[id]; ok {
		return p, nil
	}
	p, err := scanPortal(tx.queryRow("SELECT "+portalColumns+" FROM portals WHERE id = ?", id))
	if err != nil {
		return Portal{}, fmt.Errorf("portal %d: %w", id, err)
	}
	tx.portals[id] = p
	return p, nil
}

// Portal reads a portal by ID outside a transaction.
func (s *Store) Portal(ctx context.Context, id int64) (Portal, error) {
	p, err := scanPortal(s.read.QueryRowContext(ctx, "SELECT "+portalColumns+" FROM portals WHERE id = ?", id))
	if err != nil {
		return Portal{}, fmt.Errorf("portal %d: %w", id, err)
	}
	return p, nil
}

// SetBotID records the portal's bot (learnt from registration or from an event) and
// clears a previous deletion: a bot that writes to us again is alive.
func (tx *Tx) SetBotID(portalID, botID int64) error {
	clear(tx.portals)
	_, err := tx.exec(`UPDATE portals SET bot_id = ?, bot_deleted_at = NULL, updated_at = ? WHERE id = ?`,
		botID, millis(tx.now), portalID)
	if err != nil {
		return fmt.Errorf("set bot of portal %d: %w", portalID, err)
	}
	return nil
}

// MarkBotDeleted records that the portal removed the bot: nothing more is sent there.
func (tx *Tx) MarkBotDeleted(portalID int64) error {
	clear(tx.portals)
	_, err := tx.exec(`UPDATE portals SET bot_deleted_at = ?, updated_at = ? WHERE id = ?`,
		millis(tx.now), millis(tx.now), portalID)
	if err != nil {
		return fmt.Errorf("mark bot of portal %d deleted: %w", portalID, err)
	}
	return nil
}

// MarkProcessed records an event's key. It reports false when the key was already
// there: the event is a duplicate and must not be processed again.
func (tx *Tx) MarkProcessed(portalID int64, key, eventType string) (bool, error) {
	res, err := tx.exec(`INSERT INTO processed_events (portal_id, event_key, event_type, received_at)
		VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, portalID, key, eventType, millis(tx.now))
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", key, err)
	}
	return n == 1, nil
}
