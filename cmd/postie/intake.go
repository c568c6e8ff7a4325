package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/intake"
	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/store"
)

// devLMTP is the LMTP address of --dev (127.0.0.1:0 when every --listen
// address asks for port 0).
const devLMTP = "127.0.0.1:2424"

// newDeliverer turns [intake] into the delivery core LMTP, SMTP and
// deliver share.
func newDeliverer(c *config.Config, users intake.Users, st store.Store, log *slog.Logger) (*intake.Deliverer, error) {
	in := c.Intake
	overrides := make(map[string]intake.Quota, len(in.QuotaOverrides))
	for user, o := range in.QuotaOverrides {
		q := intake.Quota{Bytes: int64(in.QuotaBytes), Messages: in.QuotaMessages}
		if o.Bytes != nil {
			q.Bytes = int64(*o.Bytes)
		}
		if o.Messages != nil {
			q.Messages = *o.Messages
		}
		overrides[user] = q
	}
	return intake.New(intake.Options{
		Store:              st,
		Users:              users,
		LocalDomains:       in.LocalDomains,
		RecipientDelimiter: in.RecipientDelimiter,
		MaxMessageSize:     int64(in.MaxMessageSize),
		Quota:              intake.Quota{Bytes: int64(in.QuotaBytes), Messages: in.QuotaMessages},
		QuotaOverrides:     overrides,
		QuotaTempfail:      in.QuotaFullTempfail,
		Hostname:           in.Hostname,
		Logger:             log,
	})
}

// lmtpListenFlag applies --listen-lmtp. Without it, --dev puts LMTP on
// devLMTP, or on port 0 when every --listen address asks for port 0 (so
// that dev servers can run side by side, as the tests do).
func (a *app) lmtpListenFlag(c *config.Config, listen, listenLMTP []string) error {
	switch {
	case len(listenLMTP) > 0:
		c.LMTP.Listen = nil
		for _, addr := range listenLMTP {
			// A relative socket path is relative to the working directory.
			if p, ok := strings.CutPrefix(addr, "unix:"); ok && p != "" {
				abs, err := filepath.Abs(p)
				if err != nil {
					return exitf(exitcode.Usage, "--listen-lmtp: %v", err)
				}
				addr = "unix:" + abs
			}
			c.LMTP.Listen = append(c.LMTP.Listen, addr)
		}
		if err := c.Validate(); err != nil {
			return exitf(exitcode.Usage, "--listen-lmtp: %v", err)
		}
	case !a.dev:
	case len(listen) > 0 && !slices.ContainsFunc(listen, func(addr string) bool { return !strings.HasSuffix(addr, ":0") }):
		c.LMTP.Listen = []string{"127.0.0.1:0"}
	default:
		c.LMTP.Listen = []string{devLMTP}
	}
	return nil
}

// intakeServers are the running LMTP and SMTP servers of `postie serve`.
type intakeServers struct {
	servers []*intake.Server
	lmtp    []string // addresses bound, for the banner
	smtp    []string
	wg      sync.WaitGroup
	log     *slog.Logger
}

// startIntake serves the [lmtp] and [smtp] listeners bound by
// bindListeners (which it closes on error). The SMTP server offers
// STARTTLS with tlsConfig (the POP3 server's), if any.
func startIntake(c *config.Config, d *intake.Deliverer, tlsConfig *tls.Config, log *slog.Logger, lmtpLns, smtpLns []net.Listener) (*intakeServers, error) {
	in := &intakeServers{log: log}
	type listener struct {
		srv   *intake.Server
		ln    net.Listener
		proto string
	}
	var lns []listener
	fail := func(err error) (*intakeServers, error) {
		for _, l := range append(lmtpLns, smtpLns...) {
			l.Close()
		}
		return nil, err
	}
	if len(lmtpLns) > 0 {
		srv, err := intake.NewServer(intake.ServerOptions{Deliverer: d, LMTP: true, MaxConnections: c.LMTP.MaxConnections, IdleTimeout: time.Duration(c.LMTP.IdleTimeout), Logger: log})
		if err != nil {
			return fail(withCode(exitcode.Config, err))
		}
		in.servers = append(in.servers, srv)
		for _, ln := range lmtpLns {
			lns = append(lns, listener{srv, ln, "lmtp"})
		}
	}
	if len(smtpLns) > 0 {
		s := c.SMTP
		srv, err := intake.NewServer(intake.ServerOptions{
			Deliverer:           d,
			TLSConfig:           tlsConfig,
			MaxConnections:      s.MaxConnections,
			MaxConnectionsPerIP: s.MaxConnectionsPerIP,
			IdleTimeout:         time.Duration(s.IdleTimeout),
			MaxRecipients:       s.MaxRecipients,
			RatePerMinute:       s.RateLimit,
			RateBurst:           s.RateBurst,
			UnknownPerMinute:    cmp.Or(s.UnknownRecipientLimit, -1),
			Logger:              log,
		})
		if err != nil {
			return fail(withCode(exitcode.Config, err))
		}
		in.servers = append(in.servers, srv)
		for _, ln := range smtpLns {
			lns = append(lns, listener{srv, ln, "smtp"})
		}
	}
	for _, l := range lns {
		addr := l.ln.Addr().String()
		if l.ln.Addr().Network() == "unix" {
			addr = "unix:" + addr
		}
		args := []any{"proto", l.proto, "addr", addr}
		if l.proto == "smtp" {
			args = append(args, "starttls", tlsConfig != nil, "local_domains", strings.Join(c.Intake.LocalDomains, ","))
			in.smtp = append(in.smtp, addr)
		} else {
			in.lmtp = append(in.lmtp, addr)
		}
		log.Info("listening", args...)
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, intake.ErrServerClosed) {
				log.Error(l.proto+" listener failed", "addr", addr, "err", err)
			}
		}()
	}
	return in, nil
}

// shutdown drains the servers within grace (see intake.Server.Shutdown):
// it returns a function that waits for the end.
func (in *intakeServers) shutdown(grace time.Duration) (wait func()) {
	if in == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		var wg sync.WaitGroup
		for _, s := range in.servers {
			wg.Go(func() {
				if err := s.Shutdown(ctx); err != nil {
					in.log.Warn("closed intake connections that did not end in time; their mail was not acknowledged", "err", err)
				}
			})
		}
		wg.Wait()
		in.wg.Wait()
	}()
	return func() { <-done }
}

// close stops the servers at once (on the error paths of serve).
func (in *intakeServers) close() {
	if in == nil {
		return
	}
	for _, s := range in.servers {
		s.Close()
	}
	in.wg.Wait()
}

// devIntakeBanner tells a newcomer how to deliver over LMTP.
func (in *intakeServers) devIntakeBanner(w io.Writer) {
	if in == nil || len(in.lmtp) == 0 {
		return
	}
	addr := in.lmtp[0]
	fmt.Fprintf(w, "LMTP is listening on %s (what an MTA delivers into). Try:\n", addr)
	if host, port, err := net.SplitHostPort(addr); err == nil {
		fmt.Fprintf(w, "  swaks --protocol LMTP --server %s --port %s --to %s@localhost\n", host, port, demoUser)
	}
}
