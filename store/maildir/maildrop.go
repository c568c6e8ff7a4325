package maildir

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/postie-mail/postie/internal/maildirname"
	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/store"
	"golang.org/x/sys/unix"
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
	// The Maildir is opened once, never through a symbolic link (see
	// fsat.go), and created where missing.
	d, err := openMdir(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := ensure(dir); err != nil {
			return nil, err
		}
		d, err = openMdir(dir)
	}
	if err != nil {
		return nil, err
	}
	s.maybeCleanTmp(d)
	lf, err := lock(d)
	if err != nil {
		d.close()
		return nil, err
	}
	if n, err := s.finishUpdate(d, user); err != nil {
		s.log.Error("maildir: cannot finish an update interrupted by a crash", "user", user, "err", err)
	} else if n > 0 {
		s.log.Info("maildir: finished an update interrupted by a crash", "user", user, "removed", n)
	}
	md := &maildrop{s: s, user: user, dir: dir, d: d, lockf: lf}
	err = md.take(ctx)
	if errors.Is(err, os.ErrNotExist) {
		// new/ or cur/ missing: make them, as for a new Maildir.
		if err = ensureSubs(d); err == nil {
			err = md.take(ctx)
		}
	}
	if err != nil {
		unlock(lf)
		d.close()
		return nil, err
	}
	// Idle, the session holds the lock only: each call that needs the
	// Maildir reopens it (enter).
	d.release()
	return md, nil
}

// message is one file of a snapshot.
type message struct {
	sub   string // dirNew or dirCur, where the file was seen
	name  string // its file name there
	n     msgName
	fsize int64 // expected file size, -1 when unknown
}

// place is where a message's file is: subdirectory and name.
type place struct{ sub, name string }

// maildrop is a locked Maildir and its snapshot.
type maildrop struct {
	s    *Store
	user string
	dir  string
	*snapshot

	mu        sync.Mutex      // guards the fields below (and d after take)
	d         *mdir           // the Maildir; released but during a call (enter)
	moved     map[int32]place // files[k] found elsewhere during this session
	lockf     lockFile        // -1 once closed
	committed bool
	exp       expireState // EXPIRE records (expire.go)
}

var _ store.Maildrop = (*maildrop)(nil)

// take takes the snapshot: the cached one when new/ and cur/ have not
// changed since it was read, otherwise by reading them.
func (md *maildrop) take(ctx context.Context) error {
	c := md.s.snaps
	if c == nil {
		snap, _, err := md.read(ctx, 0)
		md.snapshot = snap
		return err
	}
	// The time is taken before the stamps: whatever changes after it
	// moves them (see snapcache.go).
	began := md.s.now()
	newSt, err := md.s.statDir(md.d, dirNew)
	if err != nil {
		c.drop(md.dir)
		if errors.Is(err, os.ErrNotExist) {
			return err
		}
		snap, _, err := md.read(ctx, 0)
		md.snapshot = snap
		return err
	}
	curSt, err := md.s.statDir(md.d, dirCur)
	if err != nil {
		c.drop(md.dir)
		if errors.Is(err, os.ErrNotExist) {
			return err
		}
		snap, _, err := md.read(ctx, 0)
		md.snapshot = snap
		return err
	}
	snap, hint := c.get(md.dir, newSt, curSt, began)
	if snap != nil {
		md.snapshot = snap
		return nil
	}
	// An outdated cached snapshot too small to have an index (hint) says
	// there is none to look for.
	if hint == 0 || hint >= indexMin {
		snap, err = loadIndex(md.d, newSt, curSt, began.UnixNano(), c.margin)
	}
	if err != nil {
		md.s.log.Warn("maildir: ignoring the snapshot index", "user", md.user, "err", err)
		if err := removeIndex(md.d); err != nil {
			md.s.log.Warn("maildir: cannot remove the snapshot index", "user", md.user, "err", err)
		}
	}
	if snap != nil {
		md.settleUIDLs(snap)
		md.snapshot = snap
		c.put(md.dir, newSt, curSt, began, snap)
		return nil
	}
	snap, complete, err := md.read(ctx, hint)
	if err != nil {
		c.drop(md.dir)
		return err
	}
	md.snapshot = snap
	if !complete {
		c.drop(md.dir)
		return nil
	}
	c.put(md.dir, newSt, curSt, began, snap)
	if len(snap.pos) >= indexMin && c.trusted(newSt, curSt, began) {
		if err := saveIndex(md.d, newSt, curSt, began.UnixNano(), snap); err != nil {
			md.s.log.Warn("maildir: cannot save the snapshot index", "user", md.user, "err", err)
		}
	}
	return nil
}

