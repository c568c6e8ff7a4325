-- postie pgstore schema, version 1.

-- Settings of this database: uid_prefix starts every UIDL, so that UIDLs of
-- a database rebuilt from scratch never repeat those of the old one.
CREATE TABLE postie_meta (
	key   text PRIMARY KEY,
	value text NOT NULL
);
INSERT INTO postie_meta (key, value)
	VALUES ('uid_prefix', substr(md5(random()::text || clock_timestamp()::text), 1, 8));

-- One row per maildrop, made by its first delivery; messages and octets
-- (stored size) count what it holds, for quotas: a delivery adds its
-- message, the trigger below takes out every deleted one. generation
-- changes with every delivery, deletion or update of its messages: a node
-- that cached the maildrop's snapshot at a generation reuses it while the
-- generation stays the same. (Messages inserted by hand must bump it.)
CREATE TABLE postie_mailboxes (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name       text NOT NULL UNIQUE,
	messages   bigint NOT NULL DEFAULT 0,
	octets     bigint NOT NULL DEFAULT 0,
	generation bigint NOT NULL DEFAULT 1
);

-- Message ids come from one sequence and are never reused (a sequence
-- does not roll back); the UIDL is uid_prefix '.' id.
CREATE SEQUENCE postie_message_id;

CREATE TABLE postie_messages (
	id         bigint PRIMARY KEY,
	mailbox_id bigint NOT NULL REFERENCES postie_mailboxes (id),
	uid        text NOT NULL,
	size       bigint NOT NULL, -- octets as stored
	wire_size  bigint NOT NULL, -- octets on the wire (CRLF ends, final line end)
	chunks     integer NOT NULL,
	delivered  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- The snapshot of a login is one index-only scan of this index.
CREATE INDEX postie_messages_snapshot ON postie_messages (mailbox_id, id) INCLUDE (uid, wire_size, chunks);

CREATE FUNCTION postie_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE postie_mailboxes b SET messages = b.messages - g.n, octets = b.octets - g.octets, generation = b.generation + 1
	FROM (SELECT mailbox_id, count(*) AS n, sum(size) AS octets FROM gone GROUP BY mailbox_id) g
	WHERE b.id = g.mailbox_id;
	RETURN NULL;
END $$;
CREATE TRIGGER postie_messages_deleted AFTER DELETE ON postie_messages
	REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION postie_count_deleted();

CREATE FUNCTION postie_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE postie_mailboxes SET generation = generation + 1
	WHERE id IN (SELECT mailbox_id FROM before UNION SELECT mailbox_id FROM after);
	RETURN NULL;
END $$;
CREATE TRIGGER postie_messages_updated AFTER UPDATE ON postie_messages
	REFERENCING OLD TABLE AS before NEW TABLE AS after FOR EACH STATEMENT EXECUTE FUNCTION postie_count_updated();

-- Bodies in pieces of at most 256 KiB, so that neither delivery nor RETR
-- holds a whole message in memory. A delivery writes its chunks before
-- its message row, in the same transaction: the check is deferred.
CREATE TABLE postie_chunks (
	message_id bigint NOT NULL REFERENCES postie_messages (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
	seq        integer NOT NULL,
	data       bytea NOT NULL,
	PRIMARY KEY (message_id, seq)
);

-- The session lock of each maildrop: a lease held by one session (token)
-- of one node until expires, renewed while the session lives. A row whose
-- lease expired is free for the next login.
CREATE TABLE postie_leases (
	mailbox  text PRIMARY KEY,
	node     text NOT NULL,
	token    text NOT NULL,
	acquired timestamptz NOT NULL,
	expires  timestamptz NOT NULL
);
CREATE INDEX postie_leases_token ON postie_leases (token);
