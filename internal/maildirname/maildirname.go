// Package maildirname owns the parts of Maildir file names that postie's
// Maildir writers share (the Maildir store and fetch's Maildir
// destination). It imports only the standard library.
package maildirname

import (
	"fmt"
	"strings"
)

// EscapeHost makes a host name safe inside a unique name
// (<time>.<unique>.<host>,<fields>): '/' and ':' are written \057 and \072
// (the Maildir convention, as Dovecot does), ',' \054 (it would start a
// field), and '\' and every byte outside 0x21–0x7E likewise in octal.
// Every other byte is kept.
func EscapeHost(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c < 0x21 || c > 0x7e || c == '/' || c == ':' || c == ',' || c == '\\' {
			fmt.Fprintf(&b, `\%03o`, c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
