-- events_refused_at: when an event posted for the portal was last refused for its
-- application token (Unix milliseconds; webhook mode). After `register --rotate-token`
-- in imbot.v2 webhook mode the portal signs its events with a new token, and doctor
-- says so from here (issue 18).
ALTER TABLE portals ADD COLUMN events_refused_at INTEGER;
