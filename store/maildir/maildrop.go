package maildir

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/store"
)

// Open locks user's Maildir (creating it if missing) and takes the snapshot
// of the messages in new/ and cur/, oldest first. A maildrop locked by
// another session, in this process or another, gives an error wrapping
// store.ErrInUse.
func (s *Store) Open(ctx context.Context, user string) (store.Maildrop, error) {
	dir, err := s.Path(user)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("maildir: open: %w", err)
	}
	if err := ensure(dir); err != nil {
		return nil, err
	}
	s.maybeCleanTmp(dir)
	lf, err := lock(dir)
	if err != nil {
		return nil, err
	}
	md := &maildrop{s: s, user: user, dir: dir, lockf: lf}
	if err := md.snapshot(ctx); err != nil {
		unlock(lf)
		return nil, err
	}
	return md, nil
}

// message is one file of a snapshot.
type message struct {
	sub   string // dirNew or dirCur, where the file was last seen
	name  string // its file name there
	n     msgName
	fsize int64 // expected file size, -1 when unknown
}

func (m *message) path(dir string) string { return filepath.Join(dir, m.sub, m.name) }

// maildrop is a locked Maildir and its snapshot.
type maildrop struct {
	s     *Store
	user  string
	dir   string
	infos []store.MessageInfo
	files []message // in directory order
	pos   []int32   // files[pos[i]] is message i of infos

	mu        sync.Mutex // guards the fields below, and files[].sub/name
	lockf     *os.File   // nil once closed
	committed bool
}

var _ store.Maildrop = (*maildrop)(nil)

// snapshot lists new/ and cur/ and settles the UID and wire size of every
// message.
func (md *maildrop) snapshot(ctx context.Context) error {
	var ents []dirent
	// new/ before cur/: a message moved from new/ to cur/ meanwhile is
	// then seen at least once (perhaps twice, which dedup handles).
	for _, sub := range []string{dirNew, dirCur} {
		var err error
		if ents, err = md.list(sub, ents); err != nil {
			return err
		}
	}
	files := make([]message, 0, len(ents))
	for _, e := range ents {
		n, ok := parseName(e.name)
		if !ok {
			md.s.log.Warn("maildir: ignoring garbage file name", "user", md.user, "dir", e.sub, "name", e.name)
			continue
		}
		files = append(files, message{sub: e.sub, name: e.name, n: n})
	}
	ents = nil

	// Oldest first: by delivery time, then by name. The unique part
	// comes before the rest of the name so that the files of one message
	// (the same UID: a move caught mid-way, a copy) end up side by side.
	// Sorting small keys rather than the messages is much faster on big
	// maildrops.
	type sortKey struct {
		ts     uint64
		unique string
		i      int32
	}
	order := make([]sortKey, len(files))
	for i := range files {
		order[i] = sortKey{files[i].n.ts, files[i].n.unique, int32(i)}
	}
	slices.SortFunc(order, func(x, y sortKey) int {
		if c := cmp.Compare(x.ts, y.ts); c != 0 {
			return c
		}
		if c := strings.Compare(x.unique, y.unique); c != 0 {
			return c
		}
		a, b := &files[x.i], &files[y.i]
		return cmp.Or(strings.Compare(a.n.base, b.n.base), strings.Compare(a.sub, b.sub), strings.Compare(a.name, b.name))
	})

	cache, err := loadSizes(md.dir)
	if err != nil {
		md.s.log.Warn("maildir: ignoring size cache", "user", md.user, "err", err)
		cache = map[string]sizes{}
	}
	var used []cacheEntry // what the cache will hold: messages without W=
	hits, computed := 0, 0

	md.files = files
	md.pos = make([]int32, 0, len(files))
	md.infos = make([]store.MessageInfo, 0, len(files))
	for _, k := range order {
		m := &files[k.i]
		// The UID is a function of the unique part, and equal unique
		// parts are adjacent: keep the first file of each.
		if n := len(md.pos); n > 0 && files[md.pos[n-1]].n.unique == m.n.unique {
			if prev := &files[md.pos[n-1]]; prev.n.base != m.n.base {
				md.s.log.Warn("maildir: ignoring message with duplicate UID", "user", md.user, "dir", m.sub, "name", m.name, "uid", md.infos[n-1].UID)
			}
			continue
		}
		size := m.n.wsize
		m.fsize = m.n.fsize
		if size < 0 {
			e, ok := cache[m.n.unique]
			if ok {
				hits++
			} else {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("maildir: open: %w", err)
				}
				if e, err = md.measure(m); err != nil {
					if !errors.Is(err, store.ErrMessageGone) {
						md.s.log.Warn("maildir: skipping unreadable message", "user", md.user, "dir", m.sub, "name", m.name, "err", err)
					}
					continue
				}
				computed++
			}
			used = append(used, cacheEntry{m.n.unique, e})
			size = e.wire
			if m.fsize < 0 {
				m.fsize = e.file
			}
		}
		md.pos = append(md.pos, k.i)
		md.infos = append(md.infos, store.MessageInfo{UID: uidOf(m.n.unique), Size: size})
	}
	// Rewrite the cache when it gained entries or has stale ones.
	if computed > 0 || hits < len(cache) {
		if err := saveSizes(md.dir, used); err != nil {
			md.s.log.Warn("maildir: cannot save size cache", "user", md.user, "err", err)
		}
	}
	return nil
}

