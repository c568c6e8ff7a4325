-- postie schema, version 4: the user database of [auth] backend = "postgres".

-- One row per user, the fields of a Dovecot passwd-file line
-- (user:password:uid:gid:gecos:home:shell:extra). password is what the
-- passwd-file holds: "{SCHEME}hash" ({SCRAM-SHA-256} keys included, as
-- Dovecot writes them), a bare crypt(3) string, or '' (no login).
CREATE TABLE postie_users (
	name     text PRIMARY KEY,
	password text NOT NULL DEFAULT '',
	uid      text NOT NULL DEFAULT '',
	gid      text NOT NULL DEFAULT '',
	gecos    text NOT NULL DEFAULT '',
	home     text NOT NULL DEFAULT '',
	shell    text NOT NULL DEFAULT '',
	extra    text NOT NULL DEFAULT '',
	changed  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Logins match names ignoring ASCII case when only one name does.
CREATE INDEX postie_users_lower ON postie_users (lower(name));

-- Every change tells the nodes (LISTEN postie_users) which user changed,
-- at COMMIT; '' means "reload all" (TRUNCATE). A trigger rather than the
-- application, so that edits made with psql reach the nodes too.
CREATE FUNCTION postie_users_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		PERFORM pg_notify('postie_users', '');
		RETURN NULL;
	END IF;
	IF TG_OP <> 'INSERT' THEN
		PERFORM pg_notify('postie_users', OLD.name);
	END IF;
	IF TG_OP <> 'DELETE' THEN
		PERFORM pg_notify('postie_users', NEW.name);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER postie_users_changed AFTER INSERT OR UPDATE OR DELETE ON postie_users
	FOR EACH ROW EXECUTE FUNCTION postie_users_notify();
CREATE TRIGGER postie_users_truncated AFTER TRUNCATE ON postie_users
	FOR EACH STATEMENT EXECUTE FUNCTION postie_users_notify();
