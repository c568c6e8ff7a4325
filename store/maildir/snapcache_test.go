package maildir

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/store"
)

// The snapshot cache must never show a session what the directories no
// longer say. These tests make every snapshot trustworthy to the cache (a
// clock an hour ahead, or timestamps frozen in the past), check that the
// cache is used, and then change the Maildir as other programs do: each
// would fail if a login returned the cached, outdated snapshot.

// trustingStore returns a store whose clock runs an hour ahead, so that
// every snapshot it reads is old enough to be cached, and the Maildir of
// alice with three messages delivered.
func trustingStore(t *testing.T) (*Store, string) {
	t.Helper()
	s, _ := newTestStore(t, "h")
	s.now = func() time.Time { return time.Now().Add(time.Hour) }
	for _, body := range []string{"one\n", "two\n", "three\n"} {
		mustDeliver(t, s, "alice", body)
	}
	dir, _ := s.Path("alice")
	return s, dir
}

// login opens alice's maildrop, returns its snapshot and closes it.
func login(t *testing.T, s *Store) []store.MessageInfo {
	t.Helper()
	md := mustOpen(t, s, "alice")
	defer md.Close()
	return infos(md)
}

// hits returns the snapshot cache's hit count.
func hits(s *Store) int {
	h, _ := s.snaps.stats()
	return h
}

// cachedLogin logs in twice and checks that the second login came from the
// cache with the same snapshot.
func cachedLogin(t *testing.T, s *Store) []store.MessageInfo {
	t.Helper()
	first := login(t, s)
	h := hits(s)
	again := login(t, s)
	if hits(s) != h+1 {
		t.Fatalf("second login did not use the snapshot cache (hits %d → %d)", h, hits(s))
	}
	if !slices.Equal(first, again) {
		t.Fatalf("cached snapshot %v, read %v", again, first)
	}
	return first
}

// externally runs change, made by another program, after the kernel's
// timestamp clock has moved on (it ticks every few milliseconds), and
// checks that it moved the stamp of subdirectory sub of dir.
func externally(t *testing.T, dir, sub string, change func()) {
	t.Helper()
	before, err := statDir(filepath.Join(dir, sub))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	change()
	after, err := statDir(filepath.Join(dir, sub))
	if err != nil {
		t.Fatal(err)
	}
	if after == before {
		t.Fatalf("the change left %s/ with the same stamp %+v", sub, after)
	}
}

func TestSnapshotCacheExternalDelivery(t *testing.T) {
	s, dir := trustingStore(t)
	before := cachedLogin(t, s)
	externally(t, dir, "new", func() {
		// As Postfix's local(8) delivers: tmp/, then rename into new/.
		writeFile(t, filepath.Join(dir, "tmp", "1700000000.P1Q1.mx"), "external\n")
		if err := os.Rename(filepath.Join(dir, "tmp", "1700000000.P1Q1.mx"), filepath.Join(dir, "new", "1700000000.P1Q1.mx")); err != nil {
			t.Fatal(err)
		}
	})
	got := login(t, s)
	want := append([]store.MessageInfo{{UID: "1700000000.P1Q1.mx", Size: wireSizeOf("external\n")}}, before...)
	if !slices.Equal(got, want) {
		t.Fatalf("after an external delivery: %v, want %v", got, want)
	}
}

