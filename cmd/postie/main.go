// Command postie is the postie mail system in one binary: the POP3 server
// (serve), the local delivery agent (deliver) and account management
// (user). It is the only place that reads the configuration file and wires
// the concrete parts (auth, store/maildir, pop3server) together.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/postie-mail/postie/internal/exitcode"
)

// exitError carries the exit code an error should end the process with.
type exitError struct {
	code int
	err  error
	// dsn, when set, starts the message (e.g. "5.2.2"): Postfix's
	// pipe(8) and local(8) take the status of a failed command from
	// there.
	dsn string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitf returns an error that ends the process with code.
func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

// withCode gives err the exit code code unless it already has one.
func withCode(code int, err error) error {
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &exitError{code: code, err: err}
}

// app holds the process's streams and the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	configPath string // --config
	dev        bool   // --dev
	dataDir    string // --data-dir (with --dev)

	intake *intakeServers // serve's LMTP/SMTP servers, for the dev banner
}

func main() {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(a.run(os.Args[1:]))
}

// run executes the command line and returns the exit code.
func (a *app) run(args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// Every error of our own commands carries a code: what is left
		// came from parsing the command line.
		ee = &exitError{code: exitcode.Usage, err: err}
	}
	if ee.dsn == "" && cmd.Name() == "deliver" && cmd.HasParent() && !cmd.Parent().HasParent() {
		// Every failure of deliver, its command line and config
		// included, starts with a status for the MTA.
		ee.dsn = deliverDSN(ee.code)
	}
	if ee.dsn != "" {
		fmt.Fprintf(a.stderr, "%s ", ee.dsn)
	}
	fmt.Fprintf(a.stderr, "postie: %v\n", ee.err)
	if ee.code == exitcode.Usage {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return ee.code
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "postie",
		Short: "postie is a POP3 mail system in one binary",
		Long: `postie is a POP3 mail system in one binary: a POP3 server over Maildir
storage, a local delivery agent for an MTA, and account management.

Try it without any setup:  postie serve --dev

Configuration: --config FILE, else $POSTIE_CONFIG, else ` + systemConfig + `
if it exists. With --dev no file is needed (state in ./postie-dev).`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitcode.Usage, err: err}
	})
	// "postie completion bash|zsh|fish" writes a completion script (the
	// Debian package installs them); hidden from the command list.
	root.CompletionOptions.HiddenDefaultCmd = true
	root.Version = versionLine()
	root.SetVersionTemplate("{{.Version}}\n")
	root.Flags().Bool("version", false, "print the version, commit and build date (as postie version)")

	pf := root.PersistentFlags()
	pf.StringVar(&a.configPath, "config", "", "configuration file (default $POSTIE_CONFIG, else "+systemConfig+"; for fetch: $POSTIE_FETCH_CONFIG, else ~/.config/postie/fetch.toml)")
	pf.BoolVar(&a.dev, "dev", false, "development mode: no config file, state in --data-dir, listeners on loopback")
	pf.StringVar(&a.dataDir, "data-dir", "", "data directory in --dev mode (default ./"+devDataDir+")")

	root.AddCommand(a.serveCmd(), a.deliverCmd(), a.userCmd(), a.configCmd(), a.versionCmd(), a.benchCmd(), a.fetchCmd(), a.migrateCmd(), a.dnsCmd())
	return root
}
