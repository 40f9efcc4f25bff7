-- installed_by: the user who installed the application, whom the OAuth server's
-- answer named and the portal confirmed as an administrator. Fetched events carry
-- no token to ask the portal about their author with, so in app mode with fetch
-- this is the administrator the bot knows.
ALTER TABLE portals ADD COLUMN installed_by INTEGER NOT NULL DEFAULT 0;
