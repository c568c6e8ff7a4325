package pop3server

import (
	"net"
	"syscall"
)

// cork holds back partial TCP segments on tc while on (TCP_CORK), so
// that a stuffing dot written between two file pieces goes out in a full
// segment with the next piece, not in one of its own; uncorking sends
// what is held. Failures are ignored: it only costs segments.
func cork(tc *net.TCPConn, on bool) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	v := 0
	if on {
		v = 1
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	})
}
