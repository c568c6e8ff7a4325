package main

import (
	"context"
	"net"
	"syscall"
)

// TCP keepalive of accepted POP3 connections: Go's defaults (probes after
// 15 s idle, every 15 s, 9 of them).
const (
	keepAliveIdle     = 15
	keepAliveInterval = 15
	keepAliveCount    = 9
)

// listenTCP listens on addr with TCP keepalive set once on the listening
// socket, whose accepted connections inherit it on Linux, rather than by
// four setsockopt(2) calls on every accepted connection as net.Listen does.
func listenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{
		KeepAlive: -1, // set below, once
		Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				for _, o := range [][2]int{
					{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
				} {
					v := 1
					switch o[1] {
					case syscall.TCP_KEEPIDLE:
						v = keepAliveIdle
					case syscall.TCP_KEEPINTVL:
						v = keepAliveInterval
					case syscall.TCP_KEEPCNT:
						v = keepAliveCount
					}
					if serr = syscall.SetsockoptInt(int(fd), o[0], o[1], v); serr != nil {
						return
					}
				}
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	return lc.Listen(context.Background(), "tcp", addr)
}
