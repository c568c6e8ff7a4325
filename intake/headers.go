package intake

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"time"
)

// Envelope is what a delivery knows of where a message comes from; it
// goes into the trace header fields.
type Envelope struct {
	// From is the reverse-path (MAIL FROM, deliver -f) without the angle
	// brackets; "" is the null sender of bounces.
	From string
	// Proto is the "with" of the Received field: "LMTP", "ESMTP",
	// "ESMTPS" (RFC 3848) or "local".
	Proto string
	// Helo is the name the client gave in LHLO/EHLO/HELO; "" for local
	// deliveries.
	Helo string
	// RemoteIP is the client's IP address; "" for unix sockets and local
	// deliveries.
	RemoteIP string
	// ID names the transaction in the Received field and in the log.
	ID string
}

// NewID returns a fresh transaction id: 16 upper-case hex digits.
func NewID() string {
	var b [8]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// TraceHeader returns the header fields a delivery to rcpt prepends, with
// eol line ends:
//
//	Return-Path: <from>                                   (RFC 5321 §4.4)
//	Delivered-To: address                                 (as Postfix and Dovecot write it)
//	Received: from helo ([ip])                            (RFC 5321 §4.4, RFC 5322 §3.6.7)
//		by hostname (postie) with proto id ID
//		for <address>; date
//
// A local delivery's Received field has no "from" clause. Delivered-To is
// left out when withDeliveredTo is false (the MTA already added one).
// Names and addresses from the client are sanitized: they cannot break
// the header.
func (d *Deliverer) TraceHeader(env Envelope, rcpt Recipient, eol string, withDeliveredTo bool, now time.Time) []byte {
	var b bytes.Buffer
	b.Grow(300)
	b.WriteString("Return-Path: <")
	b.WriteString(formatAddress(env.From))
	b.WriteString(">" + eol)
	if withDeliveredTo {
		b.WriteString("Delivered-To: ")
		b.WriteString(formatAddress(rcpt.Address))
		b.WriteString(eol)
	}
	b.WriteString("Received: ")
	if env.Proto != "local" {
		b.WriteString("from ")
		b.WriteString(sanitizeName(env.Helo))
		if env.RemoteIP != "" {
			b.WriteString(" ([")
			b.WriteString(sanitizeName(env.RemoteIP))
			b.WriteString("])")
		}
		b.WriteString(eol + "\t")
	}
	b.WriteString("by ")
	b.WriteString(d.hostname)
	b.WriteString(" (postie) with ")
	b.WriteString(sanitizeName(env.Proto))
	if env.ID != "" {
		b.WriteString(" id ")
		b.WriteString(sanitizeName(env.ID))
	}
	b.WriteString(eol + "\tfor <")
	b.WriteString(formatAddress(rcpt.Address))
	b.WriteString(">; ")
	b.WriteString(now.Format(time.RFC1123Z))
	b.WriteString(eol)
	return b.Bytes()
}

// sanitizeName keeps the characters a host name, an address literal or a
// protocol name may have and writes '?' for the others; "" becomes
// "unknown".
func sanitizeName(s string) string {
	if s == "" {
		return "unknown"
	}
	if len(s) > 255 {
		s = s[:255]
	}
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9',
			r == '.', r == '-', r == '_', r == ':', r == '[', r == ']':
			return r
		}
		return '?'
	}, s)
}

// formatAddress writes an address as it goes between angle brackets: a
// local part that is not a dot-atom is quoted (RFC 5321 §4.1.2), as the
// SMTP parser unquoted it. Control characters cannot occur (Resolve and
// Mail refuse them); '?' stands for any that do.
func formatAddress(addr string) string {
	if addr == "" {
		return ""
	}
	local, domain, hasAt := addr, "", false
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local, domain, hasAt = addr[:i], addr[i+1:], true
	}
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return '?'
			}
			return r
		}, s)
	}
	local, domain = clean(local), clean(domain)
	if !isDotAtom(local) {
		var q strings.Builder
		q.WriteByte('"')
		for i := 0; i < len(local); i++ {
			if c := local[i]; c == '"' || c == '\\' {
				q.WriteByte('\\')
			}
			q.WriteByte(local[i])
		}
		q.WriteByte('"')
		local = q.String()
	}
	domain = strings.Map(func(r rune) rune {
		if r == ' ' || r == '>' || r == '<' {
			return '?'
		}
		return r
	}, domain)
	if !hasAt {
		return local
	}
	return local + "@" + domain
}

