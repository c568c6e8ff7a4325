package main

import (
	"crypto/tls"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/intake"
	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/internal/proxyproto"
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

// proxyStats are the PROXY protocol counts of each kind of listener
// ("pop3", "pop3s", "lmtp", "smtp") that has a TCP listener.
type proxyStats map[string]*proxyproto.Stats

// proxyProtocol puts the PROXY protocol policy of trusted_proxies in
// front of the POP3, POP3S, LMTP and SMTP TCP listeners of b (not admin's
// or web's; unix sockets have no address to trust): a trusted proxy's connections must start with a
// header and get the client's address from it; anyone else's must not
// send one. The header must come within the listener's pre-login
// timeout. For POP3S the header comes before the TLS handshake (the
// balancer passes TLS through), so these wrap the TCP listeners that
// pop3Listeners then wraps in TLS.
//
// With no trusted_proxies (the default) the listeners are left as they
// are: a client's connection stays a *net.TCPConn, so nothing sits
// between RETR and sendfile(2), and a stray PROXY header is only an
// unknown command to the protocol.
func (b *boundListeners) proxyProtocol(c *config.Config, log *slog.Logger) proxyStats {
	trusted := c.TrustedProxyPrefixes()
	stats := proxyStats{}
	if len(trusted) == 0 {
		return stats
	}
	wrap := func(proto string, lns []net.Listener, timeout time.Duration) {
		for i, ln := range lns {
			if ln.Addr().Network() != "tcp" {
				continue
			}
			if stats[proto] == nil {
				stats[proto] = &proxyproto.Stats{}
			}
			lns[i] = proxyproto.NewListener(ln, proxyproto.Options{
				Trusted: trusted,
				Timeout: timeout,
				Proto:   proto,
				Logger:  log,
				Stats:   stats[proto],
			})
		}
	}
	wrap("pop3", b.pop3, c.POP3.AuthTimeout.Std())
	wrap("pop3s", b.pop3s, c.POP3.AuthTimeout.Std())
	wrap("lmtp", b.lmtp, c.LMTP.IdleTimeout.Std())
	wrap("smtp", b.smtp, c.SMTP.IdleTimeout.Std())
	log.Info("PROXY protocol required from trusted proxies", "trusted_proxies", strings.Join(c.TrustedProxies, ","))
	return stats
}
