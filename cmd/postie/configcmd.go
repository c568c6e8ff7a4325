package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/postie-mail/postie/auth"
	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/internal/posixacl"
	"github.com/postie-mail/postie/internal/privdrop"
	"github.com/postie-mail/postie/store/pgstore"
)

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check the configuration, or show it with its defaults",
		Args:  cobra.NoArgs,
	}
	var quiet bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Check the configuration, the files it names and the database",
		Long: `Check the configuration file as serve reads it, and what it names:
the permissions of the config file, the passwd-file, the web admins'
file, the TLS keys and the secret files (who may read them, by their mode
bits and POSIX ACL entries, and that the account serve runs as, [server]
user, can); the certificates (readable, matching their keys, not
expired; a warning within 14 days of expiry); the passwd-file's lines (bad
ones by line number, never their text); that maildir_root and data_dir are
writable by that account; and, with the PostgreSQL store, that the
database answers within storage.postgres_timeout.

One line per check: "ok:", "warning:" or "error:", the config key and
what was found. Exit status 78 when any check is an error, else 0. Run it
as root to check files only root can read.`,
		Example: `  postie config check --config /etc/postie/postie.toml
  postie config check --quiet   # warnings and errors only`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return a.configCheck(quiet) },
	}
	check.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only warnings and errors")
	var all bool
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration, secrets masked",
		Long: `Print the configuration serve would use, as TOML that serve reads
back: paths resolved, durations and sizes normalised, secrets (passwords,
the password of a connection string, client secrets) replaced by
"` + hidden + `". By default only the keys whose values differ from the
defaults; --all prints every key.`,
		Example: `  postie config show
  postie config show --all --config /etc/postie/postie.toml`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := a.loadConfig()
			if err != nil {
				return err
			}
			text, err := showConfig(c, all)
			if err != nil {
				return withCode(exitcode.Failure, fmt.Errorf("config show: %w", err))
			}
			_, err = a.stdout.Write(text)
			return err
		},
	}
	show.Flags().BoolVar(&all, "all", false, "print every key, defaults included")
	cmd.AddCommand(check, show)
	return cmd
}

// checker collects the results of config check.
type checker struct {
	w               io.Writer
	quiet           bool
	errors, warning int
	acct            account
	now             time.Time
}

// account is who serve runs as, for the permission checks. serve drops
// the supplementary groups, so only the user and its one group count.
type account struct {
	name     string
	uid, gid int
}

func (ck *checker) report(level, key, format string, args ...any) {
	switch level {
	case "error":
		ck.errors++
	case "warning":
		ck.warning++
	default:
		if ck.quiet {
			return
		}
	}
	fmt.Fprintf(ck.w, "%s: %s: %s\n", level, key, fmt.Sprintf(format, args...))
}

func (ck *checker) ok(key, format string, args ...any)   { ck.report("ok", key, format, args...) }
func (ck *checker) warn(key, format string, args ...any) { ck.report("warning", key, format, args...) }
func (ck *checker) fail(key, format string, args ...any) { ck.report("error", key, format, args...) }

func (a *app) configCheck(quiet bool) error {
	ck := &checker{w: a.stdout, quiet: quiet, now: time.Now()}
	var c *config.Config
	var path string
	if a.dev {
		var err error
		if c, err = a.loadConfig(); err != nil {
			return err
		}
	} else {
		var err error
		if path, err = a.configFile(); err != nil {
			return err
		}
		if c, err = config.Load(path); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				ck.fail("config", "%s", strings.TrimPrefix(line, "config: "))
			}
			return exitf(exitcode.Config, "config check: %s does not load", path)
		}
	}
	ck.checkAccount(c)
	if path != "" {
		ck.checkConfigFile(c, path)
	}
	ck.checkPasswd(c)
	ck.checkAdminFile(c)
	ck.checkTLS(c)
	ck.checkSecretFile("storage.postgres_dsn_file", c.Storage.PostgresDSNFile)
	ck.checkSecretFile("auth.postgres_dsn_file", c.Auth.PostgresDSNFile)
	ck.checkSecretFile("auth.oauth.client_secret_file", c.Auth.OAuth.ClientSecretFile)
	ck.checkDataDir(c)
	ck.checkStorage(c)
	if ck.errors > 0 {
		return exitf(exitcode.Config, "config check: %d errors, %d warnings", ck.errors, ck.warning)
	}
	return nil
}

