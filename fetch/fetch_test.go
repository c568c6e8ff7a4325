package fetch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/pop3client"
	"github.com/postie-mail/postie/pop3server"
)

func wantLF(msgs []string) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = lfForm(m)
	}
	return out
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSameBytesFromPostieAndDovecot fetches the same corpus from postie
// (implicit TLS) and from a real Dovecot (STLS), each into its own
// Maildir: both must hold exactly the corpus, in order, with LF line ends,
// and both servers must be empty afterwards (keep = false, the default).
func TestSameBytesFromPostieAndDovecot(t *testing.T) {
	want := wantLF(corpus)

	p := startPostie(t, nil)
	p.deliver(t, "user1", corpus...)
	srvCfg, certPEM := tlsPair(t)
	tlsAddr := p.serveTLS(t, srvCfg)
	ca := writeFile(t, "ca.pem", certPEM)
	dirP := filepath.Join(t.TempDir(), "Maildir")
	c := config(t, account("postie", tlsAddr, `tls = "implicit"`, "insecure =", fmt.Sprintf("ca_file = %q", ca), fmt.Sprintf("maildir = %q", dirP)))
	res := runOnce(t, c, Options{Logger: logTo(t)})[0]
	if res.Fetched != len(corpus) || res.Deleted != len(corpus) {
		t.Errorf("postie: %s", res.Summary())
	}
	gotP := maildirContents(t, dirP)
	if !slices.Equal(gotP, want) {
		t.Errorf("postie: Maildir holds\n%q\nwant\n%q", gotP, want)
	}
	if n := p.count(t, "user1"); n != 0 {
		t.Errorf("postie still has %d messages", n)
	}

	if testing.Short() {
		return
	}
	d := testenv.StartDovecot(t, 1)
	for _, m := range corpus {
		d.Deliver(t, "user1", []byte(m))
	}
	caD := writeFile(t, "dovecot-ca.pem", d.CertPEM)
	dirD := filepath.Join(t.TempDir(), "Maildir")
	c = config(t, account("dovecot", d.Addr, `tls = "starttls"`, "insecure =", fmt.Sprintf("ca_file = %q", caD), fmt.Sprintf("maildir = %q", dirD)))
	res = runOnce(t, c, Options{Logger: logTo(t)})[0]
	if res.Fetched != len(corpus) || res.Deleted != len(corpus) {
		t.Errorf("dovecot: %s", res.Summary())
	}
	gotD := maildirContents(t, dirD)
	if !slices.Equal(gotD, gotP) {
		t.Errorf("Dovecot and postie gave different bytes:\n%q\n%q", gotD, gotP)
	}
	if left := maildirContents(t, d.Maildir("user1")); len(left) != 0 {
		t.Errorf("Dovecot still has %d messages\n%s", len(left), d.Log())
	}
}

// TestExpireZeroFallbackIDs: a server with EXPIRE 0, without UIDL and
// TOP, so that the ids come from RETR of every message, and
// max_messages_per_run = 2: the runs that leave messages for later end
// without QUIT, else the server would delete at QUIT all it sent; the
// third run delivers the last one and ends with QUIT. Each message is
// delivered once, none is lost.
func TestExpireZeroFallbackIDs(t *testing.T) {
	f := &fake{t: t, capa: []string{"USER", "EXPIRE 0"}, noUIDL: true, noTop: true, expire0: true}
	for _, m := range corpus {
		f.msgs = append(f.msgs, wireForm(m))
	}
	addr := f.start()
	dir := filepath.Join(t.TempDir(), "Maildir")
	c := config(t, account("old", addr, fmt.Sprintf("maildir = %q", dir), "max_messages_per_run = 2"))
	for run, want := range []int{2, 2, 1} {
		res := runOnce(t, c, Options{Logger: quiet()})[0]
		if res.Err != nil || res.Fetched != want {
			t.Fatalf("run %d: %s", run+1, res.Summary())
		}
		if left := len(f.live()); run < 2 && left != len(corpus) {
			t.Fatalf("after run %d the server has %d of %d messages", run+1, left, len(corpus))
		}
	}
	if left := f.live(); len(left) != 0 {
		t.Errorf("server still has %d messages", len(left))
	}
	if got := maildirContents(t, dir); !slices.Equal(got, wantLF(corpus)) {
		t.Errorf("Maildir holds %q", got)
	}
}

