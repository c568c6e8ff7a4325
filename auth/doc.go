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
package auth
