package intake

import (
	"context"
	"errors"
	"strings"
)

// Users is the user database as intake needs it: *auth.DB implements it.
type Users interface {
	// LookupContext returns the maildrop name of a user name, matched as
	// the database matches logins (ASCII case-insensitively), and whether
	// there is such a user. err is a failure of the database to answer:
	// a temporary failure, never "no such user".
	LookupContext(ctx context.Context, name string) (canonical string, ok bool, err error)
}

// Recipient is an address resolved to the user whose maildrop receives it.
type Recipient struct {
	// Address is the address as given (RCPT TO, or deliver's argument):
	// it goes into Delivered-To and Received.
	Address string
	// User is the maildrop: the user name as the user database spells it.
	User string
	// also are the other addresses of one transaction that name the
	// same user: its one copy is for them too (logged, not in headers).
	also []string
}

// Resolve maps an address to its user:
//
//   - a bare user name (no '@', deliver only) names the user;
//   - local@domain needs domain (ASCII case-insensitive, a final '.'
//     ignored) to be one of Options.LocalDomains, when there are any;
//   - the local part names the user, matched by Users (case-insensitive);
//     failing that, with a RecipientDelimiter, the part before the first
//     delimiter does (alice+lists → alice), so a user whose name contains
//     the delimiter still gets mail.
//
// Errors are *Error of KindBadAddress, KindNotLocal or KindNoUser, or
// KindTemporary when the user database does not answer.
func (d *Deliverer) Resolve(addr string) (Recipient, error) {
	return d.ResolveContext(context.Background(), addr)
}

// ResolveContext is Resolve with a context for the user database.
func (d *Deliverer) ResolveContext(ctx context.Context, addr string) (Recipient, error) {
	if addr == "" || len(addr) > 512 || strings.ContainsFunc(addr, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Recipient{}, newError(KindBadAddress, errors.New("empty, overlong or control characters"))
	}
	local := addr
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local = addr[:i]
		if !d.isLocalDomain(addr[i+1:]) {
			return Recipient{}, newError(KindNotLocal, errors.New("domain "+addr[i+1:]))
		}
	}
	if local == "" {
		return Recipient{}, newError(KindBadAddress, errors.New("empty local part"))
	}
	user, ok, err := d.users.LookupContext(ctx, local)
	if err != nil {
		return Recipient{}, newError(KindTemporary, err)
	}
	if ok {
		if local == addr {
			addr = user // a bare user name: Delivered-To names the maildrop
		}
		return Recipient{Address: addr, User: user}, nil
	}
	if sep := d.opts.RecipientDelimiter; sep != "" {
		if i := strings.Index(local, sep); i > 0 {
			user, ok, err := d.users.LookupContext(ctx, local[:i])
			if err != nil {
				return Recipient{}, newError(KindTemporary, err)
			}
			if ok {
				return Recipient{Address: addr, User: user}, nil
			}
		}
	}
	return Recipient{}, newError(KindNoUser, errors.New("no user for "+local))
}

// isLocalDomain reports whether mail for domain is delivered here: any
// domain when no local domains are configured.
func (d *Deliverer) isLocalDomain(domain string) bool {
	if len(d.domains) == 0 {
		return true
	}
	domain = strings.TrimSuffix(domain, ".")
	for _, l := range d.domains {
		if asciiEqualFold(domain, l) {
			return true
		}
	}
	return false
}

// IsLocalDomain reports whether domain is one of Options.LocalDomains (any
// domain is, when none are configured).
func (d *Deliverer) IsLocalDomain(domain string) bool { return d.isLocalDomain(domain) }

// asciiEqualFold is strings.EqualFold for ASCII letters only, as DNS
// compares names (RFC 4343): no Unicode folding (K is not the Kelvin sign).
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
