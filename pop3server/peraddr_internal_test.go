package pop3server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/postie-mail/postie/store"
)

type noStore struct{}

func (noStore) Open(context.Context, string) (store.Maildrop, error) {
	return nil, errors.New("no store")
}
func (noStore) Deliver(context.Context, string, io.Reader) (store.DeliveryInfo, error) {
	return store.DeliveryInfo{}, errors.New("no store")
}

// fromConn is one end of a socket pair that claims to come from remote.
type fromConn struct {
	net.Conn
	remote net.Addr
}

func (c fromConn) RemoteAddr() net.Addr { return c.remote }

// The per-address cap counts an IPv6 /64 as one address (a host usually
// has a whole /64 to pick source addresses from); distinct IPv4 addresses
// and other /64s are counted apart.
func TestPerAddressCapGroupsIPv6By64(t *testing.T) {
	srv, err := New(Options{
		Store:         noStore{},
		Authenticator: AuthenticatorFunc(func(context.Context, string, string) (string, bool, error) { return "", false, nil }),
		Limits:        Limits{MaxConnsPerIP: 2, AuthTimeout: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	first := func(remote string) string {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		srv.accept(fromConn{server, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(remote))})
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, err := bufio.NewReader(client).ReadString('\n')
		if err != nil {
			t.Fatalf("from %s: %v", remote, err)
		}
		return l
	}
	const ok, full = "+OK postie POP3 server ready\r\n", "-ERR [SYS/TEMP] too many connections from your address\r\n"
	for _, tt := range []struct{ remote, want string }{
		{"[2001:db8:1:2::1]:1000", ok},
		{"[2001:db8:1:2::ffff]:1000", ok},
		{"[2001:db8:1:2:abcd::7]:1000", full}, // same /64
		{"[2001:db8:1:3::1]:1000", ok},        // another /64
		{"192.0.2.1:1000", ok},
		{"192.0.2.1:1001", ok},
		{"192.0.2.1:1002", full},
		{"192.0.2.2:1000", ok},
	} {
		if got := first(tt.remote); got != tt.want {
			t.Errorf("from %s: %q, want %q", tt.remote, got, tt.want)
		}
	}
}
