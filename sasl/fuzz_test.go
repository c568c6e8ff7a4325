package sasl

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// checkOutcome holds the invariants of every exchange: an error ends it,
// a failure leaves no user, a success names one.
func checkOutcome(t *testing.T, s Server, done bool, err error) {
	t.Helper()
	if err != nil && !done {
		t.Fatalf("error %v without done", err)
	}
	if err != nil && s.User() != "" {
		t.Fatalf("user %q after error %v", s.User(), err)
	}
	if done && err == nil && s.User() == "" {
		t.Fatal("success without a user")
	}
}

func FuzzPLAIN(f *testing.F) {
	for _, s := range []string{"\x00alice\x00secret", "alice\x00alice\x00secret", "\x00alice\x00wrong", "\x00\x00", "a\x00b\x00c\x00d", "\x00al\xffice\x00secret"} {
		f.Add([]byte(s))
	}
	pc := passwords{"alice": "secret"}
	f.Fuzz(func(t *testing.T, msg []byte) {
		s := NewPLAIN(pc)
		_, done, err := s.Next(context.Background(), msg)
		checkOutcome(t, s, done, err)
		if !done {
			t.Fatal("PLAIN not done after its message")
		}
		if err == nil {
			p := bytes.Split(msg, []byte{0})
			if len(p) != 3 || !sameUser(string(p[1]), "alice") || string(p[2]) != "secret" || !authzOK(string(p[0]), "alice", "alice") {
				t.Fatalf("PLAIN accepted %q", msg)
			}
		}
	})
}

func FuzzLOGIN(f *testing.F) {
	f.Add([]byte("alice"), []byte("secret"), true)
	f.Add([]byte(""), []byte("secret"), false)
	f.Add([]byte("al\x00ice"), []byte("se\xffcret"), true)
	pc := passwords{"alice": "secret"}
	f.Fuzz(func(t *testing.T, user, pass []byte, initial bool) {
		s := NewLOGIN(pc)
		ctx := context.Background()
		if !initial {
			if c, done, err := s.Next(ctx, nil); string(c) != "Username:" || done || err != nil {
				t.Fatalf("first challenge %q, %v, %v", c, done, err)
			}
		}
		_, done, err := s.Next(ctx, user)
		checkOutcome(t, s, done, err)
		if done {
			return
		}
		_, done, err = s.Next(ctx, pass)
		checkOutcome(t, s, done, err)
		if !done || (err == nil && (!sameUser(string(user), "alice") || string(pass) != "secret")) {
			t.Fatalf("LOGIN %q/%q: done %v, err %v", user, pass, done, err)
		}
	})
}

func FuzzEXTERNAL(f *testing.F) {
	f.Add([]byte(""), "alice")
	f.Add([]byte("bob"), "alice")
	f.Add([]byte("alice"), "")
	f.Fuzz(func(t *testing.T, msg []byte, identity string) {
		s := NewEXTERNAL(identity)
		_, done, err := s.Next(context.Background(), msg)
		checkOutcome(t, s, done, err)
		if err == nil && (identity == "" || s.User() != identity || !authzOK(string(msg), identity, identity)) {
			t.Fatalf("EXTERNAL(%q) accepted %q", identity, msg)
		}
	})
}

