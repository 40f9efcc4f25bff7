package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
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

	ClientID         string // webhook mode: the CLIENT_ID the bot was registered with
	ClientEndpoint   string // app mode: "https://PORTAL/rest/"
	ApplicationToken string // app mode: what the portal's events carry
	AccessToken      string
	RefreshToken     string
	TokenExpiresAt   time.Time
	InstalledAt      time.Time
	UninstalledAt    time.Time // the application was removed: send nothing more

	API         string // "v1" or "v2": the chat-bot API the bot is registered with
	BotToken    string // a v2 bot's secret (webhook mode): never logged
	EventMode   string // a v2 bot's: "fetch" or "webhook"
	FetchOffset int64  // fetch mode: the first event not yet processed
	InstalledBy int64  // app mode: the administrator who installed the application
	RolesSeeded bool   // the configuration's role lists were applied (webhook mode, once)

	// BatchRefusedAt: when the portal last refused imbot.v2 methods inside batch; zero
	// while it takes them (or was never asked).
	BatchRefusedAt time.Time
	FetchBotID     int64  // the bot FetchOffset belongs to
	PendingToken   string // a v2 token being rotated in: never logged
	// EventsRefusedAt: when an event posted for the portal was last refused for its
	// application token (webhook mode); zero if none was.
	EventsRefusedAt time.Time
}

// BatchRetryAfter is how long a portal that refused imbot.v2 methods inside batch
// gets single calls before batch is tried again: a portal may be upgraded.
const BatchRetryAfter = 24 * time.Hour

// SingleCalls reports a portal whose v2 calls must go one a request at now: it
// refused them inside batch less than BatchRetryAfter ago.
func (p Portal) SingleCalls(now time.Time) bool {
	return !p.BatchRefusedAt.IsZero() && now.Sub(p.BatchRefusedAt) < BatchRetryAfter
}

// Offset is the fetch offset to send for the portal's bot: none for a bot other than
// the one it was stored for (a bot registered again has a queue of its own).
func (p Portal) Offset() int64 {
	if p.FetchBotID != p.BotID {
		return 0
	}
	return p.FetchOffset
}

// API versions and v2 event modes.
const (
	APIv1       = "v1"
	APIv2       = "v2"
	EventsFetch = "fetch"
	EventsHook  = "webhook"
)

// Fetches reports a bot whose events the bot polls for.
func (p Portal) Fetches() bool { return p.API == APIv2 && p.EventMode == EventsFetch }

// BotDeleted reports whether the portal removed the bot.
func (p Portal) BotDeleted() bool { return !p.BotDeletedAt.IsZero() }

// A portal's life, in one place: Removed, Installed, Live and Polled here, and
// portalLive and portalInstalled, the same in SQL, for every query that needs them.
// Installing (again) clears uninstalled_at (InstallPortal), so a removal is a set
// uninstalled_at, never one compared with installed_at.

// Removed reports whether the portal removed the application (and did not install
// it again since).
func (p Portal) Removed() bool { return !p.UninstalledAt.IsZero() }

// Installed reports the application installed on the portal and not removed (app
// mode; a webhook-mode portal never installs it).
func (p Portal) Installed() bool { return !p.InstalledAt.IsZero() && !p.Removed() }

// Live reports a portal the bot may still act on: neither the bot nor the
// application removed (a webhook-mode portal has no installation to remove).
func (p Portal) Live() bool { return !p.BotDeleted() && !p.Removed() }

// Polled reports a live portal whose bot fetches its events.
func (p Portal) Polled() bool { return p.Fetches() && p.BotID != 0 && p.Live() }

// portalLive is Live for the portals row named alias.
func portalLive(alias string) string {
	return "(" + alias + ".bot_deleted_at IS NULL AND " + alias + ".uninstalled_at IS NULL)"
}

// portalInstalled is Installed for the portals row named alias.
func portalInstalled(alias string) string {
	return "(" + alias + ".installed_at IS NOT NULL AND " + alias + ".uninstalled_at IS NULL)"
}

// LogValue keeps the tokens out of logs.
func (p Portal) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", p.ID), slog.String("member_id", p.MemberID),
		slog.String("domain", p.Domain), slog.Int64("bot_id", p.BotID))
}

