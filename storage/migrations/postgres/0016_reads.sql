-- The SQLite migration 0016 (reads that cost the dialogs they show, issue 17): the
-- dialog's messages in order, carrying every column /queue and "all chats" look at,
-- and the dialog events by kind for /stats. Same names and columns on both engines.
DROP INDEX messages_by_dialog;
CREATE INDEX messages_by_dialog ON messages (dialog_id, id, author_role, deleted_at, created_at);

DROP INDEX dialog_events_portal_at;
CREATE INDEX dialog_events_portal_kind ON dialog_events (portal_id, kind, at);

-- Answers that only read (/queue, /stats, "all chats") are written just before they
-- are sent, from a read snapshot, not in the event's transaction: the entry holds
-- the bot's note of what to write (see bot.WriteAnswer), '' for every other entry.
ALTER TABLE outbox ADD COLUMN answer TEXT NOT NULL DEFAULT '';