// checkAccount finds the account serve runs as: [server] user, else the
// one running config check.
func (ck *checker) checkAccount(c *config.Config) {
	if c.Server.User == "" {
		u, err := user.Current()
		name := strconv.Itoa(os.Geteuid())
		if err == nil {
			name = u.Username
		}
		ck.acct = account{name: name, uid: os.Geteuid(), gid: os.Getegid()}
		if privdrop.IsRoot() {
			ck.warn("server.user", "not set: postie serve started as root refuses to run (under systemd the unit's User= applies); checking access as root")
		} else {
			ck.ok("server.user", "not set: postie serve runs as whoever starts it; checking access as %s (uid %d, gid %d)", name, ck.acct.uid, ck.acct.gid)
		}
		return
	}
	acct, err := privdrop.Lookup(c.Server.User, c.Server.Group)
	if err != nil {
		ck.fail("server.user", "%v", err)
		ck.acct = account{name: "root"}
		return
	}
	ck.acct = account{name: acct.User, uid: acct.UID, gid: acct.GID}
	ck.ok("server.user", "postie serve runs as %s (uid %d), group %s (gid %d)", acct.User, acct.UID, acct.Group, acct.GID)
}

// can reports whether the account may access the file at path, whose
// info is fi, with the permission bits want (4 read, 2 write, 1
// search/execute): by its POSIX ACL when it has extended entries (read
// as the kernel does), else by its mode.
func (a account) can(path string, fi fs.FileInfo, want fs.FileMode) bool {
	if a.uid == 0 {
		return want&1 == 0 || fi.IsDir() || fi.Mode()&0o111 != 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	if acl, err := posixacl.Read(path); err == nil && acl.Extended() {
		return acl.Allows(st.Uid, st.Gid, uint32(a.uid), uint32(a.gid), uint16(want))
	}
	perm := fi.Mode().Perm()
	var have fs.FileMode
	switch {
	case int(st.Uid) == a.uid:
		have = perm >> 6 & 7
	case int(st.Gid) == a.gid:
		have = perm >> 3 & 7
	default:
		have = perm & 7
	}
	return have&want == want
}

// reach returns the first directory above path that the account cannot
// search, "" when it can reach path.
func (a account) reach(path string) string {
	dir := filepath.Dir(path)
	for {
		if fi, err := os.Stat(dir); err == nil && !a.can(dir, fi, 1) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// owner describes fi's owner, group and mode, as "root:postie 0640".
func owner(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("%04o", fi.Mode().Perm())
	}
	u, g := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if uu, err := user.LookupId(u); err == nil {
		u = uu.Username
	}
	if gg, err := user.LookupGroupId(g); err == nil {
		g = gg.Name
	}
	return fmt.Sprintf("%s:%s %04o", u, g, fi.Mode().Perm())
}

// readable checks that the account can read the file at path, reporting
// an error under key when not; it returns the file's info (nil when it
// does not exist or cannot be examined, which it reported).
func (ck *checker) readable(key, path string) fs.FileInfo {
	fi, err := os.Stat(path)
	if err != nil {
		ck.fail(key, "%v", err)
		return nil
	}
	if !fi.Mode().IsRegular() {
		ck.fail(key, "%s is not a regular file", path)
		return nil
	}
	if d := ck.acct.reach(path); d != "" {
		ck.fail(key, "%s: %s cannot enter %s (%s)", path, ck.acct.name, d, ownerOf(d))
		return nil
	}
	if !ck.acct.can(path, fi, 4) {
		ck.fail(key, "%s (%s) is not readable by %s, which postie runs as", path, owner(fi), ck.acct.name)
		return nil
	}
	return fi
}

func ownerOf(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return err.Error()
	}
	return owner(fi)
}

// checkPrivate reports a file holding secrets that others may read or
// anyone but its owner may write: readable by every user is an error, by
// a group other than the account's a warning (the documented setup is
// root:postie 0640, or the account's own file 0600). A POSIX ACL is read
// too: an entry that lets a user or group write is an error, one that
// lets a user or group other than the account read a warning, as the
// mode's group bits are.
func (ck *checker) checkPrivate(key, path string, fi fs.FileInfo, what string) bool {
	perm := fi.Mode().Perm()
	st, _ := fi.Sys().(*syscall.Stat_t)
	acl, aclErr := posixacl.Read(path)
	group := perm >> 3 & 7   // with an extended ACL, these bits are its mask
	var wide *posixacl.Entry // a named entry that grants what it should not
	for i, e := range acl {
		switch {
		case e.Tag == posixacl.GroupObj:
			group = fs.FileMode(acl.Effective(e))
		case e.Tag != posixacl.User && e.Tag != posixacl.Group:
		case acl.Effective(e)&posixacl.PermWrite != 0 && !(e.Tag == posixacl.User && st != nil && e.ID == st.Uid):
			wide = &acl[i]
		case wide == nil && acl.Effective(e)&posixacl.PermRead != 0 && !ck.mayRead(e, st):
			wide = &acl[i]
		}
	}
	switch {
	case perm&0o004 != 0:
		ck.fail(key, "%s (%s) is readable by every user and holds %s: chmod o-rwx", path, owner(fi), what)
	case perm&0o002 != 0 || group&0o2 != 0 && !acl.Extended():
		ck.fail(key, "%s (%s) is writable by others than its owner: chmod go-w", path, owner(fi))
	case group&0o2 != 0:
		ck.fail(key, "%s (%s) is writable by its group through its ACL: setfacl -m g::r %s", path, owner(fi), path)
	case wide != nil && acl.Effective(*wide)&posixacl.PermWrite != 0:
		ck.fail(key, "%s (%s) is writable by %s through its ACL: setfacl -x %s %s", path, owner(fi), aclWho(*wide), aclSpec(*wide), path)
	case group&0o4 != 0 && st != nil && int(st.Gid) != ck.acct.gid && !acl.Extended():
		ck.warn(key, "%s (%s) is readable by its group, which postie does not run as: chmod g-r, or give it to postie's group", path, owner(fi))
	case group&0o4 != 0 && st != nil && int(st.Gid) != ck.acct.gid:
		ck.warn(key, "%s (%s) is readable by its group through its ACL, and postie does not run as that group: setfacl -m g::- %s, or give it to postie's group", path, owner(fi), path)
	case wide != nil:
		ck.warn(key, "%s (%s) is readable by %s through its ACL, and holds %s: setfacl -x %s %s", path, owner(fi), aclWho(*wide), what, aclSpec(*wide), path)
	case aclErr != nil:
		ck.warn(key, "%s: its ACL cannot be read, so who else may read it is not known: %v", path, aclErr)
	default:
		return true
	}
	return false
}

// mayRead reports whether the named ACL entry e is one that may read a
// secret of a file with stat st: the account's (its user or its group),
// the file's owner, or root.
func (ck *checker) mayRead(e posixacl.Entry, st *syscall.Stat_t) bool {
	if e.Tag == posixacl.Group {
		return int(e.ID) == ck.acct.gid
	}
	return e.ID == 0 || int(e.ID) == ck.acct.uid || (st != nil && e.ID == st.Uid)
}

// aclWho names the user or group of a named ACL entry: "user bob (uid
// 1001)", or "user 1001" when it has no name.
func aclWho(e posixacl.Entry) string {
	id := strconv.FormatUint(uint64(e.ID), 10)
	if e.Tag == posixacl.Group {
		if g, err := user.LookupGroupId(id); err == nil {
			return "group " + g.Name + " (gid " + id + ")"
		}
		return "group " + id
	}
	if u, err := user.LookupId(id); err == nil {
		return "user " + u.Username + " (uid " + id + ")"
	}
	return "user " + id
}

// aclSpec is the entry as setfacl -x takes it: "u:1001" or "g:4".
func aclSpec(e posixacl.Entry) string {
	tag := "u:"
	if e.Tag == posixacl.Group {
		tag = "g:"
	}
	return tag + strconv.FormatUint(uint64(e.ID), 10)
}

func (ck *checker) checkConfigFile(c *config.Config, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		ck.fail("config", "%v", err)
		return
	}
	perm := fi.Mode().Perm()
	switch {
	case perm&0o022 != 0:
		ck.fail("config", "%s (%s) is writable by others than its owner: chmod go-w", path, owner(fi))
	case perm&0o004 != 0 && c.Storage.PostgresDSN != "":
		ck.fail("config", "%s (%s) holds storage.postgres_dsn and is readable by every user: chmod o-rwx (or move the DSN to storage.postgres_dsn_file)", path, owner(fi))
	case !ck.acct.can(path, fi, 4) || ck.acct.reach(path) != "":
		ck.fail("config", "%s (%s) is not readable by %s: postie deliver and serve under systemd read it as that account", path, owner(fi), ck.acct.name)
	default:
		ck.ok("config", "%s (%s) loads and is valid", path, owner(fi))
	}
}

