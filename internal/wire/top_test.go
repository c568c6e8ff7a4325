package wire

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// readTop returns the TOP k view of m, read with p of the given size.
func readTop(t testing.TB, m string, k int, oneByte bool) string {
	t.Helper()
	var r io.Reader = NewTopReader(strings.NewReader(m), k)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("TOP %d of %q: %v", k, m, err)
	}
	return string(out)
}

func TestTopReader(t *testing.T) {
	const lf = "From: a\nSubject: s\n\nl1\nl2\n.l3\n"
	const crlf = "From: a\r\nSubject: s\r\n\r\nl1\r\nl2\r\n.l3\r\n"
	longHdr := "X-Long: " + strings.Repeat("h", 40000) + "\n"
	longBody := strings.Repeat("b", 70000) + "\n"
	tests := []struct {
		name string
		m    string
		k    int
		raw  string // TopReader output
		wire string // after DotWriter, terminator included
	}{
		{"lf top 0", lf, 0, "From: a\nSubject: s\n\n", "From: a\r\nSubject: s\r\n\r\n.\r\n"},
		{"lf top 1", lf, 1, "From: a\nSubject: s\n\nl1\n", "From: a\r\nSubject: s\r\n\r\nl1\r\n.\r\n"},
		{"lf top 2", lf, 2, "From: a\nSubject: s\n\nl1\nl2\n", "From: a\r\nSubject: s\r\n\r\nl1\r\nl2\r\n.\r\n"},
		{"lf top 3", lf, 3, lf, "From: a\r\nSubject: s\r\n\r\nl1\r\nl2\r\n..l3\r\n.\r\n"},
		{"lf top 100", lf, 100, lf, "From: a\r\nSubject: s\r\n\r\nl1\r\nl2\r\n..l3\r\n.\r\n"},
		{"crlf top 0", crlf, 0, "From: a\r\nSubject: s\r\n\r\n", "From: a\r\nSubject: s\r\n\r\n.\r\n"},
		{"crlf top 2", crlf, 2, "From: a\r\nSubject: s\r\n\r\nl1\r\nl2\r\n", "From: a\r\nSubject: s\r\n\r\nl1\r\nl2\r\n.\r\n"},
		{"crlf top 100", crlf, 100, crlf, "From: a\r\nSubject: s\r\n\r\nl1\r\nl2\r\n..l3\r\n.\r\n"},
		{"header only, no newline", "From: a\nSubject: s", 5,
			"From: a\nSubject: s\r\n\r\n", "From: a\r\nSubject: s\r\n\r\n.\r\n"},
		{"header only, crlf no newline", "From: a\r\nSubject: s", 0,
			"From: a\r\nSubject: s\r\n\r\n", "From: a\r\nSubject: s\r\n\r\n.\r\n"},
		{"header only, lf", "From: a\nSubject: s\n", 5,
			"From: a\nSubject: s\n\r\n", "From: a\r\nSubject: s\r\n\r\n.\r\n"},
		{"header only, crlf", "From: a\r\n", 0, "From: a\r\n\r\n", "From: a\r\n\r\n.\r\n"},
		{"header only, trailing CR", "From: a\r", 1, "From: a\r\n\r\n", "From: a\r\n\r\n.\r\n"},
		{"header only, dot line", "From: a\n.", 1, "From: a\n.\r\n\r\n", "From: a\r\n..\r\n\r\n.\r\n"},
		{"empty message", "", 3, "\r\n", "\r\n.\r\n"},
		{"empty header", "\nbody\n", 0, "\n", "\r\n.\r\n"},
		{"empty header top 1", "\r\nbody\r\nmore\r\n", 1, "\r\nbody\r\n", "\r\nbody\r\n.\r\n"},
		{"separator only", "H: v\n\n", 4, "H: v\n\n", "H: v\r\n\r\n.\r\n"},
		{"last body line unterminated", "H: v\n\nl1\nl2", 5, "H: v\n\nl1\nl2", "H: v\r\n\r\nl1\r\nl2\r\n.\r\n"},
		{"last body line unterminated, top 1", "H: v\n\nl1\nl2", 1, "H: v\n\nl1\n", "H: v\r\n\r\nl1\r\n.\r\n"},
		{"empty body lines count", "H: v\n\n\n\nx\n", 2, "H: v\n\n\n\n", "H: v\r\n\r\n\r\n\r\n.\r\n"},
		{"bare CR line is header text", "A: b\n\r\r\nC: d\n\nbody\n", 0,
			"A: b\n\r\r\nC: d\n\n", "A: b\r\n\r\r\nC: d\r\n\r\n.\r\n"},
		{"crlf separator after lf lines", "A: b\n\r\nx\n", 0, "A: b\n\r\n", "A: b\r\n\r\n.\r\n"},
		{"trailing lone CR is the separator", "A: b\n\r", 0, "A: b\n\r\n", "A: b\r\n\r\n.\r\n"},
		{"trailing lone CR only", "\r", 0, "\r\n", "\r\n.\r\n"},
		{"trailing CR CR", "A: b\n\r\r", 0, "A: b\n\r\r\n\r\n", "A: b\r\n\r\r\n\r\n.\r\n"},
		{"bare CR in a header line", "A: b\rc\n\nx\n", 0, "A: b\rc\n\n", "A: b\rc\r\n\r\n.\r\n"},
		{"long header line", longHdr + "Subject: s\n\nl1\nl2\n", 1,
			longHdr + "Subject: s\n\nl1\n",
			strings.TrimSuffix(longHdr, "\n") + "\r\nSubject: s\r\n\r\nl1\r\n.\r\n"},
		{"long header line only", strings.TrimSuffix(longHdr, "\n"), 0,
			strings.TrimSuffix(longHdr, "\n") + "\r\n\r\n",
			strings.TrimSuffix(longHdr, "\n") + "\r\n\r\n.\r\n"},
		{"long body line counts once", "H: v\n\n" + longBody + "l2\n", 1,
			"H: v\n\n" + longBody, "H: v\r\n\r\n" + strings.TrimSuffix(longBody, "\n") + "\r\n.\r\n"},
		{"long body line top 0", "H: v\n\n" + longBody, 0, "H: v\n\n", "H: v\r\n\r\n.\r\n"},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			if got := readTop(t, tt.m, tt.k, oneByte); got != tt.raw {
				t.Errorf("%s (one byte %v): TOP %d = %.80q, want %.80q", tt.name, oneByte, tt.k, got, tt.raw)
			}
		}
		wire, _ := dotWrite(t, []byte(readTop(t, tt.m, tt.k, false)))
		if wire != tt.wire {
			t.Errorf("%s: wire form %.80q, want %.80q", tt.name, wire, tt.wire)
		}
	}
}

