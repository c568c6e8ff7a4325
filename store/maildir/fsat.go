package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// Every name inside a maildrop is under the control of its user, who may
// write there (with mutt, or a mailbox_command delivery), while postie may
// run as root. So postie opens the maildrop directory without following
// a symbolic link, and works relative to that descriptor and to those of
// new/, cur/ and tmp/, each opened the same way: openat(2), unlinkat(2),
// renameat(2), fstatat(2) with AT_SYMLINK_NOFOLLOW. A session holds these
// descriptors only during a call: between calls it holds its lock file
// alone, and the next call opens the maildrop again, which must then be
// the very directory it locked (device and inode), and its folders again
// relative to it (see mdir). A symbolic link in place of the maildrop or
// of one of its folders is refused with errUnsafe; one in place of a message or of one of postie's files is
// never followed. postie's own files and the messages are opened with
// O_NONBLOCK (a FIFO cannot hang a session) and used only when fstat(2)
// says they are regular files; postie's files are read up to a bound.
// Options.Root itself, set by the administrator, may be a symbolic link
// (or lie below one): only what lies below Root/U is the user's.

// errUnsafe reports a symbolic link or a file of the wrong type where a
// maildrop, one of its folders or one of postie's files should be.
var errUnsafe = errors.New("a symbolic link or a file of the wrong type (FIFO, device): not followed")

// errTooBig reports one of postie's files bigger than it can be.
var errTooBig = errors.New("larger than it can legitimately be")

const (
	openFlags = unix.O_CLOEXEC | unix.O_NOFOLLOW
	dirFlags  = unix.O_RDONLY | unix.O_DIRECTORY | openFlags
)

// openat is openat(2), retried on EINTR.
func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// openDirAt opens directory name in dirfd (unix.AT_FDCWD: a path), not
// following a symbolic link in its last component: such a link, or a file
// of another type, gives an error wrapping errUnsafe.
func openDirAt(dirfd int, name string) (int, error) {
	fd, err := openat(dirfd, name, dirFlags, 0)
	if err == nil {
		return fd, nil
	}
	if err == unix.ELOOP || err == unix.ENOTDIR {
		return -1, &os.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: %w", errUnsafe, err)}
	}
	return -1, &os.PathError{Op: "open", Path: name, Err: err}
}

// closeFD closes a descriptor, if it is one.
func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// openRegularAt opens file name in dirfd with flags (O_CLOEXEC, O_NOFOLLOW
// and O_NONBLOCK added) and returns it when it is a regular file, with
// its stat. A symbolic link, FIFO, device or directory in its place gives
// an error wrapping errUnsafe, without having blocked or read anything;
// a missing file one wrapping os.ErrNotExist.
func openRegularAt(dirfd int, name string, flags int, mode uint32) (int, *unix.Stat_t, error) {
	fd, err := openat(dirfd, name, flags|openFlags|unix.O_NONBLOCK, mode)
	if err == unix.ELOOP {
		return -1, nil, &os.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: %w", errUnsafe, err)}
	}
	if err != nil {
		return -1, nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, nil, &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, nil, &os.PathError{Op: "open", Path: name, Err: errUnsafe}
	}
	return fd, &st, nil
}

