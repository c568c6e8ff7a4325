package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/postie-mail/postie/fetch"
	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/internal/oauthclient"
)

func (a *app) fetchLoginCmd() *cobra.Command {
	var (
		device, noBrowser bool
		wait              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "login ACCOUNT [--device]",
		Short: "Sign an account in with OAuth 2.0 (Gmail, Microsoft 365, any provider)",
		Long: `Sign an account in once with its provider's OAuth 2.0 sign-in, for an
account with oauth_client_id in the fetch configuration (--config FILE, as
for postie fetch; docs/fetch-oauth.md says how to register a client id
with Google and with Microsoft).

postie prints a URL to open in a browser (and opens it, when xdg-open and
a graphical session are there), and waits on 127.0.0.1, on a port the
system picks, for the browser to come back with the sign-in (--wait
bounds the wait). With --device, for a machine without a browser, it
prints a code to type at the provider's page on any other device
(providers that offer it, such as Microsoft) and waits until the code
expires.

The tokens are kept in ACCOUNT.oauth in the state directory (mode 0600);
postie fetch refreshes the access token before it expires. When the
sign-in stops working (consent withdrawn, refresh token expired), postie
fetch says to run this command again. Tokens are never printed or logged.

Exit codes: 0 signed in; 64 usage error; 77 the sign-in was refused or
did not complete; 78 configuration error; 1 the tokens could not be
stored.`,
		Example: `  postie fetch login gmail
  postie fetch login work --device`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return exitf(exitcode.Usage, "fetch login: want one ACCOUNT argument, got %d", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, accts, err := a.loadFetchAccounts(args)
			if err != nil {
				return err
			}
			acct := accts[0]
			lo := fetch.LoginOptions{Device: device, Out: a.stdout, Wait: wait}
			if !noBrowser && !device {
				lo.Open = openBrowser
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			err = fetch.Login(ctx, cfg, acct, fetch.Options{}, lo)
			var fe *fetch.Error
			if errors.As(err, &fe) {
				code, _ := fetchExit(fe.Kind)
				return &exitError{code: code, err: fmt.Errorf("fetch login: %w", fe)}
			}
			return withCode(exitcode.Failure, err)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&device, "device", false, "sign in with a code typed on another device (RFC 8628), for machines without a browser")
	f.BoolVar(&noBrowser, "no-browser", false, "only print the URL; do not start a browser")
	f.DurationVar(&wait, "wait", oauthclient.DefaultLoopbackWait, "how long to wait for the browser to come back")
	return cmd
}

// openBrowser starts xdg-open on u when there is a graphical session to
// show it in; the URL is printed anyway, so that a failure only means the
// user opens it by hand.
func openBrowser(u string) error {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return nil
	}
	path, err := exec.LookPath("xdg-open")
	if err != nil {
		return nil
	}
	cmd := exec.Command(path, u)
	// The browser's chatter would mix with postie's instructions.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait() // xdg-open returns once the browser has the URL
	return nil
}
