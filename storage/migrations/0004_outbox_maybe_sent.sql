-- maybe_sent: an earlier attempt may have reached the portal although no answer came
-- back (a timeout after sending, a dropped connection). in_flight: an attempt is under
-- way; if the process dies during it, the entry is found with in_flight set and counts
-- as maybe sent too. Resending such an entry may duplicate it, so the dispatcher checks
-- first where it can, and counts it where it cannot.
ALTER TABLE outbox ADD COLUMN maybe_sent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