func (ck *checker) checkPasswd(c *config.Config) {
	if c.Auth.Backend == config.AuthPostgres {
		switch {
		case c.Auth.PostgresDSNFile != "":
			ck.checkDatabase(c, "auth.postgres_dsn_file", "", c.Auth.PostgresDSNFile)
		case c.Auth.PostgresDSN != "":
			ck.checkDatabase(c, "auth.postgres_dsn", c.Auth.PostgresDSN, "")
		default:
			ck.ok("auth.backend", "the users are in the store's database (table postie_users)")
		}
		return
	}
	const key = "auth.passwd_file"
	path := c.Auth.PasswdFile
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		ck.warn(key, "%s does not exist: no user can log in (postie user add creates it)", path)
		return
	}
	fi, users, ok := ck.checkHashFile(key, path)
	if !ok {
		return
	}
	ck.ok(key, "%s (%s): %d users", path, owner(fi), users)
}

// checkHashFile checks a file of password hashes in the passwd-file
// format (auth.passwd_file, web.admin_passwd_file): readable, private,
// and each line well-formed. It returns the file's info and the number
// of accounts, and ok false when it has reported a failure that leaves
// nothing more to check.
func (ck *checker) checkHashFile(key, path string) (fi fs.FileInfo, accounts int, ok bool) {
	fi = ck.readable(key, path)
	if fi == nil || !ck.checkPrivate(key, path, fi, "password hashes") {
		return nil, 0, false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		ck.fail(key, "%v (run config check as root)", err)
		return nil, 0, false
	}
	accounts, problems := auth.CheckPasswdFile(data)
	for _, p := range problems {
		if p.Malformed {
			ck.fail(key, "%s: %s (skipped)", path, p)
		} else {
			ck.warn(key, "%s: %s", path, p)
		}
	}
	return fi, accounts, true
}