const portalColumns = `id, member_id, domain, bot_id, bot_deleted_at, created_at, client_id, client_endpoint,
	application_token, access_token, refresh_token, token_expires_at, installed_at, uninstalled_at,
	api, bot_token, event_mode, fetch_offset, installed_by, roles_seeded, batch_refused_at, fetch_bot_id,
	bot_token_pending, events_refused_at`

func scanPortal(row interface{ Scan(...any) error }) (Portal, error) {
	var p Portal
	var deleted, created, expires, installed, uninstalled, refused, eventsRefused sql.NullInt64
	if err := row.Scan(&p.ID, &p.MemberID, &p.Domain, &p.BotID, &deleted, &created, &p.ClientID, &p.ClientEndpoint,
		&p.ApplicationToken, &p.AccessToken, &p.RefreshToken, &expires, &installed, &uninstalled,
		&p.API, &p.BotToken, &p.EventMode, &p.FetchOffset, &p.InstalledBy, &p.RolesSeeded, &refused, &p.FetchBotID,
		&p.PendingToken, &eventsRefused); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Portal{}, ErrNotFound
		}
		return Portal{}, err
	}
	p.BotDeletedAt = fromMillis(deleted)
	p.CreatedAt = fromMillis(created)
	p.TokenExpiresAt = fromMillis(expires)
	p.InstalledAt = fromMillis(installed)
	p.UninstalledAt = fromMillis(uninstalled)
	p.BatchRefusedAt = fromMillis(refused)
	p.EventsRefusedAt = fromMillis(eventsRefused)
	return p, nil
}

// PortalByMemberID reads a portal by Bitrix24's member_id, outside a transaction.
func (s *Store) PortalByMemberID(ctx context.Context, memberID string) (Portal, error) {
	p, err := scanPortal(s.readRow(ctx, "SELECT "+portalColumns+" FROM portals WHERE member_id = ?", memberID))
	if err != nil {
		return Portal{}, fmt.Errorf("portal %s: %w", memberID, err)
	}
	return p, nil
}

// Installation is what a verified ONAPPINSTALL tells about a portal.
type Installation struct {
	MemberID         string
	Domain           string
	ClientEndpoint   string
	ApplicationToken string
	AccessToken      string
	RefreshToken     string
	TokenExpiresAt   time.Time
	InstalledBy      int64 // the administrator who installed it
}

// InstallPortal records an installation of the application, creating the portal or
// renewing its endpoint and tokens (a reinstall).
func (tx *Tx) InstallPortal(in Installation) (Portal, error) {
	clear(tx.portals)
	now := millis(tx.now)
	_, err := tx.exec(`INSERT INTO portals (member_id, domain, client_endpoint, application_token, access_token, refresh_token,
			token_expires_at, installed_at, installed_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (member_id) DO UPDATE SET domain = excluded.domain, client_endpoint = excluded.client_endpoint,
			installed_by = excluded.installed_by,
			application_token = excluded.application_token, access_token = excluded.access_token,
			refresh_token = excluded.refresh_token, token_expires_at = excluded.token_expires_at,
			installed_at = excluded.installed_at, uninstalled_at = NULL, bot_deleted_at = NULL,
			updated_at = excluded.updated_at`,
		in.MemberID, in.Domain, in.ClientEndpoint, in.ApplicationToken, in.AccessToken, in.RefreshToken,
		millis(in.TokenExpiresAt), now, in.InstalledBy, now, now)
	if err != nil {
		return Portal{}, fmt.Errorf("install portal %s: %w", in.MemberID, err)
	}
	p, err := scanPortal(tx.queryRow("SELECT "+portalColumns+" FROM portals WHERE member_id = ?", in.MemberID))
	if err != nil {
		return Portal{}, fmt.Errorf("install portal %s: %w", in.MemberID, err)
	}
	return p, nil
}

