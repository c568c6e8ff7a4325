package proxyproto

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log destination safe for the listener's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testListener struct {
	*Listener
	logs *syncBuffer
}

// listen starts a Listener on 127.0.0.1:0 trusting the given prefixes.
func listen(t *testing.T, timeout time.Duration, trusted ...string) testListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []netip.Prefix
	for _, p := range trusted {
		prefixes = append(prefixes, netip.MustParsePrefix(p))
	}
	logs := &syncBuffer{}
	l := NewListener(ln, Options{
		Trusted: prefixes,
		Timeout: timeout,
		Proto:   "test",
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	t.Cleanup(func() { l.Close() })
	return testListener{l, logs}
}

// dial connects to l from the loopback address from (e.g. "127.0.0.2":
// Linux routes all of 127/8 to lo) and writes the bytes given.
func dial(t *testing.T, l net.Listener, from string, write ...string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, w := range write {
		if _, err := io.WriteString(c, w); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func accept(t *testing.T, l net.Listener) *Conn {
	t.Helper()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*Conn)
}

// readAll reads what the peer wrote until it closes its side.
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	return string(b)
}

// closeWrite ends the peer's writing side, so that readAll ends.
func closeWrite(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
}

func counts(s *Stats) [8]uint64 {
	return [8]uint64{s.HeadersV1.Load(), s.HeadersV2.Load(), s.Local.Load(),
		s.Untrusted.Load(), s.Missing.Load(), s.Malformed.Load(), s.Timeout.Load(), s.Closed.Load()}
}

// From a trusted proxy, the header gives the client's address, and the
// client's bytes that came in the same segment are kept, exactly.
func TestTrustedHeaders(t *testing.T) {
	l := listen(t, time.Minute, "127.0.0.1/32")
	for _, tc := range []struct {
		name, header, remote, local string
		version                     int
	}{
		{"v1", "PROXY TCP4 192.0.2.10 198.51.100.1 40000 110\r\n", "192.0.2.10:40000", "198.51.100.1:110", 1},
		{"v1 tcp6", "PROXY TCP6 2001:db8::10 2001:db8::1 40000 995\r\n", "[2001:db8::10]:40000", "[2001:db8::1]:995", 1},
		{"v1 mapped", "PROXY TCP6 ::ffff:192.0.2.10 ::ffff:198.51.100.1 40000 110\r\n", "192.0.2.10:40000", "198.51.100.1:110", 1},
		{"v2", string(v2(0x21, 0x11, inet4)), "192.0.2.10:40000", "198.51.100.1:110", 2},
		{"v2 tcp6", string(v2(0x21, 0x21, inet6)), "[2001:db8::10]:40000", "[2001:db8::1]:995", 2},
	} {
		c := dial(t, l, "127.0.0.1", tc.header+"USER alice\r\n")
		a := accept(t, l)
		closeWrite(t, c)
		if got := readAll(t, a); got != "USER alice\r\n" {
			t.Errorf("%s: the client's bytes: %q", tc.name, got)
		}
		if a.RemoteAddr().String() != tc.remote || a.LocalAddr().String() != tc.local {
			t.Errorf("%s: remote %s local %s, want %s %s", tc.name, a.RemoteAddr(), a.LocalAddr(), tc.remote, tc.local)
		}
		proxy, h, ok := a.Proxy()
		if !ok || proxy.String() != c.LocalAddr().String() || h.Version != tc.version {
			t.Errorf("%s: Proxy() = %v %+v %v, want %s version %d", tc.name, proxy, h, ok, c.LocalAddr(), tc.version)
		}
		if From(a) != a {
			t.Errorf("%s: From does not find the Conn", tc.name)
		}
	}
	if got, want := counts(l.Stats()), [8]uint64{3, 2}; got != want {
		t.Errorf("counts %v, want %v", got, want)
	}
}

// LOCAL (v2) and UNKNOWN (v1): a health check or an unknown family is
// served with the proxy's own address.
func TestTrustedLocal(t *testing.T) {
	l := listen(t, time.Minute, "127.0.0.0/8")
	for _, header := range []string{
		string(v2(0x20, 0x00)),
		string(v2(0x20, 0x11, inet4)), // LOCAL's addresses are ignored
		string(v2(0x21, 0x00)),
		"PROXY UNKNOWN\r\n",
		"PROXY UNKNOWN 192.0.2.10 198.51.100.1 40000 110\r\n",
	} {
		c := dial(t, l, "127.0.0.3", header)
		a := accept(t, l)
		if a.RemoteAddr().String() != c.LocalAddr().String() || a.LocalAddr().String() != c.RemoteAddr().String() {
			t.Errorf("%q: remote %s local %s, want the connection's %s %s", header, a.RemoteAddr(), a.LocalAddr(), c.LocalAddr(), c.RemoteAddr())
		}
		if _, _, ok := a.Proxy(); !ok {
			t.Errorf("%q: Proxy() not ok", header)
		}
	}
	if got, want := counts(l.Stats()), [8]uint64{2, 3, 5}; got != want {
		t.Errorf("counts %v, want %v", got, want)
	}
}

// A header may come in pieces.
func TestTrustedHeaderInPieces(t *testing.T) {
	l := listen(t, time.Minute, "127.0.0.1/32")
	h := string(v2(0x21, 0x11, inet4, hex("05000461626364")))
	c := dial(t, l, "127.0.0.1")
	done := make(chan *Conn)
	go func() {
		a, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		done <- a.(*Conn)
	}()
	for i := range len(h) {
		if _, err := io.WriteString(c, h[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	io.WriteString(c, "+")
	a := <-done
	defer a.Close()
	closeWrite(t, c)
	if got := readAll(t, a); got != "+" || a.RemoteAddr().String() != "192.0.2.10:40000" {
		t.Errorf("got %q from %s", got, a.RemoteAddr())
	}
}

// refused waits until the listener closed the connection c and returns
// what c read before that.
func refused(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading: %v", err)
	}
	return string(b)
}

// From a trusted proxy, a connection without a header, with a malformed
// one, with one that does not come in time, or closed at once is refused:
// closed, counted and logged (a closed one at debug). None reaches Accept.
func TestTrustedRefused(t *testing.T) {
	// The timeout cases have a listener of their own, with a short
	// timeout; the others one that cannot time out while the test runs.
	patient := listen(t, time.Hour, "127.0.0.1/32")
	hasty := listen(t, 100*time.Millisecond, "127.0.0.1/32")
	for _, tc := range []struct {
		name, write, log string
		count            int // index in counts
	}{
		{"no header", "USER alice\r\n", `level=WARN msg="no PROXY header from a trusted proxy`, 4},
		{"tls without header", "\x16\x03\x01\x00\x05hello", `reason=missing`, 4},
		{"v1 LF only", "PROXY TCP4 192.0.2.10 198.51.100.1 40000 110\nUSER a\r\n", `level=WARN msg="malformed PROXY header; connection closed" proto=test proxy=127.0.0.1:`, 5},
		{"v1 too long", "PROXY TCP4 " + strings.Repeat("1", 200), `err="proxyproto: malformed version 1 header: no line end within 107 bytes"`, 5},
		{"v2 oversized", "\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff", `err="proxyproto: malformed version 2 header: 65551 bytes long, more than the 2048 accepted"`, 5},
		{"v2 bad address length", string(v2(0x21, 0x21, inet4)), `reason=malformed`, 5},
		{"v1 cut short", "PROXY TCP4 192.0.2.10", `connection ended inside the header: EOF`, 5},
		{"silent", "", `level=WARN msg="no complete PROXY header in time from a trusted proxy`, 6},
		{"half a header, then silence", "PROXY TCP4 192.0.2.10 ", `reason=timeout`, 6},
		{"closed at once", "", `level=DEBUG msg="a trusted proxy closed its connection before the PROXY header"`, 7},
	} {
		l := patient
		if tc.count == 6 {
			l = hasty
		}
		before := counts(l.Stats())
		c := dial(t, l, "127.0.0.1", tc.write)
		if tc.name == "closed at once" || tc.name == "v1 cut short" {
			closeWrite(t, c)
		}
		if got := refused(t, c); got != "" {
			t.Errorf("%s: the proxy read %q", tc.name, got)
		}
		// The count comes after the close; wait for it.
		for counts(l.Stats())[tc.count] == before[tc.count] {
			time.Sleep(time.Millisecond)
		}
		after := counts(l.Stats())
		before[tc.count]++
		if after != before {
			t.Errorf("%s: counts %v, want %v", tc.name, after, before)
		}
		for !strings.Contains(l.logs.String(), tc.log) {
			time.Sleep(time.Millisecond)
		}
		// One warning a second at most: start the next case's afresh.
		l.logs.mu.Lock()
		l.logs.b.Reset()
		l.logs.mu.Unlock()
		for _, ll := range l.Listener.logs {
			ll.Reset()
		}
	}
	// Nothing was handed to Accept: the next connection is the first.
	dial(t, patient, "127.0.0.1", "PROXY UNKNOWN\r\nfirst")
	a := accept(t, patient)
	buf := make([]byte, 5)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "first" {
		t.Errorf("after the refusals: %q %v", buf, err)
	}
}

// A client that is not a trusted proxy is served as it is, its bytes
// exact, while one that sends a PROXY header is refused at its first read:
// it cannot choose its address.
func TestUntrusted(t *testing.T) {
	for _, trusted := range [][]string{nil, {"127.0.0.1/32"}} {
		l := listen(t, time.Minute, trusted...)
		for _, data := range []string{"USER alice\r\n", "\x16\x03\x01\x00\x05hello", "P", "\r\n\r\n\x00\r\nQUIT\rmore", ""} {
			c := dial(t, l, "127.0.0.2", data)
			a := accept(t, l)
			if a.RemoteAddr().String() != c.LocalAddr().String() {
				t.Errorf("%v: remote %s, want %s", trusted, a.RemoteAddr(), c.LocalAddr())
			}
			if _, _, ok := a.Proxy(); ok {
				t.Errorf("%v: a direct client has a proxy", trusted)
			}
			closeWrite(t, c)
			if got := readAll(t, a); got != data {
				t.Errorf("%v: read %q, want %q", trusted, got, data)
			}
		}
		for _, header := range []string{
			"PROXY TCP4 192.0.2.10 198.51.100.1 40000 110\r\nUSER alice\r\n",
			"PROXY ",
			string(v2(0x21, 0x11, inet4)),
		} {
			before := l.Stats().Untrusted.Load()
			c := dial(t, l, "127.0.0.2", header)
			a := accept(t, l)
			buf := make([]byte, 100)
			if n, err := a.Read(buf); !errors.Is(err, ErrUntrusted) {
				t.Errorf("%v: %q: read %q, %v; want ErrUntrusted", trusted, header, buf[:n], err)
			}
			if got := refused(t, c); got != "" {
				t.Errorf("%v: got %q", trusted, got)
			}
			if l.Stats().Untrusted.Load() != before+1 {
				t.Errorf("%v: %q not counted", trusted, header)
			}
		}
		// A client that sends the start of a signature and waits is
		// not kept waiting for the rest.
		for _, start := range []string{"\r\n", "PROXY"} {
			dial(t, l, "127.0.0.2", start)
			a := accept(t, l)
			buf := make([]byte, 100)
			if n, err := a.Read(buf); err != nil || string(buf[:n]) != start {
				t.Errorf("%v: read %q, %v; want %q", trusted, buf[:n], err, start)
			}
		}
		if !strings.Contains(l.logs.String(), `level=WARN msg="PROXY header from an address that is not in trusted_proxies; connection closed" proto=test remote=127.0.0.2:`) {
			t.Errorf("%v: not logged:\n%s", trusted, l.logs)
		}
	}
}

// Accept does not wait for a slow header: another proxy connection whose
// header is complete, and a direct client, are accepted meanwhile.
func TestAcceptDoesNotWait(t *testing.T) {
	l := listen(t, time.Hour, "127.0.0.1/32")
	dial(t, l, "127.0.0.1", "PROXY TCP4 192.0.2.1 ")
	dial(t, l, "127.0.0.1", "PROXY TCP4 192.0.2.10 198.51.100.1 40000 110\r\n")
	if a := accept(t, l); a.RemoteAddr().String() != "192.0.2.10:40000" {
		t.Errorf("remote %s", a.RemoteAddr())
	}
	c := dial(t, l, "127.0.0.2")
	if a := accept(t, l); a.RemoteAddr().String() != c.LocalAddr().String() {
		t.Errorf("remote %s", a.RemoteAddr())
	}
}

// Close ends Accept and closes the connections still in their header.
func TestClose(t *testing.T) {
	l := listen(t, time.Hour, "127.0.0.1/32")
	c := dial(t, l, "127.0.0.1", "PROXY ")
	errc := make(chan error)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	// The header is being read once the proxy's bytes are in; Close
	// must close that connection.
	for {
		l.mu.Lock()
		n := len(l.pending)
		l.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	if got := refused(t, c); got != "" {
		t.Errorf("got %q", got)
	}
	if got := counts(l.Stats()); got != [8]uint64{} {
		t.Errorf("Close counted %v", got)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
}
