package pop3client_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/pop3client"
)

// scramServer is a tiny POP3 server doing SCRAM with xdg-go/scram's server
// side (the Dovecot in testenv offers only PLAIN and LOGIN). Its mode
// makes it misbehave: "ok", "forge" (a server signature that does not
// match), "skip" (+OK without the server's final message).
//
// With tlsCfg the server speaks implicit TLS and requires channel binding
// (the -PLUS mechanisms); mode "unbound" makes it compute the binding of
// another channel, as a man in the middle would.
func scramServer(t *testing.T, hash scram.HashGeneratorFcn, mech, mode string, tlsCfg ...*tls.Config) (addr string, got func() []string) {
	cl, err := hash.NewClient("alice", "pencil", "")
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: "postie-salt", Iters: 4096})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := hash.NewServer(func(user string) (scram.StoredCredentials, error) {
		if user != "alice" {
			return scram.StoredCredentials{}, errors.New("no such user")
		}
		return creds, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	addr = startFake(t, func(fc *fakeConn) {
		var cb scram.ChannelBinding
		if len(tlsCfg) > 0 {
			tc := tls.Server(fc.c, tlsCfg[0])
			if err := tc.Handshake(); err != nil {
				return
			}
			cs := tc.ConnectionState()
			if cs.Version == tls.VersionTLS13 {
				cb, _ = scram.NewTLSExporterBinding(&cs)
			} else {
				cb = scram.NewTLSUniqueBinding(cs.TLSUnique)
			}
			if mode == "unbound" {
				cb.Data[0] ^= 1
			}
			fc = &fakeConn{t: fc.t, c: tc, br: bufio.NewReader(tc)}
		}
		fc.send("+OK ready")
		read := func() (string, bool) {
			l, ok := fc.line()
			mu.Lock()
			lines = append(lines, l)
			mu.Unlock()
			return l, ok
		}
		decode := func(s string) string {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Errorf("client sent bad base64 %q", s)
			}
			return string(b)
		}
		l, _ := read()
		ir, ok := strings.CutPrefix(l, "AUTH "+mech+" ")
		if !ok {
			fc.send("-ERR expected AUTH " + mech + " with an initial response")
			return
		}
		conv := srv.NewConversation()
		if cb.IsSupported() {
			conv = srv.NewConversationWithChannelBindingRequired(cb)
		}
		s1, err := conv.Step(decode(ir))
		if err != nil {
			fc.send("-ERR [AUTH] " + err.Error())
			return
		}
		fc.send("+ " + base64.StdEncoding.EncodeToString([]byte(s1)))
		l, _ = read()
		s2, err := conv.Step(decode(l))
		if err != nil {
			fc.send("-ERR [AUTH] authentication failed")
		} else {
			switch mode {
			case "forge":
				sig, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(s2, "v="))
				sig[0] ^= 1
				s2 = "v=" + base64.StdEncoding.EncodeToString(sig)
				fallthrough
			case "ok", "unbound":
				fc.send("+ " + base64.StdEncoding.EncodeToString([]byte(s2)))
				if l, _ = read(); l == "" {
					fc.send("+OK logged in")
				} else {
					fc.send("-ERR canceled")
				}
			case "skip":
				fc.send("+OK logged in")
			}
		}
		for {
			l, ok := read()
			if !ok {
				return
			}
			fc.send("+OK " + l)
		}
	})
	return addr, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(lines)
	}
}

func TestSCRAM(t *testing.T) {
	for _, v := range []struct {
		mech string
		hash scram.HashGeneratorFcn
		new  func(user, pass string) pop3client.SASLMechanism
	}{
		{"SCRAM-SHA-256", scram.SHA256, pop3client.SASLScramSHA256},
		{"SCRAM-SHA-1", scram.SHA1, pop3client.SASLScramSHA1},
	} {
		t.Run(v.mech, func(t *testing.T) {
			ctx := ctxT(t)

			addr, got := scramServer(t, v.hash, v.mech, "ok")
			c := dial(t, addr)
			if err := c.Auth(ctx, v.new("alice", "pencil")); err != nil {
				t.Fatal(err)
			}
			if err := c.Noop(ctx); err != nil {
				t.Fatal(err)
			}
			if lines := got(); len(lines) != 4 || lines[2] != "" || lines[3] != "NOOP" || strings.Contains(strings.Join(lines, " "), "pencil") {
				t.Errorf("server received %q", lines)
			}

			addr, _ = scramServer(t, v.hash, v.mech, "ok")
			c = dial(t, addr)
			err := c.Auth(ctx, v.new("alice", "wrong"))
			var perr *pop3.Error
			if !errors.As(err, &perr) || perr.Code != pop3.CodeAuth {
				t.Errorf("Auth with a wrong password = %v; want [AUTH]", err)
			}

			// A server that cannot prove it knows the password is
			// refused: with "*" when its signature is wrong, by dropping
			// the connection when it says +OK without one.
			addr, got = scramServer(t, v.hash, v.mech, "forge")
			c = dial(t, addr)
			err = c.Auth(ctx, v.new("alice", "pencil"))
			if err == nil || !strings.Contains(err.Error(), "scram") {
				t.Errorf("Auth with a forged server signature = %v", err)
			}
			if lines := got(); len(lines) != 3 || lines[2] != "*" {
				t.Errorf("server received %q; want the exchange canceled", lines)
			}
			if err := c.Noop(ctx); err != nil {
				t.Errorf("Noop after a canceled exchange: %v", err)
			}

			addr, _ = scramServer(t, v.hash, v.mech, "skip")
			c = dial(t, addr)
			if err := c.Auth(ctx, v.new("alice", "pencil")); err == nil || !strings.Contains(err.Error(), "without proving") {
				t.Errorf("Auth with no server signature = %v", err)
			}
			if err := c.Noop(ctx); !errors.Is(err, pop3client.ErrClosed) {
				t.Errorf("Noop after an unproven server = %v; want ErrClosed", err)
			}
		})
	}
}

