package main

import (
	"net"
	"syscall"
	"testing"
)

// TestListenTCPKeepAliveInherited: the keepalive set on the listening
// socket reaches the accepted connections (Linux copies it at accept).
func TestListenTCPKeepAliveInherited(t *testing.T) {
	ln, err := listenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rc, err := a.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := map[[2]int]int{
		{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE}:   1,
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE}:  keepAliveIdle,
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL}: keepAliveInterval,
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT}:   keepAliveCount,
		{syscall.IPPROTO_TCP, syscall.TCP_NODELAY}:   1,
	}
	rc.Control(func(fd uintptr) {
		for o, v := range want {
			got, err := syscall.GetsockoptInt(int(fd), o[0], o[1])
			if err != nil || got != v {
				t.Errorf("accepted socket option %v = %d, %v; want %d", o, got, err, v)
			}
		}
	})
}
