package maildir

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/postie-mail/postie/store"
)

// lockName is the session lock file in the Maildir.
const lockName = "postie.lock"

// lockFile is a held session lock: the descriptor of the flocked file.
// Plain descriptors, not os.File: a login then costs no poller
// registration attempt, finalizer or blocking-mode change.
type lockFile int

// lock takes the exclusive session lock of the Maildir d: flock(2) on a
// file description of its own, so that two sessions of one process exclude
// each other as well, and the kernel drops the lock when its process dies.
// A lock held elsewhere gives an error wrapping store.ErrInUse. The lock
// file is opened without following a symbolic link and must be a regular
// file (errUnsafe otherwise).
//
// On a read-only file system (EROFS) the lock file cannot be created or
// opened for writing: it is then opened read-only, or, when it does not
// exist, the Maildir directory itself is locked, so that mail can still be
// read (deletions then fail at UPDATE, and nothing is lost).
func lock(d *mdir) (lockFile, error) {
	fd, _, err := openRegularAt(d.fd, lockName, syscall.O_RDWR|syscall.O_CREAT, 0o600)
	if errors.Is(err, syscall.EROFS) {
		fd, _, err = openRegularAt(d.fd, lockName, syscall.O_RDONLY, 0)
		if errors.Is(err, os.ErrNotExist) {
			fd, err = openat(d.fd, ".", dirFlags, 0)
		}
	}
	if err != nil {
		return -1, fmt.Errorf("maildir: lock %s: %w", d.path, err)
	}
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return -1, fmt.Errorf("maildir: lock %s: %w", d.path, store.ErrInUse)
		}
		return -1, fmt.Errorf("maildir: lock %s: %w", d.path, err)
	}
	return lockFile(fd), nil
}

// unlock releases a lock taken by lock: closing the only descriptor of
// the file description releases its flock.
func unlock(f lockFile) error {
	if err := syscall.Close(int(f)); err != nil {
		return fmt.Errorf("maildir: unlock: %w", err)
	}
	return nil
}
