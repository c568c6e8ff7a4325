-- postie pgstore schema, version 5: the lease table is unlogged, and a
-- lease row is kept when its session ends (expires = '-infinity': free),
-- so that a login and a logout each
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

-- UNLOGGED: a login and a logout write no WAL for their leases, and do not
-- wake the WAL writer (a fifth of the database's CPU per login before).
-- Leases were already allowed to be lost in a crash (they commit without
-- waiting for the WAL flush); now a crash of the server or a failover to
-- a standby loses them all. That is safe: a session whose lease is gone
-- deletes nothing at QUIT (Commit checks the lease in the same statement)
-- and its client deletes at its next session; the nodes' renewals see the
-- loss within a third of a lease. Only the logins under way at that
-- moment notice.
ALTER TABLE postie_leases SET UNLOGGED;
