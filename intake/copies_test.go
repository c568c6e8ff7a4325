package intake

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// Issue 13, finding 4: one SMTP transaction to alice+0 … alice+99 stores
// one copy in alice's maildrop, not 100; its log line names every
// address, its Delivered-To the first.
func TestSMTPOneCopyPerUser(t *testing.T) {
	e := newEnv(t, nil)
	_, addr := e.serve(t, ServerOptions{})
	c := dial(t, "tcp", addr)
	var script strings.Builder
	script.WriteString("S~ 220 \nC: EHLO c\nS* 250\nC: MAIL FROM:<a@example.com>\nS~ 250 \n")
	for i := range 100 {
		fmt.Fprintf(&script, "C: RCPT TO:<alice+%d@example.org>\nS~ 250 \n", i)
	}
	script.WriteString("C: DATA\nS~ 354 \nC: Subject: many addresses\nC: .\nS: 250 2.0.0 Delivered\nC: QUIT\nS~ 221 ")
	c.script(script.String())
	got := e.messages(t, "alice")
	if len(got) != 1 {
		t.Fatalf("alice has %d messages, want 1", len(got))
	}
	if !strings.Contains(got[0], "Delivered-To: alice+0@example.org\r\n") || strings.Count(got[0], "Delivered-To:") != 1 {
		t.Errorf("trace fields of the copy:\n%s", got[0])
	}
	var line string
	for l := range strings.Lines(e.logs.String()) {
		if strings.Contains(l, "msg=delivered") {
			if line != "" {
				t.Fatalf("more than one delivery logged:\n%s%s", line, l)
			}
			line = l
		}
	}
	for i := range 100 {
		if !strings.Contains(line, fmt.Sprintf("alice+%d@example.org", i)) {
			t.Fatalf("the delivery's log line does not name alice+%d@example.org: %s", i, line)
		}
	}
}

// A quota of 3 messages with 2 stored: a transaction to three of alice's
// addresses leaves 3 messages, not 5, and the next one is refused.
// Over LMTP the same: each RCPT gets its reply, alice one copy.
func TestQuotaPerCopy(t *testing.T) {
	for _, lmtp := range []bool{false, true} {
		t.Run(map[bool]string{false: "SMTP", true: "LMTP"}[lmtp], func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.QuotaOverrides = map[string]Quota{"alice": {Messages: 3}} })
			for range 2 {
				if _, err := e.st.Deliver(context.Background(), "alice", strings.NewReader("Subject: old\r\n\r\nold\r\n")); err != nil {
					t.Fatal(err)
				}
			}
			_, addr := e.serve(t, ServerOptions{LMTP: lmtp})
			c := dial(t, "tcp", addr)
			hello, done, full := "C: EHLO c", "S: 250 2.0.0 Delivered", "S~ 552 5.2.2 "
			if lmtp {
				hello = "C: LHLO c"
				done = ""
				for _, a := range []string{"alice+1", "alice+2", "bob", "Alice+3"} {
					done += "S: 250 2.0.0 <" + a + "@example.org> Delivered\n"
				}
				done = strings.TrimSuffix(done, "\n")
			}
			c.script(`S~ 220 
` + hello + `
S* 250
C: MAIL FROM:<a@example.com>
S~ 250 
C: RCPT TO:<alice+1@example.org>
S~ 250 
C: RCPT TO:<alice+2@example.org>
S~ 250 
C: RCPT TO:<bob@example.org>
S~ 250 
C: RCPT TO:<Alice+3@example.org>
S~ 250 
C: DATA
S~ 354 
C: Subject: three addresses
C: .
` + done + `
C: MAIL FROM:<a@example.com>
S~ 250 
C: RCPT TO:<alice@example.org>
` + full)
			if n := len(e.messages(t, "alice")); n != 3 {
				t.Errorf("alice has %d messages, want 3", n)
			}
			if n := len(e.messages(t, "bob")); n != 1 {
				t.Errorf("bob has %d messages, want 1", n)
			}
		})
	}
}

// Issue 13, finding 8: RCPT cannot list the users quickly. One address
// names unknown users until its budget is spent; from then on every RCPT
// it sends, for a user that exists as for one that does not, gets the
// same 450 4.7.1, while another address is answered as usual.
func TestSMTPUnknownRecipientBudget(t *testing.T) {
	e := newEnv(t, nil)
	const budget = 3
	_, addr := e.serve(t, ServerOptions{UnknownPerMinute: budget})
	c := dialFromAddr(t, "127.0.0.2", addr)
	var script strings.Builder
	script.WriteString("S~ 220 \nC: EHLO c\nS* 250\nC: MAIL FROM:<a@example.com>\nS~ 250 \n")
	for i := range budget {
		fmt.Fprintf(&script, "C: RCPT TO:<nobody%d@example.org>\nS: 550 5.1.1 No such user here\n", i)
	}
	// Known and unknown users get the same answer now.
	for _, to := range []string{"alice", "nobody", "bob", "nobody9"} {
		fmt.Fprintf(&script, "C: RCPT TO:<%s@example.org>\nS: 450 4.7.1 Too many unknown recipients from your address, try again later\n", to)
	}
	c.script(script.String())
	// A new connection from the same address is no way around it.
	dialFromAddr(t, "127.0.0.2", addr).script(`S~ 220 
C: HELO c
S~ 250 
C: MAIL FROM:<a@example.com>
S~ 250 
C: RCPT TO:<alice@example.org>
S: 450 4.7.1 Too many unknown recipients from your address, try again later`)
	dialFromAddr(t, "127.0.0.3", addr).script(`S~ 220 
C: HELO c
S~ 250 
C: MAIL FROM:<a@example.com>
S~ 250 
C: RCPT TO:<nobody@example.org>
S: 550 5.1.1 No such user here
C: RCPT TO:<alice@example.org>
S~ 250 `)
}
