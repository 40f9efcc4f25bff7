-- What imbot.v2 leaves open, learnt from each portal (issue 18):
-- batch_refused_at: when the portal last refused imbot.v2 methods inside batch (Unix
-- milliseconds); its entries go as single calls until a day after it.
-- fetch_bot_id: the bot the fetch offset belongs to; another bot starts without one.
-- bot_token_pending: a token being rotated in, stored before Bot.update so that a
-- crash between the two cannot leave the bot with a token nobody knows.
ALTER TABLE portals ADD COLUMN batch_refused_at BIGINT;
ALTER TABLE portals ADD COLUMN fetch_bot_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE portals ADD COLUMN bot_token_pending TEXT NOT NULL DEFAULT '';
-- Offsets stored so far belong to the bot the portal has now.
UPDATE portals SET fetch_bot_id = bot_id WHERE fetch_offset > 0;
