package maildir

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/postie-mail/postie/internal/maildirname"
	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/store"
	"golang.org/x/sys/unix"
)

// Deliver writes the message read from r into user's Maildir, following the
// Maildir delivery protocol: a new file in tmp/, fsync, rename into new/,
// fsync of new/. It returns only once the message is durable; on any error
// nothing of the message is left behind. Deliver does not take the session
// lock: a message delivered during a session appears in the next one. A
// Maildir, tmp/ or new/ that is a symbolic link is refused (an error
// wrapping errUnsafe): the message is written nowhere else.
func (s *Store) Deliver(ctx context.Context, user string, r io.Reader) (store.DeliveryInfo, error) {
	return s.deliver(ctx, user, "", r)
}

// deliver is Deliver with uidl, when not "", recorded in the name (see
// DeliverUIDL).
func (s *Store) deliver(ctx context.Context, user, uidl string, r io.Reader) (store.DeliveryInfo, error) {
	dir, err := s.Path(user)
	if err != nil {
		return store.DeliveryInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.DeliveryInfo{}, fmt.Errorf("maildir: deliver: %w", err)
	}
	d, err := openMdir(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := ensure(dir); err != nil {
			return store.DeliveryInfo{}, err
		}
		d, err = openMdir(dir)
	}
	if err != nil {
		return store.DeliveryInfo{}, fmt.Errorf("maildir: deliver: %w", err)
	}
	defer d.close()
	s.maybeCleanTmp(d)
	tmpfd, err := subMade(d, dirTmp)
	if err != nil {
		return store.DeliveryInfo{}, fmt.Errorf("maildir: deliver: %w", err)
	}
	f, unique, err := s.createTmp(tmpfd)
	if err != nil {
		return store.DeliveryInfo{}, err
	}
	var w io.Writer = f
	if s.wrapTmp != nil {
		w = s.wrapTmp(f)
	}
	fsize, wsize, dots, err := copyMessage(ctx, w, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		unlinkAt(tmpfd, unique)
		return store.DeliveryInfo{}, fmt.Errorf("maildir: deliver: %w", err)
	}
	final := fmt.Sprintf("%s%s,S=%d,W=%d", unique, uidlField(uidl), fsize, wsize)
	// D= where it fits, with room left for ":2,FLAGS"; the offsets only
	// where they fit too.
	if d := dots.Field(); len(final)+len(d) <= 230 {
		final += d
	} else if d := maildirname.DotsField(dots.Lines(), nil); dots.Lines() > maildirname.MaxNamedDots && len(final)+len(d) <= 240 {
		final += d
	}
	newfd, err := subMade(d, dirNew)
	if err == nil {
		err = renameAt(tmpfd, unique, newfd, final)
	}
	if err != nil {
		unlinkAt(tmpfd, unique)
		return store.DeliveryInfo{}, fmt.Errorf("maildir: deliver: %w", err)
	}
	if err := syncFD(newfd); err != nil {
		// Not known to be durable: take it back so that the sender's
		// retry does not make a duplicate.
		unlinkAt(newfd, final)
		return store.DeliveryInfo{}, fmt.Errorf("maildir: deliver: %w", err)
	}
	if uidl == "" {
		uidl = uidOf(unique)
	}
	return store.DeliveryInfo{UID: uidl, Size: wsize}, nil
}

// subMade returns the descriptor of folder sub of d, making the folders
// first if sub is missing (removed by someone).
func subMade(d *mdir, sub string) (int, error) {
	fd, err := d.sub(sub)
	if errors.Is(err, os.ErrNotExist) {
		if err := ensureSubs(d); err != nil {
			return -1, err
		}
		fd, err = d.sub(sub)
	}
	return fd, err
}

// createTmp creates a new file in the open tmp/ folder tmpfd under a
// fresh unique name.
func (s *Store) createTmp(tmpfd int) (*os.File, string, error) {
	for attempt := 0; ; attempt++ {
		unique := s.uniqueName()
		fd, err := openat(tmpfd, unique, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|openFlags, 0o600)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), unique), unique, nil
		case err == unix.EEXIST && attempt < 10:
			// Someone else's file under our name: take another.
		default:
			return nil, "", fmt.Errorf("maildir: deliver: %w", &os.PathError{Op: "open", Path: dirTmp + "/" + unique, Err: err})
		}
	}
}

var pid = os.Getpid()

// uniqueName returns a name no other delivery uses, in Dovecot's form
// <secs>.M<usec>P<pid>Q<counter>R<random>.<host>. Within one Store the
// (secs, usec) pair strictly increases, so sequential deliveries sort in
// delivery order even if the clock steps back.
func (s *Store) uniqueName() string {
	now := s.nameNow()
	sec, usec := now.Unix(), int64(now.Nanosecond()/1000)
	s.mu.Lock()
	if sec < s.lastSec || sec == s.lastSec && usec <= s.lastUsec {
		sec, usec = s.lastSec, s.lastUsec+1
		if usec >= 1e6 {
			sec, usec = sec+1, 0
		}
	}
	s.lastSec, s.lastUsec = sec, usec
	s.counter++
	q := s.counter
	s.mu.Unlock()
	var rnd [4]byte
	rand.Read(rnd[:])
	return fmt.Sprintf("%d.M%06dP%dQ%dR%x.%s", sec, usec, pid, q, rnd, s.host)
}

// copyMessage copies r to w, returning the octets copied, their wire
// size, and the count of the lines that begin with '.'.
func copyMessage(ctx context.Context, w io.Writer, r io.Reader) (fsize, wsize int64, dots maildirname.DotCounter, err error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	buf := make([]byte, 32<<10)
	wc := wire.NewCounter()
	dots = maildirname.NewDotCounter()
	for {
		if err := ctx.Err(); err != nil {
			return 0, 0, dots, err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			wc.Write(buf[:n])
			dots.Write(buf[:n])
			if _, err := bw.Write(buf[:n]); err != nil {
				return 0, 0, dots, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, 0, dots, rerr
		}
	}
	if err := bw.Flush(); err != nil {
		return 0, 0, dots, err
	}
	return wc.Raw(), wc.Size(), dots, nil
}
