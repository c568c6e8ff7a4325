package pop3server_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/pop3server"
)

// acceptedConn says when its listener accepted it, as the connections of
// a listener that reads a PROXY protocol header first do.
type acceptedConn struct {
	net.Conn
	at time.Time
}

func (c acceptedConn) AcceptedAt() time.Time { return c.at }

type acceptedListener struct {
	net.Listener
	at time.Time
}

func (l acceptedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return acceptedConn{c, l.at}, nil
}

// The login timeout counts from when the connection was accepted, before
// its PROXY header was read, also under implicit TLS: a connection
// accepted more than LoginTimeout ago is logged out at its first command.
// One accepted now is served.
func TestLoginTimeoutFromAcceptance(t *testing.T) {
	cert, _ := testenv.SelfSignedCert(t)
	s := startPostie(t, func(o *pop3server.Options) { o.Limits.LoginTimeout = time.Hour })
	serve := func(at time.Time, implicitTLS bool) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var l net.Listener = acceptedListener{ln, at}
		if implicitTLS {
			l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}})
		}
		go s.srv.Serve(l)
		return ln.Addr().String()
	}
	for _, implicitTLS := range []bool{false, true} {
		for _, tc := range []struct {
			at   time.Time
			want string
		}{
			{time.Now().Add(-2 * time.Hour), "-ERR autologout: no login in time\r\n"},
			{time.Now(), "+OK send PASS\r\n-ERR [AUTH] invalid user name or password\r\n+OK bye\r\n"},
		} {
			c, err := net.Dial("tcp", serve(tc.at, implicitTLS))
			if err != nil {
				t.Fatal(err)
			}
			if implicitTLS {
				c = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
			}
			// The commands go after the greeting: under TLS, bytes
			// that came with the handshake would be read from the
			// TLS buffer whatever the deadline.
			br := bufio.NewReader(c)
			if g, err := br.ReadString('\n'); g != "+OK postie POP3 server ready\r\n" {
				t.Fatalf("greeting %q, %v", g, err)
			}
			io.WriteString(c, "USER nobody\r\nPASS wrong\r\nQUIT\r\n")
			out, _ := io.ReadAll(br)
			c.Close()
			if string(out) != tc.want {
				t.Errorf("TLS %v, accepted %v ago: got %q, want %q", implicitTLS, time.Since(tc.at).Round(time.Hour), out, tc.want)
			}
		}
	}
}
