package fetch

import (
	"bufio"
	"bytes"
	"io"
	"net/textproto"
	"strings"
	"time"
)

// lfWriter turns the CRLF line ends of a message in wire form into LF, as
// Maildir and mbox files and MDAs on Unix expect. A CR not followed by LF
// is kept.
type lfWriter struct {
	w    io.Writer
	cr   bool // the last octet written was a CR, held back
	last byte // the last octet passed on
}

func (l *lfWriter) Write(p []byte) (int, error) {
	n := len(p)
	if l.cr && len(p) > 0 {
		l.cr = false
		if p[0] != '\n' {
			if err := l.put([]byte{'\r'}); err != nil {
				return 0, err
			}
		}
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\r')
		if i < 0 {
			return n, l.put(p)
		}
		if err := l.put(p[:i]); err != nil {
			return 0, err
		}
		switch {
		case i+1 == len(p):
			l.cr = true
			return n, nil
		case p[i+1] == '\n':
			p = p[i+1:] // drop the CR, keep the LF
		default:
			if err := l.put(p[i : i+1]); err != nil {
				return 0, err
			}
			p = p[i+1:]
		}
	}
	return n, nil
}

func (l *lfWriter) put(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	l.last = p[len(p)-1]
	_, err := l.w.Write(p)
	return err
}

// finish writes a held-back CR and, if the message did not end with a
// line end, an LF.
func (l *lfWriter) finish() error {
	if l.cr {
		l.cr = false
		if err := l.put([]byte{'\r'}); err != nil {
			return err
		}
	}
	if l.last != '\n' {
		return l.put([]byte{'\n'})
	}
	return nil
}

// fromQuoter quotes the lines of a message for an mboxrd file: a line
// matching ^>*From  gets one more '>' (so a reader removes exactly one).
// It expects LF line ends.
type fromQuoter struct {
	w   io.Writer
	bol bool   // at the beginning of a line
	pfx []byte // the start of the current line while it may still be >*From_
}

func newFromQuoter(w io.Writer) *fromQuoter { return &fromQuoter{w: w, bol: true} }

func (q *fromQuoter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if q.bol || q.pfx != nil {
			// Decide the start of a line, one octet at a time.
			c := p[0]
			p = p[1:]
			q.bol = false
			q.pfx = append(q.pfx, c)
			switch fromState(q.pfx) {
			case fromMatch:
				if _, err := q.w.Write([]byte{'>'}); err != nil {
					return 0, err
				}
				fallthrough
			case fromNoMatch:
				if _, err := q.w.Write(q.pfx); err != nil {
					return 0, err
				}
				q.bol = c == '\n'
				q.pfx = nil
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			_, err := q.w.Write(p)
			return n, err
		}
		if _, err := q.w.Write(p[:i+1]); err != nil {
			return 0, err
		}
		p = p[i+1:]
		q.bol = true
	}
	return n, nil
}

// flush writes what is held back of the last line.
func (q *fromQuoter) flush() error {
	if len(q.pfx) > 0 {
		_, err := q.w.Write(q.pfx)
		q.pfx = nil
		return err
	}
	return nil
}

const (
	fromMaybe = iota
	fromMatch
	fromNoMatch
)

// fromState says whether the start of a line s is ">*From ", could still
// become it, or cannot.
func fromState(s []byte) int {
	i := 0
	for i < len(s) && s[i] == '>' {
		i++
	}
	rest := s[i:]
	const from = "From "
	if len(rest) > len(from) {
		rest = rest[:len(from)]
	}
	if !strings.HasPrefix(from, string(rest)) {
		return fromNoMatch
	}
	if len(rest) == len(from) {
		return fromMatch
	}
	return fromMaybe
}

// maxHeaderPeek bounds how much of a message is looked at for its header.
const maxHeaderPeek = 64 << 10

// peekHeader returns the message's header fields as far as they fit in
// maxHeaderPeek octets, without consuming anything of br.
func peekHeader(br *bufio.Reader) textproto.MIMEHeader {
	var buf []byte
	for n := 4 << 10; ; n *= 2 {
		n = min(n, br.Size())
		b, err := br.Peek(n)
		buf = b
		if bytes.Contains(b, []byte("\r\n\r\n")) || bytes.Contains(b, []byte("\n\n")) || err != nil || n == br.Size() {
			break
		}
	}
	if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
		buf = buf[:i+4]
	} else if i := bytes.Index(buf, []byte("\n\n")); i >= 0 {
		buf = buf[:i+2]
	} else {
		buf = append(buf[:len(buf):len(buf)], "\r\n\r\n"...)
	}
	h, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(buf))).ReadMIMEHeader()
	return h
}

// envelopeSender is the address of the Return-Path field, "" for the null
// sender or when there is none.
func envelopeSender(h textproto.MIMEHeader) string {
	rp := strings.TrimSpace(h.Get("Return-Path"))
	rp = strings.TrimSuffix(strings.TrimPrefix(rp, "<"), ">")
	if rp == "" || strings.ContainsAny(rp, " \t<>\r\n") {
		return ""
	}
	return rp
}

// fromLine is the mbox separator line for a message from sender delivered
// at t: "From sender Mon Jan  2 15:04:05 2006" (asctime, UTC).
func fromLine(sender string, t time.Time) string {
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	return "From " + sender + " " + t.UTC().Format("Mon Jan _2 15:04:05 2006") + "\n"
}
