package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/postie-mail/postie/intake"
	"github.com/postie-mail/postie/internal/exitcode"
)

func (a *app) deliverCmd() *cobra.Command {
	var from string
	cmd := &cobra.Command{
		Use:   "deliver [-f SENDER] USER|ADDRESS",
		Short: "Deliver one message from stdin into a user's maildrop (an LDA)",
		Long: `Deliver one message, read from stdin, into the maildrop of USER, or of the
user an ADDRESS maps to (local part, intake.local_domains, "+detail"
subaddresses: as LMTP does). This is a local delivery agent for an MTA
(a Postfix pipe transport running as postie's user) or procmail. It must
run as the user that owns the user database and the maildrops: not as the
recipient, as Postfix's mailbox_command does (it then exits 75).

The message is stored as given (LF or CRLF line ends) after the header
fields every delivery adds: Return-Path (the -f sender; else the sender of
an mbox "From " line or of a Return-Path at the top, which are removed),
Delivered-To (unless the MTA added the same one) and Received. The size
limit and the quotas of [intake] apply. postie exits 0 only once the
message is on disk; a delivery that fails or is killed leaves nothing in
the maildrop.

Exit codes (sysexits), the message starting with the RFC 3463 status that
Postfix reports: 0 delivered; 64 usage error (5.3.0, bounce); 65 empty
message (5.6.0, bounce); 67 unknown or invalid user (5.1.1, bounce); 69
message too big (5.3.4, bounce); 73 over quota (5.2.2, bounce; 75 with
intake.quota_full_tempfail); 75 temporary failure, e.g. disk full or a
failing user database (4.3.x, retry later); 78 configuration error
(4.3.5, retry later).`,
		Example: `  printf 'Subject: hi\n\nHello.\n' | postie deliver --dev demo
  postie deliver --config /etc/postie/postie.toml -f bob@example.net alice+lists@example.org < message.eml

  # Postfix master.cf, a pipe transport running as postie's user:
  postie unix - n n - - pipe user=postie argv=/usr/local/bin/postie deliver -f ${sender} ${recipient}
  # and main.cf:
  mailbox_transport = postie
  postie_destination_recipient_limit = 1`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return exitf(exitcode.Usage, "deliver: want exactly one USER or ADDRESS argument, got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var sender *string
			if cmd.Flags().Changed("from") {
				sender = &from
			}
			return a.deliver(sender, args[0])
		},
	}
	cmd.Flags().StringVarP(&from, "from", "f", "", "envelope sender (Return-Path); \"\" or <> for none")
	return cmd
}

// deliver runs the LDA: sender is -f (nil when not given), to a user name
// or an address.
func (a *app) deliver(sender *string, to string) error {
	c, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := deliverAs(c); err != nil {
		return err
	}
	// The MTA reports what deliver prints when it fails, and Postfix
	// reads a status code at its very start: nothing else goes first.
	log := newLogger(c, a.stderr, slog.LevelError+1)
	db, err := openAuth(c, log)
	if err != nil {
		return exitf(exitcode.TempFail, "deliver: user database: %v", err)
	}
	defer db.Close()
	st, closeStore, err := openStore(c, db, log, nil)
	if err != nil {
		return exitf(exitcode.TempFail, "deliver: %v", err)
	}
	defer closeStore()
	d, err := newDeliverer(c, db, st, log)
	if err != nil {
		return exitf(exitcode.Config, "deliver: %v", err)
	}
	rcpt, err := d.Resolve(to)
	if err != nil {
		return deliverError(fmt.Errorf("deliver: %q: %s", to, userProblem(err)), err)
	}
	in := bufio.NewReader(a.stdin)
	if _, err := in.Peek(1); errors.Is(err, io.EOF) {
		// Nothing to deliver: a broken pipe upstream, not a message.
		return &exitError{code: exitcode.DataErr, dsn: "5.6.0", err: errors.New("deliver: the message on stdin is empty; nothing delivered")}
	}
	msg, err := intake.ReadLocalMessage(in)
	if err != nil {
		return deliverError(fmt.Errorf("deliver: reading the message: %v", err), err)
	}
	env := intake.Envelope{Proto: "local", ID: intake.NewID()}
	switch {
	case sender != nil:
		env.From = *sender
		if env.From == "<>" {
			env.From = ""
		}
	case msg.HasSender:
		env.From = msg.Sender
	}

	// A signal cancels the delivery; the store removes its partial file.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if _, err := d.Deliver(ctx, env, rcpt, msg.Message()); err != nil {
		return deliverError(fmt.Errorf("deliver: %s: %v", rcpt.User, err), err)
	}
	return nil
}

// deliverError gives msg the exit code and the status code of the
// delivery error cause.
func deliverError(msg, cause error) error {
	return &exitError{code: intake.ExitCode(cause), err: msg, dsn: intake.DSN(cause)}
}

// deliverDSN is the RFC 3463 status of a deliver failure that has none
// of its own (the delivery errors carry theirs), by exit code. Postfix's
// pipe(8) lets the status decide between bounce and retry, so it agrees
// with the exit code: a usage error bounces (5.3.0, as Postfix itself maps
// EX_USAGE), a configuration error and a failing user database or store
// are retried (4.3.5 "system incorrectly configured", 4.3.0).
func deliverDSN(code int) string {
	switch code {
	case exitcode.Usage:
		return "5.3.0"
	case exitcode.Config:
		return "4.3.5"
	}
	return "4.3.0"
}

// userProblem words a Resolve error for deliver's message.
func userProblem(err error) string {
	var e *intake.Error
	if errors.As(err, &e) {
		switch e.Kind {
		case intake.KindNotLocal:
			return "not a local domain (intake.local_domains), so no such user"
		case intake.KindBadAddress:
			return "invalid user name or address"
		case intake.KindTemporary:
			return "cannot tell whether there is such a user, try again later: " + e.Err.Error()
		}
	}
	return "no such user"
}
