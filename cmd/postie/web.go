package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/postie-mail/postie/auth"
	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/intake"
	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store"
	"github.com/postie-mail/postie/web"
)

// webServers are the running [web] listeners.
type webServers struct {
	srvs []*http.Server
	// admins are the web admins (web.admin_passwd_file), reloaded on
	// SIGHUP as the users are; nil without /admin.
	admins *auth.DB
}

// reload re-reads the web admins' file (on SIGHUP): a deleted admin can
// no longer log in, a new one can.
func (ws *webServers) reload(log *slog.Logger) {
	if ws == nil || ws.admins == nil {
		return
	}
	if err := ws.admins.Reload(); err != nil {
		log.Error("reloading the web admins failed; keeping the previous ones", "err", err)
		return
	}
	log.Info("web admins reloaded", "admins", len(ws.admins.Users()))
}

// startWeb serves the web pages on lns (see bindListeners): HTTPS with
// the [tls] certificates, or plain HTTP behind a TLS proxy or on
// loopback only (a socket passed in by systemd is checked here, as the
// config's addresses are by config.Validate).
func startWeb(c *config.Config, lns []net.Listener, pop *pop3server.Server, db *auth.DB, st store.Store,
	deliverer *intake.Deliverer, tlsConfig *tls.Config, pop3, pop3s []net.Listener, log *slog.Logger) (*webServers, error) {
	if len(lns) == 0 {
		return nil, nil
	}
	mail, err := mailServer(c, listenerAddrs(pop3), listenerAddrs(pop3s), tlsConfig != nil)
	if err != nil {
		return nil, err
	}
	opts := web.Options{
		Logger:         log,
		Mail:           mail,
		Logins:         pop,
		Passwords:      db,
		Scheme:         c.Auth.DefaultScheme,
		BehindTLSProxy: c.Web.BehindTLSProxy,
		TrustedProxies: c.Web.TrustedProxyPrefixes(),
	}
	if u, ok := st.(store.Usager); ok {
		opts.Mailbox = func(ctx context.Context, user string) (web.Mailbox, error) {
			n, size, err := u.Usage(ctx, user)
			if err != nil {
				return web.Mailbox{}, err
			}
			mb := web.Mailbox{Messages: n, Bytes: size}
			if deliverer != nil {
				q := deliverer.QuotaFor(user)
				mb.QuotaBytes, mb.QuotaMessages = q.Bytes, q.Messages
			}
			return mb, nil
		}
	}
	var admins *auth.DB
	if c.Web.AdminPasswdFile != "" {
		if opts.Admin, admins, err = webAdmin(c, pop, db, st, deliverer, log); err != nil {
			return nil, err
		}
	}
	h, err := web.New(opts)
	if err != nil {
		return nil, err
	}
	https := tlsConfig != nil && !c.Web.BehindTLSProxy
	var webTLS *tls.Config
	if https {
		webTLS = tlsConfig.Clone()
		webTLS.ClientAuth = tls.NoClientCert
		webTLS.ClientCAs = nil
		webTLS.NextProtos = []string{"http/1.1"}
	}
	ws := &webServers{admins: admins}
	for _, ln := range lns {
		addr := ln.Addr().String()
		if !https && !c.Web.BehindTLSProxy {
			host, _, _ := net.SplitHostPort(addr)
			if !config.IsLoopbackHost(host) {
				ws.close()
				return nil, fmt.Errorf("web: %s: plain HTTP is served on loopback only: set tls.cert_file, or web.behind_tls_proxy", addr)
			}
		}
		if https {
			ln = tls.NewListener(ln, webTLS)
		}
		ws.srvs = append(ws.srvs, web.Serve(ln, h, c.POP3.AuthFailMaxDelay.Std(), log))
		log.Info("listening", "proto", "web", "addr", addr, "https", https)
	}
	return ws, nil
}

func (ws *webServers) close() {
	if ws == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range ws.srvs {
		s.Shutdown(ctx)
	}
}

func listenerAddrs(lns []net.Listener) []string {
	var out []string
	for _, ln := range lns {
		out = append(out, ln.Addr().String())
	}
	return out
}

