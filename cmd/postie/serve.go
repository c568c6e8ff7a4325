package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/postie-mail/postie/auth"
	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store"
	"github.com/postie-mail/postie/store/pgstore"
)

func (a *app) serveCmd() *cobra.Command {
	var listen, listenTLS, listenLMTP []string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the POP3 server and the LMTP/SMTP mail intake",
		Long: `Run the POP3 server until SIGTERM or SIGINT.

SIGTERM/SIGINT stop accepting connections and give open sessions
pop3.shutdown_grace to finish; sessions still open then are closed without
deleting anything (a second signal closes them at once). SIGHUP reloads the
user database, the TLS certificates (also reloaded when their files
change), the OAuth JWK Set file and the protocol trace selection
([log] trace_users, trace_addresses).

The LMTP listeners ([lmtp] listen, default 127.0.0.1:24) take mail from an
MTA, the SMTP ones ([smtp] listen, none by default) mail for local domains;
on SIGTERM they finish the transactions under way within the same grace.

With --dev no config file is needed: state lives in --data-dir (default
./` + devDataDir + `), POP3 listens on ` + devListen + ` with STLS and POP3S on
` + devListenTLS + ` with a self-signed certificate made on the first start
(<data-dir>/` + devCertFile + `), LMTP on ` + devLMTP + ` (--listen-lmtp moves it), and a "demo"
account is created and its password printed.`,
		Example: `  postie serve --dev
  postie serve --dev --listen 127.0.0.1:0 --data-dir /tmp/postie
  postie serve --config /etc/postie/postie.toml`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return a.serve(listen, listenTLS, listenLMTP)
		},
	}
	cmd.Flags().StringSliceVar(&listen, "listen", nil, "POP3 address(es) to listen on, overriding pop3.listen (port 0 picks a free port)")
	cmd.Flags().StringSliceVar(&listenTLS, "listen-tls", nil, "implicit-TLS (POP3S) address(es), overriding pop3.listen_tls")
	cmd.Flags().StringSliceVar(&listenLMTP, "listen-lmtp", nil, "LMTP address(es) (host:port or unix:/path), overriding lmtp.listen")
	return cmd
}

