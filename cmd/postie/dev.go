package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/postie-mail/postie/auth"
	"github.com/postie-mail/postie/config"
)

const (
	demoUser         = "demo"
	demoPasswordFile = "demo-password" // in the data directory
)

// Files of the --dev certificate, in the data directory (made by
// tlsconf.EnsureSelfSigned on the first start).
const (
	devCertFile = "dev-cert.pem"
	devKeyFile  = "dev-key.pem"
)

// createDemo adds the demo account with a random password to a new user
// database and keeps the password in <data_dir>/demo-password, so a
// newcomer who lost the terminal output can still log in.
func createDemo(c *config.Config, db *auth.DB) (string, error) {
	password := rand.Text()[:16] // 80 bits, base32: safe in URLs and shells
	if err := db.Add(demoUser, password, c.Auth.DefaultScheme); err != nil {
		return "", fmt.Errorf("creating the demo account: %w", err)
	}
	path := filepath.Join(c.DataDir, demoPasswordFile)
	if err := os.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("saving the demo password: %w", err)
	}
	return password, nil
}

// devBanner tells a newcomer what just happened and what to try. It goes to
// stdout; the log goes to stderr.
func (a *app) devBanner(c *config.Config, addr, tlsAddr, demoPassword string) {
	w := a.stdout
	pwFile := filepath.Join(c.DataDir, demoPasswordFile)
	fmt.Fprintf(w, "\npostie is running in dev mode; its state is in %s\n", c.DataDir)
	cred := ""
	switch {
	case demoPassword != "":
		fmt.Fprintf(w, "\nCreated a demo account (the password is also saved in %s):\n", pwFile)
		fmt.Fprintf(w, "  user:     %s\n  password: %s\n", demoUser, demoPassword)
		cred = demoUser + ":" + demoPassword
	case fileExists(pwFile):
		fmt.Fprintf(w, "\nThe demo account's first password is in %s\n", pwFile)
		cred = demoUser + `:$(cat ` + shellQuote(pwFile) + `)`
	default:
		cred = demoUser + ":PASSWORD"
	}
	self, flags := a.selfCommand(), a.devFlags(c)
	fmt.Fprintf(w, "\nPOP3 is listening on %s. Try, in another terminal:\n", addr)
	fmt.Fprintf(w, "  printf 'Subject: hello\\n\\nHello from postie.\\n' | %s deliver%s %s\n", self, flags, demoUser)
	fmt.Fprintf(w, "  curl -u \"%s\" pop3://%s/      # list messages\n", cred, addr)
	fmt.Fprintf(w, "  curl -u \"%s\" pop3://%s/1     # read message 1\n", cred, addr)
	if tlsAddr != "" {
		fmt.Fprintf(w, "POP3 over TLS (self-signed certificate %s) is on %s, and STLS on %s:\n", c.TLS.CertFile, tlsAddr, addr)
		fmt.Fprintf(w, "  curl --cacert %s -u \"%s\" pop3s://%s/1\n", shellQuote(c.TLS.CertFile), cred, tlsAddr)
	}
	a.intake.devIntakeBanner(w)
	fmt.Fprintf(w, "Add users with:  %s user add%s NAME   (then: kill -HUP %d)\n", self, flags, os.Getpid())
	fmt.Fprintf(w, "Stop with Ctrl-C.\n\n")
}

// selfCommand is how the user can run this binary again, for the hints of
// the banner.
func (a *app) selfCommand() string {
	exe := os.Args[0]
	switch {
	case strings.Contains(exe, string(filepath.Separator)+"go-build"):
		return "go run ./cmd/postie"
	case !strings.ContainsRune(exe, filepath.Separator):
		if p, err := exec.LookPath(exe); err != nil || p == "" {
			return "./" + exe
		}
	}
	return exe
}

// devFlags are the flags that reach the same --dev state.
func (a *app) devFlags(c *config.Config) string {
	s := " --dev"
	if a.dataDir != "" {
		s += " --data-dir " + shellQuote(c.DataDir)
	}
	return s
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '+' || r == ',' || r == ':' ||
			'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