// read lists new/ and cur/ and settles the UID and wire size of every
// message. It reports complete false when a message had to be left out
// for a reason other than its name (unreadable, gone while measured).
// hint is the number of messages expected, 0 if unknown.
func (md *maildrop) read(ctx context.Context, hint int) (snap *snapshot, complete bool, err error) {
	var files []message
	if hint > 0 {
		files = make([]message, 0, hint+hint/8)
	}
	// new/ before cur/: a message moved from new/ to cur/ meanwhile is
	// then seen at least once (perhaps twice, which dedup handles).
	for _, sub := range []string{dirNew, dirCur} {
		if files, err = md.list(sub, files); err != nil {
			return nil, false, err
		}
	}
	allSized := true // every name has W=: postie-sizes is not needed
	for i := range files {
		if files[i].n.wsize < 0 {
			allSized = false
			break
		}
	}

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

	// postie-sizes is read only when a name lacks W=, or when the file
	// exists and may hold entries to drop.
	var cache map[string]sizes
	if !allSized || existsAt(md.d.fd, cacheName) {
		if cache, err = loadSizes(md.d.fd, maxSizesFor(len(files))); err != nil {
			md.s.log.Warn("maildir: ignoring size cache", "user", md.user, "err", err)
			cache = map[string]sizes{}
		}
	}
	var used []cacheEntry // what the cache will hold: messages without W=
	hits, computed := 0, 0

	snap = &snapshot{
		files: files,
		pos:   make([]int32, 0, len(files)),
		infos: make([]store.MessageInfo, 0, len(files)),
	}
	complete = true
	for _, k := range order {
		m := &files[k.i]
		// The UID is a function of the unique part, and equal unique
		// parts are adjacent: keep the first file of each.
		if n := len(snap.pos); n > 0 && files[snap.pos[n-1]].n.unique == m.n.unique {
			if prev := &files[snap.pos[n-1]]; prev.n.base != m.n.base {
				md.s.log.Warn("maildir: ignoring message with duplicate UID", "user", md.user, "dir", m.sub, "name", m.name, "uid", snap.infos[n-1].UID)
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
					return nil, false, fmt.Errorf("maildir: open: %w", err)
				}
				if e, err = md.measure(m); err != nil {
					if !errors.Is(err, store.ErrMessageGone) {
						md.s.log.Warn("maildir: skipping unreadable message", "user", md.user, "dir", m.sub, "name", m.name, "err", err)
					}
					complete = false
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
		snap.pos = append(snap.pos, k.i)
		snap.infos = append(snap.infos, store.MessageInfo{UID: m.n.uid(), Size: size})
	}
	// Rewrite the cache when it gained entries or has stale ones.
	if computed > 0 || hits < len(cache) {
		if err := saveSizes(md.d.fd, used); err != nil {
			md.s.log.Warn("maildir: cannot save size cache", "user", md.user, "err", err)
		}
	}
	md.settleUIDLs(snap)
	return snap, complete, nil
}

// list appends the messages in subdirectory sub to files: the regular
// files, except dot-files and those whose names cannot be a message's (a
// symbolic link, FIFO or device is left out, logged). It reads the
// directory only: no message is stat'ed (the file type comes from the
// directory entry on file systems that record it). The names are
// gathered in a pooled buffer and then share one string of the exact
// size, not allocated one by one.
func (md *maildrop) list(sub string, files []message) ([]message, error) {
	fd, err := md.d.sub(sub)
	if err != nil {
		return nil, fmt.Errorf("maildir: open: %w", err)
	}
	sc := nameScratches.Get().(*nameScratch)
	defer sc.release()
	err = readDirFD(fd, func(b []byte, regular bool) {
		if b[0] == '.' {
			return
		}
		if !regular {
			md.s.log.Warn("maildir: ignoring what is not a regular file (symbolic link, FIFO, device, directory)", "user", md.user, "dir", sub, "name", string(b))
			return
		}
		sc.buf = append(sc.buf, b...)
		sc.ends = append(sc.ends, len(sc.buf))
	})
	if err != nil {
		return nil, fmt.Errorf("maildir: open: %s/%s: %w", md.dir, sub, err)
	}
	all := string(sc.buf)
	files = slices.Grow(files, len(sc.ends))
	start := 0
	for _, end := range sc.ends {
		name := all[start:end]
		start = end
		n, ok := parseName(name)
		if !ok {
			md.s.log.Warn("maildir: ignoring garbage file name", "user", md.user, "dir", sub, "name", name)
			continue
		}
		if n.wsize >= 0 && n.fsize >= 0 && (n.wsize < n.fsize || n.wsize > 2*n.fsize+2) {
			// The wire form adds at most a CR per octet and a final
			// CRLF, and never removes any: these sizes cannot both be
			// right. Measure the message as if it had none.
			md.s.log.Warn("maildir: sizes in the file name cannot be right; measuring the message", "user", md.user, "dir", sub, "name", name)
			n.wsize, n.fsize = -1, -1
		}
		files = append(files, message{sub: sub, name: name, n: n})
	}
	return files, nil
}

// nameScratch gathers the names of a directory being read.
type nameScratch struct {
	buf  []byte // the names, one after the other
	ends []int  // where each ends in buf
}

var nameScratches = sync.Pool{New: func() any { return new(nameScratch) }}

// release returns sc to the pool, unless a huge maildrop made it big.
func (sc *nameScratch) release() {
	if cap(sc.buf) > 16<<20 {
		return
	}
	sc.buf, sc.ends = sc.buf[:0], sc.ends[:0]
	nameScratches.Put(sc)
}

// measure reads message m, not yet in a shared snapshot, to compute its
// wire size. A message that has vanished gives an error wrapping
// store.ErrMessageGone.
func (md *maildrop) measure(m *message) (sizes, error) {
	p := place{m.sub, m.name}
	f, size, err := md.openFile(&p, m.n.base)
	if err != nil {
		return sizes{}, err
	}
	m.sub, m.name = p.sub, p.name
	defer f.Close()
	w, err := wire.WireSize(f)
	if err != nil {
		return sizes{}, err
	}
	return sizes{wire: w, file: size}, nil
}

// openFile opens the message with base name base found at p, following it
// to its current name (and updating p) if another program renamed it (new/
// to cur/, changed flags), and returns it with its size. It opens the file
// relative to the folder's descriptor, with O_NOFOLLOW (a symbolic link
// put in a message's place could point anywhere the server may read) and
// O_NONBLOCK (a FIFO put there cannot hang the session), and only a
// regular file is returned: anything else counts as the message being
// gone, and is never read.
func (md *maildrop) openFile(p *place, base string) (*os.File, int64, error) {
	fd, err := md.d.sub(p.sub)
	if err != nil {
		return nil, 0, err
	}
	mfd, st, err := openRegularAt(fd, p.name, syscall.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		if !md.relocate(p, base) {
			return nil, 0, fmt.Errorf("maildir: %s: %w", base, store.ErrMessageGone)
		}
		if fd, err = md.d.sub(p.sub); err != nil {
			return nil, 0, err
		}
		mfd, st, err = openRegularAt(fd, p.name, syscall.O_RDONLY, 0)
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, fmt.Errorf("maildir: %s: %w", base, store.ErrMessageGone)
		}
	}
	if errors.Is(err, errUnsafe) {
		md.s.log.Warn("maildir: not a regular file in place of a message; not read", "user", md.user, "dir", p.sub, "name", p.name)
		return nil, 0, fmt.Errorf("maildir: %s: not a regular file (symbolic link, FIFO, device): %w", base, store.ErrMessageGone)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("maildir: %w", err)
	}
	return os.NewFile(uintptr(mfd), p.name), st.Size, nil
}

// relocate looks for the message with base name base in new/ and cur/ and
// sets p to where it is now. It reports false when the message is gone.
func (md *maildrop) relocate(p *place, base string) bool {
	for _, sub := range []string{dirNew, dirCur} {
		fd, err := md.d.sub(sub)
		if err != nil {
			continue
		}
		found := ""
		readDirFD(fd, func(name []byte, regular bool) {
			if b, _, _ := bytes.Cut(name, []byte{':'}); found == "" && regular && string(b) == base {
				found = string(name)
			}
		})
		if found != "" {
			*p = place{sub, found}
			return true
		}
	}
	return false
}

// where returns where this session last saw file k of the snapshot.
// md.mu must be held.
func (md *maildrop) where(k int32) place {
	if p, ok := md.moved[k]; ok {
		return p
	}
	return place{md.files[k].sub, md.files[k].name}
}

// openAt opens file k of the snapshot, remembering where it was found.
// md.mu must be held.
func (md *maildrop) openAt(k int32) (*os.File, int64, error) {
	p := md.where(k)
	old := p
	f, size, err := md.openFile(&p, md.files[k].n.base)
	md.setPlace(k, old, p)
	return f, size, err
}

// setPlace records that file k, last seen at old, is at p. md.mu must be
// held.
func (md *maildrop) setPlace(k int32, old, p place) {
	if p == old {
		return
	}
	if md.moved == nil {
		md.moved = map[int32]place{}
	}
	md.moved[k] = p
}

// Messages returns the snapshot taken at Open.
func (md *maildrop) Messages() []store.MessageInfo { return md.infos }

// usable reports why the maildrop can no longer be used, if it cannot.
// md.mu must be held.
func (md *maildrop) usable() error {
	if md.lockf < 0 {
		return fmt.Errorf("maildir: %s: %w", md.user, store.ErrClosed)
	}
	if md.committed {
		return fmt.Errorf("maildir: %s: already committed: %w", md.user, store.ErrClosed)
	}
	return nil
}

// enter makes md.d usable for the call in progress, reopening it if it is
// released (mdir.reopen: the same directory, never through a symbolic
// link); leave(opened) releases it again if enter opened it, so that calls
// nest. md.mu must be held.
func (md *maildrop) enter() (opened bool, err error) {
	if md.lockf < 0 {
		return false, fmt.Errorf("maildir: %s: %w", md.user, store.ErrClosed)
	}
	if !md.d.released() {
		return false, nil
	}
	if err := md.d.reopen(); err != nil {
		md.s.log.Error("maildir: cannot reopen the Maildir during a session", "user", md.user, "err", err)
		return false, err
	}
	return true, nil
}

// leave undoes enter. md.mu must be held.
func (md *maildrop) leave(opened bool) {
	if opened {
		md.d.release()
	}
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
	opened, err := md.enter()
	if err != nil {
		return nil, err
	}
	defer md.leave(opened)
	k := md.pos[i]
	m := &md.files[k]
	f, fsize, err := md.openAt(k)
	if err != nil {
		return nil, err
	}
	if m.fsize >= 0 && fsize != m.fsize {
		// Changed by another program, or a name or postie-sizes entry
		// that was wrong from the start: measure it now, so that the
		// next session lists it as it is.
		if ws, err := wire.WireSize(f); err == nil {
			md.resize(k, sizes{wire: ws, file: fsize}, sizes{wire: md.infos[i].Size, file: m.fsize})
		}
		f.Close()
		return nil, fmt.Errorf("maildir: %s: size changed: %w", m.n.base, store.ErrMessageGone)
	}
	cf := &checkedFile{f: f, md: md, k: k, want: md.infos[i].Size, wc: wire.NewCounter()}
	if fsize == cf.want {
		// File size and wire size agree: CRLF line ends throughout
		// and a final one (the wire form only ever adds octets). The
		// count of dot lines is believed only from a name whose S=
		// is this file's size, and only on a file that this account
		// owns and nobody else can write: where users write their own
		// Maildirs, a name saying D=0 on a file with dot lines would
		// otherwise send them unstuffed and end the reply early.
		dots, known := maildirname.ParseDots(m.n.dots)
		return &wireFile{checkedFile: cf, dots: dots, known: known && m.n.fsize == fsize && ownFile(f)}, nil
	}
	return cf, nil
}

// ownFile reports whether f belongs to the process's effective user and
// is writable by no one else: the files this account delivered itself.
func ownFile(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid() && fi.Mode().Perm()&0o022 == 0
}

// wireFile is a checkedFile whose file is in wire form but for
// byte-stuffing (store.WireFile).
type wireFile struct {
	*checkedFile
	dots  []int64
	known bool
}

var _ store.WireFile = (*wireFile)(nil)

// WireFile returns the file itself: whoever sends it from there skips the
// counting of checkedFile, the sizes having been checked at Open.
func (w *wireFile) WireFile() (*os.File, int64, []int64, bool) {
	return w.f, w.want, w.dots, w.known
}

// checkedFile is a message file that counts its wire size as it is read:
// at the end, a size different from the listed one (a ,W= that was wrong
// in the name) is an error wrapping store.ErrMessageGone instead of
// io.EOF, and the true sizes are recorded for the next session.
type checkedFile struct {
	f    *os.File
	md   *maildrop
	k    int32
	want int64
	wc   wire.Counter
	done bool
}

func (c *checkedFile) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.wc.Write(p[:n])
	if err == io.EOF && !c.done {
		c.done = true
		if got := c.wc.Size(); got != c.want {
			c.md.mu.Lock()
			c.md.resize(c.k, sizes{wire: got, file: c.wc.Raw()}, sizes{wire: c.want, file: c.md.files[c.k].fsize})
			c.md.mu.Unlock()
			return n, fmt.Errorf("maildir: %s: %d octets on the wire, %d listed: %w", c.md.files[c.k].n.base, got, c.want, store.ErrMessageGone)
		}
	}
	return n, err
}

