package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/internal/privdrop"
)

// errServeAsRoot is serve's refusal to keep root.
var errServeAsRoot = errors.New("refusing to serve as root: set server.user (and server.group) in the config file " +
	"to the account to run as once the listeners are bound, e.g. [server] user = \"postie\"; see docs/operations.md")

// serveAccount returns the account serve must switch to once its
// listeners are bound: nil when it is not root, or with --dev and no
// server.user (a developer's own files). Started as root without
// server.user, serve refuses to run.
func (a *app) serveAccount(c *config.Config) (*privdrop.Account, error) {
	if !privdrop.IsRoot() {
		return nil, nil
	}
	if c.Server.User == "" {
		if a.dev {
			return nil, nil
		}
		return nil, withCode(exitcode.Config, errServeAsRoot)
	}
	acct, err := privdrop.Lookup(c.Server.User, c.Server.Group)
	if err != nil {
		key := "server.user"
		if c.Server.Group != "" {
			key = "server.user/server.group"
		}
		return nil, exitf(exitcode.Config, "%s: %v", key, err)
	}
	return &acct, nil
}

// dropPrivileges switches to acct (nil: no switch) once b is bound. First,
// still as root, it gives acct the unix sockets serve made and the data
// directory when it does not exist yet (its parent stays as it is), so
// that what serve makes later (the SCRAM secret, Maildirs, the --dev
// certificate) belongs to acct.
func dropPrivileges(c *config.Config, acct *privdrop.Account, b *boundListeners, log *slog.Logger) error {
	if acct == nil {
		if privdrop.IsRoot() {
			log.Warn("serving as root (--dev without server.user); never do this in production")
		}
		return nil
	}
	for _, p := range b.sockets {
		// The owner only: the group is [lmtp] socket_group's (the MTA's).
		if err := os.Chown(p, acct.UID, -1); err != nil {
			return withCode(exitcode.Failure, fmt.Errorf("socket %s: %w", p, err))
		}
	}
	if _, err := os.Stat(c.DataDir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(c.DataDir), 0o755); err != nil {
			return withCode(exitcode.Failure, fmt.Errorf("data directory: %w", err))
		}
		if err := os.Mkdir(c.DataDir, 0o700); err != nil {
			return withCode(exitcode.Failure, fmt.Errorf("data directory: %w", err))
		}
		if err := os.Chown(c.DataDir, acct.UID, acct.GID); err != nil {
			return withCode(exitcode.Failure, fmt.Errorf("data directory: %w", err))
		}
	}
	if err := privdrop.Drop(*acct); err != nil {
		return withCode(exitcode.Failure, fmt.Errorf("switching to server.user %s: %w", acct.User, err))
	}
	args := []any{"user", acct.User, "uid", acct.UID, "group", acct.Group, "gid", acct.GID}
	if acct.UID == 0 {
		log.Warn("serving as root: server.user names root; never do this in production", args...)
	} else {
		log.Info("switched user", args...)
	}
	return nil
}

// deliverAs makes `postie deliver` run as server.user when started as
// root, so that the files it writes belong to the account the server
// runs as. Without server.user, or when not root, it changes nothing.
func deliverAs(c *config.Config) error {
	if !privdrop.IsRoot() || c.Server.User == "" {
		return nil
	}
	acct, err := privdrop.Lookup(c.Server.User, c.Server.Group)
	if err != nil {
		return exitf(exitcode.Config, "deliver: server.user: %v", err)
	}
	if err := privdrop.Drop(acct); err != nil {
		return exitf(exitcode.TempFail, "deliver: switching to server.user %s: %v", acct.User, err)
	}
	return nil
}