// checkAdminFile checks web.admin_passwd_file, which serve refuses to
// start without (missing, or without an account), and which holds
// password hashes.
func (ck *checker) checkAdminFile(c *config.Config) {
	const key = "web.admin_passwd_file"
	path := c.Web.AdminPasswdFile
	if path == "" {
		return
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		ck.fail(key, "%s does not exist: serve refuses to start (postie user add --admin NAME makes it)", path)
		return
	}
	fi, admins, ok := ck.checkHashFile(key, path)
	if !ok {
		return
	}
	if admins == 0 {
		ck.fail(key, "%s holds no account: serve refuses to start (postie user add --admin NAME adds one)", path)
		return
	}
	ck.ok(key, "%s (%s): %d admins", path, owner(fi), admins)
}

func (ck *checker) checkTLS(c *config.Config) {
	type pair struct{ prefix, cert, key string }
	var pairs []pair
	if c.TLS.CertFile != "" {
		pairs = append(pairs, pair{"tls.", c.TLS.CertFile, c.TLS.KeyFile})
	}
	for i, p := range c.TLS.Certificates {
		pairs = append(pairs, pair{fmt.Sprintf("tls.certificates[%d].", i), p.CertFile, p.KeyFile})
	}
	for _, p := range pairs {
		certKey, keyKey := p.prefix+"cert_file", p.prefix+"key_file"
		cfi, kfi := ck.readable(certKey, p.cert), ck.readable(keyKey, p.key)
		if kfi != nil && ck.checkPrivate(keyKey, p.key, kfi, "a private key") {
			ck.ok(keyKey, "%s (%s)", p.key, owner(kfi))
		}
		if cfi == nil || kfi == nil {
			continue
		}
		pair, err := tls.LoadX509KeyPair(p.cert, p.key)
		if err != nil {
			ck.fail(certKey, "%s: %v", p.cert, err)
			continue
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			ck.fail(certKey, "%s: %v", p.cert, err)
			continue
		}
		ck.checkExpiry(certKey, p.cert, leaf)
	}
	if f := c.Auth.ClientCAFile; f != "" {
		if ck.readable("auth.client_ca_file", f) != nil {
			data, err := os.ReadFile(f)
			var n int
			for rest := data; err == nil; {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
				if cert, perr := x509.ParseCertificate(b.Bytes); perr == nil {
					n++
					ck.checkExpiry("auth.client_ca_file", f, cert)
				}
			}
			if n == 0 {
				ck.fail("auth.client_ca_file", "%s holds no PEM certificate", f)
			}
		}
	}
}

