package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postie-mail/postie/store"
)

func TestPathTemplate(t *testing.T) {
	homes := map[string]string{"alice@example.org": "/var/vmail/example.org/alice", "rel": "home/rel", "root": "/"}
	errDown := errors.New("user database down")
	home := func(u string) (string, bool, error) {
		if u == "down" {
			return "", false, errDown
		}
		h, ok := homes[u]
		return h, ok, nil
	}
	for _, c := range []struct{ template, user, want string }{
		{"%u", "alice", "/r/alice"},
		{"", "alice", "/r/alice"},
		{"%d/%n", "alice@example.org", "/r/example.org/alice"},
		{"%d/%n/Maildir", "alice@example.org", "/r/example.org/alice/Maildir"},
		{"/var/vmail/%d/%n", "alice@example.org", "/var/vmail/example.org/alice"},
		{"%h/Maildir", "alice@example.org", "/var/vmail/example.org/alice/Maildir"},
		{"%h", "alice@example.org", "/var/vmail/example.org/alice"},
		{"%u%%x", "bob", "/r/bob%x"},
		{"%d/%n", "bob", ""},          // no domain
		{"%d/%n", "@example.org", ""}, // no local part
		{"%d/%n", "a@.x", ""},         // domain starting with '.'
		{"%d/%n", "a@b@c", "/r/b@c/a"},
		{"%u", "../x", ""},
		{"%u", ".x", ""},
		{"%u", "a/b", ""},
		{"%h/Maildir", "rel", ""},    // relative home
		{"%h/Maildir", "nobody", ""}, // no home
		{"%h", "root", ""},           // would be /
	} {
		got, err := ExpandPath("/r", c.template, c.user, home)
		if c.want == "" {
			if !errors.Is(err, store.ErrBadUser) {
				t.Errorf("%q for %q: %q, %v; want ErrBadUser", c.template, c.user, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q for %q: %q, %v; want %q", c.template, c.user, got, err, c.want)
		}
	}
	// A user database that does not answer is not a bad user (that
	// would bounce the mail): its error comes through.
	if got, err := ExpandPath("/r", "%h/Maildir", "down", home); !errors.Is(err, errDown) || errors.Is(err, store.ErrBadUser) {
		t.Errorf("home failing: %q, %v; want the home's error, not ErrBadUser", got, err)
	}
	for _, bad := range []string{"mail", "%x", "%", "%u/../%n", "./%u", "mail/%h", "%u\n"} {
		if _, err := parsePathTemplate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := New(Options{Root: t.TempDir(), PathTemplate: "%h/Maildir"}); err == nil {
		t.Error("%h without Options.Home accepted")
	}
}

// TestPathTemplateStore: open, deliver and usage find the Maildir the
// template names, and make the directories above it.
func TestPathTemplateStore(t *testing.T) {
	root := t.TempDir()
	homeDir := t.TempDir()
	s, err := New(Options{Root: root, PathTemplate: "%h/Maildir", Home: func(u string) (string, bool, error) {
		if u == "carol@example.org" {
			return homeDir + "/carol", true, nil
		}
		return "", false, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	mustDeliver(t, s, "carol@example.org", "hello\n")
	ents, err := os.ReadDir(filepath.Join(homeDir, "carol", "Maildir", "new"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("%v %v", ents, err)
	}
	md := mustOpen(t, s, "carol@example.org")
	if n := len(md.Messages()); n != 1 {
		t.Errorf("%d messages", n)
	}
	md.Close()
	if _, err := s.Open(t.Context(), "dave@example.org"); !errors.Is(err, store.ErrBadUser) {
		t.Errorf("user without home: %v", err)
	}
	s2, err := New(Options{Root: root, PathTemplate: "%d/%n"})
	if err != nil {
		t.Fatal(err)
	}
	mustDeliver(t, s2, "dan@example.net", "hi\n")
	if ents, err := os.ReadDir(filepath.Join(root, "example.net", "dan", "new")); err != nil || len(ents) != 1 {
		t.Fatalf("%v %v", ents, err)
	}
	if n, _, err := s2.Usage(t.Context(), "dan@example.net"); err != nil || n != 1 {
		t.Errorf("usage %d %v", n, err)
	}
	if _, err := s2.Open(t.Context(), "nodomain"); err == nil || !strings.Contains(err.Error(), "%d") {
		t.Errorf("user without domain: %v", err)
	}
}