// MarkUninstalled records that the portal removed the application: nothing more is
// sent there; the data stays.
func (tx *Tx) MarkUninstalled(portalID int64) error {
	clear(tx.portals)
	_, err := tx.exec(`UPDATE portals SET uninstalled_at = ?, bot_id = 0, updated_at = ? WHERE id = ?`,
		millis(tx.now), millis(tx.now), portalID)
	if err != nil {
		return fmt.Errorf("uninstall portal %d: %w", portalID, err)
	}
	_, err = tx.exec(`DELETE FROM bot_commands WHERE portal_id = ?`, portalID)
	return err
}

// SaveTokens stores a portal's new OAuth tokens. It is called as soon as a refresh
// succeeds: the old refresh token no longer works.
func (s *Store) SaveTokens(ctx context.Context, portalID int64, access, refresh string, expires time.Time) error {
	return s.Update(ctx, func(tx *Tx) error {
		clear(tx.portals)
		_, err := tx.exec(`UPDATE portals SET access_token = ?, refresh_token = ?, token_expires_at = ?, updated_at = ? WHERE id = ?`,
			access, refresh, millis(expires), millis(tx.now), portalID)
		if err != nil {
			return fmt.Errorf("save tokens of portal %d: %w", portalID, err)
		}
		return nil
	})
}

// SetClientID records the CLIENT_ID the bot is registered with (webhook mode).
func (tx *Tx) SetClientID(portalID int64, clientID string) error {
	clear(tx.portals)
	_, err := tx.exec(`UPDATE portals SET client_id = ?, updated_at = ? WHERE id = ?`, clientID, millis(tx.now), portalID)
	if err != nil {
		return fmt.Errorf("set client ID of portal %d: %w", portalID, err)
	}
	return nil
}

// SetCommand records a registered command's ID.
func (tx *Tx) SetCommand(portalID int64, command string, commandID int64) error {
	_, err := tx.exec(`INSERT INTO bot_commands (portal_id, command, command_id) VALUES (?, ?, ?)
		ON CONFLICT (portal_id, command) DO UPDATE SET command_id = excluded.command_id`, portalID, command, commandID)
	if err != nil {
		return fmt.Errorf("record command %s: %w", command, err)
	}
	return nil
}

// DeleteCommands forgets the portal's registered commands.
func (tx *Tx) DeleteCommands(portalID int64) error {
	_, err := tx.exec(`DELETE FROM bot_commands WHERE portal_id = ?`, portalID)
	if err != nil {
		return fmt.Errorf("forget commands of portal %d: %w", portalID, err)
	}
	return nil
}