func TestTopReaderSticky(t *testing.T) {
	r := NewTopReader(strings.NewReader("H: v\n\nbody\n"), 0)
	if out, err := io.ReadAll(r); err != nil || string(out) != "H: v\n\n" {
		t.Fatalf("ReadAll = %q, %v", out, err)
	}
	for range 2 {
		if n, err := r.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("Read after the end = %d, %v", n, err)
		}
	}
}

// errAfter returns its data and the error in the same Read, then io.EOF:
// a one-off error that a reader must not lose.
type errAfter struct {
	data []byte
	err  error
}

func (e *errAfter) Read(p []byte) (int, error) {
	n := copy(p, e.data)
	e.data = e.data[n:]
	if len(e.data) > 0 {
		return n, nil
	}
	err := e.err
	e.err = io.EOF
	return n, err
}

func TestTopReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	for _, tt := range []struct {
		name string
		r    io.Reader
		want string
	}{
		{"error alone", iotest.ErrReader(boom), ""},
		{"error after a line", io.MultiReader(strings.NewReader("H: v\n"), iotest.ErrReader(boom)), "H: v\n"},
		{"error with data mid-line", &errAfter{data: []byte("H: v\nX: y"), err: boom}, "H: v\nX: y"},
		{"error with data in the body", &errAfter{data: []byte("H: v\n\nbo"), err: boom}, "H: v\n\nbo"},
		{"error with a header line", &errAfter{data: []byte("H: v\n"), err: boom}, "H: v\n"},
	} {
		out, err := io.ReadAll(NewTopReader(tt.r, 5))
		if err != boom || string(out) != tt.want {
			t.Errorf("%s: ReadAll = %q, %v; want %q, boom", tt.name, out, err, tt.want)
		}
	}
}

