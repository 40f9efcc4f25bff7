-- The bot's API on the portal. api: 'v1' (imbot.*, events posted to the bot) or 'v2'
-- (imbot.v2.*); bot_token: the secret a v2 bot's calls carry (webhook mode; an
-- application's use its OAuth token); event_mode: how a v2 bot gets its events,
-- 'fetch' (the bot polls) or 'webhook'; fetch_offset: the first event not yet
-- processed, committed with the effects of the events before it.
ALTER TABLE portals ADD COLUMN api TEXT NOT NULL DEFAULT 'v1';
ALTER TABLE portals ADD COLUMN bot_token TEXT NOT NULL DEFAULT '';
ALTER TABLE portals ADD COLUMN event_mode TEXT NOT NULL DEFAULT '';
ALTER TABLE portals ADD COLUMN fetch_offset INTEGER NOT NULL DEFAULT 0;
