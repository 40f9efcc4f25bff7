-- batch_limit: the largest request an entry may go in, 0 for any. A request that timed
-- out halves it for each of its entries, so that a call that hangs is soon sent alone
-- and holds up no other chat.
ALTER TABLE outbox ADD COLUMN batch_limit INTEGER NOT NULL DEFAULT 0;
-- Housekeeping deletes finished entries by age.
CREATE INDEX outbox_finished ON outbox (done_at) WHERE state <> 'pending';