// TestNoCapaNoUIDL: a server without CAPA, UIDL and PIPELINING still
// works, with ids from a hash of the headers via TOP, stable across runs
// (leave on server fetches nothing twice), and identical messages told
// apart. Without TOP, RETR gives the headers.
func TestNoCapaNoUIDL(t *testing.T) {
	for _, noTop := range []bool{false, true} {
		t.Run(fmt.Sprintf("noTop=%v", noTop), func(t *testing.T) {
			msgs := append(slices.Clone(corpus), corpus[0]) // a duplicate
			f := &fake{t: t, noUIDL: true, noTop: noTop}
			for _, m := range msgs {
				f.msgs = append(f.msgs, wireForm(m))
			}
			addr := f.start()
			dir := filepath.Join(t.TempDir(), "Maildir")
			var logs captureLog
			c := config(t, account("old", addr, fmt.Sprintf("maildir = %q", dir), "keep = true"))
			res := runOnce(t, c, Options{Logger: logs.logger()})[0]
			if res.Fetched != len(msgs) || res.Deleted != 0 {
				t.Errorf("first run: %s", res.Summary())
			}
			if !strings.Contains(logs.String(), "no UIDL") {
				t.Errorf("no warning about the missing UIDL:\n%s", logs.String())
			}
			res = runOnce(t, c, Options{Logger: quiet()})[0]
			if res.Fetched != 0 {
				t.Errorf("second run fetched again: %s", res.Summary())
			}
			// Now with deletion.
			c.Accounts[0].Keep = nil
			res = runOnce(t, c, Options{Logger: quiet()})[0]
			if res.Fetched != 0 || res.Deleted != len(msgs) {
				t.Errorf("deleting run: %s", res.Summary())
			}
			if got := maildirContents(t, dir); !slices.Equal(got, wantLF(msgs)) {
				t.Errorf("Maildir holds %q", got)
			}
			if left := f.live(); len(left) != 0 {
				t.Errorf("server still has %d messages", len(left))
			}
			f.mu.Lock()
			cmds := slices.Clone(f.cmds)
			f.mu.Unlock()
			if noTop && !slices.Contains(cmds, "RETR") || !noTop && !slices.Contains(cmds, "TOP") {
				t.Errorf("commands: %v", cmds)
			}
		})
	}
}

// TestKeepFetchesOnlyNew: with keep = true, each run fetches only the
// messages it has not delivered before, and deletes nothing.
func TestKeepFetchesOnlyNew(t *testing.T) {
	p := startPostie(t, nil)
	p.deliver(t, "user1", corpus[:3]...)
	dir := filepath.Join(t.TempDir(), "Maildir")
	c := config(t, account("keep", p.addr, fmt.Sprintf("maildir = %q", dir), "keep = true"))
	if res := runOnce(t, c, Options{})[0]; res.Fetched != 3 || res.Deleted != 0 {
		t.Errorf("run 1: %s", res.Summary())
	}
	if res := runOnce(t, c, Options{})[0]; res.Fetched != 0 {
		t.Errorf("run 2: %s", res.Summary())
	}
	p.deliver(t, "user1", corpus[3:]...)
	if res := runOnce(t, c, Options{})[0]; res.Fetched != 2 || res.Deleted != 0 {
		t.Errorf("run 3: %s", res.Summary())
	}
	if got := maildirContents(t, dir); !slices.Equal(got, wantLF(corpus)) {
		t.Errorf("Maildir holds %q", got)
	}
	if n := p.count(t, "user1"); n != len(corpus) {
		t.Errorf("server has %d messages, want %d", n, len(corpus))
	}
}

