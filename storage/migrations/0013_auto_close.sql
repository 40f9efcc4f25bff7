-- Auto-close: a dialog an agent answered last, whose client stays silent, is warned
-- about and then resolved. What is due is worked out from the transcript and these two
-- times, so a restart neither skips nor repeats a warning or a close.
--   auto_close_warned_at: when the client was last warned; it covers the current
--     silence if it is later than the silence's start.
--   auto_close_kept_at: when the client last pressed "keep it open"; the silence starts
--     again there.
ALTER TABLE dialogs ADD COLUMN auto_close_warned_at INTEGER;
ALTER TABLE dialogs ADD COLUMN auto_close_kept_at INTEGER;
