package fetch

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/pop3client"
)

const exampleConfig = "../examples/fetch.toml"

// TestExampleConfig: examples/fetch.toml loads, and sets every key the
// Config and Account types know, each with a comment.
func TestExampleConfig(t *testing.T) {
	c, err := Load(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Accounts) != 1 || c.Accounts[0].Name != "example" || c.Interval.Std() != DefaultInterval {
		t.Errorf("example config: %+v", c)
	}
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{} // key -> has a comment
	table := ""
	prevComment := false
	keyRE := regexp.MustCompile(`^([a-z0-9_]+)\s*=`)
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#"):
			prevComment = true
			continue
		case line == "[[account]]":
			table = "account."
		case keyRE.MatchString(line):
			documented[table+keyRE.FindStringSubmatch(line)[1]] = prevComment || strings.Contains(line, "#")
		}
		prevComment = false
	}
	var keys []string
	for _, typ := range []struct {
		t      reflect.Type
		prefix string
	}{{reflect.TypeFor[Config](), ""}, {reflect.TypeFor[Account](), "account."}} {
		for f := range typ.t.Fields() {
			if name := f.Tag.Get("toml"); name != "" && name != "account" {
				keys = append(keys, typ.prefix+name)
			}
		}
	}
	if len(keys) < 25 {
		t.Fatalf("only %d keys found: %v", len(keys), keys)
	}
	for _, k := range keys {
		commented, ok := documented[k]
		switch {
		case !ok:
			t.Errorf("key %s is not in %s", k, exampleConfig)
		case !commented:
			t.Errorf("key %s in %s has no comment", k, exampleConfig)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	base := "[[account]]\nname = \"a\"\nserver = \"pop.example.org\"\nuser = \"u\"\npassword_env = \"X\"\nmaildir = \"m\"\n"
	tests := []struct{ text, want string }{
		{base + "colour = \"blue\"\n", "unknown key: account.colour"},
		{"intervall = \"1m\"\n" + base + "keep_it = true\n", "unknown keys: intervall, account.keep_it"},
		{base + "tls = \"none\"\n", `account "a": tls: "none" sends the password in the clear; it needs insecure = true`},
		{base + "tls = \"ssl\"\n", `tls: must be "implicit", "starttls" or "none"`},
		{base + "mbox = \"x\"\n", "exactly one destination"},
		{base + "password_file = \"p\"\n", "exactly one of password_file"},
		{base + "keep = false\ndelete_after_days = 3\n", "delete_after_days: needs keep = true"},
		{base + "oversize = \"bounce\"\n", `oversize: must be "skip" or "delete"`},
		{base + "max_size = \"big\"\n", `"big" is not a size`},
		{base + "pin_sha256 = \"xyz\"\n", "pin_sha256: "},
		{base + "auth = \"xoauth2\"\n", `auth: "xoauth2" needs token_command`},
		{base + "lmtp_recipient = \"x@y\"\n", "lmtp_recipient: only with lmtp"},
		{base + base, `account "a": name: used by another account`},
		{"interval = \"soon\"\n" + base, `"soon" is not a duration`},
		{"", "no [[account]]"},
	}
	for _, tc := range tests {
		_, err := Parse("f.toml", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %q", tc.text, err, tc.want)
		}
	}
	c, err := Parse(filepath.Join(t.TempDir(), "f.toml"), []byte(base+"max_size = \"25M\"\ndelete_after_days = 7\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Accounts[0]
	if a.MaxSize != 25<<20 || !a.keep() || a.Port != 995 || a.TLS != "implicit" || !filepath.IsAbs(a.Maildir) {
		t.Errorf("defaults: %+v", a)
	}
}

// TestStateJournal: records survive a reopen, a torn last journal line is
// ignored, and a journal left over marks the state dirty.
func TestStateJournal(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1700000000, 0)
	s, err := openState(dir, "acct", false, now)
	if err != nil {
		t.Fatal(err)
	}
	if s.dirty {
		t.Error("a new state is dirty")
	}
	if _, err := openState(dir, "acct", false, now); err == nil {
		t.Error("a second open of a locked state succeeded")
	}
	if err := s.recordDelivered([]string{"a", "b"}, now); err != nil {
		t.Fatal(err)
	}
	if err := s.recordPending("c", 1234, now); err != nil {
		t.Fatal(err)
	}
	// Die without closing: the lock goes with the file descriptor; a
	// torn record follows.
	s.journal.WriteString("D 1700000000 d 1234abcd\nD 1700000000 e")
	s.journal.Close()
	s.unlock()

	s, err = openState(dir, "acct", false, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !s.dirty {
		t.Error("state after a crash is not dirty")
	}
	for id, want := range map[string]bool{"a": true, "b": true, "c": false, "d": false, "e": false} {
		e := s.lookup(id)
		if got := e != nil && e.delivered != 0; got != want {
			t.Errorf("%s delivered = %v, want %v", id, got, want)
		}
	}
	if e := s.lookup("c"); e == nil || e.pendOff != 1234 || e.pendTime != now.Unix() {
		t.Errorf("pending c: %+v", e)
	}
	if err := s.close(true); err != nil {
		t.Fatal(err)
	}
	s, err = openState(dir, "acct", true, now)
	if err != nil {
		t.Fatal(err)
	}
	if s.dirty || len(s.entries) != 3 {
		t.Errorf("after a clean close: dirty %v, %d entries", s.dirty, len(s.entries))
	}
	s.close(true)
	data, _ := os.ReadFile(filepath.Join(dir, "acct.state"))
	want := "postie-fetch-state 1\na 1700000000 1700000000 -1 0\nb 1700000000 1700000000 -1 0\nc 1700000000 0 1234 1700000000\n"
	if string(data) != want {
		t.Errorf("snapshot:\n%q\nwant\n%q", data, want)
	}
}

// TestConverters writes through the LF and From_ quoting writers in
// every possible split of the input.
func TestConverters(t *testing.T) {
	in := "From a\r\n>From b\r\nx\rFrom c\r\nFrom\r\n>>From d\r\nFro\r\n\r\nlast\r"
	wantLF := "From a\n>From b\nx\rFrom c\nFrom\n>>From d\nFro\n\nlast\r\n"
	wantQ := ">From a\n>>From b\nx\rFrom c\nFrom\n>>>From d\nFro\n\nlast\r\n"
	for i := 0; i <= len(in); i++ {
		for j := i; j <= len(in); j++ {
			var a, b bytes.Buffer
			lw := &lfWriter{w: &a}
			q := newFromQuoter(&b)
			lq := &lfWriter{w: q}
			for _, part := range []string{in[:i], in[i:j], in[j:]} {
				lw.Write([]byte(part))
				lq.Write([]byte(part))
			}
			lw.finish()
			lq.finish()
			q.flush()
			if a.String() != wantLF || b.String() != wantQ {
				t.Fatalf("split %d,%d:\n%q\n%q", i, j, a.String(), b.String())
			}
		}
	}
}

// TestExpireZero: only EXPIRE 0 makes a run end without QUIT when a
// retrieved message is not delivered, and turns RETR pipelining off.
func TestExpireZero(t *testing.T) {
	for _, tc := range []struct {
		caps pop3client.Caps
		want bool
	}{
		{pop3client.Caps{}, false},
		{pop3client.Caps{"EXPIRE": {"30"}}, false},
		{pop3client.Caps{"EXPIRE": {"NEVER"}}, false},
		{pop3client.Caps{"EXPIRE": {}}, false},
		{pop3client.Caps{"EXPIRE": {"0"}}, true},
		{pop3client.Caps{"EXPIRE": {"0", "USER"}}, true},
	} {
		if got := expireZero(tc.caps); got != tc.want {
			t.Errorf("expireZero(%v) = %v, want %v", tc.caps, got, tc.want)
		}
	}
}
