package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unsafe"
)

// readLineStep is one expected ReadLine result.
type readLineStep struct {
	line string
	err  error
}

// checkReadLines reads from br until the steps are used up and compares.
func checkReadLines(t *testing.T, br *bufio.Reader, max int, steps []readLineStep) {
	t.Helper()
	for i, want := range steps {
		got, err := ReadLine(br, max)
		if err != want.err {
			t.Fatalf("step %d: err = %v, want %v", i, err, want.err)
		}
		if err != nil && got != nil {
			t.Fatalf("step %d: line %q returned with error %v", i, got, err)
		}
		if string(got) != want.line {
			t.Fatalf("step %d: line = %q, want %q", i, got, want.line)
		}
	}
}

func TestReadLine(t *testing.T) {
	long100k := strings.Repeat("x", 100<<10)
	tests := []struct {
		name  string
		in    string
		size  int // bufio buffer size
		max   int
		steps []readLineStep
	}{
		{
			name: "crlf and bare lf",
			in:   "USER bob\r\nPASS x y\nQUIT\r\n",
			size: 64, max: 255,
			steps: []readLineStep{{"USER bob", nil}, {"PASS x y", nil}, {"QUIT", nil}, {"", io.EOF}, {"", io.EOF}},
		},
		{
			name: "empty lines",
			in:   "\r\n\n",
			size: 64, max: 255,
			steps: []readLineStep{{"", nil}, {"", nil}, {"", io.EOF}},
		},
		{
			name: "only one CR is a line end",
			in:   "NOOP\r\r\n",
			size: 64, max: 255,
			steps: []readLineStep{{"NOOP\r", nil}, {"", io.EOF}},
		},
		{
			name: "bare CR is not a line end",
			in:   "A\rB\r\n",
			size: 64, max: 255,
			steps: []readLineStep{{"A\rB", nil}, {"", io.EOF}},
		},
		{
			name: "exactly max with crlf",
			in:   "12345678\r\nNOOP\r\n",
			size: 64, max: 10,
			steps: []readLineStep{{"12345678", nil}, {"NOOP", nil}, {"", io.EOF}},
		},
		{
			name: "exactly max with lf",
			in:   "123456789\nNOOP\r\n",
			size: 64, max: 10,
			steps: []readLineStep{{"123456789", nil}, {"NOOP", nil}, {"", io.EOF}},
		},
		{
			name: "max plus one, then the next line",
			in:   "123456789\r\nNOOP\r\n",
			size: 64, max: 10,
			steps: []readLineStep{{"", ErrLineTooLong}, {"NOOP", nil}, {"", io.EOF}},
		},
		{
			name: "max plus one with lf",
			in:   "1234567890\nNOOP\n",
			size: 64, max: 10,
			steps: []readLineStep{{"", ErrLineTooLong}, {"NOOP", nil}, {"", io.EOF}},
		},
		{
			name: "255 octets accepted, 256 refused",
			in:   strings.Repeat("a", 253) + "\r\n" + strings.Repeat("b", 254) + "\r\nQUIT\r\n",
			size: 1024, max: 255,
			steps: []readLineStep{{strings.Repeat("a", 253), nil}, {"", ErrLineTooLong}, {"QUIT", nil}, {"", io.EOF}},
		},
		{
			name: "100 KB line with a 1 KB buffer",
			in:   long100k + "\r\nSTAT\r\n",
			size: 1024, max: 255,
			steps: []readLineStep{{"", ErrLineTooLong}, {"STAT", nil}, {"", io.EOF}},
		},
		{
			name: "line of exactly the buffer size without LF, then LF",
			in:   strings.Repeat("z", 16) + "\nSTAT\n",
			size: 16, max: 255,
			steps: []readLineStep{{strings.Repeat("z", 16), nil}, {"STAT", nil}, {"", io.EOF}},
		},
		{
			name: "max larger than the buffer: a 50-octet line fits",
			in:   strings.Repeat("q", 48) + "\r\n" + strings.Repeat("r", 99) + "\n" + strings.Repeat("s", 99) + "\r\nLAST\r\n",
			size: 16, max: 100,
			steps: []readLineStep{{strings.Repeat("q", 48), nil}, {strings.Repeat("r", 99), nil}, {"", ErrLineTooLong}, {"LAST", nil}, {"", io.EOF}},
		},
		{
			name: "max larger than the buffer, too long in the first chunk already",
			in:   strings.Repeat("q", 40) + "\r\nLAST\r\n",
			size: 16, max: 10,
			steps: []readLineStep{{"", ErrLineTooLong}, {"LAST", nil}, {"", io.EOF}},
		},
		{
			name: "eof mid-line",
			in:   "STAT\r\nQUIT",
			size: 64, max: 255,
			steps: []readLineStep{{"STAT", nil}, {"", io.ErrUnexpectedEOF}},
		},
		{
			name: "eof after a CR",
			in:   "QUIT\r",
			size: 64, max: 255,
			steps: []readLineStep{{"", io.ErrUnexpectedEOF}},
		},
		{
			name: "eof inside a long line",
			in:   long100k,
			size: 1024, max: 255,
			steps: []readLineStep{{"", io.ErrUnexpectedEOF}},
		},
		{
			name: "eof inside a line longer than the buffer but within max",
			in:   strings.Repeat("w", 40),
			size: 16, max: 100,
			steps: []readLineStep{{"", io.ErrUnexpectedEOF}},
		},
		{
			name: "clean eof",
			in:   "",
			size: 64, max: 255,
			steps: []readLineStep{{"", io.EOF}, {"", io.EOF}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkReadLines(t, bufio.NewReaderSize(strings.NewReader(tt.in), tt.size), tt.max, tt.steps)
		})
		t.Run(tt.name+"/one byte reads", func(t *testing.T) {
			checkReadLines(t, bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(tt.in)), tt.size), tt.max, tt.steps)
		})
	}
}

