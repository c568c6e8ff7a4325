// Package auth owns postie's user database: a Dovecot-compatible
// passwd-file held in memory, the password schemes it stores (hashing and
// verification), and a cache of verified credentials so that a strong
// password hash does not cap the login rate.
//
// # The passwd-file
//
// One user per line, in the layout Dovecot's passwd-file driver reads:
//
//	user:{SCHEME}hash:uid:gid:gecos:home:shell:extra
//
// Only the first two fields matter to postie; whatever follows the
// password is kept byte for byte when the file is rewritten, and so are
// comment lines (first non-blank character '#'), blank lines and lines
// that could not be parsed (they are skipped with a logged warning).
// CRLF line ends are tolerated. A password without a {SCHEME} prefix is
// taken as a crypt(3) string recognised by its prefix ($2y$, $2b$, $2a$,
// $6$, $5$, $1$); anything else is refused.
//
// Edits (Add, SetPassword, Delete) take an exclusive flock on
// "<path>.lock", re-read the file, and replace it atomically (a temporary
// file in the same directory, fsync, rename, fsync of the directory) with
// mode 0600, so two `postie user` runs never lose each other's changes.
//
// # Logins
//
// DB.Authenticate implements the POP3 server's Authenticator. An unknown
// user and a wrong password give the same result after the same work: an
// unknown (or invalid) name is checked against a dummy hash in
// DefaultScheme. Successful verifications are cached (keyed by the user
// and an HMAC of the password under a per-process random key, never the
// password itself) for Options.CacheTTL, as long as the stored hash does
// not change.
//
// # Users in PostgreSQL
//
// OpenPostgres keeps the same users in table postie_users instead (one
// row per passwd-file entry: name, the password field as the file holds
// it, {SCRAM-SHA-256} keys included, and uid, gid, gecos, home, shell and
// extra; store/pgstore's migrations create it), for several nodes that
// must agree at once. Each node holds the table in memory and a
// connection of its own that LISTENs on channel postie_users; a trigger
// NOTIFYs the changed name at every COMMIT, and the node re-reads that
// row (and drops its cached verifications). After each (re)connection it
// reads the whole table, so nothing committed while it was away is
// missed.
//
// A notification can be late or lost with its connection, so the node
// trusts the table in memory only while it is fresh: every
// MaxStaleness/4 (default 1s/4) the listening connection makes a round
// trip, and PostgreSQL delivers every notification committed before it
// ahead of its reply; a login, and a lookup of delivery (Lookup,
// LookupContext, Home, HomeContext, Exists), trusts memory only if such
// a round trip started less than MaxStaleness ago. Otherwise (the
// listener lost, the database slow) it reads the row from the database,
// and fails with a temporary error if that fails: LookupContext and
// HomeContext return it, so that delivery answers 4xx (never "no such
// user", which would bounce the mail); Lookup, Home and Exists, which
// cannot, log it and report no user. Hence the bound: a password
// changed, an account deleted or a home moved holds on every node at
// most MaxStaleness after its COMMIT, whatever became of the
// notification; usually within milliseconds.
package auth
