package testenv

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Mode says how strictly a transcript is held against a server.
type Mode int

const (
	// Exact compares every byte of every line (postie).
	Exact Mode = iota
	// Protocol compares what RFC 1939 fixes and leaves the free text of
	// status lines alone: the +OK/-ERR indicator, any response code, the
	// data lines of multi-line responses, and for "U:" lines the message
	// number (another server's UIDLs are its own). Used against Dovecot
	// to prove the transcripts test the protocol, not postie's wording.
	Protocol
)

var respCode = regexp.MustCompile(`^(\+OK|-ERR)( \[[^\]]+\])?`)

// RunTranscript plays script on a fresh connection to addr. Lines:
//
//	C: text   client line (CRLF appended); consecutive C: lines are sent in one write
//	R: text   raw client bytes, with Go escapes (\x00, \r\n) interpreted
//	S: text   a status line (+OK/-ERR ...)
//	D: text   a data line of a multi-line response, exact in both modes
//	U: n uid  a unique-id listing line
//	E:        the server closes the connection here
//
// A script not ending in E: must leave nothing unread.
func RunTranscript(t testing.TB, addr string, mode Mode, script string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	lines := strings.Split(strings.TrimSuffix(script, "\n"), "\n")
	var pending bytes.Buffer
	flush := func() {
		if pending.Len() == 0 {
			return
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(pending.Bytes()); err != nil {
			t.Fatalf("write: %v", err)
		}
		pending.Reset()
	}
	sawEOF := false
	for n, l := range lines {
		l = strings.TrimLeft(l, "\t ")
		if l == "" {
			continue
		}
		if len(l) < 2 || l[1] != ':' {
			t.Fatalf("script line %d: bad prefix: %q", n+1, l)
		}
		kind, text := l[0], strings.TrimPrefix(l[2:], " ")
		switch kind {
		case 'C':
			pending.WriteString(text + "\r\n")
			continue
		case 'R':
			raw, err := strconv.Unquote(`"` + text + `"`)
			if err != nil {
				t.Fatalf("script line %d: bad escapes: %v", n+1, err)
			}
			pending.WriteString(raw)
			continue
		}
		flush()
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if kind == 'E' {
			rest, err := io.ReadAll(br)
			if len(rest) > 0 {
				t.Fatalf("script line %d: expected close, got %q", n+1, rest)
			}
			if err != nil && !isReset(err) {
				t.Fatalf("script line %d: expected close, got %v", n+1, err)
			}
			sawEOF = true
			continue
		}
		got, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("script line %d: want %q, read %q, %v", n+1, text+"\r\n", got, err)
		}
		want := text + "\r\n"
		if !match(mode, kind, want, got) {
			t.Fatalf("script line %d (%c):\n want %q\n  got %q", n+1, kind, want, got)
		}
	}
	flush()
	if !sawEOF {
		c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		if b, err := br.ReadByte(); err == nil {
			rest, _ := br.Peek(br.Buffered())
			t.Fatalf("unexpected extra output: %q", append([]byte{b}, rest...))
		}
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

func match(mode Mode, kind byte, want, got string) bool {
	if mode == Exact || kind == 'D' {
		return want == got
	}
	switch kind {
	case 'S':
		w := respCode.FindString(want)
		g := respCode.FindString(got)
		if w == "" {
			return false
		}
		// A code we expect must be there; Dovecot may add codes we do
		// not check for when we expect none.
		if strings.Contains(w, "[") {
			return w == g
		}
		return strings.HasPrefix(g, w)
	case 'U':
		wn, _, _ := strings.Cut(want, " ")
		gn, uid, _ := strings.Cut(got, " ")
		return wn == gn && len(uid) > 2 && strings.HasSuffix(uid, "\r\n")
	}
	return false
}
