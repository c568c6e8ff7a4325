package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/tlsconf"
)

// loginLine finds postie's login log line for user and returns the method
// and whether TLS was on.
func (s *tlsServer) loginLine(t *testing.T, user string) (method, tls string) {
	t.Helper()
	m := s.WaitLog(t, `msg=login session=\d+ remote=127\.0\.0\.1 user=`+regexp.QuoteMeta(user)+` method=(\S+) tls=(\S+)`)
	return m[1], m[2]
}

// GNU mailutils' movemail with default settings, over POP3S and (pop://)
// with the STLS it uses by itself, into an mbox. The mbox is compared
// byte for byte as movemail writes it: its From_ line, the header with
// the X-IMAPbase (first message) and X-UID fields it adds, the body, a
// blank line.
func TestMovemailTLS(t *testing.T) {
	t.Parallel()
	movemail := testenv.LookPath(t, "movemail")
	s := startTLSConfig(t, tlsConfig{passwd: "alice:{PLAIN}alicepw\nbob:{PLAIN}bobpw\n"})
	want := map[string]string{
		"alice": s.deliver(t, "alice", testMessage),
		"bob":   s.deliver(t, "bob", "Subject: for bob\n\nFrom the start of a line\n.\n"),
	}
	for _, tc := range []struct{ name, user, url string }{
		{"pops", "alice", "pops://alice:alicepw@" + s.POP3S},
		{"STLS", "bob", "pop://bob:bobpw@" + s.POP3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mbox := filepath.Join(dir, "mbox")
			run(t, []string{"HOME=" + dir}, movemail, "--no-config", "--preserve", tc.url, mbox)
			got, err := os.ReadFile(mbox)
			if err != nil {
				t.Fatal(err)
			}
			header, body, _ := strings.Cut(lfForm(want[tc.user]), "\n\n")
			// From_ quoting of the body (">From") is movemail's; postie
			// sent the message as stored.
			body = regexp.MustCompile(`(?m)^From `).ReplaceAllString(body, ">From ")
			rx := regexp.MustCompile(`^From  (Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\n` +
				regexp.QuoteMeta(header+"\n") + `X-IMAPbase: +\d+ +\d+\nX-UID: 1\n\n` + regexp.QuoteMeta(body+"\n") + `$`)
			if !rx.Match(got) {
				t.Errorf("movemail wrote\n%q\nwant the message\n%q", got, want[tc.user])
			}
			if method, tls := s.loginLine(t, tc.user); method != "USER" || tls != "true" {
				t.Errorf("movemail logged in with %s, tls=%s; want USER over TLS", method, tls)
			}
		})
	}
}

// fdm with default settings but the certificate checked
// (verify-certificates, the CA through SSL_CERT_FILE), over POP3S and
// with starttls, into a Maildir; it adds a Received field of its own.
func TestFdmTLS(t *testing.T) {
	t.Parallel()
	fdm := testenv.LookPath(t, "fdm")
	// The certificate --dev makes (its own CA), as a user trusting a
	// self-signed server would install it.
	certPEM, keyPEM, err := tlsconf.SelfSigned("localhost", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := startTLSConfig(t, tlsConfig{passwd: "alice:{PLAIN}alicepw\nbob:{PLAIN}bobpw\n", certPEM: certPEM, keyPEM: keyPEM})
	// Started as root, fdm fetches as an unprivileged user: the CA must
	// be readable by anyone.
	caDir := t.TempDir()
	for _, d := range []string{filepath.Dir(caDir), caDir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ca := filepath.Join(caDir, "ca.pem")
	if err := os.WriteFile(ca, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"alice": s.deliver(t, "alice", testMessage),
		"bob":   s.deliver(t, "bob", "Subject: for bob\n\nhi\n"),
	}
	host := func(addr string) string { return strings.ReplaceAll(addr, "127.0.0.1:", "") }
	for _, tc := range []struct{ name, user, account string }{
		{"pops", "alice", `pop3s server "127.0.0.1" port ` + host(s.POP3S) + ` user "alice" pass "alicepw" keep`},
		{"STLS", "bob", `pop3 server "127.0.0.1" port ` + host(s.POP3) + ` user "bob" pass "bobpw" starttls keep`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			md := filepath.Join(dir, "Maildir")
			for _, sub := range []string{"", "new", "cur", "tmp"} {
				if err := os.Mkdir(filepath.Join(md, sub), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			conf := filepath.Join(dir, "fdm.conf")
			text := fmt.Sprintf("set lock-file %q\nset verify-certificates\naccount \"postie\" %s\naction \"inbox\" maildir %q\nmatch all action \"inbox\"\n",
				filepath.Join(dir, "fdm.lock"), tc.account, md)
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			// fdm exits 0 when an account fails: its output says why.
			cmd := exec.Command(fdm, "-v", "-f", conf, "fetch")
			cmd.Env = append(os.Environ(), "HOME="+dir, "SSL_CERT_FILE="+ca)
			out, err := cmd.CombinedOutput()
			files, _ := filepath.Glob(filepath.Join(md, "new", "*"))
			if err != nil || len(files) != 1 {
				t.Fatalf("fdm (%v) delivered %d files, want 1; it said:\n%s", err, len(files), out)
			}
			got, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			// fdm's own Received field goes after Return-Path and
			// Delivered-To, before postie's.
			rx := regexp.MustCompile(`^Received: by \S+ \(fdm 1\.9, account "postie"\) \n\twith pop3 \(version=TLSv1\.3 [^\n]*\)\n\t[^\n]+\n`)
			lf := lfForm(want[tc.user])
			head, rest, _ := strings.Cut(lf, "Received: ")
			after, ok := strings.CutPrefix(string(got), head)
			if !ok {
				t.Fatalf("fdm stored\n%q\nwant it to begin with %q", got, head)
			}
			loc := rx.FindStringIndex(after)
			if loc == nil || loc[0] != 0 || after[loc[1]:] != "Received: "+rest {
				t.Errorf("fdm stored\n%q\nwant its Received field and\n%q", got, "Received: "+rest)
			}
			if method, tls := s.loginLine(t, tc.user); method != "USER" || tls != "true" {
				t.Errorf("fdm logged in with %s, tls=%s; want USER over TLS", method, tls)
			}
		})
	}
}
