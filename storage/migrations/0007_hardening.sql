-- Messages from a chat that claims, by its entity, to be a dialog's while that
-- dialog's chat is still being created. An event's word about its own chat binds
-- nothing: only the portal's answer to the bot's own call does. If that answer names
-- this chat, its messages are adopted into the dialog's transcript; otherwise they
-- stay here, bound to nothing.
CREATE TABLE stray_messages (
    portal_id         INTEGER NOT NULL,
    chat_id           INTEGER NOT NULL,            -- the chat the messages were written in
    dialog_id         INTEGER NOT NULL,            -- the dialog it claims to be
    bitrix_message_id INTEGER NOT NULL,
    author_id         INTEGER NOT NULL,
    text              TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (portal_id, chat_id, bitrix_message_id)
) WITHOUT ROWID;

-- What the readiness probe writes: a row as large as an event's, removed in the same
-- transaction, so its commit needs what an event's needs (room for new pages, a
-- write to the log) and fails when an event would.
CREATE TABLE health (
    id                INTEGER PRIMARY KEY,
    checked_at        INTEGER NOT NULL,
    pad               BLOB
);
