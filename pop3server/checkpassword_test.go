package pop3server_test

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/testenv/pop3test"
	"github.com/postie-mail/postie/pop3server"
)

// CheckPassword, the web account page's login, shares the POP3 logins'
// penalties: its failures wait a delay that doubles with the failures of
// the address whichever front end they came through, and they are
// counted and logged without the password.
func TestCheckPasswordSharesPenalties(t *testing.T) {
	var logs testenv.SyncBuffer
	s := pop3test.Start(t, pop3test.Options{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Tweak: func(o *pop3server.Options) {
			o.TrustedNets = []netip.Prefix{} // loopback is not trusted here
			o.AllowCleartext = true
			o.Limits.AuthFailDelay = time.Millisecond
			o.Limits.MaxAuthFailDelay = time.Second
		},
	})
	ctx := context.Background()
	lo := netip.MustParseAddr("127.0.0.1")
	if _, err := s.Server.CheckPassword(ctx, lo, "web", "user1", "secret-wrong-1"); !errors.Is(err, pop3server.ErrLoginFailed) {
		t.Fatalf("wrong password: err %v, want ErrLoginFailed", err)
	}
	if _, err := s.Server.CheckPassword(ctx, lo, "web", "nosuchuser", "secret-wrong-2"); !errors.Is(err, pop3server.ErrLoginFailed) {
		t.Fatalf("unknown user: err %v, want ErrLoginFailed", err)
	}
	// A POP3 failure from the same address now waits 4ms.
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	r.ReadString('\n')
	c.Write([]byte("USER user1\r\nPASS secret-wrong-3\r\n"))
	r.ReadString('\n')
	if line, _ := r.ReadString('\n'); line != "-ERR [AUTH] invalid user name or password\r\n" {
		t.Errorf("PASS: %q", line)
	}
	st := s.Server.Stats()
	if st.AuthFailures != 3 || st.AuthDelayed != 3 {
		t.Errorf("AuthFailures %d, AuthDelayed %d; want 3 and 3", st.AuthFailures, st.AuthDelayed)
	}
	log := logs.String()
	for _, want := range []string{
		`msg="authentication failed" via=web remote=127.0.0.1 user=user1 delay=1ms`,
		`msg="authentication failed" via=web remote=127.0.0.1 user=nosuchuser delay=2ms`,
		`user=user1 delay=4ms`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "secret-wrong") {
		t.Errorf("a password is in the log:\n%s", log)
	}

	user, err := s.Server.CheckPassword(ctx, lo, "web", "user1", "pass1")
	if err != nil || user != "user1" {
		t.Fatalf("good password: %q, %v", user, err)
	}
	if got := s.Server.RecentLogins("user1"); len(got) != 0 {
		t.Errorf("CheckPassword recorded a login: %+v", got)
	}
	s.Server.RecordLogin(user, pop3server.Login{Time: time.Now(), Remote: lo, Via: "web", Client: "Browser\x00 1.0"})
	got := s.Server.RecentLogins("user1")
	if len(got) != 1 || got[0].Via != "web" || got[0].Client != "Browser 1.0" || got[0].Remote != lo {
		t.Errorf("RecentLogins = %+v", got)
	}
	// The success forgot the address's failures: no delay on the next.
	s.Server.CheckPassword(ctx, lo, "web", "user2", "secret-wrong-4")
	if !strings.Contains(logs.String(), `user=user2 delay=1ms`) {
		t.Errorf("after a success the delay did not start again:\n%s", logs.String())
	}
}

// Checks in flight per address are bounded for CheckPassword as for POP3.
func TestCheckPasswordBusy(t *testing.T) {
	entered := make(chan struct{})
	unblock := make(chan struct{})
	s := pop3test.Start(t, pop3test.Options{Tweak: func(o *pop3server.Options) {
		o.TrustedNets = []netip.Prefix{}
		o.Limits.MaxAuthChecksPerIP = 1
		o.Limits.MaxAuthQueuePerIP = -1
		o.Authenticator = pop3server.AuthenticatorFunc(func(context.Context, string, string) (string, bool, error) {
			entered <- struct{}{}
			<-unblock
			return "", false, nil
		})
	}})
	a := netip.MustParseAddr("192.0.2.7")
	done := make(chan error)
	go func() {
		_, err := s.Server.CheckPassword(context.Background(), a, "web", "u", "p")
		done <- err
	}()
	<-entered
	if _, err := s.Server.CheckPassword(context.Background(), netip.MustParseAddr("::ffff:192.0.2.7"), "web", "u", "p"); !errors.Is(err, pop3server.ErrLoginBusy) {
		t.Errorf("second check from the address: %v, want ErrLoginBusy", err)
	}
	close(unblock)
	if err := <-done; !errors.Is(err, pop3server.ErrLoginFailed) {
		t.Errorf("first check: %v", err)
	}
	if n := s.Server.Stats().AuthBusy; n != 1 {
		t.Errorf("AuthBusy = %d, want 1", n)
	}
}

// SessionList shows open sessions and their users; Disconnect closes one.
func TestSessionListDisconnect(t *testing.T) {
	s := pop3test.Start(t, pop3test.Options{Tweak: func(o *pop3server.Options) { o.AllowCleartext = true }})
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	r.ReadString('\n')
	c.Write([]byte("USER user3\r\nPASS pass3\r\n"))
	r.ReadString('\n')
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "+OK logged in") {
		t.Fatalf("login: %q", l)
	}
	list := s.Server.SessionList()
	if len(list) != 1 || list[0].User != "user3" || list[0].Remote != netip.MustParseAddr("127.0.0.1") || list[0].ID == "" {
		t.Fatalf("SessionList = %+v", list)
	}
	if s.Server.Disconnect("no-such-id") {
		t.Error("Disconnect of an unknown id reported true")
	}
	if !s.Server.Disconnect(list[0].ID) {
		t.Fatal("Disconnect reported false")
	}
	if l, err := r.ReadString('\n'); err == nil {
		t.Errorf("the session goes on after Disconnect: %q", l)
	}
}
