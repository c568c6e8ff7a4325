package main

import (
	"context"
	"errors"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/postie-mail/postie/auth"
	"github.com/postie-mail/postie/store"
)

func (a *app) deliverCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "deliver USER",
		Short: "Deliver one message from stdin into USER's maildrop",
		Long: `Deliver one message, read from stdin, into USER's maildrop. The message is
stored as given (LF or CRLF line ends). postie exits 0 only once the message
is safely on disk, so an MTA can hand it over and forget it.

Exit codes (sysexits): 0 delivered; 64 usage error; 67 unknown or invalid
user (bounce); 75 temporary failure, e.g. disk full (retry later);
78 configuration error.`,
		Example: `  printf 'Subject: hi\n\nHello.\n' | postie deliver --dev demo
  postie deliver --config /etc/postie/postie.toml alice < message.eml

  # Postfix master.cf:
  postie unix - n n - - pipe flags=R user=postie argv=/usr/local/bin/postie deliver ${user}`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return exitf(exitUsage, "deliver: want exactly one USER argument, got %d", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			return a.deliver(args[0])
		},
	}
}

func (a *app) deliver(user string) error {
	c, err := a.loadConfig()
	if err != nil {
		return err
	}
	log := newLogger(c.Log, a.stderr, slog.LevelDebug)
	if err := auth.ValidUsername(user); err != nil {
		return exitf(exitNoUser, "deliver: invalid user name %q", user)
	}
	db, err := openAuth(c, log)
	if err != nil {
		return exitf(exitTempFail, "deliver: user database: %v", err)
	}
	name, ok := db.Lookup(user)
	if !ok {
		return exitf(exitNoUser, "deliver: no such user %q", user)
	}
	st, err := openStore(c, log)
	if err != nil {
		return exitf(exitTempFail, "deliver: %v", err)
	}

	// A signal cancels the delivery; the store removes its partial file.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	info, err := st.Deliver(ctx, name, a.stdin)
	switch {
	case errors.Is(err, store.ErrBadUser), errors.Is(err, store.ErrNoSuchUser):
		return exitf(exitNoUser, "deliver: no maildrop for user %q: %v", name, err)
	case err != nil:
		return exitf(exitTempFail, "deliver: %v", err)
	}
	log.Debug("delivered", "user", name, "uidl", info.UID, "size", info.Size)
	return nil
}
