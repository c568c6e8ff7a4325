package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/postie-mail/postie/bench"
	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/internal/exitcode"
)

func (a *app) benchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load generator and benchmark corpus for any POP3 server",
		Long: `Measure a POP3 server — postie, Dovecot, any other — through postie's POP3
client library. Each scenario prints a summary on stderr and one JSON line
on stdout; bench/compare.sh runs them side by side against Dovecot.
The TLS scenarios (--tls starttls or implicit) measure postie serve as it
runs for users: STLS is offered on pop3.listen when a certificate is set,
and pop3.listen_tls (or serve --listen-tls) is POP3S.

Scenarios:
  sessions   connect, USER/PASS, STAT, QUIT over and over (plain, STLS or
             implicit TLS; --resume for resumed TLS handshakes)
  retr       RETR every message of each worker's maildrop in turn
  bigretr    RETR one message (the largest) over and over
  idle       hold --sessions authenticated sessions open; the server's
             memory is read from /proc when it runs on this machine
  bigbox     login, STAT, UIDL and LIST on a huge maildrop, --rounds times
  lmtp       LMTP deliveries of a 4 KiB message, one connection per worker,
             to the accounts of --users (user%d@domain:, no password)

Helpers:
  corpus     write a reproducible corpus into Maildirs
  raw-sender a trivial POP3 responder sending prepared octets: the RETR ceiling
  report     a table of medians and ratios from JSON result lines`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exitf(exitcode.Usage, "name a scenario or helper (see postie bench --help)")
		},
	}
	for _, s := range bench.Scenarios {
		cmd.AddCommand(a.benchScenarioCmd(s))
	}
	cmd.AddCommand(a.benchCorpusCmd(), a.benchRawSenderCmd(), a.benchReportCmd())
	return cmd
}

// benchFlags are the flags every scenario takes.
type benchFlags struct {
	addr, tlsMode, ca string
	curves            string
	insecure          bool
	user, pass, users string
	nusers, firstUser int
	allowInsecureAuth bool
	timeout           time.Duration
	concurrency       int
	duration          time.Duration
	resume            bool
	sessions          int
	hold, openTimeout time.Duration
	rounds            int
	message           int
	serverPID         int
	name, label       string
}

var scenarioHelp = map[string]string{
	"sessions": "Sessions per second: connect, USER/PASS, STAT, QUIT",
	"retr":     "RETR throughput over each worker's maildrop",
	"bigretr":  "RETR throughput of one big message",
	"idle":     "Memory per idle authenticated session",
	"bigbox":   "Login, STAT, UIDL and LIST on a huge maildrop",
	"lmtp":     "LMTP deliveries per second (an MTA's delivery agent)",
}

