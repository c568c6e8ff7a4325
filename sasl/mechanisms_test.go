package sasl

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/xdg-go/scram"
)

func TestConfigNames(t *testing.T) {
	all := &Config{Passwords: passwords{"alice": "secret"}, SCRAM: testSCRAMUsers(t), SCRAMSecret: testSecret, Tokens: testTokens, External: true}
	cb := ChannelBinding{Type: ChannelBindingTLSExporter, Data: []byte{1, 2, 3}}
	tests := []struct {
		name string
		cfg  *Config
		conn Conn
		want string
	}{
		{"cleartext", all, Conn{}, "SCRAM-SHA-256 SCRAM-SHA-1"},
		{"cleartext with a certificate identity", all, Conn{ExternalIdentity: "alice", ChannelBinding: cb}, "SCRAM-SHA-256 SCRAM-SHA-1"},
		{"cleartext allowed", all, Conn{AllowCleartext: true}, "SCRAM-SHA-256 SCRAM-SHA-1 OAUTHBEARER XOAUTH2 PLAIN LOGIN"},
		{"TLS without binding", all, Conn{TLS: true}, "SCRAM-SHA-256 SCRAM-SHA-1 OAUTHBEARER XOAUTH2 PLAIN LOGIN"},
		{"TLS", all, Conn{TLS: true, ChannelBinding: cb, ExternalIdentity: "alice"},
			"SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 EXTERNAL OAUTHBEARER XOAUTH2 PLAIN LOGIN"},
		{"TLS, EXTERNAL off", &Config{Passwords: all.Passwords}, Conn{TLS: true, ExternalIdentity: "alice"}, "PLAIN LOGIN"},
		{"passwords only", &Config{Passwords: all.Passwords}, Conn{TLS: true, ChannelBinding: cb}, "PLAIN LOGIN"},
		{"nothing configured", &Config{}, Conn{TLS: true, ChannelBinding: cb, ExternalIdentity: "alice"}, ""},
		{"enabled subset", &Config{Passwords: all.Passwords, SCRAM: all.SCRAM, Enabled: []string{"plain", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "XOAUTH2"}},
			Conn{TLS: true, ChannelBinding: cb}, "SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN"},
		{"enabled empty", &Config{Passwords: all.Passwords, Enabled: []string{}}, Conn{TLS: true}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(tc.cfg.Names(tc.conn), " ")
			if got != tc.want {
				t.Fatalf("Names = %q, want %q", got, tc.want)
			}
			// Everything advertised can be started, nothing else.
			for _, m := range Mechanisms() {
				s, err := tc.cfg.New(strings.ToLower(m.Name), tc.conn)
				offered := strings.Contains(" "+got+" ", " "+m.Name+" ")
				if offered && (err != nil || s == nil) {
					t.Errorf("New(%s) = %v", m.Name, err)
				}
				if !offered && !errors.Is(err, ErrUnsupportedMechanism) {
					t.Errorf("New(%s) not advertised: err = %v", m.Name, err)
				}
				// Cleartext refused is said for exactly the Cleartext
				// mechanisms on a connection that may not carry them,
				// configured or not.
				refused := m.Cleartext && !tc.conn.TLS && !tc.conn.AllowCleartext
				if errors.Is(err, ErrCleartextRefused) != refused {
					t.Errorf("New(%s): err = %v, want cleartext refused: %v", m.Name, err, refused)
				}
			}
		})
	}
	if _, err := all.New("CRAM-MD5", Conn{TLS: true}); !errors.Is(err, ErrUnsupportedMechanism) {
		t.Errorf("New(CRAM-MD5) = %v", err)
	}
	for _, m := range Mechanisms() {
		if m.Cleartext && m.NeedsTLS {
			t.Errorf("%s: both Cleartext and NeedsTLS", m.Name)
		}
	}
}

