package intake

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// swaks runs swaks against addr (host:port) and returns the server's reply
// lines it shows ("<-  " and "<** " lines, without the marker).
func swaks(t *testing.T, addr string, args ...string) []string {
	t.Helper()
	bin := testenv.LookPath(t, "swaks")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--server", host, "--port", port, "--timeout", "20"}, args...)...)
	out, _ := cmd.CombinedOutput() // swaks exits non-zero when a recipient is refused
	var replies []string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\r\n")
		// "<-" before TLS, "<~" after; "*" marks an error reply.
		for _, marker := range []string{"<-  ", "<** ", "<~  ", "<~* "} {
			if r, ok := strings.CutPrefix(line, marker); ok {
				replies = append(replies, r)
			}
		}
	}
	if len(replies) == 0 {
		t.Fatalf("swaks printed no replies:\n%s", out)
	}
	t.Logf("swaks:\n%s", out)
	return replies
}

// dataFile writes a message for swaks --data: swaks sends it as is
// (--no-data-fixup) and adds the final CRLF after the ".".
func dataFile(t *testing.T, msg string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(p, []byte(msg+".\r\n"[:1]), 0o644); err != nil {
		t.Fatal(err)
	}
	return "@" + p
}

// afterData returns the replies from the one to DATA (354) on.
func afterData(t *testing.T, replies []string) []string {
	t.Helper()
	i := slices.IndexFunc(replies, func(r string) bool { return strings.HasPrefix(r, "354 ") })
	if i < 0 {
		t.Fatalf("no 354 among %q", replies)
	}
	return replies[i+1:]
}

// TestSwaksLMTP: swaks as the LMTP client, one transaction with an unknown
// recipient (550 5.1.1 at RCPT), one over quota (552 5.2.2 after DATA) and
// two delivered (250 after DATA), in RCPT order.
func TestSwaksLMTP(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.QuotaOverrides = map[string]Quota{"carol": {Bytes: 100}} })
	_, addr := e.serve(t, ServerOptions{LMTP: true})
	msg := "From: swaks@example.net\r\nSubject: swaks LMTP\r\n\r\n..a stuffed dot\r\n" + strings.Repeat("body line\r\n", 20)
	replies := swaks(t, addr, "--protocol", "LMTP", "--from", "swaks@example.net",
		"--to", "nobody@example.org,carol@example.org,alice@example.org,bob+tag@example.net",
		"--no-data-fixup", "--data", dataFile(t, msg))
	wantRcpt := []string{
		"550 5.1.1 No such user here",
		"250 2.0.0 I'll make sure <carol@example.org> gets this",
		"250 2.0.0 I'll make sure <alice@example.org> gets this",
		"250 2.0.0 I'll make sure <bob+tag@example.net> gets this",
	}
	i := slices.IndexFunc(replies, func(r string) bool { return strings.HasPrefix(r, "550 ") })
	if i < 0 || !slices.Equal(replies[i:i+4], wantRcpt) {
		t.Errorf("RCPT replies %q, want %q", replies, wantRcpt)
	}
	wantData := []string{
		"552 5.2.2 <carol@example.org> Mailbox full",
		"250 2.0.0 <alice@example.org> Delivered",
		"250 2.0.0 <bob+tag@example.net> Delivered",
		"221 2.0.0 Bye",
	}
	if got := afterData(t, replies); !slices.Equal(got, wantData) {
		t.Errorf("replies after DATA\n got %q\nwant %q", got, wantData)
	}
	body := "From: swaks@example.net\r\nSubject: swaks LMTP\r\n\r\n.a stuffed dot\r\n" + strings.Repeat("body line\r\n", 20)
	for user, rcpt := range map[string]string{"alice": "alice@example.org", "bob": "bob+tag@example.net"} {
		got := e.messages(t, user)
		if len(got) != 1 {
			t.Fatalf("%s has %d messages", user, len(got))
		}
		want := fmt.Sprintf("Return-Path: <swaks@example.net>\r\nDelivered-To: %s\r\nReceived: from %s ([127.0.0.1])\r\n\tby mail.example.org (postie) with LMTP id %s\r\n\tfor <%s>; Tue, 14 Jan 2025 10:00:00 +0100\r\n%s",
			rcpt, heloOf(t, got[0]), idOf(t, got[0]), rcpt, body)
		if got[0] != want {
			t.Errorf("%s's message:\n got %q\nwant %q", user, got[0], want)
		}
	}
	assertEmpty(t, e.root, "carol")
}

var heloRE = regexp.MustCompile(`Received: from (\S+)`)

func heloOf(t *testing.T, msg string) string {
	t.Helper()
	m := heloRE.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("no Received from in %q", msg)
	}
	return m[1]
}