func (c *checkedFile) Close() error { return c.f.Close() }

// resize records the true sizes of file k, found different from the listed
// ones, so that the next snapshot lists the message right: a name carrying
// ,S= or ,W= is renamed with the true values (as Dovecot does; the UIDL,
// made of the unique part, stays), else its postie-sizes entry is
// replaced. The message itself is left as it is. Failures are logged: the
// message then stays listed wrong, and is never sent short. md.mu must be
// held.
func (md *maildrop) resize(k int32, got, listed sizes) {
	m := &md.files[k]
	p := md.where(k)
	args := []any{"user", md.user, "dir", p.sub, "name", p.name, "listed_size", listed.wire, "listed_file_size", listed.file, "size", got.wire, "file_size", got.file}
	opened, err := md.enter()
	if err != nil {
		md.s.log.Error("maildir: message size differs from the listed one; cannot record it", append(args, "err", err)...)
		return
	}
	defer md.leave(opened)
	if m.n.fsize >= 0 || m.n.wsize >= 0 {
		np := place{p.sub, withSizes(p.name, got.file, got.wire)}
		var fd int
		if fd, err = md.d.sub(p.sub); err == nil {
			if err = renameAt(fd, p.name, fd, np.name); err == nil {
				md.setPlace(k, p, np)
				err = syncFD(fd)
				args = append(args, "renamed_to", np.name)
			}
		}
	} else {
		var cache map[string]sizes
		if cache, err = loadSizes(md.d.fd, maxSizesFor(len(md.files))); err != nil {
			cache = map[string]sizes{}
		}
		cache[m.n.unique] = got
		entries := make([]cacheEntry, 0, len(cache))
		for u, e := range cache {
			entries = append(entries, cacheEntry{u, e})
		}
		err = saveSizes(md.d.fd, entries)
	}
	if md.s.snaps != nil {
		md.s.snaps.drop(md.dir)
		// A new postie-sizes entry leaves new/ and cur/ as they were:
		// the index would list the old size.
		if rerr := removeIndex(md.d); err == nil {
			err = rerr
		}
	}
	if err != nil {
		md.s.log.Error("maildir: message size differs from the listed one; cannot record it", append(args, "err", err)...)
		return
	}
	md.s.log.Warn("maildir: message size differs from the listed one; corrected for the next session", args...)
}

