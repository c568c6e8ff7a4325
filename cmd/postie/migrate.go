package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/postie-mail/postie/auth"
	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/fetch"
	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/pop3client"
	"github.com/postie-mail/postie/store"
)

func (a *app) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Move mailboxes to postie from another server",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(a.migratePOP3Cmd())
	return cmd
}

// migrateAccount is one line of the accounts file.
type migrateAccount struct {
	line                    int
	local, remote, password string
}

func (a *app) migratePOP3Cmd() *cobra.Command {
	var (
		server, mode, caFile, accountsFile string
		timeout                            time.Duration
		noProgress                         bool
	)
	cmd := &cobra.Command{
		Use:   "pop3 --server HOST[:PORT] --accounts FILE [--tls implicit|starttls|none] [--ca-file FILE]",
		Short: "Copy every message of remote POP3 maildrops into local ones, keeping their UIDLs",
		Long: `Copy every message of each remote POP3 maildrop into the maildrop of a local
user, who must exist, giving each message the UIDL the remote server gave
it: POP3 clients that leave mail on the server fetch nothing again after
the switch. The remote maildrops are left as they are (no DELE).

Each line of the accounts file (--accounts) is
  localuser remoteuser password
(the password is the rest of the line); blank lines and lines starting
with '#' are skipped. Keep the file private: it holds passwords.

Running it again copies only what is missing: messages already in the
local maildrop (by UIDL), or copied by an earlier run (recorded in
<data_dir>/migrate/), are skipped. A run killed at any point loses
nothing and copies nothing twice when run again.

The port defaults to 995 (implicit TLS), or 110 with --tls starttls or
none. --tls none sends passwords in the clear: only on a trusted network.
Exit codes as postie fetch: 0 all copied; 75 try again (server
unreachable, maildrop in use); 76 TLS failed; 77 login refused; 78
configuration; 67 a local user does not exist; 1 anything else. With
several accounts the most severe wins.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if server == "" || accountsFile == "" {
				return exitf(exitcode.Usage, "migrate pop3: --server and --accounts are required")
			}
			c, err := a.loadConfig()
			if err != nil {
				return err
			}
			log := newLogger(c, a.stderr, slog.LevelWarn)
			po, addr, err := migrateDialOptions(server, mode, caFile, timeout, log)
			if err != nil {
				return withCode(exitcode.Config, fmt.Errorf("migrate pop3: %w", err))
			}
			accts, err := readMigrateAccounts(accountsFile)
			if err != nil {
				return withCode(exitcode.Config, fmt.Errorf("migrate pop3: %w", err))
			}
			db, err := openAuth(c, log)
			if err != nil {
				return withCode(exitcode.Config, fmt.Errorf("migrate pop3: user database: %w", err))
			}
			defer db.Close()
			st, closeStore, err := openStore(c, db, log, nil)
			if err != nil {
				return withCode(exitcode.TempFail, fmt.Errorf("migrate pop3: %s store: %w", c.Storage.Backend, err))
			}
			defer closeStore()
			ud, ok := st.(store.UIDLDeliverer)
			if !ok {
				return exitf(exitcode.Config, "migrate pop3: the %s backend cannot keep remote UIDLs yet; migrate into the maildir backend", c.Storage.Backend)
			}
			stateDir := filepath.Join(c.DataDir, "migrate")
			if err := os.MkdirAll(stateDir, 0o700); err != nil {
				return withCode(exitcode.Config, fmt.Errorf("migrate pop3: %w", err))
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			m := &migrator{
				a: a, c: c, db: db, st: st, ud: ud, po: po, addr: addr, stateDir: stateDir,
				progress: !noProgress && isTerminal(a.stderr),
			}
			worst, worstRank, failed := 0, 0, 0
			for _, acct := range accts {
				code, rank := m.account(ctx, acct)
				if code != 0 {
					failed++
				}
				if rank > worstRank {
					worst, worstRank = code, rank
				}
				if ctx.Err() != nil {
					break
				}
			}
			if worst != 0 {
				return exitf(worst, "migrate pop3: %d of %d accounts had problems (see above)", failed, len(accts))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "the POP3 server, HOST[:PORT]")
	f.StringVar(&mode, "tls", "", `"implicit", "starttls" or "none" (default: implicit on port 995, else starttls)`)
	f.StringVar(&caFile, "ca-file", "", "verify the server's certificate against these CAs (PEM) instead of the system's")
	f.StringVar(&accountsFile, "accounts", "", "the accounts file: localuser remoteuser password, one per line")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "network timeout")
	f.BoolVar(&noProgress, "no-progress", false, "no progress bar, even on a terminal")
	return cmd
}

// migrateDialOptions makes the client options and the address to dial.
func migrateDialOptions(server, mode, caFile string, timeout time.Duration, log *slog.Logger) (*pop3client.Options, string, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		host, port = server, ""
	}
	if host == "" || strings.ContainsAny(host, " /") {
		return nil, "", fmt.Errorf("--server %q: want HOST[:PORT]", server)
	}
	po := &pop3client.Options{Timeout: timeout, Logger: log, TLSConfig: &tls.Config{}}
	switch mode {
	case "":
		po.TLS = pop3client.TLSImplicit
		if port != "" && port != "995" {
			po.TLS = pop3client.TLSStartTLS
		}
	case "implicit":
		po.TLS = pop3client.TLSImplicit
	case "starttls":
		po.TLS = pop3client.TLSStartTLS
	case "none":
		po.TLS = pop3client.TLSNone
		po.AllowInsecureAuth = true
	default:
		return nil, "", fmt.Errorf("--tls %q: want implicit, starttls or none", mode)
	}
	if port == "" {
		port = "995"
		if po.TLS != pop3client.TLSImplicit {
			port = "110"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, "", fmt.Errorf("--server %q: bad port", server)
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, "", err
		}
		po.TLSConfig.RootCAs = x509.NewCertPool()
		if !po.TLSConfig.RootCAs.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("--ca-file %s holds no PEM certificate", caFile)
		}
	}
	return po, net.JoinHostPort(host, port), nil
}

// readMigrateAccounts reads the accounts file.
func readMigrateAccounts(path string) ([]migrateAccount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var accts []migrateAccount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		local, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimLeft(rest, " \t")
		remote, password, _ := strings.Cut(rest, " ")
		password = strings.TrimLeft(password, " \t")
		if strings.ContainsAny(local, "\t") || strings.ContainsAny(remote, "\t") {
			local, remote, password = tabFields(line)
		}
		if local == "" || remote == "" || password == "" {
			// Never the line itself: it may hold a password.
			return nil, fmt.Errorf("%s:%d: want \"localuser remoteuser password\"", path, n)
		}
		accts = append(accts, migrateAccount{line: n, local: local, remote: remote, password: password})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(accts) == 0 {
		return nil, fmt.Errorf("%s: no accounts", path)
	}
	return accts, nil
}

// tabFields splits a line whose fields are separated by tabs as well.
func tabFields(line string) (local, remote, password string) {
	fs := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(fs) < 3 {
		return "", "", ""
	}
	i := strings.Index(line, fs[1]) + len(fs[1])
	return fs[0], fs[1], strings.TrimLeft(line[i:], " \t")
}

// migrator copies accounts.
type migrator struct {
	a        *app
	c        *config.Config
	db       *auth.DB
	st       store.Store
	ud       store.UIDLDeliverer
	po       *pop3client.Options
	addr     string
	stateDir string
	progress bool
}

// account copies one account, prints its summary line, and returns its
// exit code and rank (as fetchExit).
func (m *migrator) account(ctx context.Context, acct migrateAccount) (code, rank int) {
	a := m.a
	name, ok := m.db.Lookup(acct.local)
	if !ok {
		fmt.Fprintf(a.stderr, "postie: migrate pop3: accounts line %d: no local user %q\n", acct.line, acct.local)
		return exitcode.NoUser, 6
	}
	host, port, _ := net.SplitHostPort(m.addr)
	portN, _ := strconv.Atoi(port)
	fa := &fetch.Account{Name: name, Server: host, Port: portN, User: acct.remote, TLS: m.po.TLS.String()}
	n, err := m.copy(ctx, name, acct, fa)
	if err != nil {
		fe := fetch.Classify(fa, err)
		code, rank := fetchExit(fe.Kind)
		fmt.Fprintf(a.stdout, "%s: %d copied, then failed\n", name, n)
		fmt.Fprintf(a.stderr, "postie: migrate pop3: %s: %v\n", name, fe)
		if fe.Hint != "" {
			fmt.Fprintln(a.stderr, fe.Hint)
		}
		return code, rank
	}
	return 0, 0
}

// copy does the work of account and prints the summary; it returns the
// number of messages copied.
func (m *migrator) copy(ctx context.Context, user string, acct migrateAccount, fa *fetch.Account) (int, error) {
	// What is here already: the local maildrop's UIDLs, and what earlier
	// runs copied (a message copied and since deleted is not copied
	// again).
	have := map[string]bool{}
	md, err := m.st.Open(ctx, user)
	// In use: a POP3 session, or the lease of a run killed meanwhile
	// (PostgreSQL store), which expires. Wait a little for either.
	for try := 0; errors.Is(err, store.ErrInUse) && try < 10; try++ {
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		md, err = m.st.Open(ctx, user)
	}
	if err != nil {
		if errors.Is(err, store.ErrInUse) {
			return 0, &fetch.Error{Kind: fetch.KindTemporary, Err: fmt.Errorf("the local maildrop of %s is in use: %w", user, err)}
		}
		return 0, &fetch.Error{Kind: fetch.KindFailed, Err: err}
	}
	for _, mi := range md.Messages() {
		have[mi.UID] = true
	}
	md.Close()
	statePath := filepath.Join(m.stateDir, migrateStateName(user, m.addr, acct.remote))
	copied, torn, err := readMigrateState(statePath)
	if err != nil {
		return 0, &fetch.Error{Kind: fetch.KindFailed, Err: err}
	}
	for u := range copied {
		have[u] = true
	}

	c, err := pop3client.Dial(ctx, m.addr, m.po)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Login(ctx, acct.remote, acct.password); err != nil {
		return 0, fetch.ClassifyAuth(fa, "USER/PASS", err)
	}
	list, err := c.ListAndUIDL(ctx)
	if err != nil {
		return 0, err
	}
	var todo []pop3client.MessageInfo
	var octets int64
	seen := map[string]bool{}
	already, skipped := 0, 0
	for _, mi := range list {
		switch {
		case mi.UID == "" || seen[mi.UID]:
			// No UIDL, or one listed twice: there is no keeping it.
			skipped++
		case have[mi.UID]:
			already++
		default:
			todo = append(todo, mi)
			octets += mi.Size
		}
		seen[mi.UID] = true
	}

	state, err := os.OpenFile(statePath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, &fetch.Error{Kind: fetch.KindFailed, Err: err}
	}
	defer state.Close()
	if torn {
		// A run killed while recording: end its line.
		if _, err := state.WriteString("\n"); err != nil {
			return 0, &fetch.Error{Kind: fetch.KindFailed, Err: err}
		}
	}
	var bar *barProgress
	if m.progress && len(todo) > 0 {
		bar = &barProgress{w: m.a.stderr, name: user}
		bar.Start(len(todo), octets)
	}
	n, size := 0, int64(0)
	for _, mi := range todo {
		rc, err := c.Retr(ctx, mi.Num)
		if err != nil {
			return n, err
		}
		var r io.Reader = rc
		if bar != nil {
			r = io.TeeReader(rc, barWriter{bar})
		}
		info, err := m.ud.DeliverUIDL(ctx, user, mi.UID, r)
		rc.Close()
		if err != nil {
			return n, &fetch.Error{Kind: fetch.KindFailed, Err: fmt.Errorf("storing message %d (UIDL %q): %w", mi.Num, mi.UID, err)}
		}
		// Recorded after the message is safe: killed in between, the
		// next run finds it by its UIDL in the maildrop.
		if _, err := state.WriteString(mi.UID + "\n"); err != nil {
			return n, &fetch.Error{Kind: fetch.KindFailed, Err: err}
		}
		n++
		size += info.Size
		if bar != nil {
			bar.Done()
		}
	}
	if bar != nil {
		bar.Finish()
	}
	// QUIT without DELE: the remote maildrop stays as it was.
	if err := c.Quit(ctx); err != nil {
		fmt.Fprintf(m.a.stderr, "postie: migrate pop3: %s: QUIT: %v\n", user, err)
	}
	fmt.Fprintf(m.a.stdout, "%s: %d messages on the server, %d copied (%d octets), %d already here", user, len(list), n, size, already)
	if skipped > 0 {
		fmt.Fprintf(m.a.stdout, ", %d skipped (no UIDL, or one listed twice)", skipped)
	}
	fmt.Fprintln(m.a.stdout)
	return n, nil
}

// barWriter feeds a progress bar the octets read.
type barWriter struct{ b *barProgress }

func (w barWriter) Write(p []byte) (int, error) {
	w.b.Add(len(p))
	return len(p), nil
}

// migrateStateName names the file of the UIDLs copied from remote at
// server into user's maildrop.
func migrateStateName(user, server, remote string) string {
	sum := sha256.Sum256([]byte(server + "\x00" + remote))
	return url.PathEscape(user) + "." + hex.EncodeToString(sum[:8])
}

// readMigrateState reads the UIDLs an earlier run copied. A last line
// without its line end (torn: a run killed while writing it) is ignored:
// the message is in the maildrop under that UIDL, or was not copied.
func readMigrateState(path string) (m map[string]bool, torn bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	m = map[string]bool{}
	s := string(b)
	for {
		line, rest, ok := strings.Cut(s, "\n")
		if !ok {
			break
		}
		if line != "" {
			m[line] = true
		}
		s = rest
	}
	return m, s != "", nil
}
