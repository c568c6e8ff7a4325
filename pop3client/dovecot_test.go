package pop3client_test

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strconv"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/pop3client"
)

// dovecotListSize: for a stored message without a final line end,
// Dovecot's LIST reports the stored size (55) while its RETR sends the
// line end it supplies (57 octets); postie counts the supplied CRLF (RFC
// 1939 §11). The bytes retrieved are the same.
func dovecotListSize(i int) int64 {
	if i == 2 {
		return 55
	}
	return int64(len(corpus[i].wire))
}

// TestCoreDovecot runs the same core against a real Dovecot, logging in
// every way Dovecot offers here and over plain, STLS and implicit TLS
// connections, and holds the results against postie's.
func TestCoreDovecot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	d := testenv.StartDovecot(t, 6)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(d.CertPEM) {
		t.Fatal("bad certificate from testenv")
	}
	tlsCfg := &tls.Config{RootCAs: pool}
	want := postieCore(t)

	tests := []struct {
		name string
		addr string
		opts *pop3client.Options
		auth func(user, pass string) peer
	}{
		{"USER/PASS", d.Addr, nil, nil},
		{"SASL PLAIN", d.Addr, nil, func(u, p string) peer {
			return peer{login: loginSASL(func() pop3client.SASLMechanism { return pop3client.SASLPlain("", u, p) })}
		}},
		{"SASL LOGIN", d.Addr, nil, func(u, p string) peer {
			return peer{login: loginSASL(func() pop3client.SASLMechanism { return pop3client.SASLLogin(u, p) })}
		}},
		{"STLS", d.Addr, &pop3client.Options{TLS: pop3client.TLSStartTLS, TLSConfig: tlsCfg}, nil},
		{"implicit TLS", d.TLSAddr, &pop3client.Options{TLS: pop3client.TLSImplicit, TLSConfig: tlsCfg}, func(u, p string) peer {
			return peer{login: loginSASL(func() pop3client.SASLMechanism { return pop3client.SASLPlain("", u, p) })}
		}},
	}
	for i, tc := range tests {
		user, pass := "user"+strconv.Itoa(i+1), "pass"+strconv.Itoa(i+1)
		t.Run(tc.name, func(t *testing.T) {
			for _, m := range corpus {
				d.Deliver(t, user, []byte(m.stored))
			}
			p := peer{login: loginUserPass(user, pass)}
			if tc.auth != nil {
				p = tc.auth(user, pass)
			}
			p.addr, p.opts, p.user, p.listSize = tc.addr, tc.opts, user, dovecotListSize
			got := runCore(t, p)
			if !slices.Equal(got.bodies, want.bodies) || !slices.Equal(got.tops, want.tops) {
				t.Errorf("Dovecot and postie sent different messages:\n%q\n%q", got.bodies, want.bodies)
			}
			for i := range want.sizes {
				if i != 2 && got.sizes[i] != want.sizes[i] {
					t.Errorf("message %d: Dovecot lists %d octets, postie %d", i+1, got.sizes[i], want.sizes[i])
				}
			}
			if t.Failed() {
				t.Log(d.Log())
			}
		})
	}
}