// Commit removes the given messages (RFC 1939 §6, UPDATE state): each with
// one unlink(2), following messages that other programs renamed, after
// recording their names in the update journal, so that a crash in the
// middle removes all of them or none (update.go). A message already gone counts as removed. Failures do
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
	opened, err := md.enter()
	if err != nil {
		return err
	}
	defer md.leave(opened)
	md.committed = true
	var errs []error
	touched := map[string]bool{}
	done := map[int]bool{}
	var bases []string
	for _, i := range deleted {
		if !done[i] {
			done[i] = true
			bases = append(bases, md.files[md.pos[i]].n.base)
		}
	}
	// All or nothing across a crash (see update.go); one unlink is that
	// by itself.
	journaled := false
	if len(bases) > 1 && !md.s.noJournal {
		if err := writeJournal(md.d.fd, bases); err != nil {
			md.s.log.Warn("maildir: cannot write the update journal; removing the messages one by one", "user", md.user, "err", err)
		} else {
			journaled = true
		}
	}
	clear(done)
	for _, i := range deleted {
		if done[i] {
			continue
		}
		done[i] = true
		k := md.pos[i]
		sub, err := md.remove(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("maildir: %s: remove %s: %w", md.user, md.files[k].n.base, err))
			continue
		}
		touched[sub] = true
	}
	if md.s.snaps != nil && len(done) > 0 {
		// The stamps of new/ and cur/ have moved; do not wait for the
		// next login to find out.
		md.s.snaps.drop(md.dir)
	}
	errs = md.syncFolders(touched, errs)
	md.saveRetrieved(deleted)
	if journaled {
		if err := removeJournal(md.d.fd); err != nil {
			errs = append(errs, fmt.Errorf("maildir: update journal: %w", err))
		}
	}
	return errors.Join(errs...)
}

