package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/postie-mail/postie/pop3client"
)

// clientOptions are the pop3client options of account a.
func clientOptions(a *Account, opts *Options) (*pop3client.Options, error) {
	o := &pop3client.Options{
		Timeout:           a.timeout,
		Logger:            opts.logger(),
		AllowInsecureAuth: a.Insecure,
		PinSHA256:         a.pin,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
	}
	switch a.TLS {
	case "implicit":
		o.TLS = pop3client.TLSImplicit
	case "starttls":
		o.TLS = pop3client.TLSStartTLS
	default:
		o.TLS = pop3client.TLSNone
		o.TLSConfig = nil
	}
	if a.CAFile != "" {
		pem, err := os.ReadFile(a.CAFile)
		if err != nil {
			return nil, fail(KindConfig, "ca_file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fail(KindConfig, "ca_file: %s holds no PEM certificate", a.CAFile)
		}
		o.TLSConfig.RootCAs = pool
	}
	return o, nil
}

// connect dials the server and logs in. With an OAuth2 token (from
// token_command or the built-in sign-in), a refused token is replaced once
// by a fresh one, on a new connection: never more, so a server that
// refuses every token is not asked in a loop.
func (f *Fetcher) connect(ctx context.Context) (*pop3client.Client, error) {
	a := f.acct
	opts, err := clientOptions(a, &f.opts)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		c, err := pop3client.Dial(ctx, a.Addr(), opts)
		if err != nil {
			return nil, classifyConn(a, err)
		}
		err = f.login(ctx, c, attempt > 0)
		if err == nil {
			return c, nil
		}
		c.Close()
		var fe *Error
		if a.TokenCommand != "" && attempt == 0 && errors.As(err, &fe) && fe.Kind == KindAuth {
			f.log().Info("token refused; running token_command again", "account", a.Name)
			f.token = ""
			continue
		}
		if a.UsesOAuth() && attempt == 0 && errors.As(err, &fe) && fe.Kind == KindAuth && f.tokenSent {
			f.log().Info("token refused; refreshing it and trying once more", "account", a.Name)
			continue
		}
		if a.UsesOAuth() && f.tokenSent && errors.As(err, &fe) && fe.Kind == KindAuth && fe.Hint == "" {
			fe.Hint = fmt.Sprintf("The server refused a fresh token. The sign-in may be for another account than %s\n"+
				"(run `postie fetch login %s` again and choose %s), or POP3 may be off for the mailbox.", a.User, a.Name, a.User)
		}
		return nil, err
	}
}

// login authenticates with the account's mechanism, or the best the server
// offers: SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, then USER/PASS (and LOGIN if
// that is all); with a token, OAUTHBEARER, else XOAUTH2.
func (f *Fetcher) login(ctx context.Context, c *pop3client.Client, fresh bool) error {
	a := f.acct
	caps, err := c.Capabilities(ctx)
	if err != nil {
		return classifyConn(a, err)
	}
	mech := a.Auth
	f.tokenSent = false
	if a.TokenCommand != "" || a.UsesOAuth() {
		var tok string
		var err error
		if a.UsesOAuth() {
			tok, err = f.oauthToken(ctx, fresh)
		} else {
			tok, err = f.getToken(ctx, fresh)
		}
		if err != nil {
			return err
		}
		f.tokenSent = true
		if mech == "auto" {
			mech = "xoauth2"
			if caps.HasSASL("OAUTHBEARER") {
				mech = "oauthbearer"
			}
		}
		m := pop3client.SASLXOAuth2(a.User, tok)
		if mech == "oauthbearer" {
			m = pop3client.SASLOAuthBearer(a.User, tok)
		}
		if err := c.Auth(ctx, m); err != nil {
			return authError(a, "AUTH "+strings.ToUpper(mech), err)
		}
		return nil
	}
	pass, err := f.password(ctx)
	if err != nil {
		return err
	}
	mechs := []string{mech}
	if mech == "auto" {
		mechs = autoMechanisms(caps)
		if f.mech != "" && slices.Contains(mechs, f.mech) {
			mechs = []string{f.mech} // what worked last time
		} else if len(mechs) > 1 && strings.HasPrefix(mechs[0], "scram") && f.scramRefusedRecently() {
			f.log().Debug("skipping SCRAM: the server refused it and accepted the next mechanism", "account", a.Name,
				"refused", f.scramRefused.UTC().Format(time.RFC3339), "mechanism", mechs[1])
			mechs = mechs[1:]
		}
	}
	for i, mech := range mechs {
		err := tryLogin(ctx, c, a, mech, pass)
		if err == nil {
			if i > 0 && f.mech == "" {
				f.log().Warn(fmt.Sprintf("%s was refused and %s worked: the runs of the next %d days use %s (set auth = %q for this account to make it for good)",
					strings.ToUpper(mechs[0]), strings.ToUpper(mech), int(scramMemory/(24*time.Hour)), strings.ToUpper(mech), mech), "account", a.Name)
				f.scramRefused, f.scramRefusedFor, f.scramFallback, f.remembered = f.opts.now().UTC().Truncate(time.Second), scramKey(a), mech, true
			}
			f.mech = mech
			f.log().Debug("logged in", "account", a.Name, "mechanism", mech)
			return nil
		}
		var fe *Error
		isAuth := errors.As(err, &fe) && fe.Kind == KindAuth
		if isAuth && len(mechs) == 1 && f.scramRefusedFor != "" {
			// The password may have changed (and have SCRAM keys now):
			// the next run tries everything again.
			f.scramRefused, f.scramRefusedFor, f.scramFallback, f.remembered = time.Time{}, "", "", true
		}
		// SCRAM needs keys the server may not have for this user
		// (Dovecot and postie announce it for every user, and cannot
		// say which users have keys without telling who exists): after
		// a refusal, the next mechanism gets one try.
		if i+1 < len(mechs) && strings.HasPrefix(mech, "scram") && isAuth {
			f.log().Info("SCRAM refused; trying the next mechanism", "account", a.Name, "mechanism", mechs[i+1])
			continue
		}
		return err
	}
	return fail(KindAuth, "no login mechanism to try")
}