func TestConfigNew(t *testing.T) {
	ctx := context.Background()
	cfg := &Config{Passwords: passwords{"alice": "secret"}, SCRAM: testSCRAMUsers(t), SCRAMSecret: testSecret, Tokens: testTokens, External: true}
	cb := ChannelBinding{Type: ChannelBindingTLSExporter, Data: []byte{1, 2, 3}}
	tlsConn := Conn{TLS: true, ChannelBinding: cb, ExternalIdentity: "alice"}

	s, err := cfg.New("plain", tlsConn)
	if err != nil {
		t.Fatal(err)
	}
	if _, done, err := s.Next(ctx, b("\x00alice\x00secret")); !done || err != nil || s.User() != "alice" {
		t.Fatalf("PLAIN: %v", err)
	}
	s, _ = cfg.New("EXTERNAL", tlsConn)
	if _, done, err := s.Next(ctx, b("")); !done || err != nil || s.User() != "alice" {
		t.Fatalf("EXTERNAL: %v", err)
	}
	s, _ = cfg.New("XOAUTH2", tlsConn)
	if _, done, err := s.Next(ctx, b("user=alice\x01auth=Bearer t0k3n\x01\x01")); !done || err != nil || s.User() != "alice" {
		t.Fatalf("XOAUTH2: %v", err)
	}

	// The plain SCRAM mechanism gets the binding when its -PLUS form is
	// offered, so a "y" client fails (RFC 5802 §6) …
	yClient := func() *scram.ClientConversation {
		return xdgClient(t, "SCRAM-SHA-256", "alice", "secret", "").NewConversationAdvertisingChannelBinding()
	}
	s, _ = cfg.New("SCRAM-SHA-256", tlsConn)
	if tr := xdgExchange(t, s, yClient(), true); !errors.Is(tr.err, ErrAuthFailed) {
		t.Fatalf("y client with -PLUS offered: %v", tr.err)
	}
	// … and not when -PLUS is not offered for that hash.
	only := *cfg
	only.Enabled = []string{"SCRAM-SHA-256", "SCRAM-SHA-1-PLUS"}
	s, _ = only.New("SCRAM-SHA-256", tlsConn)
	if tr := xdgExchange(t, s, yClient(), true); tr.err != nil {
		t.Fatalf("y client without SCRAM-SHA-256-PLUS offered: %v", tr.err)
	}
	s, _ = cfg.New("SCRAM-SHA-256", Conn{TLS: true})
	if tr := xdgExchange(t, s, yClient(), true); tr.err != nil {
		t.Fatalf("y client without binding: %v", tr.err)
	}
}

// Attempted is the user the client named, whether or not it exists or
// the exchange succeeds, so that an engine can throttle and log failed
// guesses per user; "" when the client named none that could be read.
func TestAttempted(t *testing.T) {
	ctx := context.Background()
	cfg := &Config{Passwords: passwords{"alice": "secret"}, SCRAM: testSCRAMUsers(t), SCRAMSecret: testSecret, Tokens: testTokens, External: true}
	conn := Conn{TLS: true, ExternalIdentity: "alice"}
	tests := []struct {
		mech  string
		resps []string
		want  string
	}{
		{"PLAIN", []string{"\x00Alice\x00wrong"}, "Alice"},
		{"PLAIN", []string{"\x00nobody\x00secret"}, "nobody"},
		{"PLAIN", []string{"alice\x00bob\x00secret"}, "bob"},
		{"PLAIN", []string{"\x00\x00secret"}, ""},
		{"PLAIN", []string{"no NULs"}, ""},
		{"LOGIN", []string{"mallory", "wrong"}, "mallory"},
		{"LOGIN", []string{"mallory"}, "mallory"},
		{"SCRAM-SHA-256", []string{"n,,n=eve,r=abcdefgh", "c=biws,r=bogus,p=AAAA"}, "eve"},
		{"SCRAM-SHA-1", []string{"n,,n=a=3Db,r=abcdefgh"}, "a=b"},
		{"SCRAM-SHA-256", []string{"n,,n=,r=abcdefgh"}, ""},
		{"XOAUTH2", []string{"user=bob\x01auth=Bearer nope\x01\x01"}, "bob"},
		{"OAUTHBEARER", []string{"n,a=carol,\x01auth=Bearer nope\x01\x01"}, "carol"},
		{"OAUTHBEARER", []string{"n,,\x01auth=Bearer nope\x01\x01"}, ""},
		{"EXTERNAL", []string{"mallory"}, ""},
	}
	for _, tc := range tests {
		s, err := cfg.New(tc.mech, conn)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range tc.resps {
			if _, done, _ := s.Next(ctx, b(r)); done {
				break
			}
		}
		if got := AttemptedUser(s); got != tc.want {
			t.Errorf("%s %q: attempted %q, want %q", tc.mech, tc.resps, got, tc.want)
		}
		if s.User() != "" {
			t.Errorf("%s %q: User %q after a failure", tc.mech, tc.resps, s.User())
		}
	}
}