func (a *app) benchScenarioCmd(scenario string) *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   scenario + " --addr HOST:PORT (--user U --pass P | --users user%d:pass%d --nusers N) [flags]",
		Short: scenarioHelp[scenario],
		Example: map[string]string{
			"sessions": "  postie bench sessions --addr 127.0.0.1:110 --users user%d:pass%d --nusers 16 --concurrency 8 --duration 10s\n  postie bench sessions --addr 127.0.0.1:995 --tls implicit --ca cert.pem --resume --users user%d:pass%d --nusers 16",
			"retr":     "  postie bench retr --addr 127.0.0.1:110 --users user%d:pass%d --nusers 4 --concurrency 4",
			"bigretr":  "  postie bench bigretr --addr 127.0.0.1:110 --user big --pass secret --duration 10s",
			"idle":     "  postie bench idle --addr 127.0.0.1:110 --users user%d:pass%d --nusers 10000 --sessions 10000",
			"bigbox":   "  postie bench bigbox --addr 127.0.0.1:110 --user box --pass secret --rounds 5",
			"lmtp":     "  postie bench lmtp --addr 127.0.0.1:24 --users user%d@example.org: --nusers 16 --concurrency 8",
		}[scenario],
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return a.runBench(scenario, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "", "server address, host:port")
	fl.StringVar(&f.tlsMode, "tls", "none", "none, starttls or implicit")
	fl.StringVar(&f.ca, "ca", "", "PEM file of the CA (or self-signed certificate) that verifies the server")
	fl.BoolVar(&f.insecure, "insecure", false, "do not verify the server's certificate")
	fl.StringVar(&f.curves, "curves", "default", "TLS key exchanges offered: default (Go's, with the X25519MLKEM768 hybrid) or a list of x25519, p256, p384, p521, x25519mlkem768")
	fl.StringVar(&f.user, "user", "", "user name (one account)")
	fl.StringVar(&f.pass, "pass", "", "password of --user")
	fl.StringVar(&f.users, "users", "", `accounts as USER_PATTERN:PASS_PATTERN, "%d" counting from 1 (e.g. user%d:pass%d)`)
	fl.IntVar(&f.nusers, "nusers", 1, "number of accounts --users makes")
	fl.IntVar(&f.firstUser, "first-user", 1, `number of the first account of --users ("%d")`)
	fl.BoolVar(&f.allowInsecureAuth, "allow-insecure-auth", false, "send passwords without TLS to a server that is not on loopback")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on each network read or write")
	fl.IntVar(&f.serverPID, "server-pid", 0, "server process to read CPU time and memory of, with its children (0: the local process listening on --addr; -1: none)")
	fl.StringVar(&f.name, "name", "", "name of this run in the JSON line (default the scenario)")
	fl.StringVar(&f.label, "label", "", "label of the server in the JSON line (e.g. postie, dovecot)")
	switch scenario {
	case "sessions", "retr", "bigretr", "lmtp":
		def := map[string]int{"sessions": 8, "retr": 4, "bigretr": 1, "lmtp": 8}[scenario]
		fl.IntVar(&f.concurrency, "concurrency", def, "concurrent workers, each with its own accounts")
		fl.DurationVar(&f.duration, "duration", 5*time.Second, "how long to run")
	case "idle":
		fl.IntVar(&f.concurrency, "concurrency", 32, "sessions being opened at once")
		fl.IntVar(&f.sessions, "sessions", 100, "idle sessions to hold open, one account each")
		fl.DurationVar(&f.hold, "hold", 2*time.Second, "how long to hold them once all are open")
		fl.DurationVar(&f.openTimeout, "open-timeout", 0, "stop opening sessions after this long and measure with those open (0: no limit)")
	case "bigbox":
		fl.IntVar(&f.rounds, "rounds", 5, "logins, one after the other")
	}
	if scenario == "sessions" {
		fl.BoolVar(&f.resume, "resume", false, "resume TLS sessions (a shared client session cache)")
	}
	if scenario == "bigretr" {
		fl.IntVar(&f.message, "msg", 0, "message number to retrieve (default the largest)")
	}
	return cmd
}

