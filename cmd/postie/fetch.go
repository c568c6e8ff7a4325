package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/postie-mail/postie/fetch"
	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/pop3client"
)

// fetchExit maps what went wrong with an account to an exit code, and
// ranks them: with several accounts the most severe wins.
func fetchExit(k fetch.Kind) (code, rank int) {
	switch k {
	case fetch.KindConfig:
		return exitcode.Config, 5
	case fetch.KindAuth:
		return exitcode.NoPerm, 4
	case fetch.KindTLS:
		return exitcode.Protocol, 3
	case fetch.KindFailed:
		return exitcode.Failure, 2
	case fetch.KindTemporary:
		return exitcode.TempFail, 1
	}
	return 0, 0
}

func (a *app) fetchCmd() *cobra.Command {
	var (
		once, dryRun, verbose, debug, noProgress bool
		accounts                                 []string
		interval                                 time.Duration
	)
	cmd := &cobra.Command{
		Use:   "fetch [--once] [--account NAME]... [--dry-run]",
		Short: "Retrieve mail from POP3 accounts into a Maildir, an mbox, a command or LMTP",
		Long: `Retrieve mail from the POP3 accounts of a fetch configuration file
(--config FILE, else $POSTIE_FETCH_CONFIG, else ~/.config/postie/fetch.toml;
examples/fetch.toml documents every key) and deliver it into a Maildir, an
mbox file, a command (MDA) or an LMTP server.

By default a message is deleted from the server once it is delivered (the
POP3 default); with keep = true it stays and only new mail is fetched (by
UIDL); delete_after_days deletes it N days after its download. A message
is deleted only after it is delivered and recorded on disk: postie fetch
can be killed at any moment and the next run delivers every message
exactly once (Maildir, mbox; at least once for an MDA or LMTP).

With --once every account is fetched once; without it postie fetch stays
running and polls each account every interval (the config's, or
--interval), retrying an unreachable server sooner with exponential
backoff. SIGINT or SIGTERM stops it; nothing undelivered is deleted.

One summary line per account goes to stdout (in daemon mode, for each poll
that did something or failed); warnings and errors go to stderr, with a
progress bar when stderr is a terminal.

Exit codes (the most severe of all accounts): 0 done; 1 a message could
not be delivered or another failure; 64 usage error; 75 temporary failure
(server unreachable or busy, connection lost, the MDA or LMTP server said
to retry, the account in use by another postie fetch); 76 TLS verification
or set-up failed; 77 authentication refused, or an OAuth sign-in missing,
revoked or expired (run postie fetch login ACCOUNT); 78 configuration
error.`,
		Example: `  postie fetch --once --config ~/.config/postie/fetch.toml
  postie fetch --once --dry-run --account work
  postie fetch --interval 5m          # daemon mode
  postie fetch probe pop.example.org:995
  postie fetch login gmail            # OAuth sign-in, once (oauth_client_id)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.dev || a.dataDir != "" {
				return exitf(exitcode.Usage, "fetch: --dev and --data-dir do not apply to fetch")
			}
			if dryRun && !once {
				once = true
			}
			level := slog.LevelWarn
			switch {
			case debug:
				level = pop3client.LevelTrace
			case verbose:
				level = slog.LevelInfo
			}
			log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: levelNames}))
			cfg, accts, err := a.loadFetchAccounts(accounts)
			if err != nil {
				return err
			}
			opts := fetch.Options{Logger: log, DryRun: dryRun, Plan: a.stdout}
			if !noProgress && !dryRun && isTerminal(a.stderr) {
				opts.Progress = func(name string) fetch.Progress { return &barProgress{w: a.stderr, name: name} }
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if once {
				return a.fetchOnce(ctx, cfg, accts, opts)
			}
			d := &fetch.Daemon{Config: cfg, Accounts: accts, Options: opts, Interval: interval,
				Report: func(r *fetch.Result) {
					// A poll that found nothing to do stays quiet.
					if r.Err != nil || r.Fetched+r.Deleted+r.Failed+r.Deferred > 0 {
						a.report(r)
					}
				}}
			every := interval
			if every <= 0 {
				every = cfg.Interval.Std()
			}
			fmt.Fprintf(a.stderr, "postie fetch: polling %d account(s) every %v (%s); SIGTERM or Ctrl-C stops\n", len(accts), every, cfg.Path())
			if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return withCode(exitcode.Failure, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&once, "once", false, "fetch every account once and exit (default: keep polling)")
	f.StringArrayVar(&accounts, "account", nil, "fetch only this account (repeatable)")
	f.BoolVar(&dryRun, "dry-run", false, "list what would be fetched and deleted; change nothing (implies --once)")
	f.DurationVar(&interval, "interval", 0, "time between polls in daemon mode (default: the config's interval)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log what happens (info level)")
	f.BoolVar(&debug, "debug", false, "log the POP3 conversation (passwords and tokens hidden)")
	f.BoolVar(&noProgress, "no-progress", false, "no progress bar, even on a terminal")
	cmd.AddCommand(a.fetchProbeCmd())
	cmd.AddCommand(a.fetchLoginCmd())
	cmd.AddCommand(a.fetchStatusCmd())
	cmd.AddCommand(a.fetchInstallServiceCmd())
	return cmd
}

// fetchOnce runs each account once and returns the most severe failure.
func (a *app) fetchOnce(ctx context.Context, cfg *fetch.Config, accts []*fetch.Account, opts fetch.Options) error {
	code, rank, failed := 0, 0, 0
	for _, acct := range accts {
		res := fetch.New(cfg, acct, opts).Run(ctx)
		a.report(res)
		k := fetch.Kind(0)
		switch {
		case res.Err != nil:
			k = res.Err.Kind
		case res.Failed > 0:
			k = fetch.KindFailed
		case res.Deferred > 0:
			k = fetch.KindTemporary
		}
		if k != 0 {
			failed++
		}
		if c, r := fetchExit(k); r > rank {
			code, rank = c, r
		}
		if ctx.Err() != nil {
			break
		}
	}
	if code == 0 {
		return nil
	}
	return exitf(code, "fetch: %d of %d accounts had problems (see above)", failed, len(accts))
}

// report prints the summary line of a run, and its error in full.
func (a *app) report(r *fetch.Result) {
	fmt.Fprintln(a.stdout, r.Summary())
	if r.Err != nil {
		fmt.Fprintf(a.stderr, "postie: fetch: %s: %v\n", r.Account, r.Err)
	}
}

// loadFetchConfig finds and loads the fetch configuration (exit 78 when
// it cannot).
func (a *app) loadFetchConfig() (*fetch.Config, error) {
	path, err := fetchConfigPath(a.configPath)
	if err != nil {
		return nil, withCode(exitcode.Config, err)
	}
	cfg, err := fetch.Load(path)
	if err != nil {
		return nil, withCode(exitcode.Config, err)
	}
	return cfg, nil
}

// loadFetchAccounts loads the fetch configuration and the accounts named
// (all of them when none is); an unknown name is a usage error (exit 64).
func (a *app) loadFetchAccounts(names []string) (*fetch.Config, []*fetch.Account, error) {
	cfg, err := a.loadFetchConfig()
	if err != nil {
		return nil, nil, err
	}
	accts, err := cfg.Select(names)
	if err != nil {
		return nil, nil, withCode(exitcode.Usage, err)
	}
	return cfg, accts, nil
}

// fetchConfigPath finds the fetch configuration file.
func fetchConfigPath(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if p := os.Getenv("POSTIE_FETCH_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", errors.New("fetch: no configuration: pass --config FILE (see examples/fetch.toml)")
	}
	p := filepath.Join(dir, "postie", "fetch.toml")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("fetch: no configuration: pass --config FILE or create %s (see examples/fetch.toml)", p)
	}
	return p, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// barProgress shows a run on a terminal: messages, octets, rate and ETA.
type barProgress struct {
	w           io.Writer
	name        string
	bar         *progressbar.ProgressBar
	done, total int
}

func (p *barProgress) Start(messages int, octets int64) {
	p.total = messages
	p.bar = progressbar.NewOptions64(octets,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(p.describe()),
		progressbar.OptionShowBytes(true),
		progressbar.OptionUseIECUnits(true), // MiB, as the run's summary says
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func (p *barProgress) describe() string {
	return fmt.Sprintf("%s %d/%d messages", p.name, p.done, p.total)
}

func (p *barProgress) Add(n int) { p.bar.Add(n) }

func (p *barProgress) Done() {
	p.done++
	p.bar.Describe(p.describe())
}

func (p *barProgress) Finish() { p.bar.Finish() }

func (a *app) fetchProbeCmd() *cobra.Command {
	var (
		mode     string
		caFile   string
		provider string
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "probe HOST[:PORT] | --provider NAME",
		Short: "Show what a POP3 server offers: TLS, certificate, capabilities, limits",
		Long: `Connect to a POP3 server without logging in and print its greeting, the TLS
version and cipher suite, its certificate (subject, issuer, names,
validity, SHA-256 fingerprint for pin_sha256, whether it verifies) and its
capabilities: SASL mechanisms, UIDL, TOP, PIPELINING, LOGIN-DELAY, EXPIRE.

The port defaults to 995 (implicit TLS); on another port STLS is used,
unless --tls says otherwise. --provider gmail (or another preset of the
provider key) probes that provider's POP3 server. The certificate is shown
even when it does not verify. Exit codes: 0 done; 75 server unreachable or
refusing; 76 TLS failed or the certificate does not verify (the report is
printed first); 78 bad --tls or --ca-file.`,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case provider != "" && len(args) != 0:
				return exitf(exitcode.Usage, "fetch probe: give HOST[:PORT] or --provider, not both")
			case provider == "" && len(args) != 1:
				return exitf(exitcode.Usage, "fetch probe: want one HOST[:PORT] argument, got %d", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if provider != "" {
				addr, tlsMode, err := fetch.ProviderServer(provider)
				if err != nil {
					return withCode(exitcode.Usage, fmt.Errorf("fetch probe: %w", err))
				}
				args = []string{addr}
				if mode == "" {
					mode = tlsMode
				}
			}
			po := fetch.ProbeOptions{TLS: mode, Timeout: timeout}
			if caFile != "" {
				pem, err := os.ReadFile(caFile)
				if err != nil {
					return withCode(exitcode.Config, err)
				}
				po.Roots = x509.NewCertPool()
				if !po.Roots.AppendCertsFromPEM(pem) {
					return exitf(exitcode.Config, "fetch probe: %s holds no PEM certificate", caFile)
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			err := fetch.Probe(ctx, args[0], a.stdout, po)
			var fe *fetch.Error
			if errors.As(err, &fe) {
				code, _ := fetchExit(fe.Kind)
				return &exitError{code: code, err: fmt.Errorf("fetch probe: %w", fe)}
			}
			return withCode(exitcode.Failure, err)
		},
	}
	cmd.Flags().StringVar(&mode, "tls", "", `"implicit", "starttls" or "none" (default: implicit on port 995, else starttls)`)
	cmd.Flags().StringVar(&provider, "provider", "", `probe this provider's POP3 server: "gmail", "outlook", "yahoo", "fastmail", "gmx"`)
	cmd.Flags().StringVar(&caFile, "ca-file", "", "verify the certificate against these CAs (PEM) instead of the system's")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "network timeout")
	return cmd
}
