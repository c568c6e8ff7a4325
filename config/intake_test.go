package config

import (
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
	}{
		{`0`, 0}, {`1048576`, 1 << 20}, {`"1048576"`, 1 << 20}, {`"512K"`, 512 << 10}, {`"50M"`, 50 << 20},
		{`"50m"`, 50 << 20}, {`"50MB"`, 50 << 20}, {`"50MiB"`, 50 << 20}, {`"1G"`, 1 << 30}, {`"2T"`, 2 << 40}, {`" 3 K "`, 3 << 10},
	} {
		c, _, err := load(t, "[intake]\nmax_message_size = "+tc.in+"\n")
		if err != nil || c.Intake.MaxMessageSize != tc.want {
			t.Errorf("max_message_size = %s: %v, %v; want %d", tc.in, c.Intake.MaxMessageSize, err, tc.want)
		}
	}
	for _, in := range []string{`-1`, `"-1K"`, `"lots"`, `"1.5G"`, `"1X"`, `""`, `"99999999999T"`, `true`} {
		_, _, err := load(t, "[intake]\nquota_bytes = "+in+"\n")
		wantErr(t, err, "intake.quota_bytes")
	}
	for s, want := range map[Size]string{0: "0", 1023: "1023", 1 << 10: "1K", 50 << 20: "50M", 3 << 30: "3G", 1<<20 + 1: "1048577"} {
		if b, _ := s.MarshalText(); string(b) != want {
			t.Errorf("MarshalText(%d) = %s, want %s", s, b, want)
		}
	}
}

func TestQuotaOverrides(t *testing.T) {
	c, _, err := load(t, `[intake]
quota_bytes = "1G"
quota_messages = 1000
quota_overrides = { bob = { messages = 0 } }

[intake.quota_overrides.alice]
bytes = "10G"
`)
	if err != nil {
		t.Fatal(err)
	}
	o := c.Intake.QuotaOverrides
	if len(o) != 2 || o["alice"].Bytes == nil || *o["alice"].Bytes != 10<<30 || o["alice"].Messages != nil ||
		o["bob"].Messages == nil || *o["bob"].Messages != 0 || o["bob"].Bytes != nil {
		t.Errorf("quota_overrides = %+v", o)
	}
	_, _, err = load(t, "[intake.quota_overrides.carol]\nmessages = -3\n")
	wantErr(t, err, "intake.quota_overrides.carol.messages")
	_, _, err = load(t, "[intake.quota_overrides.carol]\nbites = 3\n")
	wantErr(t, err, "unknown key", "intake.quota_overrides.carol.bites")
}

