package pop3server_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/postie-mail/postie/internal/proxyproto"
	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store/maildir"
)

// retrForm is what RETR must send for the stored message m after its
// status line: its wire form with a '.' added to every line beginning
// with '.', then ".\r\n".
func retrForm(m []byte) []byte {
	var out []byte
	bol := true
	for _, c := range testenv.WireForm(m) {
		if bol && c == '.' {
			out = append(out, '.')
		}
		out = append(out, c)
		bol = c == '\n'
	}
	return append(out, ".\r\n"...)
}

// crlfText returns about n octets of CRLF lines of mail text; every
// dotEvery-th line (none when 0) begins with '.'.
func crlfText(n, dotEvery int) []byte {
	var b bytes.Buffer
	for i := 1; b.Len() < n; i++ {
		if dotEvery > 0 && i%dotEvery == 0 {
			b.WriteString(".")
		}
		b.WriteString("Some text of the message body, long enough to look like mail.\r\n")
	}
	return b.Bytes()
}

// retrRaw logs in as user1 on s over a real TCP connection, sends cmds
// (the commands after PASS, QUIT included) at once and returns every
// octet the server sent after the PASS reply, until it closed.
func retrRaw(t testing.TB, s *server, cmds string) []byte {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "USER user1\r\nPASS pass1\r\n"+cmds)
	br := bufio.NewReader(c)
	for range 3 {
		l, err := wire.ReadLine(br, 512)
		if err != nil || !bytes.HasPrefix(l, []byte("+OK")) {
			t.Fatalf("login: %q, %v", l, err)
		}
	}
	all, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// onlyFile returns the path of the one message file of user1.
func onlyFile(t testing.TB, s *server) string {
	t.Helper()
	dir, err := s.store.Path("user1")
	if err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "new", "*"))
	if err != nil || len(names) != 1 {
		t.Fatalf("new/: %q, %v", names, err)
	}
	return names[0]
}

var dField = regexp.MustCompile(`,D=[0-9.]+`)

// withDots returns msg with lines beginning with '.' inserted at about
// the given offsets (each at the start of the line found there).
func withDots(msg []byte, at ...int) []byte {
	out := append([]byte(nil), msg...)
	for k := len(at) - 1; k >= 0; k-- {
		p := at[k]
		if p > 0 {
			p = bytes.LastIndexByte(out[:p], '\n') + 1
		}
		out = append(out[:p], append([]byte(".dot line\r\n"), out[p:]...)...)
	}
	return out
}

