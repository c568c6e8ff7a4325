package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// mboxDest appends to an mbox file in the mboxrd format: each message after
// a "From sender date" line (the sender from Return-Path, else
// MAILER-DAEMON; the date is the delivery time in UTC), LF line ends, lines
// matching ^>*From  quoted with one more '>', and an empty line after the
// message.
//
// Each append holds a dot lock (FILE.lock, created with O_EXCL; taken over
// when older than dotlockStale or when the process it names is gone) and an fcntl(2) write lock, as mutt,
// procmail and Postfix's local(8) do. Before appending, the offset where
// the message will start is recorded in the state ("pending"); the append
// is fsynced, then recorded as delivered. A run killed in between finds
// the pending record: if the message is there whole, it is recorded; if
// only a part of it is, that part is removed (the file truncated back, or
// the part cut out when another program appended after it). mbox delivery
// is exactly once.
type mboxDest struct {
	path    string
	pending func(id string, off int64, t time.Time) error
	wait    time.Duration // how long to wait for the locks
}

var (
	_ destination = (*mboxDest)(nil)
	_ recoverer   = (*mboxDest)(nil)
)

const (
	dotlockStale = 5 * time.Minute
	mboxLockWait = 2 * time.Minute
)

func openMbox(path string, pending func(string, int64, time.Time) error) (*mboxDest, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mbox: %w", err)
	}
	f.Close()
	return &mboxDest{path: path, pending: pending, wait: mboxLockWait}, nil
}

func (d *mboxDest) has(*message) bool      { return false }
func (d *mboxDest) staged() (int, int64)   { return 0, 0 }
func (d *mboxDest) detach() func() error   { return nil }
func (d *mboxDest) close() error           { return nil }
func (d *mboxDest) String() string         { return d.path }
func (d *mboxDest) lockTimeout() time.Time { return time.Now().Add(d.wait) }

// lock opens the mbox and takes the dot lock and the fcntl lock.
func (d *mboxDest) lock(ctx context.Context) (*os.File, func(), error) {
	deadline := d.lockTimeout()
	dot := d.path + ".lock"
	haveDot := false
	for {
		lf, err := os.OpenFile(dot, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			fmt.Fprintf(lf, "%d\n", os.Getpid())
			lf.Close()
			haveDot = true
			break
		}
		if errors.Is(err, os.ErrPermission) {
			break // no write access to the directory: fcntl only
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, nil, fmt.Errorf("mbox: dot lock: %w", err)
		}
		if staleDotlock(dot) {
			os.Remove(dot)
			continue
		}
		if err := sleepUntil(ctx, deadline, "dot lock "+dot); err != nil {
			return nil, nil, err
		}
	}
	release := func() {
		if haveDot {
			os.Remove(dot)
		}
	}
	f, err := os.OpenFile(d.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("mbox: %w", err)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	for {
		err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EACCES) {
			f.Close()
			release()
			return nil, nil, fmt.Errorf("mbox: fcntl lock: %w", err)
		}
		if err := sleepUntil(ctx, deadline, "fcntl lock on "+d.path); err != nil {
			f.Close()
			release()
			return nil, nil, err
		}
	}
	return f, func() {
		un := syscall.Flock_t{Type: syscall.F_UNLCK, Whence: io.SeekStart}
		syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &un)
		f.Close()
		release()
	}, nil
}

// staleDotlock reports whether a dot lock is left over: older than
// dotlockStale, or naming a process of this host that no longer exists
// (its holder was killed).
func staleDotlock(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	if time.Since(fi.ModTime()) > dotlockStale {
		return true
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func sleepUntil(ctx context.Context, deadline time.Time, what string) error {
	if time.Now().After(deadline) {
		return fmt.Errorf("mbox: timed out waiting for the %s", what)
	}
	return sleepCtx(ctx, 50*time.Millisecond)
}

func (d *mboxDest) deliver(ctx context.Context, m *message, r io.Reader) (bool, error) {
	f, unlock, err := d.lock(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	off, sep, err := appendPoint(f)
	if err != nil {
		return false, err
	}
	if err := d.pending(m.id, off, m.at); err != nil {
		return false, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return false, fmt.Errorf("mbox: %w", err)
	}
	bw := bufio.NewWriterSize(f, 32<<10)
	err = formatMbox(bw, r, m.at, sep)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		// Take the partial message back; the state still says pending,
		// which the next run resolves the same way if this fails too.
		if terr := f.Truncate(off); terr == nil {
			f.Sync()
		}
		return false, fmt.Errorf("mbox: %w", err)
	}
	return true, nil
}

// appendPoint returns where the next message starts and whether a line end
// must come first (the file does not end with one).
func appendPoint(f *os.File) (int64, bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, false, fmt.Errorf("mbox: %w", err)
	}
	off := fi.Size()
	if off == 0 {
		return 0, false, nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], off-1); err != nil {
		return 0, false, fmt.Errorf("mbox: %w", err)
	}
	return off, last[0] != '\n', nil
}