// Commands returns the portal's registered commands: name → command ID.
func (s *Store) Commands(ctx context.Context, portalID int64) (map[string]int64, error) {
	rows, err := s.readRows(ctx, commandsQuery, portalID)
	return scanCommands(portalID, rows, err)
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

// Portals lists every portal the database knows, by ID.
func (s *Store) Portals(ctx context.Context) ([]Portal, error) {
	return s.listPortals(ctx, "SELECT "+portalColumns+" FROM portals ORDER BY id")
}

// Installations lists the portals that have the application installed (app mode).
func (s *Store) Installations(ctx context.Context) ([]Portal, error) {
	return s.listPortals(ctx, "SELECT "+portalColumns+
		" FROM portals WHERE "+portalInstalled("portals")+" ORDER BY id")
}

func (s *Store) listPortals(ctx context.Context, query string) ([]Portal, error) {
	rows, err := s.readRows(ctx, query)
	list, err := collect(rows, err, func(r *sql.Rows) (Portal, error) { return scanPortal(r) })
	if err != nil {
		return nil, fmt.Errorf("list portals: %w", err)
	}
	return list, nil
}

// Portal reads a portal by ID outside a transaction.
func (s *Store) Portal(ctx context.Context, id int64) (Portal, error) {
	p, err := scanPortal(s.readRow(ctx, "SELECT "+portalColumns+" FROM portals WHERE id = ?", id))
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

// SetBotV2 records a bot registered through imbot.v2: its ID, its secret (empty for
// an application's, which calls with its OAuth token) and how it gets its events.
func (tx *Tx) SetBotV2(portalID, botID int64, token, eventMode string) error {
	clear(tx.portals)
	_, err := tx.exec(`UPDATE portals SET bot_id = ?, api = 'v2', bot_token = ?, event_mode = ?, bot_deleted_at = NULL,
		bot_token_pending = '', updated_at = ? WHERE id = ?`, botID, token, eventMode, millis(tx.now), portalID)
	if err != nil {
		return fmt.Errorf("set v2 bot of portal %d: %w", portalID, err)
	}
	return nil
}

// SetAPI records the API the portal's bot is registered with (v1 after a v1
// registration, which clears a v2 bot's token and offset).
func (tx *Tx) SetAPI(portalID int64, api string) error {
	clear(tx.portals)
	_, err := tx.exec(`UPDATE portals SET api = ?, bot_token = CASE WHEN ? = 'v1' THEN '' ELSE bot_token END,
		updated_at = ? WHERE id = ?`, api, api, millis(tx.now), portalID)
	return err
}

// SetFetchOffset records how far bot botID's event queue has been processed. It is
// written in the transaction that holds the effects of the events it confirms, so
// that a crash neither loses nor repeats one.
func (tx *Tx) SetFetchOffset(portalID, botID, offset int64) error {
	clear(tx.portals)
	_, err := tx.exec(`UPDATE portals SET fetch_offset = ?, fetch_bot_id = ? WHERE id = ?`, offset, botID, portalID)
	if err != nil {
		return fmt.Errorf("set fetch offset of portal %d: %w", portalID, err)
	}
	return nil
}

// NoteEventsRefused records that an event posted for the portal was refused for its
// application token at at: doctor tells the administrator (a rotated token).
func (s *Store) NoteEventsRefused(ctx context.Context, portalID int64, at time.Time) error {
	return s.Update(ctx, func(tx *Tx) error {
		clear(tx.portals)
		if _, err := tx.exec(`UPDATE portals SET events_refused_at = ? WHERE id = ?`, millis(at), portalID); err != nil {
			return fmt.Errorf("record a refused event of portal %d: %w", portalID, err)
		}
		return nil
	})
}

// SetBatchRefused records that the portal refused imbot.v2 methods inside batch at
// (zero: it took them again), for every replica and after a restart.
func (tx *Tx) SetBatchRefused(portalID int64, at time.Time) error {
	clear(tx.portals)
	var v any
	if !at.IsZero() {
		v = millis(at)
	}
	_, err := tx.exec(`UPDATE portals SET batch_refused_at = ? WHERE id = ?`, v, portalID)
	if err != nil {
		return fmt.Errorf("record batch refusal of portal %d: %w", portalID, err)
	}
	return nil
}

// SetPendingToken stores a v2 bot token about to be given to the portal (Bot.update):
// if the process dies between the two, the next run can still reach the bot.
func (tx *Tx) SetPendingToken(portalID int64, token string) error {
	clear(tx.portals)
	_, err := tx.exec(`UPDATE portals SET bot_token_pending = ?, updated_at = ? WHERE id = ?`, token, millis(tx.now), portalID)
	return err
}

// AdoptPendingToken makes the pending token the v2 bot's: the portal took it (the
// old one failed with BOT_OWNERSHIP_ERROR, or the new one lists the bot).
func (tx *Tx) AdoptPendingToken(portalID int64, token string) error {
	clear(tx.portals)
	_, err := tx.exec(`UPDATE portals SET bot_token = ?, bot_token_pending = '', updated_at = ?
		WHERE id = ? AND bot_token_pending = ?`, token, millis(tx.now), portalID, token)
	if err != nil {
		return fmt.Errorf("adopt the pending token of portal %d: %w", portalID, err)
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

// Commands returns the portal's registered commands inside a transaction.
func (tx *Tx) Commands(portalID int64) (map[string]int64, error) {
	rows, err := tx.query(commandsQuery, portalID)
	return scanCommands(portalID, rows, err)
}

const commandsQuery = `SELECT command, command_id FROM bot_commands WHERE portal_id = ?`

func scanCommands(portalID int64, rows *sql.Rows, err error) (map[string]int64, error) {
	if err != nil {
		return nil, fmt.Errorf("commands of portal %d: %w", portalID, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var id int64
		if err := rows.Scan(&name, &id); err != nil {
			return nil, err
		}
		out[name] = id
	}
	return out, rows.Err()
}