func (a *app) runBench(scenario string, f *benchFlags) error {
	mode, err := bench.ParseTLSMode(f.tlsMode)
	if err != nil {
		return withCode(exitcode.Usage, err)
	}
	o := bench.Options{
		Addr:              f.addr,
		TLS:               mode,
		Resume:            f.resume,
		AllowInsecureAuth: f.allowInsecureAuth,
		Timeout:           f.timeout,
		Concurrency:       f.concurrency,
		Duration:          f.duration,
		Sessions:          f.sessions,
		Hold:              f.hold,
		OpenTimeout:       f.openTimeout,
		Rounds:            f.rounds,
		Message:           f.message,
		ServerPID:         f.serverPID,
		Name:              f.name,
		Label:             f.label,
		Log:               a.stderr,
	}
	if f.addr == "" {
		return exitf(exitcode.Usage, "--addr is required")
	}
	switch {
	case f.users != "" && f.user != "":
		return exitf(exitcode.Usage, "--user and --users exclude each other")
	case f.users != "":
		if o.Users, err = bench.ParseUsers(f.users, f.nusers); err != nil {
			return withCode(exitcode.Usage, err)
		}
		o.Users.First = f.firstUser
	case f.user != "":
		o.Users = bench.Credentials{User: f.user, Pass: f.pass, N: 1}
	default:
		return exitf(exitcode.Usage, "give --user and --pass, or --users and --nusers")
	}
	if o.Curves, err = bench.ParseCurves(f.curves); err != nil {
		return withCode(exitcode.Usage, err)
	}
	if mode != 0 {
		cfg := &tls.Config{InsecureSkipVerify: f.insecure}
		if f.ca != "" {
			pem, err := os.ReadFile(f.ca)
			if err != nil {
				return exitf(exitcode.Usage, "--ca: %v", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return exitf(exitcode.Usage, "--ca: no PEM certificate in %s", f.ca)
			}
		}
		o.TLSConfig = cfg
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, scenario, o)
	if err != nil {
		return withCode(exitcode.Usage, err)
	}
	bench.WriteSummary(a.stderr, res)
	if err := bench.WriteResult(a.stdout, res); err != nil {
		return withCode(exitcode.Failure, err)
	}
	if res.Ops == 0 {
		return exitf(exitcode.Failure, "bench %s: no operation succeeded", scenario)
	}
	return nil
}

// --- corpus ---------------------------------------------------------------

func (a *app) benchCorpusCmd() *cobra.Command {
	var (
		dirs                    []string
		postieRoot, dovecotRoot string
		users                   string
		first, nusers, count    int
		seed                    uint64
		profile, big, chown     string
		noSizes, bigCRLF        bool
	)
	cmd := &cobra.Command{
		Use:   "corpus (--dir MAILDIR | --users PATTERN --nusers N [--postie-root DIR] [--dovecot-root DIR]) --count N --seed S",
		Short: "Write a reproducible message corpus into Maildirs",
		Long: `Write a reproducible corpus: the same --seed gives the same bytes under the
same names. The mixed profile is 85% 2–100 KB, 12% 100 KB–1 MB and 3% 1–10 MB
messages (the larger ones with base64 attachments), with lines starting with
dots, 30% CRLF files and 2% without a final line end; "small" is 1–4 KB
messages for huge maildrops. --big adds one message of that size (K, M, G
are powers of 1024), with LF line ends, or CRLF with --big-crlf (as LMTP
and SMTP intake store mail). File names carry ,S= and ,W= sizes and ,D=
(the lines starting with a dot, as postie's delivery records them) unless
--no-sizes.

With --users, each user U (the pattern with "%d" counting from --first) gets
its own corpus (seed --seed+number) in postie's layout, --postie-root/U/,
and in the layout of the Dovecot anchor, --dovecot-root/mail/U/Maildir/,
owned by --chown (default vmail).`,
		Example: `  postie bench corpus --dir /tmp/md --count 200 --seed 1
  postie bench corpus --users user%d --nusers 4 --postie-root /srv/postie/mail --dovecot-root /srv/dovecot --count 200 --seed 1
  postie bench corpus --users big --postie-root P --dovecot-root D --count 0 --big 50M`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var bigSize int64
			if big != "" {
				n, err := config.ParseSize(big)
				if err != nil {
					return exitf(exitcode.Usage, "--big: %v", err)
				}
				bigSize = int64(n)
			}
			if count < 0 || count == 0 && bigSize == 0 {
				return exitf(exitcode.Usage, "--count must be positive (or give --big)")
			}
			base := bench.CorpusOptions{Count: count, Seed: seed, Profile: profile, BigSize: bigSize, BigCRLF: bigCRLF, NoSizes: noSizes}
			var jobs []bench.CorpusOptions
			if len(dirs) > 0 {
				if users != "" {
					return exitf(exitcode.Usage, "--dir and --users exclude each other")
				}
				j := base
				j.Dirs = dirs
				jobs = append(jobs, j)
			} else {
				if users == "" || postieRoot == "" && dovecotRoot == "" {
					return exitf(exitcode.Usage, "give --dir, or --users with --postie-root and/or --dovecot-root")
				}
				var owner *bench.Owner
				if dovecotRoot != "" {
					var err error
					if owner, err = lookupOwner(chown); err != nil {
						return exitf(exitcode.Usage, "--chown: %v (the Dovecot anchor's setup.sh creates vmail)", err)
					}
				}
				for n := first; n < first+max(nusers, 1); n++ {
					name := strings.ReplaceAll(users, "%d", strconv.Itoa(n))
					if name == "" || strings.ContainsAny(name, "/\x00") || name[0] == '.' {
						return exitf(exitcode.Usage, "--users: %q cannot name a maildrop", name)
					}
					j := base
					j.Seed = seed + uint64(n)
					if postieRoot != "" {
						j.Dirs = append(j.Dirs, filepath.Join(postieRoot, name))
						j.Owners = append(j.Owners, nil)
					}
					if dovecotRoot != "" {
						home := filepath.Join(dovecotRoot, "mail", name)
						if err := os.MkdirAll(home, 0o700); err != nil {
							return withCode(exitcode.Failure, err)
						}
						if err := os.Chown(home, owner.UID, owner.GID); err != nil {
							return withCode(exitcode.Failure, err)
						}
						j.Dirs = append(j.Dirs, filepath.Join(home, "Maildir"))
						j.Owners = append(j.Owners, owner)
					}
					jobs = append(jobs, j)
				}
			}
			return a.runCorpus(jobs)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&dirs, "dir", nil, "Maildir to write (repeatable: the same messages in each)")
	fl.StringVar(&users, "users", "", `user name pattern, "%d" counting from --first (e.g. user%d)`)
	fl.IntVar(&first, "first", 1, "first number of --users")
	fl.IntVar(&nusers, "nusers", 1, "number of users")
	fl.StringVar(&postieRoot, "postie-root", "", "postie's maildir_root: user U's Maildir is ROOT/U")
	fl.StringVar(&dovecotRoot, "dovecot-root", "", "the Dovecot anchor's ROOT: user U's Maildir is ROOT/mail/U/Maildir")
	fl.StringVar(&chown, "chown", "vmail", "owner of the Dovecot layout's files")
	fl.IntVar(&count, "count", 100, "messages per Maildir")
	fl.Uint64Var(&seed, "seed", 1, "seed")
	fl.StringVar(&profile, "profile", "mixed", "size mix: mixed or small")
	fl.StringVar(&big, "big", "", "add one message of about this size, e.g. 50M")
	fl.BoolVar(&noSizes, "no-sizes", false, "leave ,S=, ,W= and ,D= out of the file names")
	fl.BoolVar(&bigCRLF, "big-crlf", false, "store the --big message with CRLF line ends")
	return cmd
}

func (a *app) runCorpus(jobs []bench.CorpusOptions) error {
	start := time.Now()
	var (
		mu    sync.Mutex
		total bench.CorpusStats
		first error
		wg    sync.WaitGroup
	)
	next := make(chan bench.CorpusOptions)
	for range max(runtime.NumCPU(), 1) {
		wg.Go(func() {
			for j := range next {
				st, err := bench.GenerateCorpus(j)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				total.Messages += st.Messages
				total.FileBytes += st.FileBytes
				total.WireBytes += st.WireBytes
				total.Largest = max(total.Largest, st.Largest)
				total.CRLF += st.CRLF
				total.NoFinalEOL += st.NoFinalEOL
				total.DotLines += st.DotLines
				total.Attachment += st.Attachment
				mu.Unlock()
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	if first != nil {
		return withCode(exitcode.Failure, first)
	}
	fmt.Fprintf(a.stderr, "corpus: %d maildrops, %d messages in all, each written to %d Maildir(s): %d octets (wire %d, largest %d), %d CRLF files, %d without a final line end, %d with attachments, %d dot lines; %.1fs\n",
		len(jobs), total.Messages, len(jobs[0].Dirs), total.FileBytes, total.WireBytes, total.Largest, total.CRLF, total.NoFinalEOL, total.Attachment, total.DotLines, time.Since(start).Seconds())
	return nil
}

func lookupOwner(name string) (*bench.Owner, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user %s has no numeric ids", name)
	}
	return &bench.Owner{UID: uid, GID: gid}, nil
}

// --- raw-sender -------------------------------------------------------------

func (a *app) benchRawSenderCmd() *cobra.Command {
	var dir, listen, tlsListen, cert, key string
	cmd := &cobra.Command{
		Use:   "raw-sender --maildir DIR [--listen ADDR] [--tls-listen ADDR --tls-cert F --tls-key F]",
		Short: "A trivial POP3 responder sending prepared octets: the RETR ceiling",
		Long: `Load the messages of one Maildir into memory in wire form and answer POP3
with them: any USER/PASS is accepted, and RETR is one write of prepared
octets. Measured with "postie bench bigretr", it gives the ceiling a POP3
server could reach on this machine with the same client. It logs
"listening proto=pop3 addr=..." (and proto=pop3s) and runs until SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if dir == "" {
				return exitf(exitcode.Usage, "--maildir is required")
			}
			log := slog.New(slog.NewTextHandler(a.stderr, nil))
			rs, err := bench.NewRawSender(dir)
			if err != nil {
				return withCode(exitcode.Failure, err)
			}
			n, total := rs.Messages()
			var lns []net.Listener
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return exitf(exitcode.Failure, "%v", err)
			}
			lns = append(lns, ln)
			log.Info("listening", "proto", "pop3", "addr", ln.Addr().String(), "messages", n, "octets", total)
			if tlsListen != "" {
				cfg, err := loadTLS(cert, key)
				if err != nil {
					ln.Close()
					return withCode(exitcode.Usage, err)
				}
				tln, err := net.Listen("tcp", tlsListen)
				if err != nil {
					ln.Close()
					return exitf(exitcode.Failure, "%v", err)
				}
				lns = append(lns, tls.NewListener(tln, cfg))
				log.Info("listening", "proto", "pop3s", "addr", tln.Addr().String())
			}
			errc := make(chan error, len(lns))
			for _, l := range lns {
				go func() { errc <- rs.Serve(l) }()
			}
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
			defer signal.Stop(sigs)
			select {
			case <-sigs:
				rs.Close()
				return nil
			case err := <-errc:
				rs.Close()
				return exitf(exitcode.Failure, "%v", err)
			}
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "maildir", "", "the Maildir whose messages are sent")
	fl.StringVar(&listen, "listen", "127.0.0.1:0", "plain POP3 address")
	fl.StringVar(&tlsListen, "tls-listen", "", "implicit-TLS address (needs --tls-cert and --tls-key)")
	fl.StringVar(&cert, "tls-cert", "", "PEM certificate chain")
	fl.StringVar(&key, "tls-key", "", "PEM private key")
	return cmd
}

func loadTLS(cert, key string) (*tls.Config, error) {
	if cert == "" || key == "" {
		return nil, errors.New("TLS needs --tls-cert and --tls-key")
	}
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}, nil
}

// --- report -----------------------------------------------------------------

func (a *app) benchReportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "report FILE... (- for stdin)",
		Short: "Medians and ratios (postie/Dovecot, postie/raw) of JSON result lines, as a Markdown table",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var all []*bench.Result
			for _, name := range args {
				var r io.Reader = a.stdin
				if name != "-" {
					f, err := os.Open(name)
					if err != nil {
						return withCode(exitcode.Failure, err)
					}
					defer f.Close()
					r = f
				}
				res, err := bench.ReadResults(r)
				if err != nil {
					return withCode(exitcode.Failure, fmt.Errorf("%s: %w", name, err))
				}
				all = append(all, res...)
			}
			bench.Report(a.stdout, all)
			return nil
		},
	}
}