func (a *app) serve(listen, listenTLS, listenLMTP []string) error {
	c, err := a.loadConfig()
	if err != nil {
		return err
	}
	if len(listen) > 0 {
		c.POP3.Listen = listen
		if err := c.Validate(); err != nil {
			return exitf(exitcode.Usage, "--listen: %v", err)
		}
	}
	if err := a.listenTLSFlag(c, listen, listenTLS); err != nil {
		return err
	}
	log := newLogger(c, a.stderr, slog.LevelDebug)

	// Signals are caught from here on, so that a SIGTERM arriving while
	// starting up still ends the process cleanly.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	// Bind every listener, then give up root before anything else.
	acct, err := a.serveAccount(c)
	if err != nil {
		return err
	}
	if err := a.lmtpListenFlag(c, listen, listenLMTP); err != nil {
		return err
	}
	svc, activated, err := newService(log)
	if err != nil {
		return err
	}
	defer svc.close()
	bound, err := bindListeners(c, activated)
	if err != nil {
		return err
	}
	defer bound.close()
	if err := dropPrivileges(c, acct, bound, log); err != nil {
		return err
	}

	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return withCode(exitcode.Failure, fmt.Errorf("data directory: %w", err))
	}
	firstDevRun := a.dev && c.Auth.Backend == config.AuthPasswdFile && !fileExists(c.Auth.PasswdFile)
	secret, err := a.prepareSecurity(c, log)
	if err != nil {
		return err
	}
	db, err := openAuthSecret(c, log, secret, true)
	if err != nil {
		code := exitcode.Config
		if c.Auth.Backend == config.AuthPostgres {
			code = exitcode.Failure // most often the database is unreachable
		}
		return withCode(code, fmt.Errorf("user database: %w", err))
	}
	defer db.Close()
	var demoPassword string
	if firstDevRun {
		if demoPassword, err = createDemo(c, db); err != nil {
			return withCode(exitcode.Failure, err)
		}
	}
	var (
		roundTrips prometheus.Histogram
		observe    func(time.Duration)
	)
	if c.Storage.Backend == config.BackendPostgres {
		roundTrips = newRoundTripHistogram()
		observe = func(d time.Duration) { roundTrips.Observe(d.Seconds()) }
	}
	st, closeStore, err := openStore(c, db, log, observe)
	if err != nil {
		code := exitcode.Config
		if c.Storage.Backend == config.BackendPostgres {
			code = exitcode.Failure // most often the database is unreachable
		}
		return withCode(code, fmt.Errorf("%s store: %w", c.Storage.Backend, err))
	}
	defer closeStore()
	opts := pop3Options(c, db, st, log)
	opts.Trace = &pop3server.Trace{}
	setTrace(opts.Trace, c.Log, log)
	sec, err := setupSecurity(c, db, secret, log, &opts)
	if err != nil {
		return withCode(exitcode.Config, err)
	}
	defer sec.close()
	srv, err := pop3server.New(opts)
	if err != nil {
		return withCode(exitcode.Config, err)
	}
	deliverer, err := newDeliverer(c, db, st, log)
	if err != nil {
		return withCode(exitcode.Config, err)
	}
	proxied := bound.proxyProtocol(c, log)
	in, err := startIntake(c, deliverer, opts.TLSConfig, log, bound.lmtp, bound.smtp)
	if err != nil {
		return err
	}
	defer in.close()
	a.intake = in

	lns, tlsLns, err := pop3Listeners(bound, opts.TLSConfig)
	if err != nil {
		return err
	}
	ao := adminOptions{pop: srv, in: deliverer, certs: sec.certs, proxied: proxied, node: nodeName(c), roundTrips: roundTrips}
	if pgs, ok := st.(*pgstore.Store); ok {
		ao.pg = pgs
		ao.checks = append(ao.checks, readyCheck{"database", pgs.Ping})
	}
	if c.Auth.Backend == config.AuthPostgres {
		ao.checks = append(ao.checks, readyCheck{"user database", db.Ping})
	}
	adm, err := startAdmin(bound.admin, ao, log)
	if err != nil {
		return exitf(exitcode.Failure, "admin: %v", err)
	}
	defer adm.close()
	webs, err := startWeb(c, bound.web, srv, db, st, deliverer, opts.TLSConfig, lns, bound.pop3s, log)
	if err != nil {
		return withCode(exitcode.Config, err)
	}
	defer webs.close()
	errc := make(chan error, len(lns)+len(tlsLns))
	for _, ln := range lns {
		log.Info("listening", "proto", "pop3", "addr", ln.Addr().String(), "stls", opts.TLSConfig != nil)
		go func() { errc <- srv.Serve(ln) }()
	}
	for _, ln := range tlsLns {
		log.Info("listening", "proto", "pop3s", "addr", ln.Addr().String())
		go func() { errc <- srv.Serve(ln) }()
	}
	usersKey := "passwd_file"
	if c.Auth.Backend == config.AuthPostgres {
		usersKey = "users_from"
	}
	log.Info("postie started", "version", postieVersion(), "data_dir", c.DataDir,
		"storage", storageDesc(c), usersKey, usersDesc(c), "users", len(db.Users()))
	if a.dev {
		a.devBanner(c, firstAddr(lns), firstAddr(tlsLns), demoPassword)
	}
	svc.ready(fmt.Sprintf("serving; %d users", len(db.Users())))

	running := len(lns) + len(tlsLns)
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				svc.reloading()
				if err := db.Reload(); err != nil {
					log.Error("reloading users failed; keeping the previous ones", "err", err)
				} else {
					log.Info("users reloaded", "users", len(db.Users()))
				}
				webs.reload(log)
				sec.reload(log)
				a.reloadTrace(opts.Trace, log)
				svc.ready(fmt.Sprintf("serving; %d users", len(db.Users())))
				continue
			}
			svc.stopping()
			adm.drain()
			waitIntake := in.shutdown(c.POP3.ShutdownGrace.Std())
			err := shutdown(srv, sig, sigs, errc, running, c.POP3.ShutdownGrace.Std(), log)
			waitIntake()
			return err
		case err := <-errc:
			running--
			log.Error("pop3 listener failed", "err", err)
			srv.Close()
			for ; running > 0; running-- {
				<-errc
			}
			return exitf(exitcode.Failure, "pop3: %v", err)
		}
	}
}