// scramMemory is how long a SCRAM refusal is remembered: a user whose
// password gets SCRAM keys later (a new password, a new scheme) gets
// SCRAM again after at most this long, at the cost of one refused login.
const scramMemory = 30 * 24 * time.Hour

// scramKey names what a SCRAM refusal is remembered for: the user at the
// server, so that a changed account in the config tries SCRAM afresh.
func scramKey(a *Account) string { return a.User + "@" + a.Addr() }

// scramRefusedRecently reports whether a run of this account (this
// process's or, from the status file, an earlier one) saw SCRAM refused
// and the next mechanism accepted, for the same user and server, less than
// scramMemory ago.
func (f *Fetcher) scramRefusedRecently() bool {
	f.recall()
	if f.scramRefusedFor != scramKey(f.acct) {
		return false
	}
	age := f.opts.now().Sub(f.scramRefused)
	return age >= 0 && age < scramMemory
}

// autoMechanisms lists the mechanisms to try with a password, best first:
// SCRAM-SHA-256 (or else SCRAM-SHA-1), then the first of PLAIN, USER/PASS
// and LOGIN the server offers (USER/PASS when it says nothing).
func autoMechanisms(caps pop3client.Caps) []string {
	var out []string
	switch {
	case caps.HasSASL("SCRAM-SHA-256"):
		out = append(out, "scram-sha-256")
	case caps.HasSASL("SCRAM-SHA-1"):
		out = append(out, "scram-sha-1")
	}
	switch {
	case caps.HasSASL("PLAIN"):
		out = append(out, "plain")
	case caps.Has("USER") || !caps.Has("SASL"):
		out = append(out, "user")
	case caps.HasSASL("LOGIN"):
		out = append(out, "login")
	case len(out) == 0:
		out = append(out, "user")
	}
	return out
}

// tryLogin logs in with one mechanism.
func tryLogin(ctx context.Context, c *pop3client.Client, a *Account, mech, pass string) error {
	var m pop3client.SASLMechanism
	var err error
	switch mech {
	case "user":
		err = c.Login(ctx, a.User, pass)
	case "apop":
		err = c.APOP(ctx, a.User, pass)
	case "scram-sha-256":
		m = pop3client.SASLScramSHA256(a.User, pass)
	case "scram-sha-1":
		m = pop3client.SASLScramSHA1(a.User, pass)
	case "plain":
		m = pop3client.SASLPlain("", a.User, pass)
	case "login":
		m = pop3client.SASLLogin(a.User, pass)
	default:
		return fail(KindConfig, "auth %q needs token_command", mech)
	}
	if m != nil {
		err = c.Auth(ctx, m)
	}
	if err != nil {
		how := "AUTH " + strings.ToUpper(mech)
		switch mech {
		case "user":
			how = "USER/PASS"
		case "apop":
			how = "APOP"
		}
		return authError(a, how, err)
	}
	return nil
}

// password reads the account's password from its source.
func (f *Fetcher) password(ctx context.Context) (string, error) {
	a := f.acct
	switch {
	case a.PasswordFile != "":
		b, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			return "", fail(KindConfig, "password_file: %v", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			return "", fail(KindConfig, "password_file: %s: empty first line", a.PasswordFile)
		}
		return line, nil
	case a.PasswordEnv != "":
		p := os.Getenv(a.PasswordEnv)
		if p == "" {
			return "", fail(KindConfig, "password_env: $%s is not set", a.PasswordEnv)
		}
		return p, nil
	}
	return runSecret(ctx, "password_command", a.PasswordCommand)
}

// getToken returns the OAuth2 access token, running token_command when
// there is none yet or fresh is set.
func (f *Fetcher) getToken(ctx context.Context, fresh bool) (string, error) {
	if f.token != "" && !fresh {
		return f.token, nil
	}
	tok, err := runSecret(ctx, "token_command", f.acct.TokenCommand)
	if err != nil {
		return "", err
	}
	f.token = tok
	return tok, nil
}

// runSecret runs "sh -c command" and returns the first line of its output.
func runSecret(ctx context.Context, key, command string) (string, error) {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	var out bytes.Buffer
	var stderr limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg != "" {
			msg = ": " + msg
		}
		return "", fail(KindConfig, "%s: %v%s", key, err, msg)
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "", fail(KindConfig, "%s printed nothing", key)
	}
	return line, nil
}

// recall reads a SCRAM refusal of an earlier run from the status file,
// once per process (a status file that cannot be read remembers none).
func (f *Fetcher) recall() {
	if f.remembered {
		return
	}
	f.remembered = true
	if old, err := f.cfg.LastStatus(f.acct); err == nil && old != nil && f.scramRefused.IsZero() {
		f.scramRefused, f.scramRefusedFor, f.scramFallback = old.SCRAMRefused, old.SCRAMRefusedFor, old.SCRAMFallback
	}
}