// TestDeleteAfterDays: messages are kept, then deleted once N days have
// passed since their download, by an injected clock.
func TestDeleteAfterDays(t *testing.T) {
	p := startPostie(t, nil)
	p.deliver(t, "user1", corpus[:2]...)
	dir := filepath.Join(t.TempDir(), "Maildir")
	c := config(t, account("days", p.addr, fmt.Sprintf("maildir = %q", dir), "delete_after_days = 3"))
	day0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := day0
	opts := Options{Now: func() time.Time { return clock }}

	if res := runOnce(t, c, opts)[0]; res.Fetched != 2 || res.Deleted != 0 {
		t.Errorf("day 0: %s", res.Summary())
	}
	clock = day0.Add(24 * time.Hour)
	p.deliver(t, "user1", corpus[2])
	if res := runOnce(t, c, opts)[0]; res.Fetched != 1 || res.Deleted != 0 {
		t.Errorf("day 1: %s", res.Summary())
	}
	clock = day0.Add(3*24*time.Hour - time.Second)
	if res := runOnce(t, c, opts)[0]; res.Fetched != 0 || res.Deleted != 0 {
		t.Errorf("day 3 minus 1s: %s", res.Summary())
	}
	clock = day0.Add(3 * 24 * time.Hour)
	if res := runOnce(t, c, opts)[0]; res.Fetched != 0 || res.Deleted != 2 {
		t.Errorf("day 3: %s", res.Summary())
	}
	if n := p.count(t, "user1"); n != 1 {
		t.Errorf("day 3: server has %d messages, want 1", n)
	}
	clock = day0.Add(4 * 24 * time.Hour)
	if res := runOnce(t, c, opts)[0]; res.Deleted != 1 {
		t.Errorf("day 4: %s", res.Summary())
	}
	if n := p.count(t, "user1"); n != 0 {
		t.Errorf("day 4: server has %d messages, want 0", n)
	}
	if got := maildirContents(t, dir); !slices.Equal(got, wantLF(corpus[:3])) {
		t.Errorf("Maildir holds %q", got)
	}
}

// TestOversize: a message over max_size is left alone (skip) or deleted
// unread (delete).
func TestOversize(t *testing.T) {
	for _, mode := range []string{"skip", "delete"} {
		t.Run(mode, func(t *testing.T) {
			p := startPostie(t, nil)
			p.deliver(t, "user1", corpus...)
			dir := filepath.Join(t.TempDir(), "Maildir")
			c := config(t, account("big", p.addr, fmt.Sprintf("maildir = %q", dir), `max_size = "100k"`, fmt.Sprintf("oversize = %q", mode)))
			res := runOnce(t, c, Options{Logger: quiet()})[0]
			small := append(slices.Clone(corpus[:3]), corpus[4])
			if got := maildirContents(t, dir); !slices.Equal(got, wantLF(small)) {
				t.Errorf("Maildir holds %d messages", len(got))
			}
			wantDel, wantSkip, wantLeft := 5, 0, 0
			if mode == "skip" {
				wantDel, wantSkip, wantLeft = 4, 1, 1
			}
			if res.Fetched != 4 || res.Deleted != wantDel || res.Skipped != wantSkip {
				t.Errorf("%s", res.Summary())
			}
			if n := p.count(t, "user1"); n != wantLeft {
				t.Errorf("server has %d messages, want %d", n, wantLeft)
			}
		})
	}
}

func TestMaxMessagesPerRun(t *testing.T) {
	p := startPostie(t, nil)
	p.deliver(t, "user1", corpus...)
	dir := filepath.Join(t.TempDir(), "Maildir")
	c := config(t, account("cap", p.addr, fmt.Sprintf("maildir = %q", dir), "max_messages_per_run = 2"))
	for i, want := range []struct{ fetched, left int }{{2, 3}, {2, 1}, {1, 0}} {
		res := runOnce(t, c, Options{})[0]
		if res.Fetched != want.fetched || res.Left != want.left {
			t.Errorf("run %d: %s", i+1, res.Summary())
		}
	}
	if got := maildirContents(t, dir); !slices.Equal(got, wantLF(corpus)) {
		t.Errorf("Maildir holds %d messages", len(got))
	}
}

// TestDryRun lists what would be done and changes nothing.
func TestDryRun(t *testing.T) {
	p := startPostie(t, nil)
	p.deliver(t, "user1", corpus...)
	dir := filepath.Join(t.TempDir(), "Maildir")
	c := config(t, account("dry", p.addr, fmt.Sprintf("maildir = %q", dir), "max_size = 100000"))
	var plan strings.Builder
	res := runOnce(t, c, Options{DryRun: true, Plan: &plan})[0]
	if res.Fetched != 4 || res.Skipped != 1 || res.Deleted != 0 {
		t.Errorf("%s", res.Summary())
	}
	if !strings.HasPrefix(res.Summary(), "dry (dry run): would fetch 4") {
		t.Errorf("summary %q", res.Summary())
	}
	if n := strings.Count(plan.String(), ": fetch message "); n != 4 || !strings.Contains(plan.String(), ": skip message 4 ") {
		t.Errorf("plan:\n%s", plan.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dry run made the Maildir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.StateDir, "dry.state")); !os.IsNotExist(err) {
		t.Errorf("dry run wrote the state: %v", err)
	}
	if n := p.count(t, "user1"); n != len(corpus) {
		t.Errorf("server has %d messages", n)
	}
	// After a real run that keeps, a dry run of a deleting account plans
	// the deletions.
	c.Accounts[0].Keep = new(bool)
	*c.Accounts[0].Keep = true
	runOnce(t, c, Options{})
	c.Accounts[0].Keep = nil
	plan.Reset()
	res = runOnce(t, c, Options{DryRun: true, Plan: &plan})[0]
	if res.Fetched != 0 || res.Deleted != 4 {
		t.Errorf("%s\n%s", res.Summary(), plan.String())
	}
}