// formatMbox writes one mboxrd entry for the wire-form message read from r.
func formatMbox(w io.Writer, r io.Reader, at time.Time, sep bool) error {
	br := bufio.NewReaderSize(r, maxHeaderPeek)
	if sep {
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(w, fromLine(envelopeSender(peekHeader(br)), at)); err != nil {
		return err
	}
	q := newFromQuoter(w)
	lw := &lfWriter{w: q}
	if _, err := io.Copy(lw, br); err != nil {
		return err
	}
	if err := lw.finish(); err != nil {
		return err
	}
	if err := q.flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// recoverPending resolves a delivery the previous run left pending at
// offset e.pendOff.
func (d *mboxDest) recoverPending(ctx context.Context, m *message, e *entry, retr func() (io.ReadCloser, error)) (bool, error) {
	f, unlock, err := d.lock(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("mbox: %w", err)
	}
	off, size := e.pendOff, fi.Size()
	if off < 0 || size <= off {
		return false, nil // nothing of it was written
	}
	sep := false
	if off > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], off-1); err != nil {
			return false, fmt.Errorf("mbox: %w", err)
		}
		sep = last[0] != '\n'
	}
	r, err := retr()
	if err != nil {
		return false, err
	}
	cmp := &compareWriter{f: f, pos: off, end: size}
	err = formatMbox(cmp, r, time.Unix(e.pendTime, 0), sep)
	r.Close()
	if err != nil {
		return false, err
	}
	k := cmp.matched
	switch {
	case k == cmp.total:
		return true, nil // all there
	case k == 0:
		return false, nil // someone else's data at off: ours never started
	case off+k == size:
		err = f.Truncate(off) // a partial message at the end
	default:
		err = cutOut(f, off, k, size) // a partial message, then others' mail
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return false, fmt.Errorf("mbox: removing a partial message: %w", err)
	}
	return false, nil
}

// compareWriter compares what is written with the file from pos, counting
// the octets that match up to the first difference.
type compareWriter struct {
	f        *os.File
	pos, end int64
	matched  int64
	total    int64
	differs  bool
	buf      []byte
}

func (c *compareWriter) Write(p []byte) (int, error) {
	c.total += int64(len(p))
	q := p
	for len(q) > 0 && !c.differs {
		n := min(int64(len(q)), c.end-c.pos)
		if n <= 0 {
			c.differs = true
			break
		}
		if int64(cap(c.buf)) < n {
			c.buf = make([]byte, max(n, 32<<10))
		}
		b := c.buf[:n]
		if _, err := c.f.ReadAt(b, c.pos); err != nil {
			return 0, err
		}
		i := 0
		for i < len(b) && b[i] == q[i] {
			i++
		}
		c.matched += int64(i)
		c.pos += int64(i)
		if i < len(b) {
			c.differs = true
			break
		}
		q = q[n:]
	}
	return len(p), nil
}

// cutOut removes the n octets at off from a file of size octets.
func cutOut(f *os.File, off, n, size int64) error {
	buf := make([]byte, 64<<10)
	for src := off + n; src < size; {
		m, err := f.ReadAt(buf[:min(int64(len(buf)), size-src)], src)
		if m > 0 {
			if _, werr := f.WriteAt(buf[:m], src-n); werr != nil {
				return werr
			}
			src += int64(m)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if m == 0 {
			break
		}
	}
	return f.Truncate(size - n)
}