// TestRetrFromFile checks RETR byte for byte where the message goes out
// from its file (plain TCP, stored with CRLF line ends, at most four
// lines beginning with '.', whose offsets the name records: whole, or in
// pieces with the stuffing dots between), and where it must not (too
// many dot lines, no D= in the name, bare LFs, a name whose sizes are
// wrong), then again after the name's D= is made to lie.
func TestRetrFromFile(t *testing.T) {
	big := 300 << 10
	text := crlfText(big, 0)
	const dotLead = 4 << 10
	tests := []struct {
		name     string
		msg      []byte
		fromFile bool
	}{
		{"no dots", text, true},
		{"one dot line", withDots(text, 100000), true},
		{"four dot lines", withDots(text, 1000, 50000, 150000, 290000), true},
		{"five dot lines", withDots(text, 1000, 50000, 150000, 200000, 290000), false},
		{"dot at the start of the file", append([]byte(".first\r\n"), text...), true},
		{"terminator-like line at the start", append([]byte(".\r\n"), text...), true},
		{"dot lines in a row", append(append([]byte("x\r\n"), text[:1000]...), append([]byte(".a\r\n.\r\n..\r\n"), text[1000:]...)...), true},
		{"a dot line right after another's lead", withDots(text, 20000, 20000+dotLead+64), true},
		{"last line a dot line", append(append([]byte(nil), text...), ".\r\n"...), true},
		{"dense dot lines", crlfText(big, 2), false},
		{"bare LFs", bytes.ReplaceAll(crlfText(big, 7), []byte("\r\n"), []byte("\n")), false},
		{"one bare LF", append(crlfText(big, 0), "x\n.y\r\n"...), false},
		{"no final line end", append(crlfText(big, 0), ".end"...), false},
	}
	for _, tt := range tests {
		for _, mode := range []string{"", " (no D= in the name)", " (a D= that lies)", " (a file others can write)", " (another account's file)"} {
			if mode != "" && !tt.fromFile {
				continue
			}
			t.Run(tt.name+mode, func(t *testing.T) {
				s := startPostie(t, nil)
				info, err := s.store.Deliver(context.Background(), "user1", bytes.NewReader(tt.msg))
				if err != nil {
					t.Fatal(err)
				}
				fromFile := tt.fromFile
				switch mode {
				case " (no D= in the name)":
					rename(t, onlyFile(t, s), "")
					fromFile = false
				case " (a D= that lies)":
					// Offsets that are not where the dot lines are:
					// the file is converted as any other.
					rename(t, onlyFile(t, s), ",D=1.7")
					fromFile = false
				case " (a file others can write)":
					// Its D= may have been written by someone else
					// than postie: the file is converted.
					if err := os.Chmod(onlyFile(t, s), 0o662); err != nil {
						t.Fatal(err)
					}
					fromFile = false
				case " (another account's file)":
					if os.Geteuid() != 0 {
						t.Skip("needs root to give the file away")
					}
					if err := os.Chown(onlyFile(t, s), 65534, 65534); err != nil {
						t.Fatal(err)
					}
					fromFile = false
				}
				want := "+OK\r\n+OK " + itoa(int(info.Size)) + " octets\r\n" + string(retrForm(tt.msg)) + "+OK\r\n"
				got := retrRaw(t, s, "NOOP\r\nRETR 1\r\nNOOP\r\nQUIT\r\n")
				got, _, _ = bytes.Cut(got, []byte("+OK bye"))
				if string(got) != want {
					t.Fatalf("got %d octets, want %d; first difference at %d", len(got), len(want), firstDiff(got, []byte(want)))
				}
				if n := s.srv.Stats().RetrFromFile; n != map[bool]uint64{true: 1}[fromFile] {
					t.Errorf("%d answers sent from the file, want them from the file: %v", n, fromFile)
				}
			})
		}
	}
}

// rename replaces the D= field of the message file p by d.
func rename(t testing.TB, p, d string) {
	t.Helper()
	if err := os.Rename(p, dField.ReplaceAllString(p, d)); err != nil {
		t.Fatal(err)
	}
}

