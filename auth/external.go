package auth

import (
	"context"
	"crypto/tls"
	"sync/atomic"

	"github.com/postie-mail/postie/sasl"
)

// ClientCertUser maps a verified client certificate to a user of db, for
// SASL EXTERNAL: the first e-mail address of its subject alternative names
// that names a user, else its common name, matched as Lookup matches names;
// "" when none does or the certificate was not verified. It has the type
// of pop3server.Options.ClientCertUser.
func (db *DB) ClientCertUser(cs *tls.ConnectionState) string {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	leaf := cs.VerifiedChains[0][0]
	for _, e := range leaf.EmailAddresses {
		if name, ok := db.Lookup(e); ok {
			return name
		}
	}
	if name, ok := db.Lookup(leaf.Subject.CommonName); ok {
		return name
	}
	return ""
}

// TokenUsers checks OAuth tokens (OAUTHBEARER, XOAUTH2) with a validator,
// then requires the user a token names to exist in the user database: the
// maildrop opened is the database's spelling of the name. The validator is
// built by a function, again on Reload, so that a changed JWK Set file or
// identity provider setting takes effect without a restart.
type TokenUsers struct {
	db    *DB
	build func() (sasl.TokenValidator, error)
	cur   atomic.Pointer[sasl.TokenValidator]
}

var _ sasl.TokenValidator = (*TokenUsers)(nil)

// TokenUsers returns the TokenUsers of db with the validator build makes
// (an error of build is returned).
func (db *DB) TokenUsers(build func() (sasl.TokenValidator, error)) (*TokenUsers, error) {
	t := &TokenUsers{db: db, build: build}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload builds the validator again; on error the previous one stays.
func (t *TokenUsers) Reload() error {
	v, err := t.build()
	if err != nil {
		return err
	}
	t.cur.Store(&v)
	return nil
}

// ValidateToken implements sasl.TokenValidator.
func (t *TokenUsers) ValidateToken(ctx context.Context, user, token string) (string, bool, error) {
	name, ok, err := (*t.cur.Load()).ValidateToken(ctx, user, token)
	if err != nil || !ok {
		return "", false, err
	}
	return t.db.LookupContext(ctx, name)
}
