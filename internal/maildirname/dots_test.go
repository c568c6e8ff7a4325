package maildirname

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// dotMessage returns a message with lines beginning with '.' at offs (the
// first n; more lines after the last of them when n is larger).
func dotMessage(n int64, offs []int64) []byte {
	var b bytes.Buffer
	for k := range n {
		if k < int64(len(offs)) {
			for int64(b.Len()) < offs[k] {
				if int64(b.Len()) == offs[k]-1 {
					b.WriteByte('\n')
				} else {
					b.WriteByte('x')
				}
			}
		}
		b.WriteString(".\r\n")
	}
	b.WriteString("end\r\n")
	return b.Bytes()
}

// TestDotsField checks the D= field: the count of lines beginning with
// '.', and their offsets when there are at most MaxNamedDots, read back
// by parseDots; and what parseDots refuses.
func TestDotsField(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		offs []int64
		want string
	}{
		{0, nil, ",D=0"},
		{1, []int64{0}, ",D=1.0"},
		{4, []int64{3, 80, 83, 1 << 40}, ",D=4.3.80.83.1099511627776"},
		{4, []int64{0, 3, 80, 83}, ",D=4.0.3.80.83"},
		{5, []int64{1, 2, 3, 4, 5}, ",D=5"},
		{900, nil, ",D=900"},
	} {
		got := DotsField(tt.n, tt.offs)
		if tt.offs != nil && tt.n <= MaxNamedDots && tt.offs[len(tt.offs)-1] < 1<<20 {
			c := NewDotCounter()
			msg := dotMessage(tt.n, tt.offs)
			// In pieces of 3: offsets and lines straddle the writes.
			for len(msg) > 0 {
				k := min(3, len(msg))
				c.Write(msg[:k])
				msg = msg[k:]
			}
			if c.Lines() != tt.n || c.Field() != tt.want {
				t.Errorf("DotCounter over a message of %d dot lines at %v: %d, %q", tt.n, tt.offs, c.Lines(), c.Field())
			}
		}
		if got != tt.want {
			t.Errorf("DotsField(%d, %v) = %q, want %q", tt.n, tt.offs, got, tt.want)
		}
		offs, ok := ParseDots(strings.TrimPrefix(got, ",D="))
		if wantOK := tt.n <= MaxNamedDots; ok != wantOK || ok && fmt.Sprint(offs) != fmt.Sprint(tt.offs[:tt.n]) {
			t.Errorf("ParseDots(%q) = %v, %v", got, offs, ok)
		}
	}
	for _, bad := range []string{"", "x", "0.", "0.5", "1", "1.", "1.x", "2.5", "2.5.5", "2.6.5", "1.5.6", "-1", "1.-5", "5.1.2.3.4.5", "1.1234567890123456789"} {
		if offs, ok := ParseDots(bad); ok {
			t.Errorf("ParseDots(%q) = %v, ok", bad, offs)
		}
	}
	c := NewDotCounter()
	c.Write(dotMessage(7, []int64{0, 3, 6, 9, 12}))
	if c.Lines() != 7 || c.Field() != ",D=7" {
		t.Errorf("DotCounter over seven dot lines: %d, %q", c.Lines(), c.Field())
	}
	if offs, ok := ParseDots("0"); !ok || offs == nil || len(offs) != 0 {
		t.Errorf("ParseDots(\"0\") = %#v, %v", offs, ok)
	}
}
