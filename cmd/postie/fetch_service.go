package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/internal/fsutil"
)

// fetchUnit is the systemd user unit of postie fetch in daemon mode;
// examples/systemd/postie-fetch.service is the same with a fixed path.
const fetchUnit = `# Written by postie fetch install-service.
[Unit]
Description=postie fetch: retrieve mail from POP3 accounts
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=%s fetch --config %s
KillSignal=SIGTERM
TimeoutStopSec=2min
Restart=on-failure
RestartSec=30s
RestartPreventExitStatus=64 78
UMask=0077
NoNewPrivileges=yes

[Install]
WantedBy=default.target
`

// systemdQuote quotes a word of an ExecStart line: double quotes with
// backslash escapes, and "%" doubled (systemd.service(5), systemd.unit(5)
// specifiers).
func systemdQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%")
	return `"` + r.Replace(s) + `"`
}

func (a *app) fetchInstallServiceCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "install-service [--force]",
		Short: "Install postie fetch as a systemd user service (postie-fetch.service)",
		Long: `Write the systemd user unit postie-fetch.service into
$XDG_CONFIG_HOME/systemd/user (else ~/.config/systemd/user). It runs this
postie binary as "postie fetch --config FILE" in daemon mode, with the
configuration file found as for postie fetch (made absolute); its output
goes to the journal. The configuration is checked first. An existing unit
is replaced only with --force. Then start it with

  systemctl --user daemon-reload
  systemctl --user enable --now postie-fetch.service

Exit codes: 0 done; 1 the unit could not be written or exists; 78
configuration error.`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cfg, err := a.loadFetchConfig()
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return withCode(exitcode.Failure, fmt.Errorf("fetch install-service: %w", err))
			}
			if exe, err = filepath.EvalSymlinks(exe); err != nil {
				return withCode(exitcode.Failure, fmt.Errorf("fetch install-service: %w", err))
			}
			dir := os.Getenv("XDG_CONFIG_HOME")
			if dir == "" || !filepath.IsAbs(dir) {
				home, err := os.UserHomeDir()
				if err != nil {
					return withCode(exitcode.Failure, fmt.Errorf("fetch install-service: %w", err))
				}
				dir = filepath.Join(home, ".config")
			}
			dir = filepath.Join(dir, "systemd", "user")
			unit := filepath.Join(dir, "postie-fetch.service")
			if _, err := os.Stat(unit); err == nil && !force {
				return exitf(exitcode.Failure, "fetch install-service: %s exists; --force replaces it", unit)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return withCode(exitcode.Failure, fmt.Errorf("fetch install-service: %w", err))
			}
			text := fmt.Sprintf(fetchUnit, systemdQuote(exe), systemdQuote(cfg.Path()))
			if err := fsutil.WriteFileAtomic(unit, []byte(text), fsutil.WriteOptions{Perm: 0o644}); err != nil {
				return withCode(exitcode.Failure, fmt.Errorf("fetch install-service: %w", err))
			}
			fmt.Fprintf(a.stdout, "Wrote %s. Start it with\n  systemctl --user daemon-reload\n  systemctl --user enable --now postie-fetch.service\n"+
				"and follow it with\n  journalctl --user -u postie-fetch -f\n", unit)
			for _, acct := range cfg.Accounts {
				if acct.UsesOAuth() {
					if _, err := os.Stat(cfg.TokenFile(acct)); err != nil {
						fmt.Fprintf(a.stdout, "Account %q is not signed in yet: run `postie fetch login %s`.\n", acct.Name, acct.Name)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing unit")
	return cmd
}