// mailServer derives what clients are told from the config: the host
// (web.mail_host, else the certificate's name) and the POP3 ports of the
// addresses given (the bound listeners when serving, the config's for
// postie dns). STLS ports are offered only with TLS. Listeners on
// loopback are left out when there are others: clients cannot reach them.
func mailServer(c *config.Config, pop3, pop3s []string, tlsOn bool) (web.MailServer, error) {
	host, err := mailHost(c)
	if err != nil {
		return web.MailServer{}, err
	}
	m := web.MailServer{Host: host, Domains: slices.Clone(c.Intake.LocalDomains), LoginDelay: c.POP3.LoginDelay.Std()}
	if days, ok := c.POP3.Expire.Days(); ok {
		m.ExpireSet, m.ExpireDays = true, days
	}
	all := slices.Concat(pop3s, pop3)
	if !tlsOn {
		all = pop3s
	}
	remote := slices.ContainsFunc(all, func(a string) bool {
		h, _, _ := net.SplitHostPort(a)
		return !config.IsLoopbackHost(h)
	})
	ports := func(addrs []string, key string) ([]int, error) {
		var out []int
		for _, a := range addrs {
			h, p, err := net.SplitHostPort(a)
			if err != nil {
				continue // a unix socket: not for clients
			}
			n, _ := strconv.Atoi(p)
			if n == 0 {
				return nil, fmt.Errorf("%s: %q: port 0 is chosen at start; name the port clients use", key, a)
			}
			if (remote && config.IsLoopbackHost(h)) || slices.Contains(out, n) {
				continue
			}
			out = append(out, n)
		}
		return out, nil
	}
	if m.POP3S, err = ports(pop3s, "pop3.listen_tls"); err != nil {
		return m, err
	}
	if tlsOn {
		if m.STLS, err = ports(pop3, "pop3.listen"); err != nil {
			return m, err
		}
	}
	if len(m.POP3S)+len(m.STLS) == 0 {
		return m, errors.New("no POP3 listener with TLS to tell clients of: set pop3.listen_tls, or tls.cert_file for STLS on pop3.listen")
	}
	return m, nil
}

// mailHost is web.mail_host, else the first DNS name of tls.cert_file
// other than localhost and wildcards (its subject's common name when it
// has none).
func mailHost(c *config.Config) (string, error) {
	if c.Web.MailHost != "" {
		return c.Web.MailHost, nil
	}
	if c.TLS.CertFile == "" {
		return "", errors.New("web.mail_host: not set, and no tls.cert_file to take the name from")
	}
	cert, err := leafCert(c.TLS.CertFile)
	if err != nil {
		return "", fmt.Errorf("tls.cert_file: %w", err)
	}
	// The first name clients elsewhere can use: not a wildcard,
	// not localhost (unless it is the only one).
	for _, n := range cert.DNSNames {
		if !strings.HasPrefix(n, "*.") && !strings.EqualFold(n, "localhost") {
			return n, nil
		}
	}
	if slices.ContainsFunc(cert.DNSNames, func(n string) bool { return strings.EqualFold(n, "localhost") }) {
		return "localhost", nil
	}
	if cn := cert.Subject.CommonName; cn != "" && !strings.Contains(cn, " ") {
		return cn, nil
	}
	return "", fmt.Errorf("web.mail_host: not set, and the certificate of tls.cert_file names no host (only wildcards)")
}