// shutdown drains the server after sig: open sessions get grace to end
// (another SIGTERM or SIGINT cuts it short), then the rest are closed
// without deleting anything.
func shutdown(srv *pop3server.Server, sig os.Signal, sigs <-chan os.Signal, errc <-chan error, running int, grace time.Duration, log *slog.Logger) error {
	log.Info("shutting down", "signal", sig.String(), "grace", grace.String(), "sessions", srv.Sessions())
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	go func() {
		for {
			select {
			case s := <-sigs:
				if s != syscall.SIGHUP {
					log.Warn("second signal: closing sessions now", "signal", s.String())
					cancel()
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("closed sessions that did not end in time; they deleted nothing", "err", err)
	}
	for ; running > 0; running-- {
		if err := <-errc; err != nil && !errors.Is(err, pop3server.ErrServerClosed) {
			log.Error("pop3 listener", "err", err)
		}
	}
	log.Info("stopped")
	return nil
}

// pop3Options turns the [pop3] section into pop3server.Options.
func pop3Options(c *config.Config, authn pop3server.Authenticator, st store.Store, log *slog.Logger) pop3server.Options {
	p := c.POP3
	lim := pop3server.Limits{
		MaxConns:       p.MaxConnections,
		MaxConnsPerIP:  p.MaxConnectionsPerIP,
		IdleTimeout:    p.IdleTimeout.Std(),
		AuthTimeout:    p.AuthTimeout.Std(),
		LoginTimeout:   p.LoginTimeout.Std(),
		WriteTimeout:   p.WriteTimeout.Std(),
		MaxBadCommands: p.MaxBadCommands,
		AuthFailDelay:  p.AuthFailDelay.Std(),
		LoginDelay:     p.LoginDelay.Std(),

		MaxAuthFailDelay: p.AuthFailMaxDelay.Std(),
		BanAfter:         p.BanAfter,
		BanDuration:      p.BanDuration.Std(),

		MaxAuthChecksPerIP: p.AuthChecksPerIP,
		MaxAuthQueuePerIP:  cmp.Or(p.AuthQueuePerIP, -1), // pop3server: 0 is the default, negative none
	}
	if lim.AuthFailDelay == 0 {
		lim.AuthFailDelay = -1 // pop3server: negative means none, zero the default
	}
	if days, ok := p.Expire.Days(); ok {
		lim.Expire = &days
	}
	host := p.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	impl := ""
	if p.Implementation {
		impl = "postie " + postieVersion()
	}
	// An empty list in the file means "trust no network"; only a nil
	// slice would make the engine fall back to loopback.
	trusted := make([]netip.Prefix, 0, len(p.TrustedNetworks))
	for _, n := range p.TrustedNetworks {
		trusted = append(trusted, netip.MustParsePrefix(n)) // validated by config
	}
	// With PostgreSQL, the failure counts, bans and LOGIN-DELAY clock are
	// the cluster's, in the database.
	var abuse pop3server.AbuseStore
	if pg, ok := st.(*pgstore.Store); ok {
		abuse = pg.Abuse()
	}
	return pop3server.Options{
		Logger:         log,
		Store:          st,
		Abuse:          abuse,
		Authenticator:  authn,
		TrustedNets:    trusted,
		AllowCleartext: p.AllowCleartext,
		Hostname:       host,
		Implementation: impl,
		UTF8:           p.UTF8,
		UTF8Strict:     p.UTF8Strict,
		Limits:         lim,
		ExpireFor:      expireFor(p.ExpireUsers),
	}
}

// expireFor gives pop3.expire_users to the server; nil when empty.
func expireFor(users map[string]config.Expire) func(string) (int, bool) {
	if len(users) == 0 {
		return nil
	}
	return func(user string) (int, bool) {
		e, ok := users[user]
		if !ok {
			return 0, false
		}
		return e.Days()
	}
}

var _ pop3server.Authenticator = (*auth.DB)(nil)