func TestIntakeValidation(t *testing.T) {
	for _, tc := range []struct{ body, key string }{
		{"[smtp]\nlisten = [\"0.0.0.0:25\"]\n", "intake.local_domains: needs at least one domain"},
		{"[intake]\nlocal_domains = [\"exa mple.org\"]\n", "intake.local_domains"},
		{"[intake]\nlocal_domains = [\"-x.org\"]\n", "intake.local_domains"},
		{"[intake]\nlocal_domains = [\"a.org\", \"A.ORG\"]\n", "listed twice"},
		{"[intake]\nrecipient_delimiter = \"++\"\n", "intake.recipient_delimiter"},
		{"[intake]\nrecipient_delimiter = \"@\"\n", "intake.recipient_delimiter"},
		{"[intake]\nhostname = \"a b\"\n", "intake.hostname"},
		{"[intake]\nquota_messages = -1\n", "intake.quota_messages"},
		{"[lmtp]\nlisten = [\"unix:\"]\n", "lmtp.listen"},
		{"[lmtp]\nlisten = [\"localhost\"]\n", "lmtp.listen"},
		{"[lmtp]\nmax_connections = 0\n", "lmtp.max_connections"},
		{"[smtp]\nrate_limit = 5\nrate_burst = 0\n", "smtp.rate_burst"},
		{"[smtp]\nmax_recipients = 0\n", "smtp.max_recipients"},
	} {
		_, _, err := load(t, tc.body)
		wantErr(t, err, tc.key)
	}
	c, dir, err := load(t, `data_dir = "state"
[intake]
local_domains = ["example.org", "mail.example.org."]
recipient_delimiter = "-"
[lmtp]
listen = ["unix:run/lmtp", "unix:/run/postie/lmtp", "[::1]:24"]
[smtp]
listen = ["127.0.0.1:2525"]
rate_limit = 0
rate_burst = 0
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"unix:" + filepath.Join(dir, "state", "run", "lmtp"), "unix:/run/postie/lmtp", "[::1]:24"}
	if !slices.Equal(c.LMTP.Listen, want) {
		t.Errorf("lmtp.listen = %q, want %q (relative sockets under data_dir)", c.LMTP.Listen, want)
	}
}

// The keys of issue 13: LMTP socket mode and group, idle timeouts before
// MAIL, the SMTP per-address caps, and POP3's per-address login checks.
func TestHardeningKeys(t *testing.T) {
	c, _, err := load(t, "[lmtp]\nsocket_mode = \"0600\"\nsocket_group = \"postfix\"\nidle_timeout = \"30s\"\n"+
		"[smtp]\nmax_connections_per_ip = 3\nidle_timeout = \"1m\"\nunknown_recipient_limit = 0\n"+
		"[pop3]\nauth_checks_per_ip = 4\nauth_queue_per_ip = 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.LMTP.Mode() != 0o600 || c.LMTP.SocketGroup != "postfix" || c.LMTP.IdleTimeout.Std() != 30*time.Second ||
		c.SMTP.MaxConnectionsPerIP != 3 || c.SMTP.IdleTimeout.Std() != time.Minute || c.SMTP.UnknownRecipientLimit != 0 ||
		c.POP3.AuthChecksPerIP != 4 || c.POP3.AuthQueuePerIP != 0 {
		t.Errorf("got lmtp %+v, smtp %+v, pop3 checks %d queue %d", c.LMTP, c.SMTP, c.POP3.AuthChecksPerIP, c.POP3.AuthQueuePerIP)
	}
	if d := Default(); d.LMTP.Mode() != 0o660 || d.SMTP.MaxConnectionsPerIP != 10 || d.SMTP.UnknownRecipientLimit != 10 {
		t.Errorf("defaults: lmtp %+v, smtp %+v", d.LMTP, d.SMTP)
	}
	for _, tc := range []struct{ body, key string }{
		{"[lmtp]\nsocket_mode = \"666\"\n", ""}, // allowed: the operator's choice
		{"[lmtp]\nsocket_mode = \"0888\"\n", "lmtp.socket_mode"},
		{"[lmtp]\nsocket_mode = \"01777\"\n", "lmtp.socket_mode"},
		{"[lmtp]\nsocket_mode = \"rw-rw----\"\n", "lmtp.socket_mode"},
		{"[lmtp]\nsocket_mode = \"0060\"\n", "lmtp.socket_mode: \"0060\": the owner needs read and write"},
		{"[lmtp]\nsocket_group = \"a b\"\n", "lmtp.socket_group"},
		{"[lmtp]\nidle_timeout = \"0s\"\n", "lmtp.idle_timeout"},
		{"[smtp]\nidle_timeout = \"1h\"\n", "smtp.idle_timeout"},
		{"[smtp]\nmax_connections_per_ip = 0\n", "smtp.max_connections_per_ip"},
		{"[smtp]\nunknown_recipient_limit = -1\n", "smtp.unknown_recipient_limit"},
		{"[pop3]\nauth_checks_per_ip = 0\n", "pop3.auth_checks_per_ip"},
		{"[pop3]\nauth_queue_per_ip = -1\n", "pop3.auth_queue_per_ip"},
	} {
		_, _, err := load(t, tc.body)
		if tc.key == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.body, err)
			}
			continue
		}
		wantErr(t, err, tc.key)
	}
}
