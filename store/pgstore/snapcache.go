package pgstore

import (
	"sync"

	"github.com/postie-mail/postie/store"
)

// DefaultSnapshotCache is the default bound of the snapshot cache, in
// messages (all maildrops together): some 100 MB at most.
const DefaultSnapshotCache = 1_000_000

// snapshot is a maildrop's list as of a generation of its
// postie_mailboxes row (the row's id too: a row deleted and made again
// starts its generations over). Its slices are shared by the sessions
// that use it and never modified.
type snapshot struct {
	gen     int64
	mailbox int64
	msgs    []message
	infos   []store.MessageInfo
}

// snapCache remembers the last snapshot of each maildrop, so that a login
// that finds the maildrop's generation unchanged (a poll with nothing new)
// transfers no message row. It holds at most limit messages.
type snapCache struct {
	mu    sync.Mutex
	m     map[string]*snapshot
	total int
	limit int
}

func newSnapCache(limit int) *snapCache {
	return &snapCache{m: map[string]*snapshot{}, limit: limit}
}

// get returns user's cached snapshot, or nil (always nil on a nil cache).
func (c *snapCache) get(user string) *snapshot {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[user]
}

// put remembers sn for user, evicting other maildrops' snapshots (in no
// particular order) to stay within the limit.
func (c *snapCache) put(user string, sn *snapshot) {
	if c == nil || len(sn.msgs) > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[user]; ok {
		c.total -= len(old.msgs)
		delete(c.m, user)
	}
	for u, old := range c.m {
		if c.total+len(sn.msgs) <= c.limit {
			break
		}
		c.total -= len(old.msgs)
		delete(c.m, u)
	}
	c.m[user] = sn
	c.total += len(sn.msgs)
}
