-- Every event in a dialog inserts a message; each index is one more page to write per
-- commit. The unique (dialog_id, bitrix_message_id) index already serves lookups by
-- dialog, so this one only cost writes.
DROP INDEX messages_by_dialog;