// TestSwaksSMTP: swaks as an SMTP client, with STARTTLS: other domains
// are refused (550 5.7.1, no relaying), unknown users (550 5.1.1), a user
// over quota at RCPT (552 5.2.2), and the message goes to the rest.
func TestSwaksSMTP(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.QuotaOverrides = map[string]Quota{"carol": {Messages: 1}} })
	carol, _ := e.d.Resolve("carol")
	if _, err := e.d.Deliver(t.Context(), Envelope{Proto: "local"}, carol, Message{Body: strings.NewReader("x\n"), Size: 2, EOL: "\n"}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := testenv.ServerTLSConfig(t)
	_, addr := e.serve(t, ServerOptions{TLSConfig: cfg})
	msg := "From: swaks@example.net\r\nSubject: swaks SMTP\r\n\r\nhello\r\n"
	replies := swaks(t, addr, "--tls", "--ehlo", "client.example.net", "--from", "swaks@example.net",
		"--to", "victim@relay.example,nobody@example.org,carol@example.org,alice@example.org",
		"--no-data-fixup", "--data", dataFile(t, msg))
	for _, want := range []string{
		"220 2.0.0 Ready to start TLS",
		"550 5.7.1 Relaying denied: not a local domain",
		"550 5.1.1 No such user here",
		"552 5.2.2 Mailbox full",
		"250 2.0.0 I'll make sure <alice@example.org> gets this",
	} {
		if !slices.Contains(replies, want) {
			t.Errorf("no reply %q among %q", want, replies)
		}
	}
	if got := afterData(t, replies); !slices.Equal(got, []string{"250 2.0.0 Delivered", "221 2.0.0 Bye"}) {
		t.Errorf("replies after DATA %q", got)
	}
	got := e.messages(t, "alice")
	if len(got) != 1 || !strings.HasPrefix(got[0], "Return-Path: <swaks@example.net>\r\nDelivered-To: alice@example.org\r\nReceived: from client.example.net ([127.0.0.1])\r\n\tby mail.example.org (postie) with ESMTPS id ") ||
		!strings.HasSuffix(got[0], "\r\n"+msg) {
		t.Errorf("alice's message: %q", got)
	}
	if n := len(e.messages(t, "carol")); n != 1 {
		t.Errorf("carol has %d messages, want the 1 from before", n)
	}
}

// TestPythonLMTP: Python's smtplib.LMTP over a unix socket. smtplib reads
// one reply after DATA; the script reads the other recipients' replies
// itself (RFC 2033 §4.2).
func TestPythonLMTP(t *testing.T) {
	python := testenv.LookPath(t, "python3")
	e := newEnv(t, func(o *Options) { o.QuotaOverrides = map[string]Quota{"bob": {Bytes: 50}} })
	s, err := NewServer(ServerOptions{Deliverer: e.d, LMTP: true})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "lmtp")
	ln, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })

	script := `import smtplib, sys
msg = b"From: py@example.net\r\nSubject: smtplib\r\n\r\nline 1\r\n.line 2 starts with a dot\r\n"
l = smtplib.LMTP(sys.argv[1])
l.ehlo_or_helo_if_needed()
print(*l.mail("py@example.net"))
for rcpt in ["alice@example.org", "nobody@example.org", "bob@example.org", "carol+x@example.org"]:
    print(*l.rcpt(rcpt))
code, text = l.data(msg)
print(code, text.decode())
for _ in range(2):
    code, text = l.getreply()
    print(code, text.decode())
l.quit()
# And the one-call form, one recipient.
l = smtplib.LMTP(sys.argv[1])
print(l.sendmail("", ["Alice@Example.Org"], msg))
l.quit()
`
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", script, sock).CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	want := `250 b'2.0.0 Roger, accepting mail from <py@example.net>'
250 b"2.0.0 I'll make sure <alice@example.org> gets this"
550 b'5.1.1 No such user here'
250 b"2.0.0 I'll make sure <bob@example.org> gets this"
250 b"2.0.0 I'll make sure <carol+x@example.org> gets this"
250 2.0.0 <alice@example.org> Delivered
552 5.2.2 <bob@example.org> Mailbox full
250 2.0.0 <carol+x@example.org> Delivered
{}
`
	if string(out) != want {
		t.Errorf("python3 printed\n%s\nwant\n%s", out, want)
	}
	alice := e.messages(t, "alice")
	if len(alice) != 2 || !strings.HasSuffix(alice[0], "\r\nFrom: py@example.net\r\nSubject: smtplib\r\n\r\nline 1\r\n.line 2 starts with a dot\r\n") ||
		!strings.HasPrefix(alice[1], "Return-Path: <>\r\nDelivered-To: Alice@Example.Org\r\nReceived: from ") {
		t.Errorf("alice's messages: %q", alice)
	}
	if !strings.Contains(alice[0], "Received: from "+heloOf(t, alice[0])+"\r\n\tby ") {
		t.Errorf("a unix-socket client has no IP in Received: %q", alice[0])
	}
}