// readStateFile reads postie's file name in the Maildir dirfd: a regular
// file (see openRegularAt) of at most max octets, else an error wrapping
// errUnsafe or errTooBig; nothing more than max+1 octets is ever read or
// allocated. A missing file gives an error wrapping os.ErrNotExist.
func readStateFile(dirfd int, name string, max int64) ([]byte, error) {
	fd, st, err := openRegularAt(dirfd, name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if st.Size > max {
		return nil, &os.PathError{Op: "read", Path: name, Err: errTooBig}
	}
	// The file may grow meanwhile: one octet more than allowed tells.
	b := make([]byte, 0, st.Size+1)
	for {
		if len(b) == cap(b) {
			if int64(len(b)) > max {
				return nil, &os.PathError{Op: "read", Path: name, Err: errTooBig}
			}
			b = slices.Grow(b, int(min(max+1, 2*int64(cap(b))+512))-len(b))
		}
		n, err := unix.Read(fd, b[len(b):min(cap(b), int(max+1))])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: name, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
		if int64(len(b)) > max {
			return nil, &os.PathError{Op: "read", Path: name, Err: errTooBig}
		}
	}
}

// createNewAt creates the file name in dirfd afresh for writing, removing
// what was there first: never through a symbolic link someone put in its
// place (O_EXCL and O_NOFOLLOW do not follow one), which could make the
// server overwrite any file it may write.
func createNewAt(dirfd int, name string) (*os.File, error) {
	if err := unix.Unlinkat(dirfd, name, 0); err != nil && err != unix.ENOENT {
		return nil, &os.PathError{Op: "unlink", Path: name, Err: err}
	}
	fd, err := openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|openFlags, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// replaceAt replaces the file name in dirfd atomically and durably:
// write fills name+".tmp", made afresh (never through a link), which is
// fsynced and renamed over name; then dirfd is fsynced. On a failure the
// temporary file is removed and name is left as it was.
func replaceAt(dirfd int, name string, write func(*bufio.Writer) error) (err error) {
	tmp := name + ".tmp"
	f, err := createNewAt(dirfd, tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			unlinkAt(dirfd, tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 64<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := renameAt(dirfd, tmp, dirfd, name); err != nil {
		return err
	}
	return syncFD(dirfd)
}

// unlinkAt removes file name in dirfd (never a directory); a missing one
// is not an error.
func unlinkAt(dirfd int, name string) error {
	if err := unix.Unlinkat(dirfd, name, 0); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "unlink", Path: name, Err: err}
	}
	return nil
}

// renameAt renames old in olddirfd to new in newdirfd.
func renameAt(olddirfd int, old string, newdirfd int, new string) error {
	if err := unix.Renameat(olddirfd, old, newdirfd, new); err != nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
	}
	return nil
}

// syncFD makes the entries of the open directory fd durable.
func syncFD(fd int) error {
	for {
		err := unix.Fsync(fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("maildir: sync dir: %w", err)
		}
		return nil
	}
}

// existsAt reports whether name exists in dirfd, whatever its type (as
// far as fstatat(2) can tell).
func existsAt(dirfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != unix.ENOENT
}

// mdir is an open Maildir: its directory, and its folders once opened,
// none through a symbolic link. It is not safe for concurrent use.
//
// A session's Maildir is released between commands (release), so that an
// idle session holds no descriptor of it, and reopened when a command
// needs it (reopen): by its path, never through a symbolic link, and only
// if it is still the directory first opened.
type mdir struct {
	path string // for messages, and the key of the snapshot cache
	fd   int    // -1 while released
	subs [3]int // new/, cur/, tmp/; -1 until opened
	id   fileID // the directory's, from its first opening
}

// fileID tells a file apart from every other one that exists at the same
// time: its device and inode.
type fileID struct{ dev, ino uint64 }

// fstatID returns the fileID of the open file fd.
func fstatID(fd int) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileID{}, err
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, nil
}

// subIndex gives the place of a folder in mdir.subs.
func subIndex(sub string) int {
	switch sub {
	case dirNew:
		return 0
	case dirCur:
		return 1
	}
	return 2
}

// openMdir opens the Maildir at path, Root/U. A symbolic link or other
// non-directory there gives an error wrapping errUnsafe; a missing one
// one wrapping os.ErrNotExist.
func openMdir(path string) (*mdir, error) {
	fd, err := openDirAt(unix.AT_FDCWD, path)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	id, err := fstatID(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("maildir: %w", &os.PathError{Op: "fstat", Path: path, Err: err})
	}
	return &mdir{path: path, fd: fd, subs: [3]int{-1, -1, -1}, id: id}, nil
}

// sub returns the descriptor of folder sub (dirNew, dirCur or dirTmp),
// opening it relative to the Maildir's the first time since d was opened
// or reopened. A symbolic link there gives an error wrapping errUnsafe.
// d must not be released.
func (d *mdir) sub(sub string) (int, error) {
	i := subIndex(sub)
	if d.subs[i] >= 0 {
		return d.subs[i], nil
	}
	fd, err := openDirAt(d.fd, sub)
	if err != nil {
		return -1, fmt.Errorf("maildir: %s: %w", d.path, err)
	}
	d.subs[i] = fd
	return fd, nil
}

// errReplaced reports a Maildir found replaced during a session.
var errReplaced = errors.New("no longer the directory this session locked (moved or replaced)")

// released reports whether d holds no descriptor.
func (d *mdir) released() bool { return d.fd < 0 }

// release closes the descriptors of d, which reopen can open again.
func (d *mdir) release() {
	for i, fd := range d.subs {
		closeFD(fd)
		d.subs[i] = -1
	}
	closeFD(d.fd)
	d.fd = -1
}

// reopen opens the released d again: the directory at its path, not
// through a symbolic link in its last component (errUnsafe), and only if
// it is the one first opened (same device and inode; errReplaced
// otherwise). Its folders are opened again as they are needed, relative
// to it and as carefully (see sub).
func (d *mdir) reopen() error {
	fd, err := openDirAt(unix.AT_FDCWD, d.path)
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	id, err := fstatID(fd)
	if err == nil && id != d.id {
		err = errReplaced
	}
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("maildir: %w", &os.PathError{Op: "open", Path: d.path, Err: err})
	}
	d.fd = fd
	return nil
}

// close closes the descriptors. d is unusable afterwards.
func (d *mdir) close() { d.release() }

// mkdirAt makes folder name in dirfd, reporting whether it did.
func mkdirAt(dirfd int, name string) (created bool, err error) {
	err = unix.Mkdirat(dirfd, name, 0o700)
	if err == nil {
		return true, nil
	}
	if err == unix.EEXIST {
		return false, nil
	}
	return false, fmt.Errorf("maildir: %w", &os.PathError{Op: "mkdir", Path: name, Err: err})
}