// dirent is a directory entry that may be a message.
type dirent struct {
	sub, name string
}

// list appends the regular files in subdirectory sub, except dot-files, to
// ents. It reads the directory only: no message is stat'ed (the file type
// comes from the directory entry on file systems that record it).
func (md *maildrop) list(sub string, ents []dirent) ([]dirent, error) {
	d, err := os.Open(filepath.Join(md.dir, sub))
	if err != nil {
		return nil, fmt.Errorf("maildir: open: %w", err)
	}
	defer d.Close()
	for {
		// In chunks: a huge maildir does not need all its entries at once.
		chunk, err := d.ReadDir(4096)
		if err == io.EOF {
			return ents, nil
		}
		if err != nil {
			return nil, fmt.Errorf("maildir: open: %w", err)
		}
		for _, e := range chunk {
			name := e.Name()
			if name[0] == '.' {
				continue
			}
			if !e.Type().IsRegular() {
				md.s.log.Debug("maildir: ignoring non-file", "user", md.user, "dir", sub, "name", name)
				continue
			}
			ents = append(ents, dirent{sub, name})
		}
	}
}

// measure reads message m to compute its wire size. A message that has
// vanished gives an error wrapping store.ErrMessageGone.
func (md *maildrop) measure(m *message) (sizes, error) {
	f, err := md.openFile(m)
	if err != nil {
		return sizes{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return sizes{}, err
	}
	if !fi.Mode().IsRegular() {
		return sizes{}, fmt.Errorf("maildir: %s: not a regular file", m.name)
	}
	w, err := wire.WireSize(f)
	if err != nil {
		return sizes{}, err
	}
	return sizes{wire: w, file: fi.Size()}, nil
}

// openFile opens message m, following it to its current name if another
// program renamed it (new/ to cur/, changed flags). O_NONBLOCK keeps a FIFO
// put in a message's place from hanging the session; it does not change
// reading a regular file.
func (md *maildrop) openFile(m *message) (*os.File, error) {
	f, err := os.OpenFile(m.path(md.dir), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		if !md.relocate(m) {
			return nil, fmt.Errorf("maildir: %s: %w", m.n.base, store.ErrMessageGone)
		}
		f, err = os.OpenFile(m.path(md.dir), os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("maildir: %s: %w", m.n.base, store.ErrMessageGone)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	return f, nil
}

// relocate looks for message m in new/ and cur/ by its base name and
// records where it is now. It reports false when the message is gone.
func (md *maildrop) relocate(m *message) bool {
	for _, sub := range []string{dirNew, dirCur} {
		d, err := os.Open(filepath.Join(md.dir, sub))
		if err != nil {
			continue
		}
		names, _ := d.Readdirnames(-1)
		d.Close()
		for _, name := range names {
			if base, _, _ := strings.Cut(name, ":"); base == m.n.base {
				m.sub, m.name = sub, name
				return true
			}
		}
	}
	return false
}

// Messages returns the snapshot taken at Open.
func (md *maildrop) Messages() []store.MessageInfo { return md.infos }

// usable reports why the maildrop can no longer be used, if it cannot.
// md.mu must be held.
func (md *maildrop) usable() error {
	if md.lockf == nil {
		return fmt.Errorf("maildir: %s: %w", md.user, store.ErrClosed)
	}
	if md.committed {
		return fmt.Errorf("maildir: %s: already committed: %w", md.user, store.ErrClosed)
	}
	return nil
}

// Open returns message i's file as stored. A message removed, or changed in
// size, since the snapshot gives an error wrapping store.ErrMessageGone:
// never a truncated message in place of the whole.
func (md *maildrop) Open(ctx context.Context, i int) (io.ReadCloser, error) {
	md.mu.Lock()
	defer md.mu.Unlock()
	if err := md.usable(); err != nil {
		return nil, err
	}
	if i < 0 || i >= len(md.pos) {
		return nil, fmt.Errorf("maildir: %s: no message %d", md.user, i)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	m := &md.files[md.pos[i]]
	f, err := md.openFile(m)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("maildir: %w", err)
	}
	if !fi.Mode().IsRegular() || m.fsize >= 0 && fi.Size() != m.fsize {
		f.Close()
		return nil, fmt.Errorf("maildir: %s: size changed: %w", m.n.base, store.ErrMessageGone)
	}
	return f, nil
}

// Commit removes the given messages (RFC 1939 §6, UPDATE state): each with
// one unlink(2), so each removal is atomic, following messages that other
// programs renamed. A message already gone counts as removed. Failures do
// not stop the other removals; they are returned together, and the
// messages concerned stay as they were. The directories touched are
// fsynced. Commit can be called once; Close must still follow. ctx is not
// consulted: UPDATE is entered on QUIT (RFC 1939 §6), and its removals are
// carried out even if the client hangs up meanwhile.
func (md *maildrop) Commit(ctx context.Context, deleted []int) error {
	md.mu.Lock()
	defer md.mu.Unlock()
	if err := md.usable(); err != nil {
		return err
	}
	for _, i := range deleted {
		if i < 0 || i >= len(md.pos) {
			return fmt.Errorf("maildir: %s: commit: no message %d", md.user, i)
		}
	}
	md.committed = true
	var errs []error
	touched := map[string]bool{}
	done := map[int]bool{}
	for _, i := range deleted {
		if done[i] {
			continue
		}
		done[i] = true
		m := &md.files[md.pos[i]]
		err := md.remove(m)
		if err != nil {
			errs = append(errs, fmt.Errorf("maildir: %s: remove %s: %w", md.user, m.n.base, err))
			continue
		}
		touched[m.sub] = true
	}
	for _, sub := range []string{dirNew, dirCur} {
		if touched[sub] {
			if err := syncDir(filepath.Join(md.dir, sub)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// remove unlinks message m (never a directory, unlike os.Remove).
func (md *maildrop) remove(m *message) error {
	for range 3 {
		err := syscall.Unlink(m.path(md.dir))
		if err == nil {
			return nil
		}
		if err != syscall.ENOENT {
			return &os.PathError{Op: "unlink", Path: m.path(md.dir), Err: err}
		}
		if !md.relocate(m) {
			return nil // already gone
		}
	}
	return errors.New("renamed by another program while being removed")
}

// Close releases the lock. It removes nothing and may be called again.
func (md *maildrop) Close() error {
	md.mu.Lock()
	defer md.mu.Unlock()
	if md.lockf == nil {
		return nil
	}
	err := unlock(md.lockf)
	md.lockf = nil
	return err
}
