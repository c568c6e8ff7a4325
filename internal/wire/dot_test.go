package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// dotWrite feeds the chunks to a DotWriter, closes it and returns the wire
// output and Size after EndLine.
func dotWrite(t testing.TB, chunks ...[]byte) (string, int64) {
	t.Helper()
	var out bytes.Buffer
	d := NewDotWriter(&out, 16)
	for _, c := range chunks {
		n, err := d.Write(c)
		if err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v", c, n, err)
		}
	}
	if err := d.EndLine(); err != nil {
		t.Fatal(err)
	}
	size := d.Size()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d.Size() != size {
		t.Fatalf("Close changed Size from %d to %d", size, d.Size())
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.String(), size
}

// dotCases are stored messages with their wire form (stuffed and
// terminated) and wire size (CRLF line ends, final line end, no stuffing,
// no terminator), all written out by hand.
var dotCases = []struct {
	in   string
	wire string
	size int64
}{
	{"", ".\r\n", 0},
	{"a", "a\r\n.\r\n", 3},
	{"a\n", "a\r\n.\r\n", 3},
	{"a\r\n", "a\r\n.\r\n", 3},
	{"a\r", "a\r\n.\r\n", 3},
	{"\r", "\r\n.\r\n", 2},
	{"\n", "\r\n.\r\n", 2},
	{"\r\n", "\r\n.\r\n", 2},
	{"\n\n", "\r\n\r\n.\r\n", 4},
	{"\r\r", "\r\r\n.\r\n", 3},
	{"\n\r", "\r\n\r\n.\r\n", 4},
	{"\r\n\r", "\r\n\r\n.\r\n", 4},
	{"a\rb\n", "a\rb\r\n.\r\n", 5},
	{"a\r\rb", "a\r\rb\r\n.\r\n", 6},
	{"a\r\r\n", "a\r\r\n.\r\n", 4},
	{"one\ntwo\n", "one\r\ntwo\r\n.\r\n", 10},
	{"one\r\ntwo\r\n", "one\r\ntwo\r\n.\r\n", 10},
	{"one\r\ntwo", "one\r\ntwo\r\n.\r\n", 10},
	{"l1\nl2\r\nl3\rl4\n\n.\r\n", "l1\r\nl2\r\nl3\rl4\r\n\r\n..\r\n.\r\n", 20},
	{".", "..\r\n.\r\n", 3},
	{".\n", "..\r\n.\r\n", 3},
	{".\r\n", "..\r\n.\r\n", 3},
	{".\r", "..\r\n.\r\n", 3},
	{"..", "...\r\n.\r\n", 4},
	{"..\n", "...\r\n.\r\n", 4},
	{"..\r\n", "...\r\n.\r\n", 4},
	{".hidden\nx\n.\n", "..hidden\r\nx\r\n..\r\n.\r\n", 15},
	{"a.b\n.c", "a.b\r\n..c\r\n.\r\n", 9},
	{"a\r.b\n", "a\r.b\r\n.\r\n", 6},
	{"\n.", "\r\n..\r\n.\r\n", 5},
	{"\r\n.", "\r\n..\r\n.\r\n", 5},
	{"\n.\n.\n", "\r\n..\r\n..\r\n.\r\n", 8},
	{"x\n..\n...\n", "x\r\n...\r\n....\r\n.\r\n", 12},
	{"\r\r\n.\r\r\n", "\r\r\n..\r\r\n.\r\n", 7},
	{"\x00\xff.\n", "\x00\xff.\r\n.\r\n", 5},
}

func TestDotWriter(t *testing.T) {
	for _, tt := range dotCases {
		got, size := dotWrite(t, []byte(tt.in))
		if got != tt.wire || size != tt.size {
			t.Errorf("DotWriter(%q) = %q, size %d; want %q, size %d", tt.in, got, size, tt.wire, tt.size)
		}
	}
}

