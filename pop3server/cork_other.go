//go:build !linux

package pop3server

import "net"

// cork does nothing where TCP_CORK is missing.
func cork(tc *net.TCPConn, on bool) {}
