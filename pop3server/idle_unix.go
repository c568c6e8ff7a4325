//go:build unix

package pop3server

import "syscall"

// readable is a syscall.RawConn.Read callback that reports whether the
// socket has input, an end of file or an error for the next read to
// return; RawConn.Read waits for readiness while it says no.
func readable(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err == syscall.EINTR {
			continue
		}
		return err != syscall.EAGAIN
	}
}