// TestRetrFromFileChanged: a file whose size changed between the
// snapshot (LIST) and RETR is refused with -ERR before anything of it is
// sent, and the session goes on.
func TestRetrFromFileChanged(t *testing.T) {
	s := startPostie(t, nil)
	msg := crlfText(300<<10, 0)
	if _, err := s.store.Deliver(context.Background(), "user1", bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	line := func() string {
		l, err := wire.ReadLine(br, 512)
		if err != nil {
			t.Fatal(err)
		}
		return string(l)
	}
	line()
	io.WriteString(c, "USER user1\r\nPASS pass1\r\nLIST 1\r\n")
	line()
	line()
	if l := line(); l != "+OK 1 "+itoa(len(msg)) {
		t.Fatalf("LIST 1: %q", l)
	}
	f, err := os.OpenFile(onlyFile(t, s), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(".appended\r\n")
	f.Close()
	io.WriteString(c, "RETR 1\r\nNOOP\r\n")
	if l := line(); l != "-ERR message no longer available" {
		t.Fatalf("RETR of a changed message: %q", l)
	}
	if l := line(); l != "+OK" {
		t.Fatalf("NOOP after: %q", l)
	}
	if n := s.srv.Stats().RetrFromFile; n != 0 {
		t.Errorf("%d answers sent from the file", n)
	}
}

// FuzzRetrFromFile compares RETR from the file (sendfile and stuffing
// dots) with the reference user-space encoder, wire.DotWriter, byte for
// byte over real loopback TCP: the message is a, then filler lines up to
// a point near 256 KiB chosen by shift, then b, all in CRLF form; dense
// makes every filler line begin with '.'. A message whose name records
// its dot lines (D=, at most four) goes from the file; any other is
// converted in user space, and must come out the same.
func FuzzRetrFromFile(f *testing.F) {
	f.Add([]byte(".a\r\n"), []byte(".\r\n"), uint16(0), false, true)
	f.Add([]byte(""), []byte("..x\r\n.\r\n"), uint16(1), true, false)
	f.Add([]byte("x\r\n"), []byte("\r\n."), uint16(3), false, true)
	s := startPostie(f, nil)
	f.Fuzz(func(t *testing.T, a, b []byte, shift uint16, dense, withD bool) {
		var msg []byte
		msg = append(msg, a...)
		for len(msg) < 256<<10-int(shift) {
			if dense {
				msg = append(msg, ".\r\n"...)
			}
			msg = append(msg, "filler line of the fuzzed message\r\n"...)
		}
		msg = msg[:max(len(a), 256<<10-int(shift))]
		msg = append(msg, b...)
		// Wire form (CRLF, final line end) so that it may go from the
		// file; the reference then has nothing to convert but dots.
		stored := testenv.WireForm(msg)
		var ref bytes.Buffer
		dw := wire.NewDotWriter(&ref, 64<<10)
		dw.Write(stored)
		dw.Close()
		dw.Flush()

		before := s.srv.Stats().RetrFromFile
		info, err := s.store.Deliver(context.Background(), "user1", bytes.NewReader(stored))
		if err != nil {
			t.Fatal(err)
		}
		if int(info.Size) != len(stored) {
			t.Fatalf("wire size %d of %d octets already in wire form", info.Size, len(stored))
		}
		if !withD {
			rename(t, onlyFile(t, s), "")
		}
		got := retrRaw(t, s, "RETR 1\r\nDELE 1\r\nQUIT\r\n")
		want := "+OK " + itoa(int(info.Size)) + " octets\r\n" + ref.String() + "+OK message 1 deleted\r\n"
		if got, _, _ := bytes.Cut(got, []byte("+OK bye")); string(got) != want {
			t.Fatalf("got %d octets, want %d; first difference at %d", len(got), len(want), firstDiff(got, []byte(want)))
		}
		lines := bytes.Count(stored, []byte("\n."))
		if len(stored) > 0 && stored[0] == '.' {
			lines++
		}
		if fromFile := s.srv.Stats().RetrFromFile == before+1; fromFile != (withD && lines <= 4) {
			t.Fatalf("sent from the file: %v, with D= %v and %d dot lines", fromFile, withD, lines)
		}
	})
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRetrFromFileProxyListener: behind the PROXY protocol's listener
// (which postie serve puts on every POP3 listener), whose connections
// only read differently, RETR still goes from the file, exactly: for a
// direct client and for one whose trusted proxy sent a header.
func TestRetrFromFileProxyListener(t *testing.T) {
	for _, viaProxy := range []bool{false, true} {
		st, err := maildir.New(maildir.Options{Root: t.TempDir(), Logger: quietLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		// The proxied client is not on loopback: cleartext allowed.
		srv, err := pop3server.New(pop3server.Options{Logger: quietLogger(t), Store: st, Authenticator: users, AllowCleartext: true, Limits: pop3server.Limits{AuthFailDelay: -1}})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var trusted []netip.Prefix
		if viaProxy {
			trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		}
		go srv.Serve(proxyproto.NewListener(ln, proxyproto.Options{Trusted: trusted, Logger: quietLogger(t)}))
		t.Cleanup(func() { srv.Close() })
		msg := withDots(crlfText(300<<10, 0), 5000, 200000)
		info, err := st.Deliver(context.Background(), "user1", bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if viaProxy {
			io.WriteString(c, "PROXY TCP4 192.0.2.7 127.0.0.1 40000 110\r\n")
		}
		io.WriteString(c, "USER user1\r\nPASS pass1\r\nRETR 1\r\nQUIT\r\n")
		all, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := "+OK " + itoa(int(info.Size)) + " octets\r\n" + string(retrForm(msg)) + "+OK bye"
		if i := bytes.Index(all, []byte("+OK "+itoa(int(info.Size)))); i < 0 || !bytes.HasPrefix(all[i:], []byte(want)) {
			t.Fatalf("proxy header %v: RETR not as stored (%d octets read: %.300q)", viaProxy, len(all), all)
		}
		if n := srv.Stats().RetrFromFile; n != 1 {
			t.Errorf("proxy header %v: %d answers sent from the file, want 1", viaProxy, n)
		}
	}
}
