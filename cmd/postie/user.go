package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/postie-mail/postie/auth"
	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/internal/privdrop"
	"github.com/postie-mail/postie/store/maildir"
)

func (a *app) userCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage accounts: add, passwd, del, list, import",
		Long: `Manage the accounts in the user database: auth.passwd_file, a
Dovecot-compatible passwd-file, or with auth.backend = "postgres" the table
postie_users. Changes are written at once. A running 'postie serve' picks
up a passwd-file's changes on SIGHUP, and those in PostgreSQL by itself
within a second (a changed password is refused by every node at most a
second after it is committed).

'import --from passwd-file PATH' copies a passwd-file into the PostgreSQL
user database: new users are added, existing ones take the file's
password and fields, the others are kept; running it again changes
nothing.

With --admin, add, passwd, del and list manage the web admins instead:
web.admin_passwd_file, the passwd-file /admin logs in against (docs/web.md).
A new file is made 0600, or root:GROUP 0640 when run as root with
[server] group; the last admin is not deleted (serve refuses a file
without one). A running 'postie serve' picks up the changes on SIGHUP.

Exit codes: 0 done; 1 failure (e.g. the user already exists); 64 usage
error; 65 invalid user name or password; 66 import file missing; 67 no
such user; 75 the database did not answer (try again); 78 configuration
error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exitf(exitcode.Usage, "user: missing subcommand (add, passwd, del, list or import)")
		},
	}
	cmd.AddCommand(a.userAddCmd(), a.userPasswdCmd(), a.userDelCmd(), a.userListCmd(), a.userImportCmd())
	return cmd
}

// passwordFlags are the flags of the commands that set a password.
type passwordFlags struct {
	stdin  bool
	scheme string
	admin  bool
}

func (p *passwordFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&p.stdin, "password-stdin", false, "read the password from the first line of stdin instead of prompting")
	cmd.Flags().StringVar(&p.scheme, "scheme", "", "password scheme, e.g. ARGON2ID, BLF-CRYPT, SHA512-CRYPT (default auth.default_scheme)")
	registerAdmin(cmd, &p.admin)
}

// registerAdmin adds --admin, which points a user command at the web
// admins (web.admin_passwd_file) instead of the mail users.
func registerAdmin(cmd *cobra.Command, admin *bool) {
	cmd.Flags().BoolVar(admin, "admin", false, "the web admins of /admin (web.admin_passwd_file) instead of the mail users")
}

func oneUser(verb string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return exitf(exitcode.Usage, "user %s: want exactly one USER argument, got %d", verb, len(args))
		}
		return nil
	}
}

func (a *app) userAddCmd() *cobra.Command {
	var pf passwordFlags
	cmd := &cobra.Command{
		Use:   "add USER",
		Short: "Add an account",
		Example: `  postie user add --dev alice                     # prompts twice for the password
  echo 'secret' | postie user add --dev --password-stdin bob
  postie user add --admin root                    # a web admin, for /admin`,
		Args: oneUser("add"),
		RunE: func(_ *cobra.Command, args []string) error {
			return a.setPassword("add", args[0], pf)
		},
	}
	pf.register(cmd)
	return cmd
}

func (a *app) userPasswdCmd() *cobra.Command {
	var pf passwordFlags
	cmd := &cobra.Command{
		Use:   "passwd USER",
		Short: "Change an account's password",
		Args:  oneUser("passwd"),
		RunE: func(_ *cobra.Command, args []string) error {
			return a.setPassword("passwd", args[0], pf)
		},
	}
	pf.register(cmd)
	return cmd
}

// setPassword is "user add" (verb "add") and "user passwd".
func (a *app) setPassword(verb, user string, pf passwordFlags) error {
	c, db, desc, err := a.openUserDB(pf.admin)
	if err != nil {
		return err
	}
	what := "user"
	if pf.admin {
		what = "web admin"
	}
	if err := auth.ValidUsername(user); err != nil {
		return exitf(exitcode.DataErr, "user %s: %v", verb, err)
	}
	_, exists, err := db.LookupContext(context.Background(), user)
	switch {
	case err != nil:
		return exitf(exitcode.Failure, "user %s: %v", verb, err)
	case verb == "add" && exists:
		return exitf(exitcode.Failure, "user add: %s %q already exists (use 'postie user passwd' to change the password)", what, user)
	case verb == "passwd" && !exists:
		return exitf(exitcode.NoUser, "user passwd: no such %s %q", what, user)
	}
	scheme := pf.scheme
	if scheme == "" {
		scheme = c.Auth.DefaultScheme
	}
	password, err := a.readPassword(pf.stdin)
	if err != nil {
		return err
	}
	if verb == "add" {
		if pf.admin {
			if err := createAdminFile(c, desc); err != nil {
				return exitf(exitcode.Failure, "user add: web.admin_passwd_file: %v", err)
			}
		}
		err = db.Add(user, password, scheme)
	} else {
		err = db.SetPassword(user, password, scheme)
	}
	switch {
	case errors.Is(err, auth.ErrUserExists):
		return exitf(exitcode.Failure, "user add: %s %q already exists", what, user)
	case errors.Is(err, auth.ErrNoSuchUser):
		return exitf(exitcode.NoUser, "user passwd: no such %s %q", what, user)
	case errors.Is(err, auth.ErrBadUsername):
		return exitf(exitcode.DataErr, "user %s: %v", verb, err)
	case errors.Is(err, auth.ErrUnknownScheme):
		from := "--scheme"
		if pf.scheme == "" {
			from = "auth.default_scheme"
		}
		return exitf(exitcode.Usage, "user %s: %s: %v", verb, from, err)
	case err != nil:
		return exitf(exitcode.Failure, "user %s: %v", verb, err)
	}
	if verb == "add" {
		fmt.Fprintf(a.stderr, "postie: added %s %q to %s\n", what, user, desc)
	} else {
		fmt.Fprintf(a.stderr, "postie: changed the password of %q in %s\n", user, desc)
	}
	return nil
}