// TestDotWriterSplits feeds each case split at every position, at every
// pair of positions, with empty writes, and byte by byte.
func TestDotWriterSplits(t *testing.T) {
	for _, tt := range dotCases {
		in := []byte(tt.in)
		check := func(how string, chunks ...[]byte) {
			t.Helper()
			got, size := dotWrite(t, chunks...)
			if got != tt.wire || size != tt.size {
				t.Errorf("DotWriter(%q) %s = %q, size %d; want %q, size %d", tt.in, how, got, size, tt.wire, tt.size)
			}
		}
		for i := 0; i <= len(in); i++ {
			check("split at "+itoa(i), in[:i], in[i:])
			check("split at "+itoa(i)+" with empty writes", nil, in[:i], []byte{}, in[i:], nil)
			for j := i; j <= len(in); j++ {
				check("split at "+itoa(i)+","+itoa(j), in[:i], in[i:j], in[j:])
			}
		}
		var bytewise [][]byte
		for i := range in {
			bytewise = append(bytewise, in[i:i+1])
		}
		check("byte by byte", bytewise...)
	}
}

func itoa(i int) string {
	return string(rune('0'+i/10)) + string(rune('0'+i%10))
}

// TestDotWriterBoundaries pins the critical splits explicitly.
func TestDotWriterBoundaries(t *testing.T) {
	tests := []struct {
		chunks []string
		want   string
		size   int64
	}{
		{[]string{"a\r", "\nb"}, "a\r\nb\r\n.\r\n", 6},
		{[]string{"a\r", "\r\n"}, "a\r\r\n.\r\n", 4},
		{[]string{"a\r", "b\n"}, "a\rb\r\n.\r\n", 5},
		{[]string{"a\n", ".b"}, "a\r\n..b\r\n.\r\n", 7},
		{[]string{"a\r\n", ".", "\r\n"}, "a\r\n..\r\n.\r\n", 6},
		{[]string{"a", ".b\n"}, "a.b\r\n.\r\n", 5},
		{[]string{"a\r", ".b\n"}, "a\r.b\r\n.\r\n", 6},
		{[]string{".", ".", "\n"}, "...\r\n.\r\n", 4},
		{[]string{"\r", "\n", "\r", "\n"}, "\r\n\r\n.\r\n", 4},
		{[]string{"\r", "", "\n"}, "\r\n.\r\n", 2},
	}
	for _, tt := range tests {
		var chunks [][]byte
		for _, c := range tt.chunks {
			chunks = append(chunks, []byte(c))
		}
		got, size := dotWrite(t, chunks...)
		if got != tt.want || size != tt.size {
			t.Errorf("DotWriter(%q) = %q, size %d; want %q, size %d", tt.chunks, got, size, tt.want, tt.size)
		}
	}
}

func TestDotWriterEndLineReset(t *testing.T) {
	var out bytes.Buffer
	d := NewDotWriter(&out, 4096)
	io.WriteString(d, "x")
	if err := d.EndLine(); err != nil {
		t.Fatal(err)
	}
	if err := d.EndLine(); err != nil { // no second line end
		t.Fatal(err)
	}
	if d.Size() != 3 {
		t.Fatalf("Size = %d, want 3", d.Size())
	}
	io.WriteString(d, ".y") // a new line after EndLine is stuffed
	d.Close()
	d.Flush()
	d.Reset(&out)
	if d.Size() != 0 {
		t.Fatalf("Size after Reset = %d", d.Size())
	}
	io.WriteString(d, ".z\r")
	d.Close()
	d.Flush()
	const want = "x\r\n..y\r\n.\r\n..z\r\n.\r\n"
	if out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}

func TestDotWriterCopy(t *testing.T) {
	const in = "From: a\n\n.line\r\nend\r"
	const want = "From: a\r\n\r\n..line\r\nend\r\n.\r\n"
	for _, r := range []struct {
		name string
		r    func() io.Reader
	}{
		{"whole", func() io.Reader { return strings.NewReader(in) }},
		{"one byte", func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) }},
		{"data with eof", func() io.Reader { return iotest.DataErrReader(strings.NewReader(in)) }},
		{"half", func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) }},
	} {
		var out bytes.Buffer
		d := NewDotWriter(&out, 16)
		n, err := d.Copy(r.r(), make([]byte, 3))
		if err != nil || n != int64(len(in)) {
			t.Fatalf("%s: Copy = %d, %v", r.name, n, err)
		}
		d.Close()
		d.Flush()
		if out.String() != want || d.Size() != int64(len(want)-3-1) {
			t.Errorf("%s: got %q size %d, want %q size %d", r.name, out.String(), d.Size(), want, len(want)-4)
		}
	}

	boom := errors.New("boom")
	d := NewDotWriter(io.Discard, 4096)
	n, err := d.Copy(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), make([]byte, 8))
	if err != boom || n != 3 {
		t.Fatalf("Copy with read error = %d, %v", n, err)
	}
}

