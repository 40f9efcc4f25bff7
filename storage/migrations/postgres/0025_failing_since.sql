-- failing_since: when the entry's first attempt failed (NULL until one has). MaxAge
-- counts from there, not from when the entry was queued: an entry that waited a day
-- behind a failing head of its lane, or through an outage, has not been failing, and
-- one failure of its first request must not give it up.
ALTER TABLE outbox ADD COLUMN failing_since BIGINT;
