package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/postie-mail/postie/auth"
	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/internal/tlsconf"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/sasl"
	"github.com/postie-mail/postie/sasl/oauth"
)

// scramSecretFile, in the data directory, keys the fake SCRAM salts shown
// for unknown users and the salts of the SCRAM credentials derived from
// PLAIN entries, so that both stay the same across restarts (a salt that
// changes only for unknown users would tell them apart). Made on the first
// start of the server.
const scramSecretFile = "scram-secret"

// loadSCRAMSecret reads the secret, making it first if needed.
func loadSCRAMSecret(c *config.Config) ([]byte, error) {
	path := filepath.Join(c.DataDir, scramSecretFile)
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("SCRAM secret: %w", err)
	}
	b = make([]byte, 32)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("SCRAM secret: %w", err)
	}
	return b, nil
}

// security is what serve builds from [tls] and the login settings of
// [auth]: the TLS configuration with its certificates, and the SASL
// backends.
type security struct {
	tls    *tls.Config      // nil without [tls]
	certs  *tlsconf.Certs   // nil without [tls]
	tokens *auth.TokenUsers // nil without [auth.oauth]
	expiry *certMonitor     // nil without [tls]
	// ticketKeys is tls.session_ticket_key_file, "" without.
	ticketKeys string
	cancel     context.CancelFunc
}

// setupSecurity fills the TLS, SASL and APOP options of opts. It starts
// the certificate watcher (and a JWK Set refresher with jwks_url); close
// stops them.
func setupSecurity(c *config.Config, db *auth.DB, secret []byte, log *slog.Logger, opts *pop3server.Options) (*security, error) {
	ctx, cancel := context.WithCancel(context.Background())
	sec := &security{cancel: cancel}
	ok := false
	defer func() {
		if !ok {
			cancel()
		}
	}()

	if c.TLS.CertFile != "" {
		pairs := []tlsconf.Pair{{CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile}}
		for _, p := range c.TLS.Certificates {
			pairs = append(pairs, tlsconf.Pair{CertFile: p.CertFile, KeyFile: p.KeyFile})
		}
		if err := checkTLSFiles(c); err != nil {
			return nil, err
		}
		certs, err := tlsconf.LoadCerts(pairs, log)
		if err != nil {
			return nil, err
		}
		sec.certs = certs
		var clientCAs *x509.CertPool
		if c.Auth.ClientCAFile != "" {
			pem, err := os.ReadFile(c.Auth.ClientCAFile)
			if err != nil {
				return nil, fmt.Errorf("auth.client_ca_file: %w", err)
			}
			clientCAs = x509.NewCertPool()
			if !clientCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("auth.client_ca_file: %s holds no PEM certificate", c.Auth.ClientCAFile)
			}
			opts.ClientCertUser = db.ClientCertUser
		}
		sec.tls = tlsconf.ServerConfig(certs, clientCAs)
		if sec.ticketKeys = c.TLS.SessionTicketKeyFile; sec.ticketKeys != "" {
			if err := setTicketKeys(sec.tls, sec.ticketKeys, log); err != nil {
				return nil, err
			}
		}
		opts.TLSConfig = sec.tls
		go certs.Watch(ctx, tlsconf.CheckInterval)
		sec.expiry = &certMonitor{certs: certs, log: log, now: time.Now}
		sec.expiry.check()
		daily := time.NewTicker(certCheckInterval)
		go func() {
			defer daily.Stop()
			sec.expiry.run(ctx, daily.C)
		}()
	}

	if len(c.Auth.Mechanisms) > 0 {
		sc := &sasl.Config{
			Passwords:   db,
			SCRAM:       db,
			SCRAMSecret: secret,
			External:    c.Auth.ClientCAFile != "",
			Enabled:     c.Auth.Mechanisms,
		}
		if c.Auth.OAuth.Enabled() {
			tu, err := db.TokenUsers(func() (sasl.TokenValidator, error) { return newTokenValidator(ctx, c.Auth.OAuth, log) })
			if err != nil {
				return nil, err
			}
			sec.tokens = tu
			sc.Tokens = tu
		}
		opts.SASL = sc
	}
	opts.APOP = c.Auth.APOP
	ok = true
	return sec, nil
}

