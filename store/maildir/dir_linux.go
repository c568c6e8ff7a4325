//go:build linux

package maildir

import (
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// direntBufs holds the buffers getdents64(2) reads into: one 64 KiB buffer
// reads about 1,300 Maildir names per system call.
var direntBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// readDirFD calls fn for every entry of the open directory fd except "."
// and "..", from its beginning, with its name and whether it is a regular
// file (from the directory entry's type; an entry of unknown type, on file
// systems that record none, is fstatat'ed without following a symbolic
// link). It reads the directory with getdents64(2) directly: no os.File,
// no poller registration, no allocation per entry. The name passed to fn
// is only valid during the call.
func readDirFD(fd int, fn func(name []byte, regular bool)) error {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return &os.PathError{Op: "seek", Path: "directory", Err: err}
	}
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "readdirent", Path: "directory", Err: err}
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen;
		// u8 d_type; char d_name[]; } (NUL-terminated, padded).
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(*(*uint16)(unsafe.Pointer(&b[16])))
			if reclen < 19 || reclen > len(b) {
				return &os.PathError{Op: "readdirent", Path: "directory", Err: syscall.EIO}
			}
			typ := b[18]
			name := b[19:reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			b = b[reclen:]
			if len(name) == 0 || name[0] == '.' && (len(name) == 1 || len(name) == 2 && name[1] == '.') {
				continue
			}
			regular := typ == syscall.DT_REG
			if typ == syscall.DT_UNKNOWN {
				var st unix.Stat_t
				if unix.Fstatat(fd, string(name), &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
					regular = st.Mode&unix.S_IFMT == unix.S_IFREG
				}
			}
			fn(name, regular)
		}
	}
}

// statDirAt returns the stamp of directory name in dirfd (unix.AT_FDCWD:
// a path), not following a symbolic link: such a link, or a file of
// another type, gives an error wrapping errUnsafe.
func statDirAt(dirfd int, name string) (dirStamp, error) {
	var st unix.Stat_t
	var err error
	for {
		if err = unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return dirStamp{}, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return dirStamp{}, &os.PathError{Op: "stat", Path: name, Err: errUnsafe}
	}
	return dirStamp{
		dev:   uint64(st.Dev),
		ino:   uint64(st.Ino),
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
	}, nil
}
