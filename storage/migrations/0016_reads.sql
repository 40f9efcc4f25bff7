-- Reads that cost the dialogs they show, not the messages in them (issue 17): /queue
-- finds a dialog's last agent answer by walking back from its newest message and
-- counts what the client wrote since; "all chats" counts what came after the client's
-- mark. Both read this index alone (it carries every column they look at), so a
-- client who floods one dialog costs each read one range of it, never a scan of the
-- dialog per message. 0003 had dropped the narrower index to save a write per
-- message; the quadratic /queue it caused cost far more. PostgreSQL gets the same
-- (its 0016), so both engines' schemas agree.
CREATE INDEX messages_by_dialog ON messages (dialog_id, id, author_role, deleted_at, created_at);

-- /stats counts a window's opened, resolved and auto-closed dialogs: by kind, so that
-- a flood of client messages (each one an event) is not in the range it reads. It
-- replaces the index by time alone, which nothing else used.
DROP INDEX dialog_events_portal_at;
CREATE INDEX dialog_events_portal_kind ON dialog_events (portal_id, kind, at);

-- An agent's answer measures the service times from the dialog's earlier events
-- (storage/service.go), in the writer: by kind, so that a client's flood of messages
-- (each one an event) is not read for it. It replaces the index by position alone:
-- a dialog's whole life, read in order, is only listed for tests and tools.
DROP INDEX dialog_events_dialog;
CREATE INDEX dialog_events_by_kind ON dialog_events (dialog_id, kind, id);

-- Answers that only read (/queue, /stats, "all chats") are written just before they
-- are sent, from a read snapshot, not in the event's transaction: the entry holds
-- the bot's note of what to write (see bot.WriteAnswer), '' for every other entry.
ALTER TABLE outbox ADD COLUMN answer TEXT NOT NULL DEFAULT '';
