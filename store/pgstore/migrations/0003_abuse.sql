-- postie pgstore schema, version 3: the login abuse state the nodes share
-- (failure counts, bans, the LOGIN-DELAY clock; pop3server.AbuseStore).
--
-- The tables are UNLOGGED: a login writes no WAL and waits for no flush,
-- and the state, worth minutes, is not worth it. A crash of the server
-- empties them, and a standby does not have them (after a failover the
-- counts start again).

-- Recent login failures per client address (an IPv6 /64 by its first
-- address): forgotten at expires, unless banned until later.
CREATE UNLOGGED TABLE postie_abuse_addrs (
	addr         inet PRIMARY KEY,
	fails        integer NOT NULL,
	expires      timestamptz NOT NULL,
	banned_until timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE INDEX postie_abuse_addrs_banned ON postie_abuse_addrs (banned_until);

-- Recent login failures per user name as typed (lower case): the address
-- of the first, and whether others came from elsewhere.
CREATE UNLOGGED TABLE postie_abuse_users (
	name      text PRIMARY KEY,
	fails     integer NOT NULL,
	expires   timestamptz NOT NULL,
	from_addr inet NOT NULL,
	others    boolean NOT NULL DEFAULT false
);

-- The last login to each maildrop, for LOGIN-DELAY (RFC 2449 §8.1.2).
CREATE UNLOGGED TABLE postie_login_times (
	name text PRIMARY KEY,
	at   timestamptz NOT NULL
);

-- A failed login, in one round trip: counts the address's and the user's
-- failures, bans the address at p_ban_after (when positive), and returns
-- both counts and what is left of the address's ban, in seconds.
CREATE FUNCTION postie_login_failure(p_addr inet, p_user text, p_memory interval, p_ban_after integer, p_ban_for interval,
	OUT addr_fails integer, OUT user_fails integer, OUT ban_left double precision)
LANGUAGE plpgsql AS $$
DECLARE
	until timestamptz;
BEGIN
	INSERT INTO postie_abuse_addrs AS a (addr, fails, expires) VALUES (p_addr, 1, now() + p_memory)
	ON CONFLICT (addr) DO UPDATE SET
		fails = CASE WHEN a.expires < now() AND a.banned_until < now() THEN 1 ELSE a.fails + 1 END,
		expires = now() + p_memory
	RETURNING a.fails, a.banned_until INTO addr_fails, until;
	IF p_ban_after > 0 AND addr_fails >= p_ban_after THEN
		until := now() + p_ban_for;
		UPDATE postie_abuse_addrs SET banned_until = until WHERE addr = p_addr;
	END IF;
	ban_left := CASE WHEN until > now() THEN extract(epoch FROM until - now()) ELSE 0 END;
	user_fails := 0;
	IF p_user <> '' THEN
		INSERT INTO postie_abuse_users AS u (name, fails, expires, from_addr) VALUES (p_user, 1, now() + p_memory, p_addr)
		ON CONFLICT (name) DO UPDATE SET
			fails = CASE WHEN u.expires < now() THEN 1 ELSE u.fails + 1 END,
			others = CASE WHEN u.expires < now() THEN false ELSE u.others OR u.from_addr <> p_addr END,
			from_addr = CASE WHEN u.expires < now() THEN p_addr ELSE u.from_addr END,
			expires = now() + p_memory
		RETURNING u.fails INTO user_fails;
	END IF;
END $$;

-- A login, in one round trip: forgets the address's failures, and the
-- user's when all came from this address; with p_delay positive, takes
-- the maildrop's LOGIN-DELAY clock only when its last login is at least
-- p_delay ago, and returns whether it did.
CREATE FUNCTION postie_login_success(p_addr inet, p_user text, p_maildrop text, p_delay interval) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM postie_abuse_addrs WHERE addr = p_addr;
	DELETE FROM postie_abuse_users WHERE name = p_user AND NOT others AND from_addr = p_addr;
	IF p_delay <= interval '0' THEN
		RETURN true;
	END IF;
	INSERT INTO postie_login_times AS l (name, at) VALUES (p_maildrop, now())
	ON CONFLICT (name) DO UPDATE SET at = now() WHERE l.at <= now() - p_delay;
	RETURN FOUND;
END $$;
