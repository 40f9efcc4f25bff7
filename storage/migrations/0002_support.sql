-- The support side: who the client is by name (for mentions in messages the bot writes
-- on an agent's behalf), escalation, access requests and ratings.

ALTER TABLE dialogs ADD COLUMN client_name TEXT NOT NULL DEFAULT '';
ALTER TABLE dialogs ADD COLUMN escalated_by INTEGER;

-- An access request sent to the client's main chat when an agent escalates a dialog.
CREATE TABLE access_requests (
    id                INTEGER PRIMARY KEY,
    dialog_id         INTEGER NOT NULL REFERENCES dialogs(id),
    client_id         INTEGER NOT NULL,            -- the only one who may answer
    requested_by      INTEGER NOT NULL,            -- the agent
    status            TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'granted', 'declined')),
    message_id        INTEGER,                     -- Bitrix24 message that carries the buttons
    requested_at      INTEGER NOT NULL,
    decided_by        INTEGER,
    decided_at        INTEGER
);
-- At most one request waits per dialog: a second /escalate sends nothing new.
CREATE UNIQUE INDEX access_requests_one_pending ON access_requests (dialog_id) WHERE status = 'pending';

-- The client's rating of a resolution: one per time the dialog was resolved.
CREATE TABLE ratings (
    dialog_id         INTEGER NOT NULL REFERENCES dialogs(id),
    resolved_at       INTEGER NOT NULL,            -- which resolution is rated
    user_id           INTEGER NOT NULL,
    helped            INTEGER NOT NULL,            -- 1 helped, 0 did not
    rated_at          INTEGER NOT NULL,
    PRIMARY KEY (dialog_id, resolved_at)
) WITHOUT ROWID;
