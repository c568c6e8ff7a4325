package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultCacheTTL is the lifetime of a cached verification when
// Options.CacheTTL is zero.
const DefaultCacheTTL = 10 * time.Minute

// maxCacheEntries bounds the credential cache; when it is full an
// arbitrary entry is evicted.
const maxCacheEntries = 100_000

// credCache remembers successful verifications so that a strong hash does
// not cap the login rate. An entry is keyed by the canonical user name and
// HMAC-SHA256(password) under a key that lives only in this process, and
// holds the stored hash it was verified against: a hit needs that hash to
// be unchanged (so SetPassword, or an edit and Reload, invalidates it) and
// the entry to be younger than the TTL. Plaintext passwords are never
// stored, nor is anything that could be checked offline without the key.
// Failed verifications are not cached.
type credCache struct {
	key [32]byte
	ttl time.Duration
	max int
	now func() time.Time // for tests

	mu sync.Mutex
	m  map[cacheKey]cacheEntry
}

type cacheKey struct {
	user string
	mac  [sha256.Size]byte
}

type cacheEntry struct {
	stored string
	at     time.Time
}

func newCredCache(ttl time.Duration, max int) *credCache {
	c := &credCache{ttl: ttl, max: max, now: time.Now, m: make(map[cacheKey]cacheEntry)}
	copy(c.key[:], randomBytes(len(c.key)))
	return c
}

func (c *credCache) keyFor(user, password string) cacheKey {
	h := hmac.New(sha256.New, c.key[:])
	h.Write([]byte(password))
	k := cacheKey{user: user}
	h.Sum(k.mac[:0])
	return k
}

// hit reports whether user's password was verified against stored less
// than the TTL ago.
func (c *credCache) hit(user, password, stored string) bool {
	k := c.keyFor(user, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return false
	}
	if e.stored != stored || c.now().Sub(e.at) >= c.ttl {
		delete(c.m, k)
		return false
	}
	return true
}

// add records a successful verification.
func (c *credCache) add(user, password, stored string) {
	k := c.keyFor(user, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for old := range c.m { // map order is random: an arbitrary victim
			delete(c.m, old)
			break
		}
	}
	c.m[k] = cacheEntry{stored: stored, at: c.now()}
}

// len returns the number of entries (for tests).
func (c *credCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// forget drops the entries of user (a change notified by the database).
func (c *credCache) forget(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if k.user == user {
			delete(c.m, k)
		}
	}
}

// clear drops every entry.
func (c *credCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}
