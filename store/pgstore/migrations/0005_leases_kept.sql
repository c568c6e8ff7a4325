-- postie pgstore schema, version 5: a lease row is kept when its session
-- ends (expires = '-infinity': free), so that a login and a logout each
-- update the row in place instead of inserting and deleting one. With no
-- index on the columns they change, both are HOT updates (no index entry,
-- the old version pruned in its page), and the table keeps one row per
-- maildrop that was ever opened. Nodes of schema 4 still work with it
-- during an upgrade (they delete the rows and find them by token without
-- the index: a scan of that one small table).

-- Whether the last taking of the lease took it from a session that had
-- not given it up (a node that died or lost the database).
ALTER TABLE postie_leases ADD COLUMN taken_over boolean NOT NULL DEFAULT false;

-- Leases are found by maildrop (the primary key) and token.
DROP INDEX postie_leases_token;

-- Room in each page for the new versions of its rows.
ALTER TABLE postie_leases SET (fillfactor = 50);