// reload re-reads the certificates and the JWK Set file (SIGHUP), and
// warns about certificates that expire soon.
func (sec *security) reload(log *slog.Logger) {
	if sec.certs != nil {
		sec.certs.Reload(true)
		sec.expiry.check()
	}
	if sec.ticketKeys != "" {
		if err := setTicketKeys(sec.tls, sec.ticketKeys, log); err != nil {
			log.Error("reloading the TLS session ticket keys failed; keeping the previous ones", "err", err)
		} else {
			log.Info("TLS session ticket keys reloaded")
		}
	}
	if sec.tokens != nil {
		if err := sec.tokens.Reload(); err != nil {
			log.Error("reloading the OAuth settings failed; keeping the previous ones", "err", err)
		}
	}
}

func (sec *security) close() { sec.cancel() }

// newTokenValidator builds the validator [auth.oauth] describes.
func newTokenValidator(ctx context.Context, o config.OAuth, log *slog.Logger) (sasl.TokenValidator, error) {
	if o.IntrospectionURL != "" {
		secret, err := readSecretFile("auth.oauth.client_secret_file", o.ClientSecretFile, log)
		if err != nil {
			return nil, err
		}
		v, err := oauth.NewIntrospectionValidator(oauth.IntrospectionOptions{
			Endpoint:     o.IntrospectionURL,
			ClientID:     o.ClientID,
			ClientSecret: strings.TrimRight(string(secret), "\r\n"),
			UserClaim:    o.UserClaim,
		})
		if err != nil {
			return nil, fmt.Errorf("auth.oauth: %w", err)
		}
		return v, nil
	}
	v, err := oauth.NewJWTValidator(ctx, oauth.JWTOptions{
		JWKSFile:  o.JWKSFile,
		JWKSURL:   o.JWKSURL,
		Issuer:    o.Issuer,
		Audience:  o.Audience,
		UserClaim: o.UserClaim,
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("auth.oauth: %w", err)
	}
	return v, nil
}

// listenTLSFlag applies --listen-tls. In --dev without it, the
// implicit-TLS listener moves to port 0 too when every --listen address
// asks for port 0, so that several dev servers can run side by side.
func (a *app) listenTLSFlag(c *config.Config, listen, listenTLS []string) error {
	switch {
	case len(listenTLS) > 0:
		c.POP3.ListenTLS = listenTLS
	case a.dev && len(listen) > 0 && !slices.ContainsFunc(listen, func(addr string) bool { return !strings.HasSuffix(addr, ":0") }):
		c.POP3.ListenTLS = []string{"127.0.0.1:0"}
	default:
		return nil
	}
	if err := c.Validate(); err != nil {
		return exitf(exitcode.Usage, "--listen-tls: %v", err)
	}
	return nil
}

// prepareSecurity makes what the server's security needs in the data
// directory: the --dev certificate on the first start, and the SCRAM
// secret.
func (a *app) prepareSecurity(c *config.Config, log *slog.Logger) ([]byte, error) {
	if a.dev {
		created, err := tlsconf.EnsureSelfSigned(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, withCode(exitcode.Failure, err)
		}
		if created {
			log.Info("created a self-signed certificate for --dev", "cert_file", c.TLS.CertFile)
		}
	}
	secret, err := loadSCRAMSecret(c)
	if err != nil {
		return nil, withCode(exitcode.Failure, err)
	}
	return secret, nil
}

// firstAddr is the address of the first listener, "" when there is none.
func firstAddr(lns []net.Listener) string {
	if len(lns) == 0 {
		return ""
	}
	return lns[0].Addr().String()
}