// topRef is the reference TOP k view of m: the lines up to and including
// the first empty one ("\n" or "\r\n"), then k more; a message without an
// empty line is all header and gains a line end (as DotWriter would add
// it) and an empty line. A final unterminated "\r" is an empty line, as
// DotWriter sends it as "\r\n".
func topRef(m []byte, k int) []byte {
	var lines [][]byte
	for rest := m; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			lines = append(lines, rest)
			break
		}
		lines = append(lines, rest[:i+1])
		rest = rest[i+1:]
	}
	var out []byte
	for i, l := range lines {
		out = append(out, l...)
		if i == len(lines)-1 && string(l) == "\r" {
			// A final lone CR is an empty line once DotWriter ends it.
			return append(out, '\n')
		}
		if string(l) == "\n" || string(l) == "\r\n" {
			for _, b := range lines[i+1 : i+1+min(k, len(lines)-i-1)] {
				out = append(out, b...)
			}
			return out
		}
	}
	switch {
	case len(m) == 0 || m[len(m)-1] == '\n':
		return append(out, "\r\n"...)
	case m[len(m)-1] == '\r':
		return append(out, "\n\r\n"...)
	default:
		return append(out, "\r\n\r\n"...)
	}
}

func TestTopRefReference(t *testing.T) {
	for _, tt := range []struct {
		m    string
		k    int
		want string
	}{
		{"a\n\nb\nc", 1, "a\n\nb\n"},
		{"a\n\nb\nc", 2, "a\n\nb\nc"},
		{"a", 0, "a\r\n\r\n"},
		{"a\r", 0, "a\r\n\r\n"},
		{"a\n", 0, "a\n\r\n"},
		{"", 0, "\r\n"},
		{"a\n\r", 0, "a\n\r\n"},
		{"a\r\r", 0, "a\r\r\n\r\n"},
	} {
		if got := topRef([]byte(tt.m), tt.k); string(got) != tt.want {
			t.Errorf("topRef(%q, %d) = %q, want %q", tt.m, tt.k, got, tt.want)
		}
	}
}

func FuzzTopReader(f *testing.F) {
	f.Add([]byte("From: a\nSubject: s\n\nl1\nl2\n"), uint8(1))
	f.Add([]byte("From: a\r\n\r\nl1\r\n"), uint8(0))
	f.Add([]byte("From: a\nSubject: s"), uint8(3))
	f.Add([]byte("A: b\n\r\r\n\nx"), uint8(2))
	f.Add([]byte("H\r"), uint8(0))
	f.Add([]byte(""), uint8(0))
	f.Fuzz(func(t *testing.T, m []byte, k8 uint8) {
		k := int(k8 % 16)
		out, err := io.ReadAll(NewTopReader(bytes.NewReader(m), k))
		if err != nil {
			t.Fatal(err)
		}
		// A prefix of the message, or the whole message and the
		// appended line end and empty line.
		if !bytes.HasPrefix(m, out) {
			if !bytes.HasPrefix(out, m) {
				t.Fatalf("TOP %d of %q = %q: neither a prefix nor an extension", k, m, out)
			}
			switch string(out[len(m):]) {
			case "\n", "\r\n", "\n\r\n", "\r\n\r\n":
			default:
				t.Fatalf("TOP %d of %q = %q: appended %q", k, m, out, out[len(m):])
			}
		}
		if want := topRef(m, k); !bytes.Equal(out, want) {
			t.Fatalf("TOP %d of %q = %q, want %q", k, m, out, want)
		}
		// Read a few octets at a time: the same.
		out2, err := io.ReadAll(&stepReader{r: NewTopReader(&stepReader{r: bytes.NewReader(m), step: 1 + int(k8%5)}, k), step: 3})
		if err != nil || !bytes.Equal(out2, out) {
			t.Fatalf("TOP %d of %q in steps = %q, %v; want %q", k, m, out2, err, out)
		}
		// On the wire the view always holds the empty line that ends
		// the header.
		if !slices.Contains(strings.Split(string(normalize(out)), "\n"), "\r") {
			t.Fatalf("TOP %d of %q = %q: no empty line on the wire", k, m, out)
		}
	})
}
