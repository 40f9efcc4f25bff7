-- The life of each dialog, as events: opened, every client message and agent answer,
-- resolved, reopened, escalated, auto-closed. The service figures (first response,
-- reply and resolution times) are measured from them.
CREATE TABLE dialog_events (
    id         INTEGER PRIMARY KEY,
    portal_id  INTEGER NOT NULL,
    dialog_id  INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    actor_id   INTEGER NOT NULL DEFAULT 0, -- who did it; 0 for the bot itself
    at         INTEGER NOT NULL             -- Unix milliseconds
);
CREATE INDEX dialog_events_dialog ON dialog_events (dialog_id, id);
CREATE INDEX dialog_events_portal_at ON dialog_events (portal_id, at);