// TestMboxExact holds the mboxrd output to exact bytes: From_ lines with
// the Return-Path or MAILER-DAEMON and the delivery time, LF ends,
// >From quoting, a blank line after each message, a line end supplied to a
// file that lacked one.
func TestMboxExact(t *testing.T) {
	p := startPostie(t, nil)
	p.deliver(t, "user1", corpus[0], corpus[2], corpus[4])
	mbox := filepath.Join(t.TempDir(), "inbox")
	if err := os.WriteFile(mbox, []byte("From x Thu Jan  1 00:00:00 2026\nSubject: old\n\nno newline"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config(t, account("mbox", p.addr, fmt.Sprintf("mbox = %q", mbox)))
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	res := runOnce(t, c, Options{Now: func() time.Time { return at }})[0]
	if res.Fetched != 3 || res.Deleted != 3 {
		t.Errorf("%s", res.Summary())
	}
	got, _ := os.ReadFile(mbox)
	want := "From x Thu Jan  1 00:00:00 2026\nSubject: old\n\nno newline\n" +
		"From MAILER-DAEMON Fri Jan  2 03:04:05 2026\n" +
		"From: a@example.com\nSubject: one\nMessage-ID: <1@example.com>\n\nHello\n\n" +
		"From c@example.com Fri Jan  2 03:04:05 2026\n" +
		"Return-Path: <c@example.com>\nSubject: three\n\n>From here on\n>>From quoted\n\xe2\x9c\x89 8-bit\nno final newline\n\n" +
		"From MAILER-DAEMON Fri Jan  2 03:04:05 2026\n" +
		"Subject: five\n\n.\n\n"
	if string(got) != want {
		t.Errorf("mbox:\n%q\nwant\n%q", got, want)
	}
	if _, err := os.Stat(mbox + ".lock"); !os.IsNotExist(err) {
		t.Errorf("dot lock left behind: %v", err)
	}
}

// TestMboxWaitsForLocks: a dot lock held by another program delays the
// append until it is gone.
func TestMboxWaitsForLocks(t *testing.T) {
	p := startPostie(t, nil)
	p.deliver(t, "user1", corpus[0])
	mbox := filepath.Join(t.TempDir(), "inbox")
	if err := os.WriteFile(mbox+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const hold = 300 * time.Millisecond
	time.AfterFunc(hold, func() { os.Remove(mbox + ".lock") })
	c := config(t, account("mbox", p.addr, fmt.Sprintf("mbox = %q", mbox)))
	start := time.Now()
	res := runOnce(t, c, Options{})[0]
	if res.Fetched != 1 {
		t.Errorf("%s", res.Summary())
	}
	if d := time.Since(start); d < hold {
		t.Errorf("delivered after %v, while the dot lock was held for %v", d, hold)
	}
}

// TestMDA: exit 0 delivers, exit 75 keeps the message on the server for
// the next run, another code counts as an error and keeps it too.
func TestMDA(t *testing.T) {
	p := startPostie(t, nil)
	p.deliver(t, "user1", corpus...)
	out := t.TempDir()
	script := writeFile(t, "mda.sh", []byte(`#!/bin/sh
f=$(mktemp)
cat > "$f"
if grep -q '^Subject: two' "$f"; then rm -f "$f"; exit 75; fi
if grep -q '^Subject: five' "$f"; then rm -f "$f"; echo "no such user" >&2; exit 67; fi
mv "$f" "`+out+`/$POSTIE_FETCH_ID"
`))
	c := config(t, account("mda", p.addr, fmt.Sprintf("mda = %q", "sh "+script)))
	var logs captureLog
	res := runOnce(t, c, Options{Logger: logs.logger()})[0]
	if res.Fetched != 3 || res.Deferred != 1 || res.Failed != 1 || res.Deleted != 3 {
		t.Errorf("%s", res.Summary())
	}
	if !strings.Contains(logs.String(), "no such user") {
		t.Errorf("the MDA's message is not logged:\n%s", logs.String())
	}
	if n := p.count(t, "user1"); n != 2 {
		t.Errorf("server has %d messages, want 2 (deferred and refused)", n)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 3 {
		t.Errorf("the MDA delivered %d messages", len(ents))
	}
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(out, e.Name()))
		if !slices.Contains(wantLF(corpus), string(b)) {
			t.Errorf("MDA got %q", b)
		}
	}
	// A later run with a working MDA takes the rest, and knows that the
	// refused deliveries did not happen.
	c.Accounts[0].MDA = "cat > " + out + "/$POSTIE_FETCH_ID"
	var logs2 captureLog
	res = runOnce(t, c, Options{Logger: logs2.logger()})[0]
	if res.Fetched != 2 || res.Deleted != 2 {
		t.Errorf("second run: %s", res.Summary())
	}
	if strings.Contains(logs2.String(), "previous run stopped") {
		t.Errorf("a refused delivery was taken for an interrupted one:\n%s", logs2.String())
	}
	if n := p.count(t, "user1"); n != 0 {
		t.Errorf("server has %d messages", n)
	}
}

// TestLMTP delivers into a real Dovecot LMTP server; an unknown recipient
// (5xx) keeps the message on the server.
func TestLMTP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	d := testenv.StartDovecotLMTP(t, 1)
	p := startPostie(t, nil)
	p.deliver(t, "user1", corpus...)
	c := config(t, account("lmtp", p.addr, fmt.Sprintf("lmtp = %q", d.Addr), `lmtp_recipient = "user1@example.org"`))
	res := runOnce(t, c, Options{Logger: logTo(t)})[0]
	if res.Fetched != len(corpus) || res.Deleted != len(corpus) {
		t.Errorf("%s", res.Summary())
	}
	got := maildirContents(t, d.Maildir("user1"))
	if len(got) != len(corpus) {
		t.Fatalf("Dovecot stored %d messages\n%s", len(got), d.Log())
	}
	for i, m := range corpus {
		// Dovecot adds Return-Path, Delivered-To and Received fields.
		body := lfForm(m)
		if _, after, ok := strings.Cut(body, "Return-Path: <c@example.com>\n"); ok {
			body = after
		}
		if !strings.HasSuffix(got[i], body) {
			t.Errorf("message %d: Dovecot stored\n%q\nwant it to end with\n%q", i+1, got[i], body)
		}
	}
	if !strings.Contains(got[2], "Return-Path: <c@example.com>") {
		t.Errorf("the envelope sender was not the Return-Path:\n%s", got[2])
	}

	p.deliver(t, "user1", corpus[0])
	c.Accounts[0].LMTPRecipient = "nosuchuser@example.org"
	res = New(c, c.Accounts[0], Options{Logger: quiet()}).Run(context.Background())
	if res.Failed != 1 || res.Deleted != 0 {
		t.Errorf("unknown recipient: %s", res.Summary())
	}
	if n := p.count(t, "user1"); n != 1 {
		t.Errorf("server has %d messages, want 1", n)
	}
}

// TestAuthRefused shows the server's reply with its response code.
func TestAuthRefused(t *testing.T) {
	p := startPostie(t, nil)
	c := config(t, account("auth", p.addr, `maildir = "md"`, `password_command = "echo wrong"`, "password_env ="))
	res := New(c, c.Accounts[0], Options{}).Run(context.Background())
	if res.Err == nil || res.Err.Kind != KindAuth {
		t.Fatalf("got %v", res.Err)
	}
	if msg := res.Err.Error(); !strings.Contains(msg, "-ERR [AUTH]") || !strings.Contains(msg, `"user1"`) {
		t.Errorf("error %q does not show the server's reply", msg)
	}
	if !strings.Contains(res.Summary(), "errors 1") {
		t.Errorf("summary %q", res.Summary())
	}
}

// TestTLSVerification: a certificate that does not verify stops the run
// with the fingerprint seen and how to pin it; pinning it works.
func TestTLSVerification(t *testing.T) {
	p := startPostie(t, nil)
	p.deliver(t, "user1", corpus[0])
	srvCfg, _ := tlsPair(t)
	addr := p.serveTLS(t, srvCfg)
	sum := sha256.Sum256(srvCfg.Certificates[0].Certificate[0])
	fp := pop3client.Fingerprint(sum[:])
	dir := filepath.Join(t.TempDir(), "Maildir")
	c := config(t, account("tls", addr, `tls = "implicit"`, "insecure =", fmt.Sprintf("maildir = %q", dir)))
	res := New(c, c.Accounts[0], Options{}).Run(context.Background())
	if res.Err == nil || res.Err.Kind != KindTLS {
		t.Fatalf("got %v", res.Err)
	}
	if !strings.Contains(res.Err.Error(), fmt.Sprintf("pin_sha256 = %q", fp)) {
		t.Errorf("error does not tell how to pin %s:\n%v", fp, res.Err)
	}
	c = config(t, account("tls", addr, `tls = "implicit"`, "insecure =", fmt.Sprintf("maildir = %q", dir), fmt.Sprintf("pin_sha256 = %q", fp)))
	if res := runOnce(t, c, Options{})[0]; res.Fetched != 1 {
		t.Errorf("with the pin: %s", res.Summary())
	}
	wrong := strings.Repeat("00:", 31) + "00"
	c = config(t, account("tls2", addr, `tls = "implicit"`, "insecure =", fmt.Sprintf("maildir = %q", dir), fmt.Sprintf("pin_sha256 = %q", wrong)))
	res = New(c, c.Accounts[0], Options{}).Run(context.Background())
	if res.Err == nil || res.Err.Kind != KindTLS || !strings.Contains(res.Err.Error(), fp) {
		t.Errorf("wrong pin: %v", res.Err)
	}
}

// TestTokenRefresh: a refused OAuth2 token is replaced once by running
// token_command again.
func TestTokenRefresh(t *testing.T) {
	f := &fake{t: t, capa: []string{"SASL XOAUTH2", "UIDL"}, xoauth2: func(tok string) bool { return tok == "fresh" }}
	f.msgs = []string{wireForm(corpus[0])}
	addr := f.start()
	counter := filepath.Join(t.TempDir(), "n")
	// Prints "stale" the first time, "fresh" after.
	cmd := fmt.Sprintf(`if [ -e %[1]s ]; then echo fresh; else touch %[1]s; echo stale; fi`, counter)
	dir := filepath.Join(t.TempDir(), "Maildir")
	c := config(t, account("oauth", addr, "password_env =", fmt.Sprintf("token_command = %q", cmd), fmt.Sprintf("maildir = %q", dir)))
	fe := New(c, c.Accounts[0], Options{Logger: quiet()})
	res := fe.Run(context.Background())
	if res.Err != nil || res.Fetched != 1 {
		t.Fatalf("%s", res.Summary())
	}
	if n := f.connCount(); n != 2 {
		t.Errorf("%d connections, want 2 (stale token, then fresh)", n)
	}
	// The token is kept for the next run (daemon mode).
	f.mu.Lock()
	f.msgs = append(f.msgs, wireForm(corpus[1]))
	f.mu.Unlock()
	if res := fe.Run(context.Background()); res.Err != nil || res.Fetched != 1 || f.connCount() != 3 {
		t.Errorf("second run: %s, %d connections", res.Summary(), f.connCount())
	}
	// A token refused twice is an authentication error.
	f.mu.Lock()
	f.xoauth2 = func(string) bool { return false }
	f.mu.Unlock()
	res = fe.Run(context.Background())
	if res.Err == nil || res.Err.Kind != KindAuth || !strings.Contains(res.Err.Error(), "[AUTH]") {
		t.Errorf("refused token: %v", res.Err)
	}
}

// TestDaemon polls, picks up new mail on a later poll, and backs off
// exponentially, up to the interval, while the server is unreachable.
func TestDaemon(t *testing.T) {
	p := startPostie(t, nil)
	p.deliver(t, "user1", corpus[0])
	dir := filepath.Join(t.TempDir(), "Maildir")
	deadAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	c := config(t, account("up", p.addr, fmt.Sprintf("maildir = %q", dir))+account("down", deadAddr, `maildir = "down"`))
	var mu sync.Mutex
	var fetched int
	var downNext []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &Daemon{
		Config: c, Interval: 800 * time.Millisecond, MinBackoff: 25 * time.Millisecond,
		Options: Options{Logger: quiet()},
		Report: func(r *Result) {
			mu.Lock()
			defer mu.Unlock()
			if r.Account == "up" {
				fetched += r.Fetched
				if fetched == 1 && r.Fetched == 1 {
					p.deliver(t, "user1", corpus[1])
				}
			} else {
				if r.Err == nil || r.Err.Kind != KindTemporary || !strings.Contains(r.Err.Error(), "unreachable") {
					t.Errorf("down: %v", r.Err)
				}
				downNext = append(downNext, r.Next)
			}
			// Both accounts seen through: the second message fetched,
			// and enough retries to show the backoff reach the interval.
			if fetched == 2 && len(downNext) >= 6 {
				cancel()
			}
		},
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon did not fetch the second message")
	}
	if got := maildirContents(t, dir); !slices.Equal(got, wantLF(corpus[:2])) {
		t.Errorf("Maildir holds %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	// The retry delays the daemon chose (not wall-clock gaps, which a
	// loaded machine stretches): doubling from MinBackoff, capped by the
	// interval.
	if len(downNext) < 4 {
		t.Fatalf("only %d attempts on the unreachable account", len(downNext))
	}
	for i, got := range downNext {
		want := min(25*time.Millisecond<<i, 800*time.Millisecond)
		if got != want {
			t.Errorf("retry %d after %v, want %v (all: %v)", i+1, got, want, downNext)
		}
	}
}

// TestProbe prints the TLS certificate, the capabilities and the limits.
func TestProbe(t *testing.T) {
	srvCfg, certPEM := tlsPair(t)
	expire := 30
	p := startPostie(t, func(o *pop3server.Options) {
		o.TLSConfig = srvCfg
		o.Limits.LoginDelay = 5 * time.Minute
		o.Limits.Expire = &expire
	})
	addr := p.serveTLS(t, srvCfg)
	sum := sha256.Sum256(srvCfg.Certificates[0].Certificate[0])
	fp := pop3client.Fingerprint(sum[:])

	var out strings.Builder
	// Shown, but it does not verify against the system's roots: a
	// KindTLS error after the whole report.
	err := Probe(context.Background(), addr, &out, ProbeOptions{TLS: "implicit"})
	var fe *Error
	if !errors.As(err, &fe) || fe.Kind != KindTLS || !strings.Contains(err.Error(), "the certificate does not verify: ") {
		t.Errorf("Probe of an untrusted certificate: %v; want a KindTLS error", err)
	}
	for _, want := range []string{"TLS 1.3", "subject CN=localhost", "SHA-256 " + fp, "verify  FAILED", "pin_sha256 = ", "LOGIN-DELAY 300", "EXPIRE 30 (retrieved mail is deleted after 30 days)", "UIDL"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("probe output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := Probe(context.Background(), p.addr, &out, ProbeOptions{TLS: "starttls", Roots: certPool(certPEM)}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "verify  ok") || !strings.Contains(out.String(), "SHA-256 "+fp) {
		t.Errorf("probe with STLS:\n%s", out.String())
	}
}

// TestProbeImplicitTLSPortHint: a plain or STLS probe of a port that
// speaks implicit TLS gets no greeting; the error says to use
// --tls implicit instead of only timing out.
func TestProbeImplicitTLSPortHint(t *testing.T) {
	srvCfg, _ := tlsPair(t)
	p := startPostie(t, func(o *pop3server.Options) { o.TLSConfig = srvCfg })
	addr := p.serveTLS(t, srvCfg)
	var out strings.Builder
	err := Probe(context.Background(), addr, &out, ProbeOptions{TLS: "starttls", Timeout: 500 * time.Millisecond})
	var fe *Error
	if !errors.As(err, &fe) || fe.Kind != KindTemporary || !strings.Contains(err.Error(), "no POP3 greeting from "+addr) ||
		fe.Hint != "If this is an implicit-TLS port (POP3S, usually 995), probe it with --tls implicit." {
		t.Fatalf("STLS probe of a POP3S port: %v (%#v); want the --tls implicit hint", err, fe)
	}
	// The same port probed as it should be answers (and its test
	// certificate does not verify against the system's roots).
	out.Reset()
	err = Probe(context.Background(), addr, &out, ProbeOptions{TLS: "implicit"})
	if !errors.As(err, &fe) || fe.Kind != KindTLS || !strings.Contains(out.String(), "TLS 1.3") {
		t.Fatalf("implicit probe: %v\n%s", err, out.String())
	}
}

// TestAutoFallsBackFromSCRAM: servers announce SCRAM for users they hold no
// SCRAM keys for; "auto" then logs in with PLAIN, says how to avoid the
// failed attempt, and remembers what worked.
func TestAutoFallsBackFromSCRAM(t *testing.T) {
	f := &fake{t: t, capa: []string{"SASL SCRAM-SHA-256 PLAIN", "UIDL", "USER"}, auth: func(u, p string) bool { return p == "pass1" }}
	f.msgs = []string{wireForm(corpus[0])}
	addr := f.start()
	c := config(t, account("scram", addr, fmt.Sprintf("maildir = %q", filepath.Join(t.TempDir(), "Maildir"))))
	var logs captureLog
	fe := New(c, c.Accounts[0], Options{Logger: logs.logger()})
	if res := fe.Run(context.Background()); res.Err != nil || res.Fetched != 1 {
		t.Fatalf("%s", res.Summary())
	}
	if !strings.Contains(logs.String(), `set auth = \"plain\"`) {
		t.Errorf("no advice logged:\n%s", logs.String())
	}
	if res := fe.Run(context.Background()); res.Err != nil {
		t.Fatalf("%s", res.Summary())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := strings.Count(strings.Join(f.cmds, " "), "AUTH"); n != 3 {
		t.Errorf("%d AUTH commands, want 3 (SCRAM and PLAIN, then PLAIN only): %v", n, f.cmds)
	}
}

// TestExpireZeroCleanupCommands: with EXPIRE 0 and an MDA that refuses
// message "two" for good, the run's first session retrieves all five and
// ends without QUIT; the second sends exactly these commands: a login, the
// listing, DELE of the four delivered (by their numbers in its own
// listing, which lacks the first message, deleted on the server in
// between) and QUIT; nothing retrieved. Without UIDL there is no second
// session.
func TestExpireZeroCleanupCommands(t *testing.T) {
	for _, noUIDL := range []bool{false, true} {
		t.Run(fmt.Sprintf("noUIDL=%v", noUIDL), func(t *testing.T) {
			f := &fake{t: t, capa: []string{"USER", "UIDL", "TOP", "EXPIRE 0"}, noUIDL: noUIDL, expire0: true}
			for _, m := range corpus {
				f.msgs = append(f.msgs, wireForm(m))
			}
			addr := f.start()
			dir := t.TempDir()
			dest := filepath.Join(dir, "dest")
			os.Mkdir(dest, 0o700)
			var deletedFirst bool
			mda := fmt.Sprintf(`f=%[1]s/msg.$$; cat > "$f" || exit 75; if grep -q "^Subject: two" "$f"; then rm "$f"; exit 1; fi; mv "$f" %[2]s/$(date +%%s%%N).$$`, dir, dest)
			c := config(t, account("exp", addr, fmt.Sprintf("mda = %q", mda)))
			opts := Options{Logger: quiet(), crash: func(point string, _ int) {
				// Between the sessions, the first message goes away on
				// the server (another client, a policy): the second
				// session's numbers are not the first's.
				if point == "between-sessions" && !noUIDL {
					f.mu.Lock()
					f.msgs[0] = ""
					f.mu.Unlock()
					deletedFirst = true
				}
			}}
			res := runOnce(t, c, opts)[0]
			if noUIDL {
				if res.Err != nil || res.Fetched != 4 || res.Failed != 1 || res.Deleted != 0 || f.connCount() != 1 || len(f.live()) != 5 {
					t.Errorf("%s; %d connections, %d messages left", res.Summary(), f.connCount(), len(f.live()))
				}
				return
			}
			if !deletedFirst || res.Err != nil || res.Fetched != 4 || res.Failed != 1 || res.Deleted != 3 {
				t.Errorf("%s (between sessions: %v)", res.Summary(), deletedFirst)
			}
			f.mu.Lock()
			cmds := slices.Clone(f.cmds)
			f.mu.Unlock()
			// From the CAPA before the second USER.
			var second []string
			if i := slices.Index(cmds, "USER"); i >= 0 {
				if j := slices.Index(cmds[i+1:], "USER"); j >= 0 {
					second = cmds[i+j:]
				}
			}
			if want := []string{"CAPA", "USER", "PASS", "CAPA", "LIST", "UIDL", "DELE", "DELE", "DELE", "QUIT"}; !slices.Equal(second, want) {
				t.Errorf("second session: %q\nwant %q\n(all: %q)", second, want, cmds)
			}
			left := f.live()
			if len(left) != 1 || !strings.Contains(left[0], "Subject: two") {
				t.Errorf("left on the server: %q", left)
			}
		})
	}
}