// readPassword reads a password from the first line of stdin, or from the
// terminal, asked twice without echo.
func (a *app) readPassword(fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(a.stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			if errors.Is(err, io.EOF) {
				return "", exitf(exitcode.DataErr, "no password on stdin")
			}
			return "", exitf(exitcode.Failure, "reading the password: %v", err)
		}
		password := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if password == "" {
			return "", exitf(exitcode.DataErr, "empty password")
		}
		return password, nil
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", exitf(exitcode.Usage, "stdin is not a terminal: use --password-stdin to read the password from it")
	}
	fmt.Fprint(a.stderr, "Password: ")
	p1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", exitf(exitcode.Failure, "reading the password: %v", err)
	}
	if len(p1) == 0 {
		return "", exitf(exitcode.DataErr, "empty password")
	}
	fmt.Fprint(a.stderr, "Repeat password: ")
	p2, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", exitf(exitcode.Failure, "reading the password: %v", err)
	}
	if string(p1) != string(p2) {
		return "", exitf(exitcode.DataErr, "the passwords do not match")
	}
	return string(p1), nil
}

func (a *app) userDelCmd() *cobra.Command {
	var admin bool
	cmd := &cobra.Command{
		Use:   "del USER",
		Short: "Delete an account (its mail is kept)",
		Args:  oneUser("del"),
		RunE: func(_ *cobra.Command, args []string) error {
			if admin {
				return a.delAdmin(args[0])
			}
			c, db, err := a.openUsers()
			if err != nil {
				return err
			}
			user := args[0]
			name, ok, err := db.LookupContext(context.Background(), user)
			if err != nil {
				return exitf(exitcode.Failure, "user del: %v", err)
			}
			if !ok {
				return exitf(exitcode.NoUser, "user del: no such user %q", user)
			}
			// Where the mail is, found before the entry (and its home)
			// goes.
			dir, _ := maildir.ExpandPath(c.Storage.MaildirRoot, c.Storage.MaildirPath, name, func(u string) (string, bool, error) {
				return db.HomeContext(context.Background(), u)
			})
			err = db.Delete(user)
			switch {
			case errors.Is(err, auth.ErrNoSuchUser):
				return exitf(exitcode.NoUser, "user del: no such user %q", user)
			case err != nil:
				return exitf(exitcode.Failure, "user del: %v", err)
			}
			fmt.Fprintf(a.stderr, "postie: deleted user %q from %s\n", name, usersDesc(c))
			if c.Storage.Backend == config.BackendMaildir && dir != "" && fileExists(dir) {
				fmt.Fprintf(a.stderr, "postie: their mail was kept in %s\n", dir)
			}
			return nil
		},
	}
	registerAdmin(cmd, &admin)
	return cmd
}

// delAdmin is "user del --admin": the last admin stays, since serve
// refuses an admin file without one and a running serve would keep the
// admins it has (auth.DB.Reload keeps its users over an empty file).
func (a *app) delAdmin(name string) error {
	_, db, desc, err := a.openUserDB(true)
	if err != nil {
		return err
	}
	canonical, ok, err := db.LookupContext(context.Background(), name)
	switch {
	case err != nil:
		return exitf(exitcode.Failure, "user del: %v", err)
	case !ok:
		return exitf(exitcode.NoUser, "user del: no such web admin %q", name)
	case len(db.Users()) == 1:
		return exitf(exitcode.Failure, "user del: %q is the last web admin in %s: serve refuses the file without one (to turn /admin off, remove web.admin_passwd_file from the config)", canonical, desc)
	}
	err = db.Delete(name)
	switch {
	case errors.Is(err, auth.ErrNoSuchUser):
		return exitf(exitcode.NoUser, "user del: no such web admin %q", name)
	case err != nil:
		return exitf(exitcode.Failure, "user del: %v", err)
	}
	fmt.Fprintf(a.stderr, "postie: deleted web admin %q from %s\n", canonical, desc)
	return nil
}

