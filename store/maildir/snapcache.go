package maildir

import (
	"container/list"
	"sync"
	"time"

	"github.com/postie-mail/postie/store"
)

// The snapshot cache keeps the last snapshot of each maildrop, so that a
// login to a maildrop that has not changed since (the POP3 poll that finds
// nothing new) costs two stat(2) calls instead of reading new/ and cur/.
//
// A cached snapshot is used only when the stamps of new/ and cur/ (device,
// inode, mtime and ctime, to the nanosecond) are those seen just before the
// directories were read for it, and when that reading began at least
// snapMargin after the later of those mtimes and ctimes. The margin is the
// usual Maildir caveat: a directory's timestamp has one-second granularity
// on some file systems (and lags the clock by a timer tick on others), so a
// change made in the same tick as the one recorded would leave the stamp as
// it was. A change made after the reading began moves the stamp past the
// recorded one: any delivery, deletion or rename by another program (new/
// to cur/, flags) shows in the next login. Replacing a directory changes
// its inode; restoring an old mtime (rsync -t, tar) still changes the
// ctime. A clock set back since the snapshot was read makes it untrusted.
// The cache is per Store, so per process: a restart begins empty.
//
// A snapshot in which a message could not be measured is not cached (the
// reason may go away without the directory changing), and a session that
// removes messages drops its maildrop's entry.

// dirStamp identifies one state of a directory.
type dirStamp struct {
	dev, ino     uint64
	mtime, ctime int64 // nanoseconds since the epoch
}

// latest returns the later of the stamp's mtime and ctime.
func (d dirStamp) latest() int64 { return max(d.mtime, d.ctime) }

// snapMargin is how much older than a snapshot's reading the directory
// stamps must be for the snapshot to be cached (see above).
const snapMargin = 2 * time.Second

// DefaultSnapshotCache is the default Options.SnapshotCache: the number of
// messages kept in cached snapshots, across maildrops (about 200 octets of
// memory each, plus the names).
const DefaultSnapshotCache = 500_000

// snapshot is the list of messages of a maildrop at one moment. It is
// shared by the sessions that use it and the cache, and never modified once
// built.
type snapshot struct {
	files []message // in directory order
	pos   []int32   // files[pos[i]] is message i of infos
	infos []store.MessageInfo
}

// cachedSnap is an entry of the snapshot cache.
type cachedSnap struct {
	dir      string
	new, cur dirStamp
	began    int64 // when the reading began, in nanoseconds since the epoch
	snap     *snapshot
}

// snapCache is a bounded LRU cache of snapshots by Maildir directory.
type snapCache struct {
	max    int // the most messages held, over all entries
	margin int64

	mu     sync.Mutex // guards the fields below
	total  int        // messages held
	byDir  map[string]*list.Element
	lru    list.List // of *cachedSnap, most recently used first
	hits   int
	misses int
}

func newSnapCache(max int) *snapCache {
	return &snapCache{max: max, margin: int64(snapMargin), byDir: map[string]*list.Element{}}
}

// get returns the cached snapshot of dir if the stamps of its new/ and cur/
// are still newSt and curSt, and the clock, now, has not gone back since
// the snapshot was read (a file system stamping changes with a clock set
// back could repeat a recorded stamp). Otherwise it returns nil and the
// number of files of the outdated snapshot, if there was one, as a hint
// of the size of the next.
func (c *snapCache) get(dir string, newSt, curSt dirStamp, now time.Time) (snap *snapshot, hint int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byDir[dir]
	if !ok {
		c.misses++
		return nil, 0
	}
	cs := e.Value.(*cachedSnap)
	if cs.new != newSt || cs.cur != curSt || now.UnixNano() < cs.began {
		c.misses++
		c.removeLocked(e)
		return nil, len(cs.snap.files)
	}
	c.hits++
	c.lru.MoveToFront(e)
	return cs.snap, 0
}

// put caches snap as the snapshot of dir read from time began on, when the
// directories had the stamps newSt and curSt just before; it drops the
// entry of dir instead when the stamps are too recent to be trusted.
func (c *snapCache) put(dir string, newSt, curSt dirStamp, began time.Time, snap *snapshot) {
	n := len(snap.files)
	if !c.trusted(newSt, curSt, began) || n > c.max {
		c.drop(dir)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byDir[dir]; ok {
		c.removeLocked(e)
	}
	for c.total+n > c.max {
		c.removeLocked(c.lru.Back())
	}
	c.byDir[dir] = c.lru.PushFront(&cachedSnap{dir: dir, new: newSt, cur: curSt, began: began.UnixNano(), snap: snap})
	c.total += n
}

// trusted reports whether a snapshot read from time began on, when the
// directories had the stamps newSt and curSt just before, may be kept: the
// stamps are at least the margin older than the reading.
func (c *snapCache) trusted(newSt, curSt dirStamp, began time.Time) bool {
	return began.UnixNano()-max(newSt.latest(), curSt.latest()) >= c.margin
}

// drop forgets the snapshot of dir.
func (c *snapCache) drop(dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byDir[dir]; ok {
		c.removeLocked(e)
	}
}

func (c *snapCache) removeLocked(e *list.Element) {
	cs := c.lru.Remove(e).(*cachedSnap)
	delete(c.byDir, cs.dir)
	c.total -= len(cs.snap.files)
}

// stats returns the number of lookups that found a valid snapshot and of
// those that did not.
func (c *snapCache) stats() (hits, misses int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}
