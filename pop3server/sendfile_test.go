package pop3server_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3server"
)

// crlfForm is the wire form of the stored message m, computed without
// internal/wire: bare LFs become CRLF, and a final line end is supplied.
func crlfForm(m []byte) []byte {
	var out []byte
	for i, c := range m {
		if c == '\n' && (i == 0 || m[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	switch {
	case len(m) == 0 || m[len(m)-1] == '\n':
	case m[len(m)-1] == '\r':
		out = append(out, '\n')
	default:
		out = append(out, '\r', '\n')
	}
	return out
}

// retrForm is what RETR must send for the stored message m after its
// status line: its wire form with a '.' added to every line beginning
// with '.', then ".\r\n".
func retrForm(m []byte) []byte {
	var out []byte
	bol := true
	for _, c := range crlfForm(m) {
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

var dField = regexp.MustCompile(`,D=\d+`)

// TestRetrFromFile checks RETR byte for byte where the message goes out
// from its file (plain TCP, stored with CRLF line ends, the count of dot
// lines recorded at delivery: whole when there are none; in pieces when
// there are few, here forced for any count), and where it must not (no
// count in the name, bare LFs, a name whose sizes are wrong).
func TestRetrFromFile(t *testing.T) {
	big := 300 << 10 // more than a scan chunk (256 KiB)
	chunkStart := func(line string) []byte {
		// A line beginning with '.' right at the second scan chunk.
		head := crlfText(256<<10-4096, 0)
		pad := strings.Repeat("p", 256<<10-len(head)-2) + "\r\n"
		return append(append(append(head, pad...), line...), crlfText(64<<10, 0)...)
	}
	tests := []struct {
		name     string
		msg      []byte
		fromFile bool
	}{
		{"no dots", crlfText(big, 0), true},
		{"a few dot lines", crlfText(big, 500), true},
		{"dense dot lines", crlfText(big, 2), true},
		{"dot lines only", bytes.Repeat([]byte(".\r\n..\r\n. \r\n"), big/10), true},
		{"dot at the start of the file", append([]byte(".first\r\n"), crlfText(big, 0)...), true},
		{"terminator-like line at the start", append([]byte(".\r\n"), crlfText(big, 0)...), true},
		{"dot right after a chunk boundary", chunkStart(".after the boundary\r\n"), true},
		{"terminator right after a chunk boundary", chunkStart(".\r\n"), true},
		{"bare LFs", bytes.ReplaceAll(crlfText(big, 7), []byte("\r\n"), []byte("\n")), false},
		{"one bare LF", append(crlfText(big, 9), "x\n.y\r\n"...), false},
		{"no final line end", append(crlfText(big, 9), ".end"...), false},
	}
	for _, tt := range tests {
		for _, mode := range []string{"", " (in pieces)", " (no D= in the name)"} {
			withD := mode != " (no D= in the name)"
			if mode != "" && !tt.fromFile {
				continue
			}
			fromFile := tt.fromFile && withD && (mode == " (in pieces)" || bytes.Count(crlfForm(tt.msg), []byte("\n.")) == 0 && tt.msg[0] != '.')
			t.Run(tt.name+mode, func(t *testing.T) {
				if mode == " (in pieces)" {
					t.Cleanup(pop3server.SetRangePerDot(1))
				}
				s := startPostie(t, nil)
				info, err := s.store.Deliver(context.Background(), "user1", bytes.NewReader(tt.msg))
				if err != nil {
					t.Fatal(err)
				}
				if !withD {
					p := onlyFile(t, s)
					if err := os.Rename(p, dField.ReplaceAllString(p, "")); err != nil {
						t.Fatal(err)
					}
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
// a point near the first scan chunk's end chosen by shift, then b, all in
// CRLF form; dense selects the user-space write of dense chunks. Every
// message with its count of dot lines in the name goes from the file (in
// pieces when it has some); without, it is converted in user space.
func FuzzRetrFromFile(f *testing.F) {
	f.Add([]byte(".a\r\n"), []byte(".\r\n"), uint16(0), false, true)
	f.Add([]byte(""), []byte("..x\r\n.\r\n"), uint16(1), true, false)
	f.Add([]byte("x\r\n"), []byte("\r\n."), uint16(3), false, true)
	s := startPostie(f, nil)
	f.Cleanup(pop3server.SetRangePerDot(1))
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
		stored := crlfForm(msg)
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
			p := onlyFile(t, s)
			if err := os.Rename(p, dField.ReplaceAllString(p, "")); err != nil {
				t.Fatal(err)
			}
		}
		got := retrRaw(t, s, "RETR 1\r\nDELE 1\r\nQUIT\r\n")
		want := "+OK " + itoa(int(info.Size)) + " octets\r\n" + ref.String() + "+OK message 1 deleted\r\n"
		if got, _, _ := bytes.Cut(got, []byte("+OK bye")); string(got) != want {
			t.Fatalf("got %d octets, want %d; first difference at %d", len(got), len(want), firstDiff(got, []byte(want)))
		}
		if fromFile := s.srv.Stats().RetrFromFile == before+1; fromFile != withD {
			t.Fatalf("sent from the file: %v, want %v", fromFile, withD)
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
