package maildir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/postie-mail/postie/store"
)

// lockName is the session lock file in the Maildir.
const lockName = "postie.lock"

// lock takes the exclusive session lock of the Maildir dir: flock(2) on a
// file description of its own, so that two sessions of one process exclude
// each other as well, and the kernel drops the lock when its process dies.
// A lock held elsewhere gives an error wrapping store.ErrInUse.
func lock(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("maildir: lock: %w", err)
	}
	fd := int(f.Fd())
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("maildir: lock %s: %w", dir, store.ErrInUse)
		}
		return nil, fmt.Errorf("maildir: lock %s: %w", dir, err)
	}
	return f, nil
}

// unlock releases a lock taken by lock.
func unlock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("maildir: unlock: %w", err)
	}
	return nil
}
