package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// socketActivate looks for systemd-socket-activate (package systemd); a
// test without it is skipped, or fails when peers are required.
func socketActivate(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		testenv.Missing(t, "systemd-socket-activate (apt-get install systemd): %v", err)
	}
	return p
}

// activatedServe starts `postie serve` under systemd-socket-activate with
// POP3, POP3S and LMTP sockets named pop3, pop3s and lmtp, and a notify
// socket; the config file asks for other addresses, which must not be
// bound.
type activatedServe struct {
	*proc
	dir, cfg, pop3, pop3s, lmtp string
	notify                      *net.UnixConn
	roots                       *x509.CertPool
}

func startActivated(t *testing.T, fdnames string) *activatedServe {
	t.Helper()
	ssa := socketActivate(t)
	dir := t.TempDir()
	certPEM, keyPEM, err := testenv.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	a := &activatedServe{dir: dir, cfg: filepath.Join(dir, "postie.toml"), lmtp: filepath.Join(dir, "lmtp.sock"), roots: x509.NewCertPool()}
	a.roots.AppendCertsFromPEM(certPEM)
	a.pop3 = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	a.pop3s = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	for name, data := range map[string]string{
		"cert.pem": string(certPEM), "key.pem": string(keyPEM),
		"postie.toml": fmt.Sprintf(`data_dir = %q
server.user = "root" # the tests may run as root (ignored when not root)
[pop3]
listen = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
auth_fail_delay = "0s"
[auth]
default_scheme = "SHA512-CRYPT"
[tls]
cert_file = "cert.pem"
key_file = "key.pem"
[lmtp]
listen = ["unix:%s"]
`, dir, filepath.Join(dir, "lmtp-from-config.sock")),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustPostie(t, 0, "alice pw\n", "user", "add", "--config", a.cfg, "--password-stdin", "alice")
	notifyPath := filepath.Join(dir, "notify")
	a.notify, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.notify.Close() })
	a.proc = startProc(t, ssa, "-l", a.pop3, "-l", a.pop3s, "-l", a.lmtp, "--fdname="+fdnames,
		"-E", "NOTIFY_SOCKET="+notifyPath, "-E", "WATCHDOG_USEC=", testenv.PostieBinary(t), "serve", "--config", a.cfg)
	s := a.proc
	// systemd-socket-activate runs postie at the first connection.
	s.waitFor(t, `Listening on `+regexp.QuoteMeta(a.lmtp))
	return a
}

// recvNotify reads one sd_notify message; the deadline only keeps a
// broken test from hanging.
func (a *activatedServe) recvNotify(t *testing.T) string {
	t.Helper()
	a.notify.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 4096)
	n, err := a.notify.Read(buf)
	if err != nil {
		t.Fatalf("sd_notify: %v", err)
	}
	return string(buf[:n])
}

