-- Service times, derived from dialog_events when the event that ends one is recorded
-- (same transaction): first_response (opened or reopened → the cycle's first agent
-- answer), reply (the first client message the client still waits on → the agent
-- answer that ends the wait), resolution (opened or reopened → resolved or
-- auto_closed). /stats reads a window of them by ended_at; the Prometheus histograms
-- count them all at scrape time, so both count the same intervals.
CREATE TABLE service_times (
    id          INTEGER PRIMARY KEY,
    portal_id   INTEGER NOT NULL,
    dialog_id   INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('first_response', 'reply', 'resolution')),
    event_id    INTEGER NOT NULL,  -- the dialog_events row that ended it
    started_at  INTEGER NOT NULL,  -- Unix milliseconds
    ended_at    INTEGER NOT NULL,  -- Unix milliseconds
    seconds     REAL    NOT NULL,  -- ended_at - started_at, never negative
    UNIQUE (event_id, kind)
);
CREATE INDEX service_times_window ON service_times (portal_id, kind, ended_at);
-- The histograms' scan: every row of a kind, read from the index alone.
CREATE INDEX service_times_kind ON service_times (kind, seconds);
