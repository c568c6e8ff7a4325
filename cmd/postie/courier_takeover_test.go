package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
)

// TestCourierTakeover takes over Maildirs that Courier's own POP3 server
// (courierpop3d of Debian's courier-pop) served: Courier lists them (and
// writes courierpop3dsizelist), mpop, fetchmail and getmail6 fetch
// everything from it in keep mode; then Courier stopped and postie serve
// started on the same port with courier_uidl = true: its UIDL listing is
// byte for byte Courier's last one (and UIDL n answers the same), and the
// clients fetch nothing. Mail Courier never listed, and a delivery through
// postie, get postie's own UIDLs and are fetched once; the same after a
// restart with postie's files deleted. Courier's files are left as they
// were.
func TestCourierTakeover(t *testing.T) {
	// As root, Courier and postie run as vmail, who owns the Maildir.
	root := t.TempDir()
	var asVmail *syscall.SysProcAttr
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		uid, gid = testenv.VmailUser(t)
		root = testenv.OpenTempDir(t)
		asVmail = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	md := filepath.Join(root, "mail", "user1")
	mkdir := func(dir string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(dir, uid, gid)
	}
	mkdir(filepath.Join(root, "mail"))
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		mkdir(filepath.Join(md, sub))
	}
	put := func(name, body string) {
		t.Helper()
		p := filepath.Join(md, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, uid, gid)
	}
	crlf := "Subject: two\r\n\r\nCRLF line ends\r\n"
	put("new/1700000001.M1P1.mda.example", "Subject: one\n\nLF line ends\n")
	put(fmt.Sprintf("new/1700000002.M2P1.mda.example,S=%d", len(crlf)), crlf)
	put("cur/1690000000.M9P9.old.example:2,S", "Subject: seen\n\nread by an IMAP client\n")
	put("new/1700000003.M3P3.mda.example", "Subject: dots\n\n.a line with a dot\n..two\n")
	put("new/1700000004.M4P4.mda.example", "Subject: no line end\n\nat the end")

	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	users := map[string]testenv.CourierUser{"user1": {Password: "pass1", Maildir: md}}
	c := testenv.StartCourier(t, addr, users)
	courier := uidlListing(t, addr, 5)
	if again := uidlListing(t, addr, 5); again.list != courier.list {
		t.Fatalf("Courier's UIDLs changed between sessions:\n%s\nthen\n%s", courier.list, again.list)
	}
	if !strings.HasPrefix(courier.list, "1 UID1-") {
		t.Fatalf("Courier's UIDLs are not the UID<n>-<uidvalidity> of courier-imap 2.1 and later:\n%s", courier.list)
	}
	cl := newKeepClients(t, addr, "user1", "pass1")
	cl.fetch(t, "from Courier", 5)
	// Mail that arrives while Courier serves: listed by Courier, fetched.
	put("new/1700000005.M5P5.mda.example", "Subject: five\n\nlisted by Courier\n")
	courier = uidlListing(t, addr, 6)
	cl.fetch(t, "from Courier, the new message", 1)
	c.Stop()
	list := filepath.Join(md, "courierpop3dsizelist")
	sizelist, err := os.ReadFile(list)
	if err != nil {
		t.Fatalf("Courier wrote no courierpop3dsizelist: %v\n%s", err, c.Log())
	}

	// postie's binary and state where vmail can reach them.
	bin := filepath.Join(root, "postie")
	copyFile(t, testenv.PostieBinary(t), bin, 0o755)
	passwd := filepath.Join(root, "passwd")
	if err := os.WriteFile(passwd, []byte("user1:{PLAIN}pass1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(passwd, uid, gid)
	state := filepath.Join(root, "state")
	mkdir(state)
	cfg := filepath.Join(root, "postie.toml")
	writeTakeoverConfig(t, cfg, state, addr, passwd, filepath.Join(root, "mail"), "courier_uidl = true\n")

	s := startFixedPostie(t, bin, cfg, asVmail)
	if got := uidlListing(t, addr, 6); got != courier {
		t.Errorf("postie's UIDL listing differs from Courier's:\n%s\nCourier's:\n%s", got, courier)
	}
	cl.fetch(t, "from postie, nothing new", 0)
	s.stop(t)

	// Mail Courier never listed: postie's own UIDL, fetched once.
	put("new/1700000006.M6P6.mda.example", "Subject: six\n\nnever seen by Courier\n")
	s = startFixedPostie(t, bin, cfg, asVmail)
	after := uidlListing(t, addr, 7)
	want := courier.list + "7 1700000006.M6P6.mda.example\r\n"
	if after.list != want {
		t.Errorf("with mail Courier never listed:\n%s\nwant\n%s", after.list, want)
	}
	cl.fetch(t, "from postie, mail Courier never listed", 1)
	s.stop(t)

	for _, f := range []string{"postie-uidls", "postie-sizes", "postie-index"} {
		os.Remove(filepath.Join(md, f))
	}
	s = startFixedPostie(t, bin, cfg, asVmail)
	if got := uidlListing(t, addr, 7); got.list != after.list {
		t.Errorf("after postie's files were deleted:\n%s\nwant\n%s", got.list, after.list)
	}
	cl.fetch(t, "from postie restarted without its own files", 0)
	postieDeliver(t, bin, cfg, asVmail, "user1", "Subject: through postie\n\ndelivered by postie deliver\n")
	if got := uidlListing(t, addr, 8); !strings.HasPrefix(got.list, after.list) {
		t.Errorf("after a delivery through postie:\n%s\nwant it to begin\n%s", got.list, after.list)
	}
	cl.fetch(t, "from postie after a delivery", 1)
	cl.fetch(t, "from postie again", 0)
	s.stop(t)
	if b, _ := os.ReadFile(list); string(b) != string(sizelist) {
		t.Errorf("postie changed courierpop3dsizelist:\n%s\nwas\n%s", b, sizelist)
	}
}

// uidls is a POP3 server's answer to UIDL: the unique-id listing after
// the status line (whose text is the server's own), and the answer to
// "UIDL n" for each message, byte for byte.
type uidls struct {
	list, each string
}

func (u uidls) String() string { return u.list + "--\n" + u.each }

// uidlListing logs in to the POP3 server at addr as user1 and returns its
// answers to UIDL, checking that it lists n messages.
func uidlListing(t *testing.T, addr string, n int) uidls {
	t.Helper()
	p := dialPOP3(t, addr)
	p.login("user1", "pass1")
	p.cmd("+OK", "UIDL")
	var u uidls
	u.list = p.multi()
	if got := strings.Count(u.list, "\r\n"); got != n {
		t.Fatalf("UIDL lists %d messages, want %d:\n%s", got, n, u.list)
	}
	for i := 1; i <= n; i++ {
		u.each += p.cmd("+OK", fmt.Sprintf("UIDL %d", i)) + "\r\n"
	}
	p.cmd("+OK", "QUIT")
	return u
}
