-- Set-up: how to reach each portal and the bot's registration there.
--
-- Webhook mode: one portal; client_id is the CLIENT_ID the bot was registered with.
-- App mode: one portal per installation, reached at client_endpoint with OAuth tokens
-- (refreshed when they expire: the new refresh token replaces the old one at once),
-- and verified by the application_token its events carry.
ALTER TABLE portals ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
ALTER TABLE portals ADD COLUMN client_endpoint TEXT NOT NULL DEFAULT '';
ALTER TABLE portals ADD COLUMN application_token TEXT NOT NULL DEFAULT '';
ALTER TABLE portals ADD COLUMN access_token TEXT NOT NULL DEFAULT '';
ALTER TABLE portals ADD COLUMN refresh_token TEXT NOT NULL DEFAULT '';
ALTER TABLE portals ADD COLUMN token_expires_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE portals ADD COLUMN installed_at INTEGER;
ALTER TABLE portals ADD COLUMN uninstalled_at INTEGER;

-- The slash and keyboard commands registered for the portal's bot.
CREATE TABLE bot_commands (
    portal_id         INTEGER NOT NULL REFERENCES portals(id),
    command           TEXT    NOT NULL,
    command_id        INTEGER NOT NULL,
    PRIMARY KEY (portal_id, command)
) WITHOUT ROWID;