// FuzzSCRAM feeds arbitrary client-first and client-final messages. In
// the final message "{N}" is replaced by the nonce the server chose, so
// the fuzzer gets past the nonce check to the binding and proof checks.
// The fuzzer does not know the password, so success is impossible.
func FuzzSCRAM(f *testing.F) {
	f.Add([]byte("n,,n=alice,r=abc"), []byte("c=biws,r={N},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), uint8(0))
	f.Add([]byte("y,,n=alice,r=abc"), []byte("c=eSws,r={N},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), uint8(1))
	f.Add([]byte("p=tls-exporter,a=alice,n=alice,r=abc"), []byte("c=cD10bHMtZXhwb3J0ZXIsYT1hbGljZSwBAgM=,r={N},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), uint8(2))
	f.Add([]byte("n,,n=mallory,r=abc,x=y"), []byte("c=biws,r={N},x=1,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA="), uint8(3))
	f.Add([]byte("n,a=a=2Cb,n=a=3Dc,r=a"), []byte("c=,r={N},p="), uint8(0))
	users := testSCRAMUsers(f)
	mechs := []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"}
	cb := ChannelBinding{Type: ChannelBindingTLSExporter, Data: []byte{1, 2, 3}}
	f.Fuzz(func(t *testing.T, first, final []byte, sel uint8) {
		opts := SCRAMOptions{Store: users, Secret: testSecret}
		if sel&4 != 0 || sel&2 != 0 {
			opts.ChannelBinding = cb
		}
		s, err := NewSCRAM(mechs[sel%4], opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		c, done, err := s.Next(ctx, first)
		checkOutcome(t, s, done, err)
		if done {
			if err == nil {
				t.Fatal("SCRAM succeeded after client-first")
			}
			return
		}
		fields := strings.Split(string(c), ",")
		if len(fields) != 3 || !strings.HasPrefix(fields[0], "r=") || !strings.HasPrefix(fields[1], "s=") || !strings.HasPrefix(fields[2], "i=") {
			t.Fatalf("server-first %q", c)
		}
		nonce := fields[0][2:]
		c, done, err = s.Next(ctx, bytes.ReplaceAll(final, []byte("{N}"), []byte(nonce)))
		checkOutcome(t, s, done, err)
		if !done || err == nil || c != nil {
			t.Fatalf("SCRAM final: %q, %v, %v", c, done, err)
		}
	})
}

func FuzzOAUTHBEARER(f *testing.F) {
	f.Add([]byte("n,a=alice,\x01auth=Bearer t0k3n\x01\x01"), []byte("\x01"))
	f.Add([]byte("n,,\x01host=x\x01port=1\x01auth=bearer t0k3n\x01\x01"), []byte(""))
	f.Add([]byte("n,a=bob,\x01auth=Bearer t0k3n\x01\x01"), []byte("garbage"))
	f.Add([]byte("\x01"), []byte(nil))
	f.Fuzz(func(t *testing.T, first, second []byte) {
		fuzzOAuth(t, NewOAUTHBEARER(testTokens, OAuthOptions{Scope: "x"}), first, second)
	})
}

func FuzzXOAUTH2(f *testing.F) {
	f.Add([]byte("user=alice\x01auth=Bearer t0k3n\x01\x01"), []byte(""))
	f.Add([]byte("user=bob\x01auth=Bearer t0k3n\x01\x01"), []byte("\x01"))
	f.Add([]byte("user=alice\x01auth=Bearer nope\x01\x01"), []byte(nil))
	f.Fuzz(func(t *testing.T, first, second []byte) {
		fuzzOAuth(t, NewXOAUTH2(testTokens, OAuthOptions{}), first, second)
	})
}

// fuzzOAuth: only the token "t0k3n" (alice's) can succeed; a refused
// token gets one challenge and then fails whatever the client sends.
func fuzzOAuth(t *testing.T, s Server, first, second []byte) {
	ctx := context.Background()
	_, done, err := s.Next(ctx, first)
	checkOutcome(t, s, done, err)
	if err == nil && done {
		if s.User() != "alice" || !bytes.Contains(first, []byte(" t0k3n\x01")) {
			t.Fatalf("accepted %q as %q", first, s.User())
		}
		return
	}
	if done {
		return
	}
	_, done, err = s.Next(ctx, second)
	checkOutcome(t, s, done, err)
	if !done || !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("after the error challenge: %v, %v", done, err)
	}
}

func FuzzParseDovecotSCRAM(f *testing.F) {
	for _, v := range dovecotVectors {
		f.Add(v.entry)
	}
	f.Add("{scram-sha-1}1,AA==,AAAAAAAAAAAAAAAAAAAAAAAAAAA=,AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Fuzz(func(t *testing.T, entry string) {
		c, err := ParseDovecotSCRAM(entry)
		if err != nil {
			return
		}
		out, err := FormatDovecotSCRAM(c)
		if err != nil {
			t.Fatalf("parsed %q but cannot format it: %v", entry, err)
		}
		back, err := ParseDovecotSCRAM(out)
		if err != nil || back.Iterations != c.Iterations || !bytes.Equal(back.Salt, c.Salt) ||
			!bytes.Equal(back.StoredKey, c.StoredKey) || !bytes.Equal(back.ServerKey, c.ServerKey) {
			t.Fatalf("round trip of %q: %q, %v", entry, out, err)
		}
	})
}
