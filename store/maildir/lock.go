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

// lock takes the exclusive session lock of the Maildir dir: flock(2) on a
// file description of its own, so that two sessions of one process exclude
// each other as well, and the kernel drops the lock when its process dies.
// A lock held elsewhere gives an error wrapping store.ErrInUse; a missing
// Maildir one wrapping os.ErrNotExist.
//
// On a read-only file system (EROFS) the lock file cannot be created or
// opened for writing: it is then opened read-only, or, when it does not
// exist, the Maildir directory itself is locked, so that mail can still be
// read (deletions then fail at UPDATE, and nothing is lost).
func lock(dir string) (lockFile, error) {
	path := dir + "/" + lockName
	// Not through a symbolic link put in the lock file's place.
	fd, err := open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_NOFOLLOW)
	if err == syscall.EROFS {
		fd, err = open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW)
		if err == syscall.ENOENT {
			path = dir
			fd, err = open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY)
		}
	}
	if err != nil {
		return -1, fmt.Errorf("maildir: lock: %w", &os.PathError{Op: "open", Path: path, Err: err})
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
			return -1, fmt.Errorf("maildir: lock %s: %w", dir, store.ErrInUse)
		}
		return -1, fmt.Errorf("maildir: lock %s: %w", dir, err)
	}
	return lockFile(fd), nil
}

// open is open(2) with O_CLOEXEC, retried on EINTR.
func open(path string, flags int) (int, error) {
	for {
		fd, err := syscall.Open(path, flags|syscall.O_CLOEXEC, 0o600)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}

// unlock releases a lock taken by lock: closing the only descriptor of
// the file description releases its flock.
func unlock(f lockFile) error {
	if err := syscall.Close(int(f)); err != nil {
		return fmt.Errorf("maildir: unlock: %w", err)
	}
	return nil
}
