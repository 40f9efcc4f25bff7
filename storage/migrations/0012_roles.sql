-- Who is who on each portal: support agents, the second line (technical agents) and
-- clients beyond the portal's administrators. Managed by the portal's administrators
-- in the chat with the bot; in webhook mode the configuration's lists seed the one
-- portal once (roles_seeded).
CREATE TABLE roles (
    portal_id INTEGER NOT NULL,
    role      TEXT    NOT NULL, -- 'agent', 'tech' or 'client'
    user_id   INTEGER NOT NULL,
    added_by  INTEGER NOT NULL DEFAULT 0,
    added_at  INTEGER NOT NULL,
    PRIMARY KEY (portal_id, role, user_id)
) WITHOUT ROWID;
CREATE INDEX roles_user ON roles (portal_id, user_id);
ALTER TABLE portals ADD COLUMN roles_seeded INTEGER NOT NULL DEFAULT 0;
