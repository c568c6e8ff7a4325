package main

import (
	"crypto/tls"
	"net"
	"slices"
	"sort"
	"strings"

	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/intake"
	"github.com/postie-mail/postie/internal/exitcode"
)

// Names of the sockets systemd passes in (FileDescriptorName= of the
// socket units), each replacing the addresses of its config key.
var activationNames = map[string]string{
	"pop3":  "pop3.listen",
	"pop3s": "pop3.listen_tls",
	"lmtp":  "lmtp.listen",
	"smtp":  "smtp.listen",
	"admin": "admin.listen",
	"web":   "web.listen",
}

// boundListeners are every listener of serve, bound before the process
// gives up root (see dropPrivileges): it never needs root again.
type boundListeners struct {
	pop3, pop3s, lmtp, smtp, web []net.Listener
	admin                        net.Listener // nil: none
	activated                    []string     // names of the sockets systemd passed in
	// sockets are the paths of the unix-domain sockets serve made
	// itself (their owner is set by dropPrivileges).
	sockets []string
}

// bindListeners binds the listeners of c, taking instead those passed in
// by socket activation (activated, by name) where there are some.
func bindListeners(c *config.Config, activated map[string][]net.Listener) (b *boundListeners, err error) {
	b = &boundListeners{}
	defer func() {
		if err != nil {
			b.close()
			for _, lns := range activated {
				for _, ln := range lns {
					ln.Close()
				}
			}
		}
	}()
	var unknown []string
	for name := range activated {
		if _, ok := activationNames[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, exitf(exitcode.Config, "socket activation: unknown socket name(s) %s (FileDescriptorName= must be pop3, pop3s, lmtp, smtp, admin or web)", strings.Join(unknown, ", "))
	}
	bind := func(name string, addrs []string, listen func(string) (net.Listener, error), dst *[]net.Listener) error {
		if lns, ok := activated[name]; ok {
			*dst = lns
			delete(activated, name)
			b.activated = append(b.activated, name)
			return nil
		}
		for _, addr := range addrs {
			ln, err := listen(addr)
			if err != nil {
				return exitf(exitcode.Failure, "%s: %v", name, err)
			}
			*dst = append(*dst, ln)
			if ln.Addr().Network() == "unix" {
				b.sockets = append(b.sockets, ln.Addr().String())
			}
		}
		return nil
	}
	if err := bind("pop3", c.POP3.Listen, listenTCP, &b.pop3); err != nil {
		return nil, err
	}
	if err := bind("pop3s", c.POP3.ListenTLS, listenTCP, &b.pop3s); err != nil {
		return nil, err
	}
	lmtpSocket := intake.SocketOptions{Mode: c.LMTP.Mode(), Group: c.LMTP.SocketGroup}
	listenLMTP := func(addr string) (net.Listener, error) { return intake.ListenSocket(addr, lmtpSocket) }
	if err := bind("lmtp", c.LMTP.Listen, listenLMTP, &b.lmtp); err != nil {
		return nil, err
	}
	if err := bind("smtp", c.SMTP.Listen, intake.Listen, &b.smtp); err != nil {
		return nil, err
	}
	if err := bind("web", c.Web.Listen, listenTCP, &b.web); err != nil {
		return nil, err
	}
	var admin []net.Listener
	var adminAddrs []string
	if c.Admin.Listen != "" {
		adminAddrs = []string{c.Admin.Listen}
	}
	if err := bind("admin", adminAddrs, listenTCP, &admin); err != nil {
		return nil, err
	}
	switch len(admin) {
	case 0:
	case 1:
		b.admin = admin[0]
	default:
		return nil, exitf(exitcode.Config, "socket activation: %d admin sockets; want at most one", len(admin))
	}
	if len(b.pop3)+len(b.pop3s) == 0 {
		return nil, exitf(exitcode.Config, "no POP3 listener: pop3.listen is empty and no pop3 or pop3s socket was passed in")
	}
	return b, nil
}

// close closes every listener (on the error paths of serve).
func (b *boundListeners) close() {
	if b == nil {
		return
	}
	for _, ln := range slices.Concat(b.pop3, b.pop3s, b.lmtp, b.smtp, b.web) {
		ln.Close()
	}
	if b.admin != nil {
		b.admin.Close()
	}
}

// pop3Listeners returns the plain POP3 listeners of b and its implicit-TLS
// ones (RFC 8314) wrapped in tlsConfig. The handshake runs in the
// session's goroutine (pop3server), bounded by the pre-login timeout.
func pop3Listeners(b *boundListeners, tlsConfig *tls.Config) (plain, implicit []net.Listener, err error) {
	if len(b.pop3s) > 0 && tlsConfig == nil {
		return nil, nil, exitf(exitcode.Config, "pop3s: implicit-TLS listeners need tls.cert_file")
	}
	for _, ln := range b.pop3s {
		implicit = append(implicit, tls.NewListener(ln, tlsConfig))
	}
	return b.pop3, implicit, nil
}