func TestSnapshotCacheExternalDelete(t *testing.T) {
	s, dir := trustingStore(t)
	before := cachedLogin(t, s)
	externally(t, dir, "new", func() {
		for _, n := range names(t, filepath.Join(dir, "new")) {
			if strings.HasPrefix(n, before[1].UID) {
				if err := os.Remove(filepath.Join(dir, "new", n)); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
	if got, want := login(t, s), []store.MessageInfo{before[0], before[2]}; !slices.Equal(got, want) {
		t.Fatalf("after an external delete: %v, want %v", got, want)
	}
}

// TestSnapshotCacheRenameToCur: a mail reader moves the messages to cur/
// and then deletes one there. The UIDLs stay, and the new snapshot knows
// where the files are.
func TestSnapshotCacheRenameToCur(t *testing.T) {
	s, dir := trustingStore(t)
	before := cachedLogin(t, s)
	externally(t, dir, "cur", func() {
		for _, n := range names(t, filepath.Join(dir, "new")) {
			if err := os.Rename(filepath.Join(dir, "new", n), filepath.Join(dir, "cur", n+":2,S")); err != nil {
				t.Fatal(err)
			}
		}
	})
	md := mustOpen(t, s, "alice")
	if got := infos(md); !slices.Equal(got, before) {
		t.Fatalf("after the move to cur/: %v, want %v", got, before)
	}
	m := md.(*maildrop)
	for _, k := range m.pos {
		if f := m.files[k]; f.sub != dirCur || !strings.HasSuffix(f.name, ":2,S") {
			t.Errorf("snapshot has %s/%s, want it in cur/ with :2,S", f.sub, f.name)
		}
	}
	md.Close()
	cachedLogin(t, s)
	externally(t, dir, "cur", func() {
		for _, n := range names(t, filepath.Join(dir, "cur")) {
			if strings.HasPrefix(n, before[0].UID) {
				if err := os.Remove(filepath.Join(dir, "cur", n)); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
	if got := login(t, s); !slices.Equal(got, before[1:]) {
		t.Fatalf("after a delete in cur/: %v, want %v", got, before[1:])
	}
}

// frozenStore returns a store that sees the timestamps of new/ and cur/
// frozen at one instant, as on a file system with one-second timestamps
// when every change falls in the same second, and whose clock says it is
// now the given time after that instant.
func frozenStore(t *testing.T, after time.Duration) (*Store, string) {
	t.Helper()
	s, dir := trustingStore(t)
	frozen := time.Now().Truncate(time.Second).UnixNano()
	s.statDir = func(md *mdir, sub string) (dirStamp, error) {
		d, err := statDirAt(md.fd, sub)
		d.mtime, d.ctime = frozen, frozen
		return d, err
	}
	s.now = func() time.Time { return time.Unix(0, frozen).Add(after) }
	return s, dir
}

// TestSnapshotCacheSameSecond: a snapshot read less than the margin after
// the directories' timestamps is not trusted, since a change in the same
// tick would not move them.
func TestSnapshotCacheSameSecond(t *testing.T) {
	s, dir := frozenStore(t, 500*time.Millisecond)
	first := login(t, s)
	if len(first) != 3 {
		t.Fatalf("snapshot %v, want 3 messages", first)
	}
	writeFile(t, filepath.Join(dir, "new", "1700000000.P2Q2.mx,S=5"), "late\n")
	got := login(t, s)
	if len(got) != 4 || got[0].UID != "1700000000.P2Q2.mx" {
		t.Fatalf("after a delivery in the same second: %v, want the new message first of 4", got)
	}
	if h := hits(s); h != 0 {
		t.Errorf("%d logins used a snapshot read within the margin", h)
	}

	// The same frozen timestamps, with the snapshot read after the
	// margin: then it is trusted (and nothing can change without moving
	// them on a real file system).
	s, _ = frozenStore(t, snapMargin+time.Millisecond)
	cachedLogin(t, s)
}

// TestSnapshotCacheReplacedDirectory: a directory replaced by another (a
// restore, a migration) has another inode, whatever its timestamps say.
func TestSnapshotCacheReplacedDirectory(t *testing.T) {
	s, dir := frozenStore(t, time.Hour)
	before := cachedLogin(t, s)
	cur := filepath.Join(dir, "cur")
	if err := os.Rename(cur, cur+".old"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(cur, "1600000000.P3Q3.mx,S=9:2,S"), "restored\n")
	got := login(t, s)
	want := append([]store.MessageInfo{{UID: "1600000000.P3Q3.mx", Size: wireSizeOf("restored\n")}}, before...)
	if !slices.Equal(got, want) {
		t.Fatalf("after replacing cur/: %v, want %v", got, want)
	}
}

// TestSnapshotCacheCommit: a session's deletions are seen by the next one,
// even where the timestamps would not show them.
func TestSnapshotCacheCommit(t *testing.T) {
	s, _ := frozenStore(t, time.Hour)
	before := cachedLogin(t, s)
	md := mustOpen(t, s, "alice")
	if err := md.Commit(t.Context(), []int{1}); err != nil {
		t.Fatal(err)
	}
	md.Close()
	if got, want := login(t, s), []store.MessageInfo{before[0], before[2]}; !slices.Equal(got, want) {
		t.Fatalf("after Commit: %v, want %v", got, want)
	}
}

// TestSnapshotCacheSessionsShareSafely: what one session learns of renamed
// files stays in that session; the cached snapshot is never modified.
func TestSnapshotCacheSessionsShareSafely(t *testing.T) {
	s, dir := frozenStore(t, time.Hour)
	cachedLogin(t, s)
	md := mustOpen(t, s, "alice")
	snap := md.(*maildrop).snapshot
	want := slices.Clone(snap.files)
	for _, n := range names(t, filepath.Join(dir, "new")) {
		if err := os.Rename(filepath.Join(dir, "new", n), filepath.Join(dir, "cur", n+":2,S")); err != nil {
			t.Fatal(err)
		}
	}
	for i, body := range []string{"one\n", "two\n", "three\n"} {
		if got, err := readMsg(t, md, i); err != nil || got != body {
			t.Errorf("Open(%d) after rename = %q, %v", i, got, err)
		}
	}
	md.Close()
	if !slices.Equal(snap.files, want) {
		t.Errorf("the shared snapshot was modified: %v, was %v", snap.files, want)
	}
}

// TestSnapshotCacheBounded: the cache holds at most Options.SnapshotCache
// messages, dropping the least recently used maildrop.
func TestSnapshotCacheBounded(t *testing.T) {
	s, err := New(Options{Root: t.TempDir(), Hostname: "h", SnapshotCache: 5})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Now().Add(time.Hour) }
	for _, u := range []string{"alice", "bob"} {
		for range 3 {
			mustDeliver(t, s, u, "x\n")
		}
	}
	open := func(u string) {
		md := mustOpen(t, s, u)
		if n := len(md.Messages()); n != 3 {
			t.Fatalf("%s: %d messages, want 3", u, n)
		}
		md.Close()
	}
	open("alice")
	open("alice") // hit
	open("bob")   // evicts alice
	open("bob")   // hit
	open("alice") // miss
	if h, m := s.snaps.stats(); h != 2 || m != 3 {
		t.Errorf("hits %d, misses %d; want 2 and 3", h, m)
	}
	if s.snaps.total > 5 {
		t.Errorf("cache holds %d messages, bound 5", s.snaps.total)
	}

	off, err := New(Options{Root: s.root, SnapshotCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	if off.snaps != nil {
		t.Error("SnapshotCache -1 did not disable the cache")
	}
}

// TestSnapshotCacheClockBack: after the clock is set back, a change could
// be stamped with the very time recorded for the cached snapshot; the
// cache is not trusted then.
func TestSnapshotCacheClockBack(t *testing.T) {
	s, dir := frozenStore(t, time.Hour)
	cachedLogin(t, s)
	frozen := s.now()
	s.now = func() time.Time { return frozen.Add(-10 * time.Second) }
	writeFile(t, filepath.Join(dir, "new", "1700000000.P4Q4.mx,S=5"), "late\n")
	if got := login(t, s); len(got) != 4 || got[0].UID != "1700000000.P4Q4.mx" {
		t.Fatalf("after the clock went back and a delivery: %v, want the new message first of 4", got)
	}
}