func TestReadLineReadError(t *testing.T) {
	boom := errors.New("boom")
	br := bufio.NewReaderSize(io.MultiReader(strings.NewReader("NOOP\r\nST"), iotest.ErrReader(boom)), 16)
	checkReadLines(t, br, 255, []readLineStep{{"NOOP", nil}, {"", boom}})

	// A read error while discarding an over-long line is reported as is.
	br = bufio.NewReaderSize(io.MultiReader(strings.NewReader(strings.Repeat("x", 100)), iotest.ErrReader(boom)), 16)
	checkReadLines(t, br, 20, []readLineStep{{"", boom}})

	// A timeout on an idle connection is not an unexpected EOF.
	br = bufio.NewReaderSize(iotest.ErrReader(boom), 16)
	checkReadLines(t, br, 255, []readLineStep{{"", boom}})
}

// TestReadLineLongLineNotRetained checks that a line collected across
// buffer fills (max > buffer size) is not clobbered by the next read.
func TestReadLineLongLineNotRetained(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader(strings.Repeat("a", 30)+"\r\n"+strings.Repeat("b", 30)+"\r\n"), 16)
	first, err := ReadLine(br, 64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLine(br, 64); err != nil {
		t.Fatal(err)
	}
	if string(first) != strings.Repeat("a", 30) {
		t.Fatalf("first line changed to %q", first)
	}
}

