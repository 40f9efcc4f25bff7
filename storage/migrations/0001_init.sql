-- Times are Unix milliseconds (UTC). IDs named *_id without a table prefix in the
-- comment are Bitrix24's IDs (users, chats, messages); the rest are our own rows.

-- A portal the bot serves. In webhook mode there is one, created at start-up; in app
-- mode each ONAPPINSTALL adds one, keyed by Bitrix24's member_id.
CREATE TABLE portals (
    id                INTEGER PRIMARY KEY,
    member_id         TEXT    NOT NULL UNIQUE,
    domain            TEXT    NOT NULL DEFAULT '',
    bot_id            INTEGER NOT NULL DEFAULT 0,
    bot_deleted_at    INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

-- One question of one client: a group chat created with imbot.chat.add.
CREATE TABLE dialogs (
    id                INTEGER PRIMARY KEY,
    portal_id         INTEGER NOT NULL REFERENCES portals(id),
    number            INTEGER NOT NULL,            -- №N, counted per portal from 1
    client_id         INTEGER NOT NULL,            -- Bitrix24 user ID of the client
    chat_id           INTEGER,                     -- Bitrix24 chat ID, NULL until the portal answers
    chat_failed       INTEGER NOT NULL DEFAULT 0,  -- imbot.chat.add failed for good
    title             TEXT    NOT NULL,
    title_pending     INTEGER NOT NULL DEFAULT 0,  -- our rename not yet on the portal
    status            TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'resolved')),
    escalated_at      INTEGER,
    language          TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    last_activity_at  INTEGER NOT NULL,
    resolved_at       INTEGER,
    UNIQUE (portal_id, number)
);
CREATE UNIQUE INDEX dialogs_by_chat ON dialogs (portal_id, chat_id) WHERE chat_id IS NOT NULL;
CREATE INDEX dialogs_by_client ON dialogs (portal_id, client_id, status);

-- The transcript: every message seen in a dialog chat.
CREATE TABLE messages (
    id                INTEGER PRIMARY KEY,         -- also the order marks compare against
    dialog_id         INTEGER NOT NULL REFERENCES dialogs(id),
    bitrix_message_id INTEGER NOT NULL,
    author_id         INTEGER NOT NULL,
    author_role       TEXT    NOT NULL CHECK (author_role IN ('client', 'agent', 'other', 'bot')),
    text              TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    edited_at         INTEGER,
    deleted_at        INTEGER,
    UNIQUE (dialog_id, bitrix_message_id)
);
CREATE INDEX messages_by_dialog ON messages (dialog_id, id);

-- Last-seen marks: the newest messages.id a user has seen in a dialog.
CREATE TABLE last_seen (
    dialog_id         INTEGER NOT NULL REFERENCES dialogs(id),
    user_id           INTEGER NOT NULL,
    message_seq       INTEGER NOT NULL,
    seen_at           INTEGER NOT NULL,
    PRIMARY KEY (dialog_id, user_id)
) WITHOUT ROWID;

-- Keys of events already processed: Bitrix24 may deliver one twice.
CREATE TABLE processed_events (
    portal_id         INTEGER NOT NULL,
    event_key         TEXT    NOT NULL,
    event_type        TEXT    NOT NULL,
    received_at       INTEGER NOT NULL,
    PRIMARY KEY (portal_id, event_key)
) WITHOUT ROWID;

-- Calls the bot decided to make, written in the same transaction as the state they
-- belong to; the dispatcher sends them in id order per (portal, chat_key).
CREATE TABLE outbox (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    portal_id         INTEGER NOT NULL REFERENCES portals(id),
    chat_key          TEXT    NOT NULL,            -- ordering lane: "27", "chat1001", "dialog:5"
    method            TEXT    NOT NULL,
    params            TEXT    NOT NULL,            -- JSON object
    needs_dialog      INTEGER REFERENCES dialogs(id), -- waits for this dialog's chat; its ID fills the placeholders
    effect            TEXT    NOT NULL DEFAULT '', -- what the result means to us (see delivery)
    effect_ref        INTEGER NOT NULL DEFAULT 0,
    state             TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER NOT NULL,
    last_error        TEXT    NOT NULL DEFAULT '',
    result            TEXT,
    created_at        INTEGER NOT NULL,
    done_at           INTEGER
);
CREATE INDEX outbox_pending ON outbox (portal_id, chat_key, id) WHERE state = 'pending';