// TestSocketActivation runs the real binary under systemd-socket-activate:
// POP3, POP3S and LMTP are served on the sockets passed in by name (the
// config file's addresses are not bound), and serve tells the service
// manager READY, RELOADING (SIGHUP, with MONOTONIC_USEC) and STOPPING.
func TestSocketActivation(t *testing.T) {
	t.Parallel()
	a := startActivated(t, "pop3:pop3s:lmtp")

	p := dialPOP3(t, a.pop3) // starts postie
	if got, want := a.recvNotify(t), "READY=1\nSTATUS=serving; 1 users"; got != want {
		t.Errorf("first notify message %q, want %q", got, want)
	}
	// READY follows the listening lines, but the copy of postie's
	// stderr into the buffer may lag behind the notify socket: wait for
	// the line that ends the start-up.
	a.waitFor(t, `msg="postie started"`)
	logs := a.stderr.String()
	for _, want := range []string{
		`msg="sockets passed in by systemd" names=lmtp,pop3,pop3s`,
		"msg=listening proto=pop3 addr=" + a.pop3 + " ",
		"msg=listening proto=pop3s addr=" + a.pop3s + " node=",
		"msg=listening proto=lmtp addr=unix:" + a.lmtp + " node=",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if n := strings.Count(logs, "msg=listening"); n != 3 {
		t.Errorf("%d listening lines, want 3 (the config's addresses must not be bound)", n)
	}
	if _, err := os.Lstat(filepath.Join(a.dir, "lmtp-from-config.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the config's LMTP socket was made: %v", err)
	}

	lmtpDeliver(t, "unix:"+a.lmtp, "alice@example.org", "Subject: hi\r\n\r\nover an activated socket\r\n")
	p.login("alice", "alice pw")
	if r := p.cmd("+OK", "STAT"); !strings.HasPrefix(r, "+OK 1 ") {
		t.Errorf("STAT = %q", r)
	}
	p.cmd("+OK", "QUIT")

	c, err := tls.Dial("tcp", a.pop3s, &tls.Config{RootCAs: a.roots, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("POP3S on the activated socket: %v", err)
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "+OK ") {
		t.Errorf("POP3S greeting %q", buf[:n])
	}
	c.Close()

	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if got := a.recvNotify(t); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=\d+$`).MatchString(got) {
		t.Errorf("on SIGHUP: %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	if got := a.recvNotify(t); got != "READY=1\nSTATUS=serving; 1 users" {
		t.Errorf("after the reload: %q, want READY=1", got)
	}
	a.stop(t, syscall.SIGTERM)
	if got := a.recvNotify(t); got != "STOPPING=1" {
		t.Errorf("on SIGTERM: %q, want STOPPING=1", got)
	}
	if _, err := os.Lstat(a.lmtp); err != nil {
		t.Errorf("the activated LMTP socket (systemd's) was removed: %v", err)
	}
}

// TestSocketActivationBadName: a socket named other than pop3, pop3s,
// lmtp, smtp, admin or web is a configuration error (exit 78) naming it.
func TestSocketActivationBadName(t *testing.T) {
	t.Parallel()
	a := startActivated(t, "pop3:imap:lmtp")
	if c, err := net.Dial("tcp", a.pop3); err == nil {
		c.Close()
	}
	a.waitFor(t, `postie: socket activation`)
	<-a.done
	var ee *exec.ExitError
	if !errors.As(a.err, &ee) || ee.ExitCode() != 78 {
		t.Errorf("exit %v, want 78", a.err)
	}
	want := "postie: socket activation: unknown socket name(s) imap (FileDescriptorName= must be pop3, pop3s, lmtp, smtp, admin or web)\n"
	if !strings.Contains(a.stderr.String(), want) {
		t.Errorf("stderr lacks %q", want)
	}
}

// TestSocketActivationWeb: the web listener takes the socket named web
// (web.listen is not bound), and its documents name the POP3 port of the
// activated socket, not the config's.
func TestSocketActivationWeb(t *testing.T) {
	t.Parallel()
	ssa := socketActivate(t)
	dir := t.TempDir()
	webCert(t, dir, "mail.example.org")
	cfg := filepath.Join(dir, "postie.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`data_dir = %q
server.user = "root" # the tests may run as root (ignored when not root)
[pop3]
listen = ["127.0.0.1:0"]
[tls]
cert_file = "cert.pem"
key_file = "key.pem"
[lmtp]
listen = []
[web]
listen = ["127.0.0.1:0"]
`, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	pop3 := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	web := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	a := startProc(t, ssa, "-l", pop3, "-l", web, "--fdname=pop3:web", testenv.PostieBinary(t), "serve", "--config", cfg)
	a.waitFor(t, `Listening on `+regexp.QuoteMeta(web))

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + web + "/mail/config-v1.1.xml?emailaddress=alice%40example.org")
	if err != nil {
		t.Fatalf("HTTPS on the activated web socket: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(pop3)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<port>"+port+"</port>") || strings.Count(string(body), "<incomingServer") != 1 {
		t.Errorf("%s\n%s", resp.Status, body)
	}
	a.waitFor(t, `msg="postie started"`)
	logs := a.stderr.String()
	if !strings.Contains(logs, "msg=listening proto=web addr="+web+" https=true node=") || strings.Count(logs, "msg=listening") != 2 {
		t.Errorf("listening lines:\n%s", logs)
	}
	a.stop(t, syscall.SIGTERM)
}
