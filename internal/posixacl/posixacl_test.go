package posixacl

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
)

// encode is the attribute's value for entries, written from the layout
// (little-endian version 2, then tag, perm, id per entry).
func encode(v uint32, entries ...Entry) []byte {
	b := binary.LittleEndian.AppendUint32(nil, v)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, e.Tag)
		b = binary.LittleEndian.AppendUint16(b, e.Perm)
		b = binary.LittleEndian.AppendUint32(b, e.ID)
	}
	return b
}

const undefined = 0xffffffff

func TestParse(t *testing.T) {
	// owner rw, bob (1001) r, owning group nothing, group 2002 rw,
	// mask r, others nothing: what setfacl makes of 0600 with
	// u:1001:r and g:2002:rw and the mask set to r.
	good := []Entry{
		{UserObj, 6, undefined}, {User, 4, 1001}, {GroupObj, 0, undefined},
		{Group, 6, 2002}, {Mask, 4, undefined}, {Other, 0, undefined},
	}
	acl, err := Parse(encode(2, good...))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(acl, ACL(good)) || !acl.Extended() {
		t.Errorf("Parse = %+v, extended %v", acl, acl.Extended())
	}
	if got := acl.Effective(good[3]); got != PermRead {
		t.Errorf("group 2002 through mask r: %o, want 4", got)
	}
	for _, c := range []struct {
		owner, group, uid, gid uint32
		want                   uint16
		ok                     bool
	}{
		{0, 0, 0, 0, PermRead | PermWrite, true},       // the owner
		{0, 0, 1001, 9, PermRead, true},                // named user
		{0, 0, 1001, 9, PermWrite, false},              // named user: no write
		{0, 0, 1001, 0, PermRead, true},                // named user wins over the owning group (which has nothing)
		{0, 0, 7, 0, PermRead, false},                  // owning group: nothing
		{0, 0, 7, 2002, PermRead, true},                // named group
		{0, 0, 7, 2002, PermWrite, false},              // named group: its w masked off
		{0, 0, 7, 9, PermRead, false},                  // others: nothing
		{0, 5, 7, 5, PermExecute, false},               // owning group, matched, denies
		{1001, 0, 1001, 9, PermRead | PermWrite, true}, // owner entry before the named one
	} {
		if got := acl.Allows(c.owner, c.group, c.uid, c.gid, c.want); got != c.ok {
			t.Errorf("Allows(owner %d, group %d, uid %d, gid %d, %o) = %v", c.owner, c.group, c.uid, c.gid, c.want, got)
		}
	}
	minimal := []Entry{{UserObj, 6, undefined}, {GroupObj, 4, undefined}, {Other, 4, undefined}}
	if acl, err := Parse(encode(2, minimal...)); err != nil || acl.Extended() || !acl.Allows(0, 0, 3, 3, PermRead) {
		t.Errorf("minimal ACL: %v, %v", acl, err)
	}

	for name, b := range map[string][]byte{
		"empty":              nil,
		"short header":       {2, 0},
		"version 1":          encode(1, good...),
		"half an entry":      encode(2, good...)[:4+8*6-3],
		"unknown tag":        encode(2, append([]Entry{{0x40, 4, undefined}}, good...)...),
		"unknown perm bit":   encode(2, Entry{UserObj, 8, undefined}, good[2], good[5]),
		"no owner":           encode(2, good[1:]...),
		"two others":         encode(2, append(good, good[5])...),
		"named without mask": encode(2, good[0], good[1], good[2], good[5]),
		"two masks":          encode(2, append(good, good[4])...),
	} {
		if acl, err := Parse(b); err == nil {
			t.Errorf("%s: Parse = %+v, want an error", name, acl)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(encode(2, Entry{UserObj, 6, undefined}, Entry{User, 4, 1}, Entry{GroupObj, 0, undefined}, Entry{Mask, 4, undefined}, Entry{Other, 0, undefined}))
	f.Fuzz(func(t *testing.T, b []byte) {
		acl, err := Parse(b)
		if err != nil {
			return
		}
		if got := encode(2, acl...); string(got) != string(b) {
			t.Errorf("Parse(%x) = %+v, which encodes to %x", b, acl, got)
		}
		acl.Allows(1, 2, 3, 4, PermRead)
	})
}

// TestReadSetfacl: what setfacl (Debian's acl) writes on a real file is
// read back entry for entry; a file without extended entries has none.
func TestReadSetfacl(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ACLs are read on Linux only")
	}
	setfacl := testenv.LookPath(t, "setfacl") // Debian package acl
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if acl, err := Read(path); acl != nil || err != nil {
		t.Fatalf("a file 0600 without ACL: %+v, %v", acl, err)
	}
	if out, err := exec.Command(setfacl, "-m", "u:4242:r,g:4343:rw", path).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "Operation not supported") {
			t.Skipf("the file system of %s has no ACLs", path)
		}
		t.Fatalf("setfacl: %v\n%s", err, out)
	}
	acl, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := ACL{{UserObj, 6, undefined}, {User, 4, 4242}, {GroupObj, 0, undefined},
		{Group, 6, 4343}, {Mask, 6, undefined}, {Other, 0, undefined}}
	if !reflect.DeepEqual(acl, want) {
		t.Errorf("Read = %+v, want %+v", acl, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %04o: the group bits are the mask (rw)", fi.Mode().Perm())
	}
	if !acl.Allows(0, 0, 4242, 1, PermRead) || acl.Allows(0, 0, 4242, 1, PermWrite) || !acl.Allows(0, 0, 1, 4343, PermWrite) {
		t.Error("Allows disagrees with the entries setfacl made")
	}
	// A link is followed, as open(2) does.
	link := filepath.Join(filepath.Dir(path), "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(link); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Read(link) = %+v, %v", got, err)
	}
}
