-- Posted events whose author the portal could not confirm yet (it did not answer in
-- time, or the share of its limit left for checks was spent): kept, never applied,
-- until a check succeeds or the author's token has surely expired (an hour). The body
-- is the event as posted, with the author's access token: the only way to ask again.
-- Each row is deleted when the event is applied, refused or given up.
CREATE TABLE pending_events (
    id          INTEGER PRIMARY KEY,
    portal_id   INTEGER NOT NULL,
    event_type  TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    received_at INTEGER NOT NULL,  -- Unix milliseconds
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL   -- Unix milliseconds: when to check again
);
CREATE INDEX pending_events_due ON pending_events (next_at);
CREATE INDEX pending_events_portal ON pending_events (portal_id);
