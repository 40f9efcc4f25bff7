-- The SQLite migration 0016 (reads that cost the dialogs they show, issue 17), with
-- the same names and columns, so that both engines' schemas agree: the dialog's
-- messages in order, carrying every column /queue and "all chats" look at.
DROP INDEX messages_by_dialog;
CREATE INDEX messages_by_dialog ON messages (dialog_id, id, author_role, deleted_at, created_at);

-- The dialog events by kind: /stats counts a window's by portal, an agent's answer
-- reads its dialog's (service times), without reading the client messages.
DROP INDEX dialog_events_portal_at;
CREATE INDEX dialog_events_portal_kind ON dialog_events (portal_id, kind, at);
DROP INDEX dialog_events_dialog;
CREATE INDEX dialog_events_by_kind ON dialog_events (dialog_id, kind, id);

-- Answers that only read are written just before they are sent (bot.WriteAnswer).
ALTER TABLE outbox ADD COLUMN answer TEXT NOT NULL DEFAULT '';