func (a *app) userListCmd() *cobra.Command {
	var admin bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the accounts, one per line",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, db, _, err := a.openUserDB(admin)
			if err != nil {
				return err
			}
			users := slices.Clone(db.Users())
			slices.Sort(users)
			for _, u := range users {
				fmt.Fprintln(a.stdout, u)
			}
			return nil
		},
	}
	registerAdmin(cmd, &admin)
	return cmd
}

// openUserDB opens the mail users (openUsers), or with admin the web
// admins of web.admin_passwd_file (a missing file is empty), and names
// them for messages (the file's path).
func (a *app) openUserDB(admin bool) (*config.Config, *auth.DB, string, error) {
	if !admin {
		c, db, err := a.openUsers()
		if err != nil {
			return nil, nil, "", err
		}
		return c, db, usersDesc(c), nil
	}
	c, err := a.loadConfig()
	if err != nil {
		return nil, nil, "", err
	}
	path := c.Web.AdminPasswdFile
	if path == "" {
		return nil, nil, "", exitf(exitcode.Config, "user --admin: web.admin_passwd_file is not set: name the web admins' file there first (see docs/web.md)")
	}
	db, err := auth.Open(path, auth.Options{Logger: newLogger(c, a.stderr, slog.LevelWarn), CacheTTL: -1})
	if err != nil {
		return nil, nil, "", exitf(exitcode.Config, "web.admin_passwd_file: %v", err)
	}
	return c, db, path, nil
}

// createAdminFile makes the admin file when it is missing, empty: as
// root with [server] user set, root:GROUP 0640 (GROUP the one serve runs
// as, which reads it after dropping root or under systemd); else 0600,
// owned by whoever runs this. auth's atomic rewrite keeps both.
func createAdminFile(c *config.Config, path string) error {
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil // there (or an error that Open reports)
	}
	mode, gid := fs.FileMode(0o600), -1
	if privdrop.IsRoot() && c.Server.User != "" {
		acct, err := privdrop.Lookup(c.Server.User, c.Server.Group)
		if err != nil {
			return fmt.Errorf("server.user: %w", err)
		}
		mode, gid = 0o640, acct.GID
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return nil // made meanwhile by another run
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if gid >= 0 {
		if err := f.Chown(0, gid); err != nil {
			os.Remove(path)
			return err
		}
	}
	// The umask may have taken bits of mode away; the group's read bit
	// is what serve needs.
	if err := f.Chmod(mode); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// openUsers loads the configuration and opens the user database; a
// logger at warn level reports what the database skipped.
func (a *app) openUsers() (*config.Config, *auth.DB, error) {
	c, err := a.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	db, err := openAuth(c, newLogger(c, a.stderr, slog.LevelWarn))
	if err != nil {
		code := exitcode.Config
		if c.Auth.Backend == config.AuthPostgres {
			code = exitcode.TempFail // most often the database is unreachable
		}
		return nil, nil, exitf(code, "user database: %v", err)
	}
	return c, db, nil
}

func (a *app) userImportCmd() *cobra.Command {
	var from string
	cmd := &cobra.Command{
		Use:     "import --from passwd-file PATH",
		Short:   "Copy a passwd-file's users into the PostgreSQL user database",
		Example: `  postie user import --config /etc/postie/postie.toml --from passwd-file /etc/postie/passwd`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return exitf(exitcode.Usage, "user import: want exactly one PATH argument, got %d", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if from != "passwd-file" {
				return exitf(exitcode.Usage, "user import: --from must be passwd-file (the only format postie imports), not %q", from)
			}
			c, err := a.loadConfig()
			if err != nil {
				return err
			}
			if c.Auth.Backend != config.AuthPostgres {
				return exitf(exitcode.Config, "user import: auth.backend is %q: import copies into the PostgreSQL user database (auth.backend = \"postgres\")", c.Auth.Backend)
			}
			if _, err := os.Stat(args[0]); err != nil {
				return exitf(exitcode.NoInput, "user import: %v", err)
			}
			_, db, err := a.openUsers()
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := db.Import(args[0])
			if err != nil {
				return exitf(exitcode.TempFail, "user import: %v (nothing imported)", err)
			}
			fmt.Fprintf(a.stdout, "added %d, updated %d, unchanged %d, skipped %d\n", st.Added, st.Updated, st.Unchanged, st.Skipped)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "format of PATH: passwd-file")
	cmd.MarkFlagRequired("from")
	return cmd
}