// webAdmin builds /admin: the admins' passwd-file (which must exist:
// an empty one would be a page nobody can log in to) and the overview;
// it returns the admins' database too, for SIGHUP.
func webAdmin(c *config.Config, pop *pop3server.Server, db *auth.DB, st store.Store, deliverer *intake.Deliverer, log *slog.Logger) (*web.Admin, *auth.DB, error) {
	if _, err := os.Stat(c.Web.AdminPasswdFile); err != nil {
		return nil, nil, fmt.Errorf("web.admin_passwd_file: %w", err)
	}
	admins, err := auth.Open(c.Web.AdminPasswdFile, auth.Options{Logger: log, CacheTTL: -1})
	if err != nil {
		return nil, nil, fmt.Errorf("web.admin_passwd_file: %w", err)
	}
	if len(admins.Users()) == 0 {
		return nil, nil, fmt.Errorf("web.admin_passwd_file: %s holds no account (postie user add --admin NAME adds one)", c.Web.AdminPasswdFile)
	}
	usager, _ := st.(store.Usager)
	overview := func(ctx context.Context) (web.Overview, error) {
		var ov web.Overview
		var errs []error
		users := slices.Sorted(slices.Values(db.Users()))
		if len(users) > maxAdminUsers {
			users = users[:maxAdminUsers]
		}
		for _, u := range users {
			use := web.UserUse{Name: u}
			if usager != nil {
				n, size, err := usager.Usage(ctx, u)
				if err != nil {
					errs = append(errs, err)
				}
				use.Messages, use.Bytes = n, size
			}
			if deliverer != nil {
				q := deliverer.QuotaFor(u)
				use.QuotaBytes, use.QuotaMessages = q.Bytes, q.Messages
			}
			ov.Users = append(ov.Users, use)
		}
		ov.Sessions = pop.SessionList()
		if deliverer != nil {
			for _, d := range deliverer.Recent() {
				ov.Deliveries = append(ov.Deliveries, web.Delivery{Time: d.Time, Proto: d.Proto, User: d.User, Size: d.Size, Result: d.Result})
			}
		}
		files := []string{}
		if c.TLS.CertFile != "" {
			files = append(files, c.TLS.CertFile)
		}
		for _, p := range c.TLS.Certificates {
			files = append(files, p.CertFile)
		}
		for _, f := range files {
			cert, err := leafCert(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			names := strings.Join(cert.DNSNames, ", ")
			if names == "" {
				names = cert.Subject.CommonName
			}
			ov.Certificates = append(ov.Certificates, web.Certificate{File: f, Names: names, NotAfter: cert.NotAfter})
		}
		return ov, errors.Join(errs...)
	}
	return &web.Admin{Accounts: admins, Overview: overview, Disconnect: pop.Disconnect}, admins, nil
}

// maxAdminUsers bounds the users /admin lists (and the Usage calls of
// one page).
const maxAdminUsers = 500

// leafCert reads the first certificate of a PEM file.
func leafCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("%s holds no certificate", path)
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

var _ web.LoginChecker = (*pop3server.Server)(nil)
var _ web.PasswordSetter = (*auth.DB)(nil)

// dnsCmd is `postie dns DOMAIN`.
func (a *app) dnsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dns DOMAIN",
		Short: "Print the DNS records that let mail clients find this server",
		Long: `Print, in zone-file form, the DNS records to publish for DOMAIN so that
mail clients set themselves up: the RFC 6186 SRV records of POP3 (_pop3s
for implicit TLS first, then _pop3 with STLS), and the autoconfig and
autodiscover names of the [web] pages (Thunderbird, Outlook). Everything is
derived from the config: the host is web.mail_host or the certificate's
name, the ports those of pop3.listen_tls and pop3.listen.`,
		Example: `  postie dns example.org`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return exitf(exitcode.Usage, "dns: want exactly one DOMAIN argument, got %d", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := a.loadConfig()
			if err != nil {
				return err
			}
			out, err := dnsRecords(c, args[0])
			if err != nil {
				return err
			}
			fmt.Fprint(a.stdout, out)
			return nil
		},
	}
}

// dnsRecords is the output of postie dns.
func dnsRecords(c *config.Config, domain string) (string, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if !validDNSName(domain) {
		return "", exitf(exitcode.Usage, "dns: %q is not a domain name", domain)
	}
	if d := c.Intake.LocalDomains; len(d) > 0 && !slices.ContainsFunc(d, func(s string) bool { return strings.EqualFold(strings.TrimSuffix(s, "."), domain) }) {
		return "", exitf(exitcode.DataErr, "dns: %s is not one of intake.local_domains (%s)", domain, strings.Join(d, ", "))
	}
	m, err := mailServer(c, c.POP3.Listen, c.POP3.ListenTLS, c.TLS.CertFile != "")
	if err != nil {
		return "", exitf(exitcode.Config, "dns: %v", err)
	}
	host := strings.TrimSuffix(m.Host, ".") + "."
	var b strings.Builder
	fmt.Fprintf(&b, "; DNS records for %s: mail clients find the POP3 server %s by them.\n", domain, m.Host)
	b.WriteString("; RFC 6186 service records (priority weight port target); implicit TLS first (RFC 8314).\n")
	for i, p := range m.POP3S {
		fmt.Fprintf(&b, "_pop3s._tcp.%s.\tIN\tSRV\t%d 1 %d %s\n", domain, i, p, host)
	}
	for i, p := range m.STLS {
		fmt.Fprintf(&b, "_pop3._tcp.%s.\tIN\tSRV\t%d 1 %d %s\n", domain, 10+i, p, host)
	}
	b.WriteString("; _submission._tcp: not offered: postie has no mail submission; publish your MTA's.\n")
	if len(c.Web.Listen) > 0 {
		b.WriteString("; Autoconfiguration ([web]): Thunderbird asks https://autoconfig.DOMAIN/, Outlook\n")
		b.WriteString("; https://autodiscover.DOMAIN/, both on port 443; the certificate must name them.\n")
		fmt.Fprintf(&b, "autoconfig.%s.\tIN\tCNAME\t%s\n", domain, host)
		fmt.Fprintf(&b, "autodiscover.%s.\tIN\tCNAME\t%s\n", domain, host)
	} else {
		b.WriteString("; autoconfig and autodiscover: not offered: web.listen is empty.\n")
	}
	return b.String(), nil
}

func validDNSName(d string) bool {
	if d == "" || len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