// A server cannot make the client compute PBKDF2 without end: iteration
// counts over the cap are refused, and the context cuts short a long
// computation under it.
func TestSCRAMIterations(t *testing.T) {
	for _, tc := range []struct {
		iters   string
		timeout time.Duration
		check   func(err error) bool
	}{
		{"99999999999", 30 * time.Second, func(err error) bool { return err != nil && strings.Contains(err.Error(), "iterations") }},
		{"1048576", 20 * time.Millisecond, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	} {
		var mu sync.Mutex
		var lines []string
		addr := startFake(t, func(fc *fakeConn) {
			fc.send("+OK ready")
			l, _ := fc.line()
			c1, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "AUTH SCRAM-SHA-256 "))
			_, nonce, _ := strings.Cut(string(c1), ",r=")
			fc.send("+ " + base64.StdEncoding.EncodeToString([]byte("r="+nonce+"srv,s=c2FsdA==,i="+tc.iters)))
			l, _ = fc.line()
			mu.Lock()
			lines = append(lines, l)
			mu.Unlock()
			fc.send("-ERR canceled")
			fc.line()
		})
		c := dial(t, addr)
		ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
		start := time.Now()
		err := c.Auth(ctx, pop3client.SASLScramSHA256("alice", "pencil"))
		d := time.Since(start)
		cancel()
		if !tc.check(err) || d > tc.timeout+time.Second {
			t.Errorf("i=%s: Auth = %v after %v", tc.iters, err, d)
		}
		if tc.timeout > time.Second {
			mu.Lock()
			if !slices.Equal(lines, []string{"*"}) {
				t.Errorf("i=%s: server received %q; want the exchange canceled", tc.iters, lines)
			}
			mu.Unlock()
		}
	}
}

// The -PLUS mechanisms bind the login to the TLS channel: over TLS 1.3
// (tls-exporter) and TLS 1.2 (tls-unique) they succeed, and a server that
// sees another channel refuses them.
func TestSCRAMPlus(t *testing.T) {
	srvCfg, pool, _ := tlsPair(t)
	ctx := ctxT(t)
	for _, v := range []struct {
		mech string
		hash scram.HashGeneratorFcn
		new  func(user, pass string) pop3client.SASLMechanism
	}{
		{"SCRAM-SHA-256-PLUS", scram.SHA256, pop3client.SASLScramSHA256Plus},
		{"SCRAM-SHA-1-PLUS", scram.SHA1, pop3client.SASLScramSHA1Plus},
	} {
		for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			opts := &pop3client.Options{TLS: pop3client.TLSImplicit, TLSConfig: &tls.Config{RootCAs: pool, MaxVersion: version}}
			addr, got := scramServer(t, v.hash, v.mech, "ok", srvCfg)
			c, err := pop3client.Dial(ctx, addr, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Auth(ctx, v.new("alice", "pencil")); err != nil {
				t.Errorf("%s over %s: %v", v.mech, tls.VersionName(version), err)
			}
			c.Close()
			if lines := got(); len(lines) < 3 || !strings.HasPrefix(lines[0], "AUTH "+v.mech+" ") {
				t.Errorf("server received %q", lines)
			}

			addr, _ = scramServer(t, v.hash, v.mech, "unbound", srvCfg)
			c, err = pop3client.Dial(ctx, addr, opts)
			if err != nil {
				t.Fatal(err)
			}
			var perr *pop3.Error
			if err := c.Auth(ctx, v.new("alice", "pencil")); !errors.As(err, &perr) || perr.Code != pop3.CodeAuth {
				t.Errorf("%s over %s with another channel's binding = %v; want [AUTH]", v.mech, tls.VersionName(version), err)
			}
			c.Close()
		}
	}

	// Without TLS there is no channel to bind to: nothing is sent.
	addr, got := saslServer(t, "+OK")
	c := dial(t, addr)
	if err := c.Auth(ctx, pop3client.SASLScramSHA256Plus("alice", "pencil")); err == nil || !strings.Contains(err.Error(), "need TLS") {
		t.Errorf("SCRAM-SHA-256-PLUS without TLS = %v", err)
	}
	if err := c.Noop(ctx); err != nil {
		t.Fatal(err)
	}
	if lines := got(); !slices.Equal(lines, []string{"NOOP"}) {
		t.Errorf("server received %q", lines)
	}
}