func TestDotWriterWriteError(t *testing.T) {
	boom := errors.New("boom")
	d := NewDotWriter(errWriter{boom}, 16)
	_, err := d.Write([]byte(strings.Repeat("line\n", 20)))
	if err != boom {
		t.Fatalf("Write err = %v, want %v", err, boom)
	}
	if _, err := d.Copy(strings.NewReader("more\n"), make([]byte, 8)); err != boom {
		t.Fatalf("Copy err = %v, want %v", err, boom)
	}
	if err := d.Close(); err != boom {
		t.Fatalf("Close err = %v, want %v", err, boom)
	}
}

// TestDotWriterBuffering writes random messages, with a prefix through
// WriteRaw, by Write in random pieces and by Copy, through buffers of many
// sizes: the output must be the same whatever the buffer, and every write
// to the underlying writer but the last must fill more than three quarters
// of it.
func TestDotWriterBuffering(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for range 300 {
		m := randomText(rng, ".\r\na", rng.IntN(400))
		prefix := []byte("+OK " + strings.Repeat("x", rng.IntN(100)) + "\r\n")
		want := string(prefix)
		ref, _ := dotWrite(t, m)
		want += ref
		for _, size := range []int{1, 16, 17, 33, 64, 100, 4096} {
			for _, byCopy := range []bool{false, true} {
				var rec writeRecorder
				d := NewDotWriter(&rec, size)
				if n, err := d.WriteRaw(prefix); n != len(prefix) || err != nil {
					t.Fatalf("WriteRaw = %d, %v", n, err)
				}
				if byCopy {
					in := make([]byte, 1+rng.IntN(64))
					if n, err := d.Copy(&stepReader{r: bytes.NewReader(m), step: 1 + rng.IntN(80)}, in); n != int64(len(m)) || err != nil {
						t.Fatalf("Copy = %d, %v", n, err)
					}
				} else {
					for p := m; len(p) > 0; {
						k := min(len(p), rng.IntN(90))
						if n, err := d.Write(p[:k]); n != k || err != nil {
							t.Fatalf("Write = %d, %v", n, err)
						}
						p = p[k:]
					}
				}
				if err := d.Close(); err != nil {
					t.Fatal(err)
				}
				if err := d.Flush(); err != nil || d.Buffered() != 0 {
					t.Fatalf("Flush = %v, %d left", err, d.Buffered())
				}
				if got := rec.String(); got != want {
					t.Fatalf("buffer %d, copy %v: %q\ngot  %q\nwant %q", size, byCopy, m, got, want)
				}
				limit := max(size, minDotBuffer)
				for i, n := range rec.sizes {
					if n > limit || i < len(rec.sizes)-1 && 4*n <= 3*limit {
						t.Fatalf("buffer %d, copy %v: writes of %v octets", size, byCopy, rec.sizes)
					}
				}
			}
		}
	}
}