// checkExpiry reports a certificate that is not valid now (an error) or
// expires within certWarnBefore (a warning).
func (ck *checker) checkExpiry(key, path string, cert *x509.Certificate) {
	name := cert.Subject.CommonName
	if len(cert.DNSNames) > 0 {
		name = cert.DNSNames[0]
	}
	until := cert.NotAfter.UTC().Format(time.RFC3339)
	left := cert.NotAfter.Sub(ck.now)
	switch {
	case left <= 0:
		ck.fail(key, "%s: the certificate for %s expired on %s", path, name, until)
	case ck.now.Before(cert.NotBefore):
		ck.fail(key, "%s: the certificate for %s is not valid before %s", path, name, cert.NotBefore.UTC().Format(time.RFC3339))
	case left <= certWarnBefore:
		ck.warn(key, "%s: the certificate for %s expires in %d days (%s)", path, name, daysLeft(left), until)
	default:
		ck.ok(key, "%s: the certificate for %s is valid until %s (%d days)", path, name, until, daysLeft(left))
	}
}

// checkSecretFile checks a file named by key that holds a secret.
func (ck *checker) checkSecretFile(key, path string) {
	if path == "" {
		return
	}
	fi := ck.readable(key, path)
	if fi == nil || !ck.checkPrivate(key, path, fi, "a secret") {
		return
	}
	if fi.Size() == 0 {
		ck.fail(key, "%s is empty", path)
		return
	}
	ck.ok(key, "%s (%s)", path, owner(fi))
}