func TestParseCommand(t *testing.T) {
	verb40 := strings.Repeat("X", 40)
	tests := []struct {
		in   string
		ok   bool
		verb string
		rest string
		args []string
	}{
		{in: "STAT", ok: true, verb: "STAT", rest: "", args: []string{}},
		{in: "stat", ok: true, verb: "STAT", rest: "", args: []string{}},
		{in: "sTaT", ok: true, verb: "STAT", rest: "", args: []string{}},
		{in: "top 1 10", ok: true, verb: "TOP", rest: "1 10", args: []string{"1", "10"}},
		{in: "RETR 1", ok: true, verb: "RETR", rest: "1", args: []string{"1"}},
		{in: "retr 42", ok: true, verb: "RETR", rest: "42", args: []string{"42"}},
		{in: "PASS my secret  pw", ok: true, verb: "PASS", rest: "my secret  pw", args: []string{"my", "secret", "pw"}},
		{in: "PASS  lead and trail  ", ok: true, verb: "PASS", rest: " lead and trail  ", args: []string{"lead", "and", "trail"}},
		{in: "LIST  1", ok: true, verb: "LIST", rest: " 1", args: []string{"1"}},
		{in: "STAT ", ok: true, verb: "STAT", rest: "", args: []string{}},
		{in: "NOOP   ", ok: true, verb: "NOOP", rest: "  ", args: []string{}},
		{in: "TOP 1\t2", ok: true, verb: "TOP", rest: "1\t2", args: []string{"1", "2"}},
		{in: "RETR 1\r", ok: true, verb: "RETR", rest: "1\r", args: []string{"1"}},
		{in: "PASS a\x01b", ok: true, verb: "PASS", rest: "a\x01b", args: []string{"a\x01b"}},
		// Non-ASCII spaces (U+00A0, U+3000, U+0085) are not separators.
		{in: "USER j\u00a0doe x", ok: true, verb: "USER", rest: "j\u00a0doe x", args: []string{"j\u00a0doe", "x"}},
		{in: "APOP \u3000a\u0085 b", ok: true, verb: "APOP", rest: "\u3000a\u0085 b", args: []string{"\u3000a\u0085", "b"}},
		{in: "xfoo bar", ok: true, verb: "XFOO", rest: "bar", args: []string{"bar"}},
		{in: "x-1!~", ok: true, verb: "X-1!~", rest: "", args: []string{}},
		{in: verb40, ok: true, verb: verb40, rest: "", args: []string{}},
		{in: strings.ToLower(verb40) + " a", ok: true, verb: verb40, rest: "a", args: []string{"a"}},
		{in: "", ok: false},
		{in: " ", ok: false},
		{in: " STAT", ok: false},
		{in: "ST\x00AT", ok: false},
		{in: "STAT\t1", ok: false},
		{in: "\x7fSTAT", ok: false},
		{in: "ST\rAT", ok: false},
		{in: "STÄT", ok: false},
		{in: "\x1b", ok: false},
		{in: verb40 + "X", ok: false},
		{in: verb40 + "X 1", ok: false},
	}
	for _, tt := range tests {
		c, ok := ParseCommand([]byte(tt.in), nil)
		if ok != tt.ok {
			t.Errorf("ParseCommand(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			continue
		}
		if !ok {
			if c.Verb != "" || c.Rest != "" || c.Args != nil {
				t.Errorf("ParseCommand(%q) = %+v on failure, want the zero Command", tt.in, c)
			}
			continue
		}
		if c.Verb != tt.verb || c.Rest != tt.rest || !slices.Equal(c.Args, tt.args) {
			t.Errorf("ParseCommand(%q) = {%q %q %q}, want {%q %q %q}", tt.in, c.Verb, c.Rest, c.Args, tt.verb, tt.rest, tt.args)
		}
	}
}

func TestParseCommandNoAliasing(t *testing.T) {
	line := []byte("pass secret word")
	buf := make([]string, 0, 4)
	c, ok := ParseCommand(line, buf)
	if !ok {
		t.Fatal("not ok")
	}
	for i := range line {
		line[i] = '#'
	}
	if c.Verb != "PASS" || c.Rest != "secret word" || !slices.Equal(c.Args, []string{"secret", "word"}) {
		t.Fatalf("command changed with the line: %+v", c)
	}
	if &c.Args[:1][0] != &buf[:1][0] {
		t.Fatal("Args does not reuse the args storage")
	}
	// The args of a previous command are replaced, not appended to.
	c2, _ := ParseCommand([]byte("QUIT"), c.Args)
	if len(c2.Args) != 0 {
		t.Fatalf("Args = %q, want none", c2.Args)
	}
}

func TestParseCommandInternsKnownVerbs(t *testing.T) {
	for _, v := range []string{"USER", "PASS", "APOP", "QUIT", "STAT", "LIST", "RETR",
		"DELE", "NOOP", "RSET", "TOP", "UIDL", "CAPA", "STLS", "AUTH", "UTF8", "LANG", "LAST"} {
		a, ok1 := ParseCommand([]byte(strings.ToLower(v)), nil)
		b, ok2 := ParseCommand([]byte(v+" x"), nil)
		if !ok1 || !ok2 || a.Verb != v || b.Verb != v {
			t.Fatalf("%s: got %q %q", v, a.Verb, b.Verb)
		}
		if unsafe.StringData(a.Verb) != unsafe.StringData(b.Verb) {
			t.Errorf("%s is not interned", v)
		}
	}
}

func TestParseCommandAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	args := make([]string, 0, 8)
	for _, tt := range []struct {
		line   string
		allocs float64
	}{
		{"STAT", 0},
		{"quit", 0},
		{"RETR 1", 0}, // one-octet strings are static
		{"RETR 12", 1},
		{"TOP 12 34", 1},
		{"PASS my secret  pw", 1},
		{"XFOO", 1},
		{"XFOO 12", 2},
	} {
		line := []byte(tt.line)
		got := testing.AllocsPerRun(100, func() {
			c, _ := ParseCommand(line, args)
			args = c.Args
		})
		if got != tt.allocs {
			t.Errorf("ParseCommand(%q): %v allocs, want %v", tt.line, got, tt.allocs)
		}
	}
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in string
		n  int
		ok bool
	}{
		{"1", 1, true},
		{"0", 0, true},
		{"007", 7, true}, // decimal, leading zeros allowed
		{"42", 42, true},
		{"123456789", 123456789, true},
		{"999999999", 999999999, true},
		{"000000000", 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1x", 0, false},
		{"x1", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1.0", 0, false},
		{"0x10", 0, false},
		{"١", 0, false}, // Arabic-Indic digit one
		{"9999999999", 0, false},
		{"0000000001", 0, false},
	}
	for _, tt := range tests {
		n, ok := ParseNumber(tt.in)
		if n != tt.n || ok != tt.ok {
			t.Errorf("ParseNumber(%q) = %d, %v; want %d, %v", tt.in, n, ok, tt.n, tt.ok)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"", "STAT", "retr 1", "PASS my secret  pw", " x", "TOP 1 2",
		"USER j\u00a0doe", "A\x00B", strings.Repeat("v", 41), "LIST\t1", "NOOP \r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		in := string(line)
		c, ok := ParseCommand(line, nil)
		if string(line) != in {
			t.Fatal("ParseCommand modified its input")
		}
		if !ok {
			return
		}
		if len(c.Verb) == 0 || len(c.Verb) > 40 {
			t.Fatalf("verb %q has bad length", c.Verb)
		}
		for i := 0; i < len(c.Verb); i++ {
			b := c.Verb[i]
			if b <= ' ' || b >= 0x7f || ('a' <= b && b <= 'z') {
				t.Fatalf("verb %q has octet %#x", c.Verb, b)
			}
		}
		if !strings.EqualFold(c.Verb, in[:len(c.Verb)]) {
			t.Fatalf("verb %q does not start %q", c.Verb, in)
		}
		if !strings.HasSuffix(in, c.Rest) {
			t.Fatalf("rest %q is not a suffix of %q", c.Rest, in)
		}
		if len(c.Verb) < len(in) {
			if in[len(c.Verb)] != ' ' || c.Rest != in[len(c.Verb)+1:] {
				t.Fatalf("rest %q is not what follows %q in %q", c.Rest, c.Verb, in)
			}
		} else if c.Rest != "" {
			t.Fatalf("rest %q without a space", c.Rest)
		}
		// Args are the ASCII-space-separated fields of Rest, in order.
		want := strings.FieldsFunc(c.Rest, func(r rune) bool {
			return r < 0x80 && isASCIISpaceRef(byte(r))
		})
		if len(want) == 0 {
			want = nil
		}
		got := c.Args
		if len(got) == 0 {
			got = nil
		}
		if !slices.Equal(got, want) {
			t.Fatalf("args %q, want %q", got, want)
		}
	})
}

func isASCIISpaceRef(b byte) bool {
	return bytes.IndexByte([]byte(" \t\n\v\f\r"), b) >= 0
}

func FuzzReadLine(f *testing.F) {
	f.Add([]byte("USER bob\r\nPASS x\nQUIT\r\n"), uint16(255), uint16(16))
	f.Add([]byte("12345678\r\n123456789\r\nNOOP"), uint16(10), uint16(16))
	f.Add([]byte(strings.Repeat("x", 300)+"\nSTAT\r\n"), uint16(255), uint16(64))
	f.Add([]byte(strings.Repeat("y", 40)+"\r\n\r\n"), uint16(100), uint16(16))
	f.Add([]byte("\r\r\n\n\r"), uint16(2), uint16(16))
	f.Fuzz(func(t *testing.T, data []byte, max16, size16 uint16) {
		max := int(max16 % 600)
		size := 16 + int(size16%300)
		br := bufio.NewReaderSize(bytes.NewReader(data), size)
		rest := data
		for range len(data) + 2 {
			line, err := ReadLine(br, max)
			// The reference: the next LF-terminated line of rest.
			i := bytes.IndexByte(rest, '\n')
			switch {
			case len(rest) == 0:
				if err != io.EOF || line != nil {
					t.Fatalf("at end: %q, %v; want io.EOF", line, err)
				}
				return
			case i < 0:
				if err != io.ErrUnexpectedEOF || line != nil {
					t.Fatalf("unterminated %q: got %q, %v; want io.ErrUnexpectedEOF", rest, line, err)
				}
				return
			}
			raw := rest[:i+1]
			rest = rest[i+1:]
			if len(raw) > max {
				if err != ErrLineTooLong || line != nil {
					t.Fatalf("%d-octet line %q with max %d: got %q, %v; want ErrLineTooLong", len(raw), raw, max, line, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("line %q: %v", raw, err)
			}
			want := raw[:len(raw)-1]
			want = bytes.TrimSuffix(want, []byte{'\r'})
			if !bytes.Equal(line, want) {
				t.Fatalf("line %q, want %q", line, want)
			}
			if len(line)+1 > max {
				t.Fatalf("line %q longer than max %d", line, max)
			}
		}
		t.Fatal("ReadLine did not come to an end")
	})
}

func BenchmarkParseCommand(b *testing.B) {
	for _, in := range []string{"STAT", "RETR 1", "RETR 123", "TOP 12 34", "PASS my secret  pw", "XFOO 1"} {
		line := []byte(in)
		args := make([]string, 0, 8)
		b.Run(strings.ReplaceAll(in, " ", "_"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, _ := ParseCommand(line, args)
				args = c.Args
			}
		})
	}
}
