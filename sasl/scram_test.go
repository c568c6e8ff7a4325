package sasl

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/xdg-go/scram"

	"github.com/postie-mail/postie/internal/testenv"
)

// scramUsers is a SCRAMStore over a map from user to mechanism to
// credentials, ASCII case-insensitive like package auth.
type scramUsers map[string]map[string]SCRAMCredentials

func (u scramUsers) SCRAMCredentials(_ context.Context, user, mech string) (SCRAMCredentials, string, bool, error) {
	if user == "sysfail" {
		return SCRAMCredentials{}, "", false, errBackend
	}
	for name, m := range u {
		if strings.EqualFold(name, user) {
			c, ok := m[mech]
			return c, name, ok, nil
		}
	}
	return SCRAMCredentials{}, "", false, nil
}

func mustCred(t testing.TB, mech, password string) SCRAMCredentials {
	t.Helper()
	c, err := NewSCRAMCredentials(mech, password, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testSCRAMUsers(t testing.TB) scramUsers {
	return scramUsers{
		"alice": {"SCRAM-SHA-256": mustCred(t, "SCRAM-SHA-256", "secret"), "SCRAM-SHA-1": mustCred(t, "SCRAM-SHA-1", "secret")},
		"Bob":   {"SCRAM-SHA-256": mustCred(t, "SCRAM-SHA-256", "pencil")},
		"a,b=c": {"SCRAM-SHA-256": mustCred(t, "SCRAM-SHA-256", "pw"), "SCRAM-SHA-1": mustCred(t, "SCRAM-SHA-1", "pw")},
	}
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newSCRAM(t testing.TB, mech string, store SCRAMStore, cb ChannelBinding) Server {
	t.Helper()
	s, err := NewSCRAM(mech, SCRAMOptions{Store: store, Secret: testSecret, ChannelBinding: cb})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// transcript is what a SCRAM exchange showed the client.
type transcript struct {
	serverFirst string
	serverFinal string
	steps       int   // calls to Next
	failedAt    int   // the step that returned an error, 0 for none
	err         error // the error of the exchange
}

// xdgExchange runs the independent xdg-go/scram client conv against s.
// With initial, client-first is the initial response; otherwise the
// server is started with nil and must answer an empty challenge.
func xdgExchange(t *testing.T, s Server, conv *scram.ClientConversation, initial bool) transcript {
	t.Helper()
	ctx := context.Background()
	var tr transcript
	next := func(resp []byte) ([]byte, bool, error) {
		tr.steps++
		c, done, err := s.Next(ctx, resp)
		if err != nil {
			if !done {
				t.Fatalf("step %d: error %v without done", tr.steps, err)
			}
			tr.failedAt, tr.err = tr.steps, err
		}
		return c, done, err
	}
	first, err := conv.Step("")
	if err != nil {
		t.Fatal(err)
	}
	if !initial {
		c, done, err := next(nil)
		if err != nil || done || c == nil || len(c) != 0 {
			t.Fatalf("no initial response: Next(nil) = %q, %v, %v; want an empty challenge", c, done, err)
		}
	}
	c, done, err := next([]byte(first))
	if err != nil {
		return tr
	}
	if done {
		t.Fatalf("server done after client-first")
	}
	tr.serverFirst = string(c)
	final, err := conv.Step(tr.serverFirst)
	if err != nil {
		t.Fatalf("client refused server-first %q: %v", c, err)
	}
	c, done, err = next([]byte(final))
	if !done {
		t.Fatalf("server not done after client-final")
	}
	if err != nil {
		if c != nil {
			t.Fatalf("challenge %q with error", c)
		}
		return tr
	}
	tr.serverFinal = string(c)
	if _, err := conv.Step(tr.serverFinal); err != nil || !conv.Valid() {
		t.Fatalf("client refused server-final %q: %v", c, err)
	}
	return tr
}

func xdgClient(t *testing.T, mech, user, password, authzid string) *scram.Client {
	t.Helper()
	f := scram.SHA256
	if mech == "SCRAM-SHA-1" {
		f = scram.SHA1
	}
	c, err := f.NewClient(user, password, authzid)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSCRAMWithXDGClient(t *testing.T) {
	users := testSCRAMUsers(t)
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1"} {
		for _, initial := range []bool{true, false} {
			tests := []struct {
				name, user, password, authzid string
				canonical                     string
				err                           error
			}{
				{"success", "alice", "secret", "", "alice", nil},
				{"case-insensitive name", "ALICE", "secret", "", "alice", nil},
				{"authzid same user", "alice", "secret", "alice", "alice", nil},
				{"authzid canonical", "ALICE", "secret", "Alice", "alice", nil},
				{"wrong password", "alice", "wrong", "", "", ErrAuthFailed},
				{"unknown user", "mallory", "secret", "", "", ErrAuthFailed},
				{"proxy authzid", "alice", "secret", "Bob", "", ErrAuthFailed},
				{"name with , and =", "a,b=c", "pw", "", "a,b=c", nil},
				{"authzid with , and =", "a,b=c", "pw", "A,B=C", "a,b=c", nil},
			}
			for _, tc := range tests {
				t.Run(mech+"/"+tc.name, func(t *testing.T) {
					s := newSCRAM(t, mech, users, ChannelBinding{})
					tr := xdgExchange(t, s, xdgClient(t, mech, tc.user, tc.password, tc.authzid).NewConversation(), initial)
					if !errors.Is(tr.err, tc.err) || (tc.err == nil && tr.err != nil) {
						t.Fatalf("err = %v, want %v", tr.err, tc.err)
					}
					if s.User() != tc.canonical {
						t.Errorf("User() = %q, want %q", s.User(), tc.canonical)
					}
					if tc.err != nil && tr.failedAt != tr.steps {
						t.Errorf("failed at step %d of %d", tr.failedAt, tr.steps)
					}
					if tc.err == nil && !strings.HasPrefix(tr.serverFinal, "v=") {
						t.Errorf("server-final = %q", tr.serverFinal)
					}
					mustFinish(t, s)
				})
			}
		}
	}
	// Bob has only SHA-256 credentials: SHA-1 fails like a wrong password.
	s := newSCRAM(t, "SCRAM-SHA-1", users, ChannelBinding{})
	if tr := xdgExchange(t, s, xdgClient(t, "SCRAM-SHA-1", "Bob", "pencil", "").NewConversation(), true); !errors.Is(tr.err, ErrAuthFailed) || tr.serverFirst == "" {
		t.Fatalf("SHA-1 for a SHA-256-only user: %+v", tr)
	}
}

// The exchanges of RFC 5802 §5 and RFC 7677 §3, byte for byte.
func TestSCRAMKnownAnswer(t *testing.T) {
	tests := []struct {
		mech, salt, snonce string
		c1, s1, c2, s2     string
	}{
		{"SCRAM-SHA-1", "QSXCR+Q6sek8bf92", "3rfcNHYJY1ZVvWVs7j",
			"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="},
		{"SCRAM-SHA-256", "W22ZaJ0SNY7soEsUEjb6gQ==", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
			"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="},
	}
	for _, tc := range tests {
		t.Run(tc.mech, func(t *testing.T) {
			h, _ := scramHashByName(tc.mech)
			salt, _ := base64.StdEncoding.DecodeString(tc.salt)
			cred, err := scramDerive(h, "pencil", salt, 4096)
			if err != nil {
				t.Fatal(err)
			}
			s := newSCRAM(t, tc.mech, scramUsers{"user": {tc.mech: cred}}, ChannelBinding{})
			s.(*scramServer).testNonce = tc.snonce
			run(t, s, []step{{resp: b(tc.c1), challenge: tc.s1}, {resp: b(tc.c2), challenge: tc.s2, done: true}})
			if s.User() != "user" {
				t.Errorf("User() = %q", s.User())
			}
			// One flipped bit of the proof fails.
			s = newSCRAM(t, tc.mech, scramUsers{"user": {tc.mech: cred}}, ChannelBinding{})
			s.(*scramServer).testNonce = tc.snonce
			bad := strings.Replace(tc.c2, ",p=v0X8", ",p=v1X8", 1)
			bad = strings.Replace(bad, ",p=dHzb", ",p=dHzc", 1)
			run(t, s, []step{{resp: b(tc.c1), challenge: tc.s1}, {resp: b(bad), done: true, err: ErrAuthFailed}})
		})
	}
}

// handClient computes a SCRAM-SHA-256 client exchange from the RFC 5802
// §3 formulas directly, independently of both the server code and
// xdg-go/scram, for channel-binding cases the latter cannot produce.
type handClient struct {
	password, gs2, bare string
	cbind               []byte // the content of c=
}

func newHandClient(gs2, user, password string, cbData []byte) *handClient {
	return &handClient{password: password, gs2: gs2, bare: "n=" + user + ",r=cl1entN0nce",
		cbind: append([]byte(gs2), cbData...)}
}

func (h *handClient) first() []byte { return []byte(h.gs2 + h.bare) }

func (h *handClient) final(t *testing.T, serverFirst string) []byte {
	t.Helper()
	nonce, salt, iter := parseServerFirst(t, serverFirst)
	if iter != "4096" {
		t.Fatalf("iterations %q", iter)
	}
	hmacSHA256 := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := hmacSHA256(pbkdf2SHA256(h.password, salt), "Client Key")
	storedKey := sha256.Sum256(clientKey)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(h.cbind) + ",r=" + nonce
	sig := hmacSHA256(storedKey[:], h.bare+","+serverFirst+","+withoutProof)
	for i := range clientKey {
		clientKey[i] ^= sig[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(clientKey))
}

func TestSCRAMChannelBinding(t *testing.T) {
	users := testSCRAMUsers(t)
	exporter := ChannelBinding{Type: ChannelBindingTLSExporter, Data: bytes.Repeat([]byte{7}, 32)}
	unique := ChannelBinding{Type: ChannelBindingTLSUnique, Data: bytes.Repeat([]byte{9}, 12)}

	// The hand-computed -PLUS exchange succeeds, and its server-final
	// carries the signature the client expects.
	for _, cb := range []ChannelBinding{exporter, unique} {
		s := newSCRAM(t, "SCRAM-SHA-256-PLUS", users, cb)
		hc := newHandClient("p="+cb.Type+",,", "alice", "secret", cb.Data)
		c, done, err := s.Next(context.Background(), hc.first())
		if err != nil || done {
			t.Fatalf("%s: first: %v", cb.Type, err)
		}
		c, done, err = s.Next(context.Background(), hc.final(t, string(c)))
		if err != nil || !done || !strings.HasPrefix(string(c), "v=") || s.User() != "alice" {
			t.Fatalf("%s: final = %q, %v, %v, user %q", cb.Type, c, done, err, s.User())
		}
	}

	tests := []struct {
		name   string
		mech   string
		server ChannelBinding
		client *handClient
		err    error
		atStep int // 1: client-first refused, 2: client-final refused
	}{
		{"PLUS with wrong binding data", "SCRAM-SHA-256-PLUS", exporter,
			newHandClient("p=tls-exporter,,", "alice", "secret", bytes.Repeat([]byte{8}, 32)), ErrAuthFailed, 2},
		{"PLUS with no binding data in c=", "SCRAM-SHA-256-PLUS", exporter,
			newHandClient("p=tls-exporter,,", "alice", "secret", nil), ErrAuthFailed, 2},
		{"PLUS with another binding type", "SCRAM-SHA-256-PLUS", exporter,
			newHandClient("p=tls-unique,,", "alice", "secret", exporter.Data), ErrAuthFailed, 1},
		{"PLUS with an unknown binding type", "SCRAM-SHA-256-PLUS", exporter,
			newHandClient("p=tls-server-end-point,,", "alice", "secret", exporter.Data), ErrAuthFailed, 1},
		{"PLUS with flag n", "SCRAM-SHA-256-PLUS", exporter,
			newHandClient("n,,", "alice", "secret", nil), ErrMalformed, 1},
		{"PLUS with flag y", "SCRAM-SHA-256-PLUS", exporter,
			newHandClient("y,,", "alice", "secret", nil), ErrMalformed, 1},
		{"y while the server offers PLUS (downgrade)", "SCRAM-SHA-256", exporter,
			newHandClient("y,,", "alice", "secret", nil), ErrAuthFailed, 1},
		{"p with the plain mechanism", "SCRAM-SHA-256", exporter,
			newHandClient("p=tls-exporter,,", "alice", "secret", exporter.Data), ErrMalformed, 1},
		{"p with the plain mechanism, no binding", "SCRAM-SHA-256", ChannelBinding{},
			newHandClient("p=tls-exporter,,", "alice", "secret", exporter.Data), ErrMalformed, 1},
		{"y without binding on the server is fine", "SCRAM-SHA-256", ChannelBinding{},
			newHandClient("y,,", "alice", "secret", nil), nil, 0},
		{"n with binding on the server is fine", "SCRAM-SHA-256", exporter,
			newHandClient("n,,", "alice", "secret", nil), nil, 0},
		{"c= not the header sent (y for n)", "SCRAM-SHA-256", ChannelBinding{},
			&handClient{password: "secret", gs2: "n,,", bare: "n=alice,r=x", cbind: []byte("y,,")}, ErrAuthFailed, 2},
		{"c= not the header sent (authzid)", "SCRAM-SHA-256", ChannelBinding{},
			&handClient{password: "secret", gs2: "n,a=alice,", bare: "n=alice,r=x", cbind: []byte("n,,")}, ErrAuthFailed, 2},
		{"authzid in both", "SCRAM-SHA-256", ChannelBinding{},
			newHandClient("n,a=alice,", "alice", "secret", nil), nil, 0},
		{"binding data with flag n", "SCRAM-SHA-256", exporter,
			newHandClient("n,,", "alice", "secret", exporter.Data), ErrAuthFailed, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSCRAM(t, tc.mech, users, tc.server)
			c, done, err := s.Next(context.Background(), tc.client.first())
			if tc.atStep == 1 {
				if !done || !errors.Is(err, tc.err) {
					t.Fatalf("first = %q, %v, %v; want %v", c, done, err, tc.err)
				}
				return
			}
			if err != nil || done {
				t.Fatalf("first: %v", err)
			}
			_, done, err = s.Next(context.Background(), tc.client.final(t, string(c)))
			if !done || !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("final: %v, %v; want %v", done, err, tc.err)
			}
		})
	}
}

// xdg-go/scram's own -PLUS client and its "y" client.
func TestSCRAMChannelBindingXDG(t *testing.T) {
	users := testSCRAMUsers(t)
	data := bytes.Repeat([]byte{1, 2, 3}, 11)
	server := ChannelBinding{Type: ChannelBindingTLSExporter, Data: data}
	for _, tc := range []struct {
		name   string
		mech   string
		server ChannelBinding
		conv   func(*scram.Client) *scram.ClientConversation
		err    error
	}{
		{"PLUS", "SCRAM-SHA-256-PLUS", server, func(c *scram.Client) *scram.ClientConversation {
			return c.NewConversationWithChannelBinding(scram.ChannelBinding{Type: scram.ChannelBindingTLSExporter, Data: data})
		}, nil},
		{"PLUS, other data", "SCRAM-SHA-256-PLUS", server, func(c *scram.Client) *scram.ClientConversation {
			return c.NewConversationWithChannelBinding(scram.ChannelBinding{Type: scram.ChannelBindingTLSExporter, Data: []byte("other")})
		}, ErrAuthFailed},
		{"y against PLUS", "SCRAM-SHA-256", server, (*scram.Client).NewConversationAdvertisingChannelBinding, ErrAuthFailed},
		{"y without PLUS", "SCRAM-SHA-256", ChannelBinding{}, (*scram.Client).NewConversationAdvertisingChannelBinding, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSCRAM(t, tc.mech, users, tc.server)
			tr := xdgExchange(t, s, tc.conv(xdgClient(t, "SCRAM-SHA-256", "alice", "secret", "")), true)
			if !errors.Is(tr.err, tc.err) || (tc.err == nil && tr.err != nil) {
				t.Fatalf("err = %v, want %v", tr.err, tc.err)
			}
		})
	}
}

// parseServerFirst splits r=, s=, i= of a server-first-message.
func parseServerFirst(t *testing.T, s string) (nonce string, salt []byte, iter string) {
	t.Helper()
	f := strings.Split(s, ",")
	if len(f) != 3 || !strings.HasPrefix(f[0], "r=") || !strings.HasPrefix(f[1], "s=") || !strings.HasPrefix(f[2], "i=") {
		t.Fatalf("server-first %q", s)
	}
	salt, err := base64.StdEncoding.DecodeString(f[1][2:])
	if err != nil {
		t.Fatal(err)
	}
	return f[0][2:], salt, f[2][2:]
}

// An unknown user is indistinguishable from a wrong password: same
// steps, same failing step, same challenge shape, a stable salt.
func TestSCRAMUnknownUserLooksLikeWrongPassword(t *testing.T) {
	users := testSCRAMUsers(t)
	exchange := func(user string, secret []byte) transcript {
		s, err := NewSCRAM("SCRAM-SHA-256", SCRAMOptions{Store: users, Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		return xdgExchange(t, s, xdgClient(t, "SCRAM-SHA-256", user, "wrong", "").NewConversation(), false)
	}
	known := exchange("alice", testSecret)
	unknown := exchange("mallory", testSecret)
	if known.steps != unknown.steps || known.failedAt != unknown.failedAt || known.steps != 3 ||
		!errors.Is(known.err, ErrAuthFailed) || !errors.Is(unknown.err, ErrAuthFailed) ||
		known.serverFinal != "" || unknown.serverFinal != "" {
		t.Fatalf("known %+v, unknown %+v", known, unknown)
	}
	kn, ks, ki := parseServerFirst(t, known.serverFirst)
	un, us, ui := parseServerFirst(t, unknown.serverFirst)
	if len(kn) != len(un) || len(ks) != len(us) || ki != ui || ki != "4096" {
		t.Fatalf("shapes differ: %q vs %q", known.serverFirst, unknown.serverFirst)
	}
	// The fake salt is stable per user (and per case variant), like a real one.
	_, us2, _ := parseServerFirst(t, exchange("MALLORY", testSecret).serverFirst)
	_, other, _ := parseServerFirst(t, exchange("trudy", testSecret).serverFirst)
	_, otherSecret, _ := parseServerFirst(t, exchange("mallory", []byte("another secret")).serverFirst)
	if !bytes.Equal(us, us2) || bytes.Equal(us, other) || bytes.Equal(us, otherSecret) {
		t.Fatalf("fake salts: mallory %x, MALLORY %x, trudy %x, other secret %x", us, us2, other, otherSecret)
	}
	// An empty secret is replaced by the per-process one, not used as a key.
	_, emptySecret, _ := parseServerFirst(t, exchange("mallory", []byte{}).serverFirst)
	h, _ := scramHashByName("SCRAM-SHA-256")
	if bytes.Equal(emptySecret, fakeSCRAMCredentials(nil, h, "mallory", 4096).Salt) {
		t.Fatal("fake salt keyed with an empty secret")
	}
	// Knowing the fake salt does not help: the right "password" does not exist.
	if tr := exchange("mallory", testSecret); tr.err == nil {
		t.Fatal("unknown user authenticated")
	}
}

func TestSCRAMMalformed(t *testing.T) {
	users := testSCRAMUsers(t)
	first := []string{
		"",
		"n",
		"n,",
		"n,,",
		"x,,n=alice,r=abc",
		"p,,n=alice,r=abc",
		"p=,,n=alice,r=abc",
		"p=tls unique,,n=alice,r=abc",
		"n,alice,n=alice,r=abc",
		"n,a=,n=alice,r=abc",
		"n,a=al=ice,n=alice,r=abc",
		"n,,m=ext,n=alice,r=abc",
		"n,,n=alice",
		"n,,r=abc,n=alice",
		"n,,n=,r=abc",
		"n,,n=al=2Cice=,r=abc",
		"n,,n=al=3dice,r=abc",
		"n,,n=al\x00ice,r=abc",
		"n,,n=al\xffice,r=abc",
		"n,,n=alice,r=",
		"n,,n=alice,r=a b",
		"n,,n=alice,r=a\x7f",
		"n,,n=alice,r=abc,",
		"n,,n=alice,r=abc,1=x",
		"n,,n=alice,r=abc,xy",
		"n,,n=" + strings.Repeat("a", 256) + ",r=abc",
		"n,,n=alice,r=" + strings.Repeat("a", maxSCRAMMessage),
	}
	for _, m := range first {
		s := newSCRAM(t, "SCRAM-SHA-256", users, ChannelBinding{})
		run(t, s, []step{{resp: b(m), done: true, err: ErrMalformed}})
	}
	// Optional extensions are ignored.
	s := newSCRAM(t, "SCRAM-SHA-256", users, ChannelBinding{})
	if _, done, err := s.Next(context.Background(), b("n,,n=alice,r=abc,x=ext")); err != nil || done {
		t.Fatalf("extension: %v", err)
	}

	start := func() (Server, string) {
		s := newSCRAM(t, "SCRAM-SHA-256", users, ChannelBinding{})
		c, _, err := s.Next(context.Background(), b("n,,n=alice,r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		n, _, _ := parseServerFirst(t, string(c))
		return s, n
	}
	proof := base64.StdEncoding.EncodeToString(make([]byte, 32))
	final := []struct {
		msg string
		err error
	}{
		{"", ErrMalformed},
		{"c=biws", ErrMalformed},
		{"c=biws,r=NONCE", ErrMalformed},
		{"r=NONCE,c=biws,p=" + proof, ErrMalformed},
		{"c=biws,p=" + proof + ",r=NONCE", ErrMalformed},
		{"c=bi!s,r=NONCE,p=" + proof, ErrMalformed},
		{"c=biws,r=NONCE,p=" + proof[:10], ErrMalformed},
		{"c=biws,r=NONCE,p=AAAA", ErrMalformed},
		{"c=biws,r=NONCE,,p=" + proof, ErrMalformed},
		{"c=biws,r=NONCE,p=" + proof + "," + strings.Repeat("x", maxSCRAMMessage), ErrMalformed},
		{"c=biws,r=other,p=" + proof, ErrAuthFailed},
		{"c=eSws,r=NONCE,p=" + proof, ErrAuthFailed},
		{"c=biws,r=NONCE,p=" + proof, ErrAuthFailed},
		{"c=biws,r=NONCE,x=ext,p=" + proof, ErrAuthFailed},
	}
	for _, tc := range final {
		s, nonce := start()
		msg := strings.ReplaceAll(tc.msg, "NONCE", nonce)
		run(t, s, []step{{resp: b(msg), done: true, err: tc.err}})
		if s.User() != "" {
			t.Fatalf("%q: authenticated", tc.msg)
		}
		mustFinish(t, s)
	}
}

func TestNewSCRAM(t *testing.T) {
	users := testSCRAMUsers(t)
	cb := ChannelBinding{Type: ChannelBindingTLSExporter, Data: []byte{1}}
	for _, tc := range []struct {
		mech string
		opts SCRAMOptions
		ok   bool
	}{
		{"SCRAM-SHA-256", SCRAMOptions{Store: users}, true},
		{"scram-sha-1", SCRAMOptions{Store: users}, true},
		{"SCRAM-SHA-256-PLUS", SCRAMOptions{Store: users, ChannelBinding: cb}, true},
		{"SCRAM-SHA-1-PLUS", SCRAMOptions{Store: users, ChannelBinding: cb}, true},
		{"SCRAM-SHA-256-PLUS", SCRAMOptions{Store: users}, false},
		{"SCRAM-SHA-512", SCRAMOptions{Store: users}, false},
		{"-PLUS", SCRAMOptions{Store: users, ChannelBinding: cb}, false},
		{"PLAIN", SCRAMOptions{Store: users}, false},
		{"SCRAM-SHA-256", SCRAMOptions{}, false},
		{"SCRAM-SHA-256", SCRAMOptions{Store: users, ChannelBinding: ChannelBinding{Type: "tls-exporter"}}, false},
		{"SCRAM-SHA-256", SCRAMOptions{Store: users, ChannelBinding: ChannelBinding{Type: "a,b", Data: []byte{1}}}, false},
		{"SCRAM-SHA-256", SCRAMOptions{Store: users, ChannelBinding: ChannelBinding{Data: []byte{1}}}, false},
	} {
		_, err := NewSCRAM(tc.mech, tc.opts)
		if (err == nil) != tc.ok {
			t.Errorf("NewSCRAM(%q, %+v) = %v", tc.mech, tc.opts, err)
		}
	}
}

func TestSCRAMStoreTrouble(t *testing.T) {
	s := newSCRAM(t, "SCRAM-SHA-256", testSCRAMUsers(t), ChannelBinding{})
	run(t, s, []step{{resp: b("n,,n=sysfail,r=abc"), done: true, err: errBackend}})
	broken := scramUsers{"alice": {"SCRAM-SHA-256": {Salt: []byte{1}, Iterations: 4096, StoredKey: []byte{1}, ServerKey: []byte{1}}}}
	s = newSCRAM(t, "SCRAM-SHA-256", broken, ChannelBinding{})
	_, done, err := s.Next(context.Background(), b("n,,n=alice,r=abc"))
	if !done || err == nil || errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid stored credentials: %v, %v", done, err)
	}
}

// Entries written by Dovecot 2.3.19's `doveadm pw -s SCHEME -p secret`.
var dovecotVectors = []struct{ mech, entry, password string }{
	{"SCRAM-SHA-256", "{SCRAM-SHA-256}4096,FtJnqFafkzwNKcQCoCkSMA==,bIc1DY/MBSAsClvqShojwt458aRChCjWm16pLEGDg10=,57YsBv3RMbJYEOaxH1M5Qxin4QbdgQl/DwJ8lDdtMVw=", "secret"},
	{"SCRAM-SHA-256", "{SCRAM-SHA-256}4096,Z1Apuv2rXwMMN/PnA2mnIg==,vOXYPIEbLe/owyWnzkUCHVX6g8jQc7z2At1WGvuvSkg=,fqxaYatceSPuaNgBoE6yNLhSonxvxA92/62uosj5xVY=", "secret"},
	{"SCRAM-SHA-1", "{SCRAM-SHA-1}4096,MYwfEY0yaQiZe0qfNh26lg==,20/4PjE+YMut5Utp4q2IxkVEQ9E=,JvV3jqaH/GnWwQQeUpnOCJ1f5Ks=", "secret"},
	{"SCRAM-SHA-1", "{SCRAM-SHA-1}4096,j2pfbL21TzvSRN+sSQhf4Q==,LzDrK7bIWRI5V7DslmAN7K0ish8=,KDKfoe0WGWaxabj7cNKGe3jg/+Y=", "secret"},
	// "I<U+00AD>X": Dovecot hashes the password as given, without SASLprep.
	{"SCRAM-SHA-256", "{SCRAM-SHA-256}4096,ufquSMNs9uPAKgSRxkgLEQ==,ud86OhXp0f2bfdU4++CicZXvPdypHq6BnG5oLMt0uIA=,ozQ1+I65jp8JNmGubJXXC121yCnHKhyTipXhxCxAKzs=", "I\u00adX"},
}

func TestDovecotSCRAM(t *testing.T) {
	for _, v := range dovecotVectors {
		cred, err := ParseDovecotSCRAM(v.entry)
		if err != nil {
			t.Fatalf("%s: %v", v.entry, err)
		}
		if cred.Mechanism() != v.mech || cred.Iterations != 4096 || len(cred.Salt) != 16 {
			t.Fatalf("%s: parsed %+v", v.entry, cred)
		}
		// Our derivation is Dovecot's.
		h, _ := scramHashByName(v.mech)
		mine, err := scramDerive(h, v.password, cred.Salt, cred.Iterations)
		if err != nil || !bytes.Equal(mine.StoredKey, cred.StoredKey) || !bytes.Equal(mine.ServerKey, cred.ServerKey) {
			t.Fatalf("%s: derived keys differ from Dovecot's", v.entry)
		}
		if out, err := FormatDovecotSCRAM(cred); err != nil || out != v.entry {
			t.Fatalf("FormatDovecotSCRAM = %q, %v; want %q", out, err, v.entry)
		}
		if v.password != "secret" {
			continue
		}
		// An independent client logs in with the password; a wrong one fails.
		store := scramUsers{"alice": {v.mech: cred}}
		for pw, want := range map[string]error{"secret": nil, "Secret": ErrAuthFailed} {
			s := newSCRAM(t, v.mech, store, ChannelBinding{})
			tr := xdgExchange(t, s, xdgClient(t, v.mech, "alice", pw, "").NewConversation(), true)
			if !errors.Is(tr.err, want) || (want == nil && tr.err != nil) {
				t.Fatalf("%s with %q: %v", v.entry, pw, tr.err)
			}
		}
	}
}

// When doveadm is installed, fresh entries it writes work too.
func TestDovecotSCRAMLive(t *testing.T) {
	doveadm := testenv.LookPath(t, "doveadm")
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1"} {
		out, err := exec.Command(doveadm, "-c", "/dev/null", "pw", "-s", mech, "-p", "secret").Output()
		if err != nil {
			t.Skipf("doveadm pw: %v", err)
		}
		cred, err := ParseDovecotSCRAM(strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatal(err)
		}
		s := newSCRAM(t, mech, scramUsers{"alice": {mech: cred}}, ChannelBinding{})
		if tr := xdgExchange(t, s, xdgClient(t, mech, "alice", "secret", "").NewConversation(), true); tr.err != nil {
			t.Fatalf("%s: %v", out, tr.err)
		}
	}
}

func TestParseDovecotSCRAMMalformed(t *testing.T) {
	good := dovecotVectors[0].entry
	for _, bad := range []string{
		"",
		"4096,FtJnqFafkzwNKcQCoCkSMA==,bIc1DY/MBSAsClvqShojwt458aRChCjWm16pLEGDg10=,57YsBv3RMbJYEOaxH1M5Qxin4QbdgQl/DwJ8lDdtMVw=",
		"{SCRAM-SHA-256",
		"{PLAIN}secret",
		"{SCRAM-SHA-512}4096,FtJnqFafkzwNKcQCoCkSMA==,bIc1DY/MBSAsClvqShojwt458aRChCjWm16pLEGDg10=,57YsBv3RMbJYEOaxH1M5Qxin4QbdgQl/DwJ8lDdtMVw=",
		strings.Replace(good, "{SCRAM-SHA-256}", "{SCRAM-SHA-1}", 1),
		strings.Replace(good, "4096,", "0,", 1),
		strings.Replace(good, "4096,", "-1,", 1),
		strings.Replace(good, "4096,", "+4096,", 1),
		strings.Replace(good, "4096,", "04096,", 1),
		strings.Replace(good, "4096,", "99999999999,", 1),
		strings.Replace(good, "4096,", "x,", 1),
		strings.Replace(good, "FtJnqFafkzwNKcQCoCkSMA==", "", 1),
		strings.Replace(good, "FtJnqFafkzwNKcQCoCkSMA==", "FtJnq!!!", 1),
		strings.Replace(good, "=,57Ys", "=,,57Ys", 1),
		good + ",extra",
		good[:len(good)-8],
	} {
		if c, err := ParseDovecotSCRAM(bad); err == nil {
			t.Errorf("ParseDovecotSCRAM(%q) = %+v, want an error", bad, c)
		}
	}
	// The scheme is case-insensitive, as in Dovecot.
	if _, err := ParseDovecotSCRAM(strings.Replace(good, "SCRAM-SHA-256", "scram-sha-256", 1)); err != nil {
		t.Error(err)
	}
}

func TestNewSCRAMCredentials(t *testing.T) {
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1"} {
		c1 := mustCred(t, mech, "secret")
		c2 := mustCred(t, mech, "secret")
		if c1.Mechanism() != mech || c1.Iterations != DefaultSCRAMIterations || len(c1.Salt) != 16 || bytes.Equal(c1.Salt, c2.Salt) {
			t.Fatalf("%s: %+v, %+v", mech, c1, c2)
		}
		entry, err := FormatDovecotSCRAM(c1)
		if err != nil || !strings.HasPrefix(entry, "{"+mech+"}4096,") {
			t.Fatalf("FormatDovecotSCRAM = %q, %v", entry, err)
		}
		back, err := ParseDovecotSCRAM(entry)
		if err != nil || !bytes.Equal(back.StoredKey, c1.StoredKey) || !bytes.Equal(back.ServerKey, c1.ServerKey) || !bytes.Equal(back.Salt, c1.Salt) {
			t.Fatalf("round trip: %+v, %v", back, err)
		}
		c, err := NewSCRAMCredentials(mech, "secret", 10000)
		if err != nil || c.Iterations != 10000 {
			t.Fatalf("10000 iterations: %+v, %v", c, err)
		}
	}
	for _, tc := range []struct {
		mech string
		iter int
	}{{"SCRAM-SHA-512", 0}, {"PLAIN", 0}, {"SCRAM-SHA-256", 4095}, {"SCRAM-SHA-256", -1}, {"SCRAM-SHA-256", maxIterations + 1}} {
		if _, err := NewSCRAMCredentials(tc.mech, "secret", tc.iter); err == nil {
			t.Errorf("NewSCRAMCredentials(%q, %d) succeeded", tc.mech, tc.iter)
		}
	}
	if _, err := FormatDovecotSCRAM(SCRAMCredentials{Salt: []byte{1}, Iterations: 4096, StoredKey: make([]byte, 32), ServerKey: make([]byte, 20)}); err == nil {
		t.Error("FormatDovecotSCRAM of mismatched keys succeeded")
	}
}
