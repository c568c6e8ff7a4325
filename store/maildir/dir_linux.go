//go:build linux

package maildir

import (
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// direntBufs holds the buffers getdents64(2) reads into: one 64 KiB buffer
// reads about 1,300 Maildir names per system call.
var direntBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// readDir calls fn for every entry of directory path except "." and "..",
// with its name and whether it is a regular file (from the directory entry's
// type; an entry of unknown type, on file systems that record none, is
// stat'ed). It reads the directory with getdents64(2) directly: no os.File,
// no poller registration, no allocation per entry. The name passed to fn is
// only valid during the call.
func readDir(path string, fn func(name []byte, regular bool)) error {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "readdirent", Path: path, Err: err}
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen;
		// u8 d_type; char d_name[]; } (NUL-terminated, padded).
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(*(*uint16)(unsafe.Pointer(&b[16])))
			if reclen < 19 || reclen > len(b) {
				return &os.PathError{Op: "readdirent", Path: path, Err: syscall.EIO}
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
				var st syscall.Stat_t
				if syscall.Lstat(path+"/"+string(name), &st) == nil {
					regular = st.Mode&syscall.S_IFMT == syscall.S_IFREG
				}
			}
			fn(name, regular)
		}
	}
}

// statDir returns the stamp of directory path.
func statDir(path string) (dirStamp, error) {
	var st syscall.Stat_t
	var err error
	for {
		if err = syscall.Stat(path, &st); err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return dirStamp{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return dirStamp{}, &os.PathError{Op: "stat", Path: path, Err: syscall.ENOTDIR}
	}
	return dirStamp{
		dev:   uint64(st.Dev),
		ino:   uint64(st.Ino),
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
	}, nil
}