// isDotAtom reports whether s is a dot-atom (RFC 5322 §3.2.3), 8-bit
// octets allowed (RFC 6531).
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80, 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// lineEnding returns the line end of the first line in p: "\r\n" or
// "\n", or def when p holds no complete line.
func lineEnding(p []byte, def string) string {
	i := bytes.IndexByte(p, '\n')
	switch {
	case i < 0:
		return def
	case i > 0 && p[i-1] == '\r':
		return "\r\n"
	}
	return "\n"
}

// LocalMessage is a message handed to the LDA (deliver) on stdin, with
// what an MTA put at its top taken into account: the mbox "From " line
// (Postfix's local(8) and pipe(8) flag F add one) is removed, and so are
// Return-Path fields at the very top (the delivery writes its own);
// Delivered-To fields there are remembered, so that no second, identical
// one is added.
type LocalMessage struct {
	// Sender is the envelope sender found in the "From " line or the
	// Return-Path field, when HasSender.
	Sender    string
	HasSender bool
	// EOL is the line end of the message's first line ("\n" when none).
	EOL string

	deliveredTo []string
	r           io.Reader
}

// maxLeadingFields bounds the trace fields ReadLocalMessage looks at.
const maxLeadingFields = 100

// ReadLocalMessage reads the top of a message given to the LDA; the rest
// is read when the message is delivered.
func ReadLocalMessage(r io.Reader) (*LocalMessage, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	m := &LocalMessage{EOL: "\n"}
	var kept []byte
	first := true
	dropping := false // inside a Return-Path field being removed
	inField := false  // a trace field was seen: continuation lines follow it
	inTrace := true
	for n := 0; inTrace && n < maxLeadingFields*4; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			kept = append(kept, line...)
			break
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if first {
			first = false
			m.EOL = lineEnding(line, "\n")
			if bytes.HasPrefix(line, []byte("From ")) && err == nil {
				// mbox "From sender date": the sender is its first word.
				if f := strings.Fields(string(line[5:])); len(f) > 0 {
					m.Sender, m.HasSender = f[0], true
					if f[0] == "MAILER-DAEMON" {
						m.Sender = ""
					}
				}
				continue
			}
		}
		switch {
		case inField && (line[0] == ' ' || line[0] == '\t'):
			// A continuation of the field before.
			if !dropping {
				kept = append(kept, line...)
			}
		case hasFieldName(line, "Return-Path"):
			dropping, inField = true, true
			if !m.HasSender {
				v := strings.TrimSpace(string(line[len("Return-Path:"):]))
				m.Sender, m.HasSender = strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">"), true
			}
		case hasFieldName(line, "Delivered-To"):
			dropping, inField = false, true
			m.deliveredTo = append(m.deliveredTo, strings.TrimSpace(string(line[len("Delivered-To:"):])))
			kept = append(kept, line...)
		case hasFieldName(line, "X-Original-To"):
			dropping, inField = false, true
			kept = append(kept, line...)
		default:
			kept = append(kept, line...)
			inTrace = false
		}
		if err == io.EOF {
			break
		}
	}
	m.r = io.MultiReader(bytes.NewReader(kept), br)
	return m, nil
}

// hasFieldName reports whether line starts with the header field name
// (ASCII case-insensitive) followed by a colon.
func hasFieldName(line []byte, name string) bool {
	return len(line) > len(name) && line[len(name)] == ':' && asciiEqualFold(string(line[:len(name)]), name)
}

// hasDeliveredTo reports whether the message already names addr in a
// Delivered-To field at its top.
func (m *LocalMessage) hasDeliveredTo(addr string) bool {
	for _, v := range m.deliveredTo {
		v = strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">")
		if asciiEqualFold(v, addr) {
			return true
		}
	}
	return false
}
