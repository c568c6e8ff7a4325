//go:build !linux

package main

import "net"

// listenTCP listens on addr (accepted connections get Go's default TCP
// keepalive).
func listenTCP(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
