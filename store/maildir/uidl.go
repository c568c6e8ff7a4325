package maildir

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/postie-mail/postie/store"
)

// A message delivered with a UIDL of the caller's choosing (DeliverUIDL:
// postie migrate pop3 keeps the remote server's) carries it in its file
// name, as the field ",U=<uidl>" after the unique part, so that the
// message and its UIDL reach the disk in one rename. In the field, '/',
// ':', ',', '%' and '\' are written %XX (hexadecimal, upper case). A name
// whose U= field is not a valid UIDL so written is taken as having none.

var _ store.UIDLDeliverer = (*Store)(nil)

// DeliverUIDL is Deliver with uidl as the message's UIDL. It fails, having
// written nothing, when uidl is not a valid UIDL (RFC 1939 §7) or would
// make the file name too long.
func (s *Store) DeliverUIDL(ctx context.Context, user, uidl string, r io.Reader) (store.DeliveryInfo, error) {
	if !validUID(uidl) {
		return store.DeliveryInfo{}, fmt.Errorf("maildir: deliver: %q is not a valid UIDL", uidl)
	}
	// The name is <unique>,U=<uidl>,S=<n>,W=<n>: keep it within 255.
	if len(s.host)+64+len(uidlField(uidl)) > 255 {
		return store.DeliveryInfo{}, fmt.Errorf("maildir: deliver: UIDL %q too long for a file name", uidl)
	}
	return s.deliver(ctx, user, uidl, r)
}

// uidlField returns the name field recording uidl, "" for none.
func uidlField(uidl string) string {
	if uidl == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(",U=")
	for i := 0; i < len(uidl); i++ {
		switch c := uidl[i]; c {
		case '/', ':', ',', '%', '\\':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// parseUIDLField decodes the value of a U= field; "" when it is not one
// uidlField could have written.
func parseUIDLField(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch c {
		case '/', ':', ',', '\\':
			return ""
		case '%':
			if i+2 >= len(v) {
				return ""
			}
			x, err := hex.DecodeString(v[i+1 : i+3])
			if err != nil || strings.ToUpper(v[i+1:i+3]) != v[i+1:i+3] || !strings.ContainsRune("/:,%\\", rune(x[0])) {
				return ""
			}
			b.WriteByte(x[0])
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	if u := b.String(); validUID(u) {
		return u
	}
	return ""
}

// settleUIDLs gives the messages of a snapshot just read their final
// UIDLs: Dovecot's or Courier's where the maildrop was theirs
// (dovecot_uidls.go), and unique ones whatever names say. md holds the
// lock.
func (md *maildrop) settleUIDLs(snap *snapshot) {
	if md.takenOverUIDLs(snap) {
		return
	}
	named := false
	for _, k := range snap.pos {
		if snap.files[k].n.uidl != "" {
			named = true
			break
		}
	}
	if !named {
		// Every UIDL is its unique part's, and those are unique.
		return
	}
	used := make(map[string]bool, len(snap.infos))
	for i := range snap.infos {
		if used[snap.infos[i].UID] {
			m := &snap.files[snap.pos[i]]
			md.s.log.Warn("maildir: two messages with one UIDL; the later gets another", "user", md.user, "name", m.name, "uid", snap.infos[i].UID)
			snap.infos[i].UID = dupUIDL(m.n.unique)
		}
		used[snap.infos[i].UID] = true
	}
}

// dupUIDL is the UIDL of a message whose own is another's: one no name,
// Dovecot format or hashed UIDL (X...) can give.
func dupUIDL(unique string) string {
	sum := sha256.Sum256([]byte("postie-uidls\x00" + unique))
	return "Y" + hex.EncodeToString(sum[:20])
}
