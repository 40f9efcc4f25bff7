-- Owners and response targets (issue 22).
--   owner_id: the agent (or second-line engineer) who owns the dialog; NULL = unowned.
--   wait_kind, wait_started_at: what the client waits for now ('first_response' from
--     the dialog's opening or reopening, 'reply' from their first message after an
--     agent's answer) and since when; NULL = nobody waits.
--   target_step, target_due_at: the wait's next step toward its response target
--     ('schedule': work out the instants, 'remind': the 80 % reminder, 'miss': the
--     miss) and when it is due. A step is claimed by a compare-and-set on these two
--     columns in the transaction that queues its message, so it happens once.
--   out_of_hours_until: the opening of the closed period the client was last told
--     about, so that the out-of-hours answer is given once per period.
ALTER TABLE dialogs ADD COLUMN owner_id INTEGER;
ALTER TABLE dialogs ADD COLUMN wait_kind TEXT;
ALTER TABLE dialogs ADD COLUMN wait_started_at INTEGER;
ALTER TABLE dialogs ADD COLUMN target_step TEXT;
ALTER TABLE dialogs ADD COLUMN target_due_at INTEGER;
ALTER TABLE dialogs ADD COLUMN out_of_hours_until INTEGER;
-- The sweep reads only the steps that are due: O(dialogs due), not O(dialogs).
CREATE INDEX dialogs_target_due ON dialogs (target_due_at) WHERE target_due_at IS NOT NULL;
-- Whom an event is about: the new owner of an 'owner' event (0 = released), the
-- owner told of a 'target_missed'.
ALTER TABLE dialog_events ADD COLUMN subject_id INTEGER NOT NULL DEFAULT 0;
-- /metrics counts the misses at every scrape.
CREATE INDEX dialog_events_target_missed ON dialog_events (portal_id) WHERE kind = 'target_missed';