// remove unlinks file k of the snapshot (never a directory, unlike
// os.Remove), in the folder opened for the call in progress, never
// through a symbolic link, and returns the subdirectory it was removed from. md.mu
// must be held.
func (md *maildrop) remove(k int32) (sub string, err error) {
	for range 3 {
		p := md.where(k)
		fd, err := md.d.sub(p.sub)
		if err != nil {
			return "", err
		}
		for {
			if err = unix.Unlinkat(fd, p.name, 0); err != syscall.EINTR {
				break
			}
		}
		if err == nil {
			return p.sub, nil
		}
		if err != syscall.ENOENT {
			return "", &os.PathError{Op: "unlink", Path: md.dir + "/" + p.sub + "/" + p.name, Err: err}
		}
		np := p
		if !md.relocate(&np, md.files[k].n.base) {
			return "", nil // already gone
		}
		md.setPlace(k, p, np)
	}
	return "", errors.New("renamed by another program while being removed")
}

// Close releases the lock. It removes nothing and may be called again.
func (md *maildrop) Close() error {
	md.mu.Lock()
	defer md.mu.Unlock()
	if md.lockf < 0 {
		return nil
	}
	md.saveRetrieved(nil)
	err := unlock(md.lockf)
	md.lockf = -1
	md.d.close()
	return err
}

// syncFolders fsyncs the folders (new, cur) in touched, so that the
// removals and renames in them are durable, and adds what failed to errs.
func (md *maildrop) syncFolders(touched map[string]bool, errs []error) []error {
	for _, sub := range []string{dirNew, dirCur} {
		if touched[sub] {
			fd, err := md.d.sub(sub)
			if err == nil {
				err = syncFD(fd)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}
