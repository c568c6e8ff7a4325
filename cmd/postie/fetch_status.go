package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/postie-mail/postie/fetch"
)

func (a *app) fetchStatusCmd() *cobra.Command {
	var accounts []string
	cmd := &cobra.Command{
		Use:   "status [--account NAME]...",
		Short: "Show each account's last poll: when, how much, the last error, the OAuth sign-in",
		Long: `Show, for each account of the fetch configuration, the result of its last
run (not dry runs), as postie fetch recorded it in the state directory:
when it ended, what it fetched and deleted, the error if it failed and
when the last run without an error was; when the server refused SCRAM
and the next mechanism worked, until when the runs skip SCRAM; for
accounts that sign in with OAuth, whether there is a stored sign-in. It reads files only: no server
is contacted, and it works while postie fetch runs as a daemon.

Exit codes: 0 done; 64 usage error; 78 configuration error.`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cfg, accts, err := a.loadFetchAccounts(accounts)
			if err != nil {
				return err
			}
			for _, acct := range accts {
				fmt.Fprintln(a.stdout, statusLine(cfg, acct, time.Now()))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&accounts, "account", nil, "only this account (repeatable)")
	return cmd
}

// statusLine is one account's line of postie fetch status.
func statusLine(cfg *fetch.Config, acct *fetch.Account, now time.Time) string {
	line := acct.Name + ": "
	s, err := cfg.LastStatus(acct)
	switch {
	case err != nil:
		line += "status unreadable: " + err.Error()
	case s == nil:
		line += "never run"
	default:
		line += s.Summary(now)
		if sasl := s.SASL(acct, now); sasl != "" {
			line += "; " + sasl
		}
	}
	if acct.UsesOAuth() {
		if _, err := os.Stat(cfg.TokenFile(acct)); errors.Is(err, fs.ErrNotExist) {
			line += "; OAuth: not signed in (postie fetch login " + acct.Name + ")"
		} else {
			line += "; OAuth: signed in"
		}
	}
	return line
}