// randomText returns n octets drawn from alphabet.
func randomText(rng *rand.Rand, alphabet string, n int) []byte {
	m := make([]byte, n)
	for i := range m {
		m[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return m
}

// writeRecorder keeps what is written and the size of each write.
type writeRecorder struct {
	bytes.Buffer
	sizes []int
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return w.Buffer.Write(p)
}

// TestDotWriterReset checks that Reset drops unwritten output and a
// write error, and starts a new message.
func TestDotWriterReset(t *testing.T) {
	boom := errors.New("boom")
	d := NewDotWriter(errWriter{boom}, 16)
	io.WriteString(d, "a long line that fills the buffer\n")
	if err := d.Flush(); err != boom {
		t.Fatalf("Flush = %v, want %v", err, boom)
	}
	if _, err := d.WriteRaw([]byte("x")); err != boom {
		t.Fatalf("WriteRaw after an error = %v, want %v", err, boom)
	}
	var out bytes.Buffer
	d.Reset(&out)
	if d.Buffered() != 0 || d.Size() != 0 {
		t.Fatalf("after Reset: %d buffered, size %d", d.Buffered(), d.Size())
	}
	io.WriteString(d, ".x")
	io.WriteString(d, "y")
	d.Reset(&out) // unwritten: dropped
	io.WriteString(d, ".z\n")
	d.Close()
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "..z\r\n.\r\n" {
		t.Fatalf("got %q", got)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestWireSize(t *testing.T) {
	for _, tt := range dotCases {
		for _, r := range []struct {
			name string
			r    io.Reader
		}{
			{"whole", strings.NewReader(tt.in)},
			{"one byte", iotest.OneByteReader(strings.NewReader(tt.in))},
			{"data with eof", iotest.DataErrReader(strings.NewReader(tt.in))},
		} {
			n, err := WireSize(r.r)
			if err != nil || n != tt.size {
				t.Errorf("WireSize(%q) %s = %d, %v; want %d", tt.in, r.name, n, err, tt.size)
			}
		}
		if _, size := dotWrite(t, []byte(tt.in)); size != tt.size {
			t.Errorf("DotWriter(%q).Size = %d, want %d", tt.in, size, tt.size)
		}
	}
}

// TestCounter checks Counter against the reference normalisation, with
// the input written in random pieces: from an alphabet with CRs (the
// search per line) and from one where CRs are rare, so that most pieces
// take the vectorised path, often just after a piece ending in CR.
func TestCounter(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for iter := range 20000 {
		alphabet := "a.\r\n\x00"
		if iter%2 == 1 {
			alphabet = "aaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\n\n\n\n\r"
		}
		n := rng.IntN(64)
		if iter%100 == 0 {
			n = rng.IntN(200000)
		}
		m := randomText(rng, alphabet, n)
		want := int64(len(normalize(m)))
		c := NewCounter()
		for p := m; len(p) > 0; {
			n := min(1+rng.IntN(8), len(p))
			if iter%100 == 0 {
				n = min(1+rng.IntN(70000), len(p))
			}
			if k, err := c.Write(p[:n]); k != n || err != nil {
				t.Fatalf("Write = %d, %v", k, err)
			}
			p = p[n:]
		}
		if c.Size() != want || c.Raw() != int64(len(m)) {
			t.Fatalf("%q: Counter %d (raw %d), want %d (raw %d)", m, c.Size(), c.Raw(), want, len(m))
		}
	}
	for _, chunks := range [][]string{
		{"x\r", "\n\n"},      // the first LF of a piece without CR ends a CRLF
		{"x\r", "\n"},        // and that piece is all of it
		{"\r", "\n", "\n"},   // pieces of one octet
		{"x\n\r", "y\n"},     // a CR not before an LF
		{"", "\n", "", "\r"}, // empty pieces
	} {
		c := NewCounter()
		var m []byte
		for _, p := range chunks {
			c.Write([]byte(p))
			m = append(m, p...)
		}
		if want := int64(len(normalize(m))); c.Size() != want {
			t.Errorf("%q: Counter %d, want %d", chunks, c.Size(), want)
		}
	}
}

// TestWireSizeLarge crosses WireSize's 32 KiB read buffer with a CR LF
// pair, a lone LF and a lone CR on the boundary.
func TestWireSizeLarge(t *testing.T) {
	a := strings.Repeat("a", 32<<10-1)
	tests := []struct {
		in   string
		want int64
	}{
		{a + "\r\n", 32<<10 - 1 + 2},
		{a + "\r\r\n", 32<<10 - 1 + 3},
		{a + "a\n", 32<<10 + 2},
		{a + "\n\n", 32<<10 - 1 + 4},
		{a + "\r", 32<<10 - 1 + 2},
		{a + "ab", 32<<10 + 1 + 2},
		{a + a + "\r\n" + a + "\n", 3*(32<<10-1) + 4},
	}
	for _, tt := range tests {
		n, err := WireSize(strings.NewReader(tt.in))
		if err != nil || n != tt.want {
			t.Errorf("WireSize(%d octets ending %q) = %d, %v; want %d", len(tt.in), tt.in[len(tt.in)-3:], n, err, tt.want)
		}
		if _, size := dotWrite(t, []byte(tt.in)); size != tt.want {
			t.Errorf("DotWriter(%d octets ending %q).Size = %d; want %d", len(tt.in), tt.in[len(tt.in)-3:], size, tt.want)
		}
	}
}

func TestWireSizeError(t *testing.T) {
	boom := errors.New("boom")
	n, err := WireSize(io.MultiReader(strings.NewReader("abc\n"), iotest.ErrReader(boom)))
	if err != boom || n != 0 {
		t.Fatalf("WireSize = %d, %v; want 0, boom", n, err)
	}
}

// readDot reads a multi-line body with a DotReader over a bufio.Reader of
// the given size and returns the content, the error that ended it and what
// is left on the stream.
func readDot(in string, size int, oneByte bool) (content, left string, err error) {
	var r io.Reader = strings.NewReader(in)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	br := bufio.NewReaderSize(r, size)
	var dr io.Reader = NewDotReader(br)
	if oneByte {
		dr = iotest.OneByteReader(dr)
	}
	var out bytes.Buffer
	_, err = io.Copy(&out, dr)
	rest, _ := io.ReadAll(br)
	return out.String(), string(rest), err
}

func TestDotReader(t *testing.T) {
	// A long first line starting with a stuffed dot whose 16-octet buffer
	// fills each begin with a '.': only the very first is stuffing.
	longWire := "..aaaaaaaaaaaaaa" + ".bbbbbbbbbbbbbbb" + ".ccccccccccccccc" + "..dd\r\n"
	longContent := ".aaaaaaaaaaaaaa" + ".bbbbbbbbbbbbbbb" + ".ccccccccccccccc" + "..dd\r\n"
	dots := strings.Repeat(".", 100<<10)
	tests := []struct {
		name    string
		in      string
		size    int
		content string
		err     error // nil means io.EOF at the terminator
		left    string
	}{
		{"empty body", ".\r\n+OK next\r\n", 16, "", nil, "+OK next\r\n"},
		{"plain", "a\r\nb\r\n.\r\n", 16, "a\r\nb\r\n", nil, ""},
		{"unstuffing", "a\r\n..b\r\n..\r\n...\r\nc.\r\n.\r\nrest", 16, "a\r\n.b\r\n.\r\n..\r\nc.\r\n", nil, "rest"},
		{"dot dot line only", "..\r\n.\r\n", 16, ".\r\n", nil, ""},
		{"lenient lf terminator", "a\n.\nrest", 16, "a\n", nil, "rest"},
		{"terminator-like data", ". \r\n.x\r\n.\r\r\n.\r\n", 16, " \r\nx\r\n\r\r\n", nil, ""},
		{"empty lines", "\r\n\r\n.\r\n", 16, "\r\n\r\n", nil, ""},
		{"premature eof", "a\r\nb\r\n", 16, "a\r\nb\r\n", ErrBadTerminator, ""},
		{"premature eof mid-line", "a\r\nb", 16, "a\r\nb", ErrBadTerminator, ""},
		{"nothing at all", "", 16, "", ErrBadTerminator, ""},
		{"eof after a dot", "a\r\n.", 16, "a\r\n", ErrBadTerminator, ""},
		{"eof after dot CR", "a\r\n.\r", 16, "a\r\n\r", ErrBadTerminator, ""},
		{"long line with stuffed dots at fills", longWire + ".\r\nX", 16, longContent, nil, "X"},
		{"long line of dots", "." + dots + "\r\n.\r\n", 1024, dots + "\r\n", nil, ""},
		{"long line, dots inside", "x" + strings.Repeat("ab.cd..e\r", 5000) + "\r\n..\r\n.\r\n", 16,
			"x" + strings.Repeat("ab.cd..e\r", 5000) + "\r\n.\r\n", nil, ""},
		{"long line then terminator", strings.Repeat("z", 40) + "\r\n.\r\n", 16, strings.Repeat("z", 40) + "\r\n", nil, ""},
		{"long line ending at fill", strings.Repeat("z", 14) + "\r\n" + "." + strings.Repeat("y", 15) + "\r\n.\r\n", 16,
			strings.Repeat("z", 14) + "\r\n" + strings.Repeat("y", 15) + "\r\n", nil, ""},
		{"long line then premature eof", "." + dots, 1024, dots, ErrBadTerminator, ""},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			content, left, err := readDot(tt.in, tt.size, oneByte)
			if content != tt.content || err != tt.err || left != tt.left {
				t.Errorf("%s (one byte %v): got %.60q, %v, left %q; want %.60q, %v, left %q",
					tt.name, oneByte, content, err, left, tt.content, tt.err, tt.left)
			}
		}
	}
}

func TestDotReaderSticky(t *testing.T) {
	dr := NewDotReader(bufio.NewReader(strings.NewReader("a\r\n.\r\nb\r\n.\r\n")))
	if b, err := io.ReadAll(dr); err != nil || string(b) != "a\r\n" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	for range 2 {
		if n, err := dr.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("Read after the terminator = %d, %v", n, err)
		}
	}

	dr = NewDotReader(bufio.NewReader(strings.NewReader("a\r\n")))
	if err := dr.Drain(); err != ErrBadTerminator {
		t.Fatalf("Drain = %v, want ErrBadTerminator", err)
	}
	for range 2 {
		if n, err := dr.Read(make([]byte, 8)); n != 0 || err != ErrBadTerminator {
			t.Fatalf("Read after ErrBadTerminator = %d, %v", n, err)
		}
	}

	boom := errors.New("boom")
	dr = NewDotReader(bufio.NewReader(io.MultiReader(strings.NewReader("a\r\nb"), iotest.ErrReader(boom))))
	if b, err := io.ReadAll(dr); err != boom || string(b) != "a\r\nb" {
		t.Fatalf("ReadAll = %q, %v; want the data and boom", b, err)
	}
}

func TestDotReaderDrain(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader("one\r\n"+strings.Repeat("..", 100)+"\r\n.\r\n+OK\r\n"), 16)
	if err := NewDotReader(br).Drain(); err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "+OK\r\n" {
		t.Fatalf("left %q", rest)
	}
}

// normalize is the reference wire form of a stored message (before
// stuffing): every LF not preceded by a CR gains one, and a message not
// ending in LF gains a line end (only an LF after a trailing CR).
func normalize(m []byte) []byte {
	out := []byte{}
	for i, b := range m {
		if b == '\n' && (i == 0 || m[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, b)
	}
	if n := len(m); n > 0 && m[n-1] != '\n' {
		if m[n-1] != '\r' {
			out = append(out, '\r')
		}
		out = append(out, '\n')
	}
	return out
}

func TestNormalizeReference(t *testing.T) {
	for _, tt := range dotCases {
		if got := normalize([]byte(tt.in)); int64(len(got)) != tt.size {
			t.Errorf("normalize(%q) = %q: %d octets, want %d", tt.in, got, len(got), tt.size)
		}
	}
}

// roundTrip checks property 6 for m written in the given chunks.
func roundTrip(t testing.TB, m []byte, chunks ...[]byte) {
	t.Helper()
	want := normalize(m)
	wire, size := dotWrite(t, chunks...)
	if size != int64(len(want)) {
		t.Fatalf("%q: DotWriter.Size = %d, want %d", m, size, len(want))
	}
	ws, err := WireSize(bytes.NewReader(m))
	if err != nil || ws != int64(len(want)) {
		t.Fatalf("%q: WireSize = %d, %v; want %d", m, ws, err, len(want))
	}
	// Every LF on the wire ends a CRLF.
	for i := 0; i < len(wire); i++ {
		if wire[i] == '\n' && (i == 0 || wire[i-1] != '\r') {
			t.Fatalf("%q: bare LF at %d of %q", m, i, wire)
		}
	}
	for _, size := range []int{16, 4096} {
		content, left, err := readDot(wire+"+OK", size, false)
		if err != nil || content != string(want) || left != "+OK" {
			t.Fatalf("%q: read back %q, %v, left %q; want %q", m, content, err, left, want)
		}
	}
}

// TestDotRoundTripExhaustive covers every message of up to 6 octets over
// the interesting alphabet, written whole and in two chunks at every
// split point.
func TestDotRoundTripExhaustive(t *testing.T) {
	alphabet := []byte(".\r\na")
	var m []byte
	var gen func(n int)
	gen = func(n int) {
		roundTrip(t, m, m)
		if len(m) <= 4 {
			for i := 0; i <= len(m); i++ {
				roundTrip(t, m, m[:i], m[i:])
			}
		}
		if n == 0 {
			return
		}
		for _, b := range alphabet {
			m = append(m, b)
			gen(n - 1)
			m = m[:len(m)-1]
		}
	}
	gen(6)
}

func TestDotRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		m := randomText(rng, ".\r\nab\x00", rng.IntN(200))
		var chunks [][]byte
		for rest := m; len(rest) > 0; {
			n := min(len(rest), rng.IntN(20))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		roundTrip(t, m, chunks...)
	}
	// A long line on a small reader buffer.
	long := []byte(strings.Repeat(".\r", 3000) + "\n." + strings.Repeat("x.", 5000))
	roundTrip(t, long, long)
}

func FuzzDotRoundTrip(f *testing.F) {
	for _, tt := range dotCases {
		f.Add([]byte(tt.in), uint16(len(tt.in)/2))
	}
	f.Add([]byte("a\r\nb"), uint16(2))
	f.Add([]byte("a\n.b"), uint16(2))
	f.Add([]byte(strings.Repeat(".", 40)+"\r\n"), uint16(17))
	f.Fuzz(func(t *testing.T, m []byte, split uint16) {
		roundTrip(t, m, m)
		i := int(split) % (len(m) + 1)
		roundTrip(t, m, m[:i], m[i:])
		// Byte-by-byte writes give the same wire form as one write.
		if len(m) <= 512 {
			whole, _ := dotWrite(t, m)
			var bytewise [][]byte
			for j := range m {
				bytewise = append(bytewise, m[j:j+1])
			}
			if got, _ := dotWrite(t, bytewise...); got != whole {
				t.Fatalf("%q byte by byte: %q, whole: %q", m, got, whole)
			}
		}
	})
}

// FuzzWireSize checks WireSize against DotWriter.Size after EndLine, with
// the input also read a few octets at a time.
func FuzzWireSize(f *testing.F) {
	for _, tt := range dotCases {
		f.Add([]byte(tt.in), uint8(1))
	}
	f.Fuzz(func(t *testing.T, m []byte, step uint8) {
		_, size := dotWrite(t, m)
		n, err := WireSize(bytes.NewReader(m))
		if err != nil || n != size {
			t.Fatalf("WireSize(%q) = %d, %v; DotWriter.Size = %d", m, n, err, size)
		}
		n, err = WireSize(&stepReader{r: bytes.NewReader(m), step: 1 + int(step%8)})
		if err != nil || n != size {
			t.Fatalf("WireSize(%q) in steps of %d = %d, %v; DotWriter.Size = %d", m, 1+step%8, n, err, size)
		}
	})
}

// stepReader returns at most step octets per Read.
type stepReader struct {
	r    io.Reader
	step int
}

func (s *stepReader) Read(p []byte) (int, error) {
	return s.r.Read(p[:min(len(p), s.step)])
}

// lfMessage returns a message of about n octets of LF-terminated lines,
// some of them starting with a dot.
func lfMessage(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.org\nTo: b@example.org\nSubject: benchmark\n\n")
	for i := 0; b.Len() < n; i++ {
		if i%10 == 0 {
			b.WriteString(".")
		}
		b.WriteString("The quick brown fox jumps over the lazy dog; line of the body text.\n")
	}
	return b.Bytes()[:n]
}

func BenchmarkDotWriter(b *testing.B) {
	for _, bc := range []struct {
		name string
		n    int
	}{{"100KB", 100 << 10}, {"10MB", 10 << 20}} {
		msg := lfMessage(bc.n)
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 64<<10)
			d := NewDotWriter(io.Discard, 256<<10)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				d.Reset(io.Discard)
				if _, err := d.Copy(bytes.NewReader(msg), buf); err != nil {
					b.Fatal(err)
				}
				if err := d.Close(); err != nil {
					b.Fatal(err)
				}
				d.Flush()
			}
		})
	}
}

func BenchmarkWireSize(b *testing.B) {
	for _, bc := range []struct {
		name string
		n    int
	}{{"100KB", 100 << 10}, {"10MB", 10 << 20}} {
		msg := lfMessage(bc.n)
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := WireSize(bytes.NewReader(msg)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