// checkDir checks that the account can create files in dir (or, when it
// does not exist, in the nearest directory above it that does). dataDir
// is data_dir: serve started as root makes it for the account when it is
// missing, and everything below it.
func (ck *checker) checkDir(key, dir, dataDir string, private bool) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(dataDir); errors.Is(derr, fs.ErrNotExist) && (dir == dataDir || strings.HasPrefix(dir, dataDir+"/")) {
			ck.warn(key, "%s does not exist yet: postie makes it (serve started as root makes data_dir for %s; under systemd, StateDirectory= does)", dir, ck.acct.name)
			return
		}
		parent := filepath.Dir(dir)
		for {
			pfi, err := os.Stat(parent)
			if err == nil {
				if ck.acct.can(parent, pfi, 3) && ck.acct.reach(parent) == "" {
					ck.warn(key, "%s does not exist yet: postie creates it", dir)
				} else {
					ck.fail(key, "%s does not exist and %s cannot create it in %s (%s)", dir, ck.acct.name, parent, owner(pfi))
				}
				return
			}
			if parent == filepath.Dir(parent) {
				ck.fail(key, "%s: %v", dir, err)
				return
			}
			parent = filepath.Dir(parent)
		}
	}
	switch {
	case err != nil:
		ck.fail(key, "%v", err)
	case !fi.IsDir():
		ck.fail(key, "%s is not a directory", dir)
	case ck.acct.reach(dir) != "":
		d := ck.acct.reach(dir)
		ck.fail(key, "%s: %s cannot enter %s (%s)", dir, ck.acct.name, d, ownerOf(d))
	case !ck.acct.can(dir, fi, 7):
		ck.fail(key, "%s (%s) is not writable by %s, which postie runs as", dir, owner(fi), ck.acct.name)
	case private && fi.Mode().Perm()&0o007 != 0:
		ck.warn(key, "%s (%s) is open to every user: chmod o-rwx (mail is private)", dir, owner(fi))
	default:
		ck.ok(key, "%s (%s) is writable by %s", dir, owner(fi), ck.acct.name)
	}
}

func (ck *checker) checkDataDir(c *config.Config) {
	ck.checkDir("data_dir", c.DataDir, c.DataDir, true)
	path := filepath.Join(c.DataDir, scramSecretFile)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return // made on the first start
	case err != nil:
		ck.fail("data_dir", "%v", err)
	case ck.checkPrivate("data_dir", path, fi, "the SCRAM secret"):
		if !ck.acct.can(path, fi, 4) {
			ck.fail("data_dir", "%s (%s) is not readable by %s, which postie runs as", path, owner(fi), ck.acct.name)
		}
	}
}

func (ck *checker) checkStorage(c *config.Config) {
	s := c.Storage
	if s.Backend != config.BackendPostgres {
		ck.checkDir("storage.maildir_root", s.MaildirRoot, c.DataDir, true)
		return
	}
	key := "storage.postgres_dsn"
	if s.PostgresDSNFile != "" {
		key = "storage.postgres_dsn_file"
	}
	ck.checkDatabase(c, key, s.PostgresDSN, s.PostgresDSNFile)
}

// checkDatabase asks the database of dsn (or of the DSN in file) for its
// version and postie's schema version; key names it.
func (ck *checker) checkDatabase(c *config.Config, key, dsn, file string) {
	s := c.Storage
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			ck.fail(key, "%v", err)
			return
		}
		dsn = strings.TrimSpace(string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.PostgresTimeout.Std())
	defer cancel()
	r, err := pgstore.Ping(ctx, dsn)
	if err != nil {
		msg := err.Error()
		if pw := dsnPassword(dsn); pw != "" {
			msg = strings.ReplaceAll(msg, pw, hidden)
		}
		ck.fail(key, "no answer from the database (storage.postgres_timeout %v): %s", s.PostgresTimeout.Std(), msg)
		return
	}
	switch {
	case r.Schema == 0:
		ck.ok(key, "PostgreSQL %s answers; postie's tables are not there yet (serve or deliver makes them)", r.ServerVersion)
	case r.Schema > r.Known:
		ck.fail(key, "PostgreSQL %s answers, but postie's schema is at version %d, newer than this postie knows (%d): upgrade postie", r.ServerVersion, r.Schema, r.Known)
	default:
		ck.ok(key, "PostgreSQL %s answers; postie's schema version %d (this postie knows %d)", r.ServerVersion, r.Schema, r.Known)
	}
}
