-- Both engines' schemas agree (issue 20; storage/schema_test.go compares them).
-- The transcript of a dialog in order: /queue and "all chats" read a dialog's
-- newest messages and those after a mark, by (dialog_id, id). PostgreSQL kept this
-- index when 0003 dropped it here; SQLite gets it back rather than PostgreSQL losing
-- it. IF NOT EXISTS: 0016 (issue 17's reads, merged beside this) may have made it
-- already, wider and under the same name, which serves the same reads.
CREATE INDEX IF NOT EXISTS messages_by_dialog ON messages (dialog_id, id);
