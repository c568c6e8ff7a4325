package auth

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"sync"

	"github.com/postie-mail/postie/sasl"
)

// The DB serves the SASL SCRAM mechanisms and APOP besides USER/PASS.
var _ sasl.SCRAMStore = (*DB)(nil)

// entryCtx returns the stored name and password of user (matched as by
// Lookup) from st, the users in memory; for a PostgreSQL DB whose users
// in memory may miss a change (PostgresOptions.MaxStaleness), from the
// database. err is a database error.
func (db *DB) entryCtx(ctx context.Context, st *state, user string) (name, stored string, ok bool, err error) {
	if ValidUsername(user) != nil {
		return "", "", false, nil
	}
	if db.pg != nil && !db.pg.fresh() {
		r, ok, err := db.queryEntry(ctx, user)
		return r.name, r.password, ok, err
	}
	if name, ok = st.lookup(user); ok {
		stored = st.users[name]
	}
	return name, stored, ok, nil
}

// plaintext returns the password of a PLAIN/CLEAR/CLEARTEXT entry (with
// its .HEX or .B64 encoding undone), and false for every other scheme.
func plaintext(stored string) (string, bool) {
	scheme, enc, data, err := splitStored(stored)
	if err != nil || kindOf(scheme) != kindPlain {
		return "", false
	}
	if enc == encDefault {
		return data, true
	}
	b, err := decode(data, enc)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// AuthenticateAPOP checks an APOP digest (RFC 1939 §7): the hex MD5 of the
// greeting's timestamp followed by the password. Only entries stored as
// PLAIN, CLEAR or CLEARTEXT can serve it (APOP needs the plaintext); for
// every other scheme, an unknown user and a wrong digest it returns ok ==
// false after the same work (a digest of a random stand-in secret). It
// implements pop3server.APOPAuthenticator; err is a failure of the
// PostgreSQL user database to answer (never for a passwd-file).
func (db *DB) AuthenticateAPOP(ctx context.Context, user, timestamp, digest string) (string, bool, error) {
	name, stored, found, err := db.entryCtx(ctx, db.current(), user)
	if err != nil {
		return "", false, err
	}
	secret, genuine := "", false
	if found && stored != "" {
		secret, genuine = plaintext(stored)
		if !genuine {
			db.log.Debug("auth: APOP refused: the stored password is not PLAIN", "user", name)
		}
	}
	if !genuine {
		secret = db.apopDummy
	}
	sum := md5.Sum([]byte(timestamp + secret))
	want := hex.EncodeToString(sum[:])
	match := subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(digest))) == 1
	if !genuine || !match {
		return "", false, nil
	}
	return name, true, nil
}

// SCRAMCredentials implements sasl.SCRAMStore. Credentials come from the
// user's {SCRAM-SHA-256} or {SCRAM-SHA-1} entry when it is for mech (as
// Dovecot's `doveadm pw -s SCRAM-SHA-256` writes them, or `postie user add
// --scheme SCRAM-SHA-256`), or are derived from a PLAIN/CLEAR entry with a
// salt that is an HMAC of the user and entry under Options.SCRAMSecret
// (stable while both are) and 4096 iterations. Users with any other
// scheme (a one-way hash such as ARGON2ID) have no SCRAM credentials: ok
// is false, as for an unknown user, and the SCRAM mechanism then fails
// the way it fails for a wrong password. err is a failure of the
// PostgreSQL user database to answer (never for a passwd-file).
func (db *DB) SCRAMCredentials(ctx context.Context, user, mech string) (sasl.SCRAMCredentials, string, bool, error) {
	var none sasl.SCRAMCredentials
	mech = strings.ToUpper(mech)
	if _, ok := scramHash(mech); !ok {
		return none, "", false, nil
	}
	name, stored, found, err := db.entryCtx(ctx, db.current(), user)
	if err != nil {
		return none, "", false, err
	}
	if !found || stored == "" {
		return none, "", false, nil
	}
	scheme, _, data, err := splitStored(stored)
	if err != nil {
		return none, "", false, nil
	}
	switch kindOf(scheme) {
	case kindSCRAM:
		if scheme != mech {
			return none, "", false, nil
		}
		c, err := sasl.ParseDovecotSCRAM("{" + scheme + "}" + data)
		if err != nil {
			db.log.Error("auth: cannot use stored SCRAM keys", "file", db.path, "user", name, "scheme", scheme, "err", err)
			return none, "", false, nil
		}
		return c, name, true, nil
	case kindPlain:
		password, ok := plaintext(stored)
		if !ok {
			return none, "", false, nil
		}
		c, err := db.scram.derive(name, stored, mech, password)
		if err != nil {
			db.log.Error("auth: cannot derive SCRAM keys", "user", name, "err", err)
			return none, "", false, nil
		}
		return c, name, true, nil
	}
	return none, "", false, nil
}

// scramDerived caches the SCRAM credentials derived from PLAIN entries:
// 4096 PBKDF2 rounds per login would be the cost of SCRAM for those users
// otherwise.
type scramDerived struct {
	secret []byte

	mu sync.Mutex
	m  map[string]derivedEntry // mech NUL user → credentials
}

type derivedEntry struct {
	stored string
	cred   sasl.SCRAMCredentials
}

func newSCRAMDerived(secret []byte) *scramDerived {
	if len(secret) == 0 {
		secret = randomBytes(32)
	}
	return &scramDerived{secret: secret, m: make(map[string]derivedEntry)}
}

func (s *scramDerived) derive(name, stored, mech, password string) (sasl.SCRAMCredentials, error) {
	key := mech + "\x00" + name
	s.mu.Lock()
	e, ok := s.m[key]
	s.mu.Unlock()
	if ok && e.stored == stored {
		return e.cred, nil
	}
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("postie scram salt\x00" + key + "\x00" + stored))
	salt := m.Sum(nil)[:16]
	newHash, _ := scramHash(mech)
	storedKey, serverKey, err := scramKeys(newHash, password, salt, sasl.DefaultSCRAMIterations)
	if err != nil {
		return sasl.SCRAMCredentials{}, err
	}
	c := sasl.SCRAMCredentials{Salt: salt, Iterations: sasl.DefaultSCRAMIterations, StoredKey: storedKey, ServerKey: serverKey}
	s.mu.Lock()
	if len(s.m) >= maxCacheEntries {
		for k := range s.m { // an arbitrary victim
			delete(s.m, k)
			break
		}
	}
	s.m[key] = derivedEntry{stored: stored, cred: c}
	s.mu.Unlock()
	return c, nil
}
