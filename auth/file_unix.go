//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package auth

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on path (created 0600 if missing; it
// is never removed, since removing a lock file races with its next
// user). The lock is released by the returned function, or by the
// process's death.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// keepOwner gives tmp the owner and group of the file it replaces, so that
// `postie user` run as root does not leave the server (running as its own
// user) unable to read the file. It is best effort: only root may give a
// file away, and anyone else is already the owner of what they replace or
// cannot write it.
func keepOwner(tmp *os.File, old os.FileInfo) error {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok || (int(st.Uid) == os.Geteuid() && int(st.Gid) == os.Getegid()) {
		return nil
	}
	return tmp.Chown(int(st.Uid), int(st.Gid))
}
