package privdrop

import (
	"os"
	"os/exec"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no nobody account: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	for _, name := range []string{"nobody", nobody.Uid} {
		a, err := Lookup(name, "")
		if err != nil {
			t.Fatalf("Lookup(%q): %v", name, err)
		}
		if a.UID != uid || a.GID != gid {
			t.Errorf("Lookup(%q) = %+v; want uid %d gid %d", name, a, uid, gid)
		}
	}
	a, err := Lookup("nobody", "0")
	if err != nil || a.GID != 0 || a.UID != uid {
		t.Errorf(`Lookup("nobody", "0") = %+v, %v; want gid 0`, a, err)
	}
	root, err := user.LookupGroupId("0")
	if err != nil {
		t.Fatal(err)
	}
	if a, err := Lookup("nobody", root.Name); err != nil || a.GID != 0 || a.Group != root.Name {
		t.Errorf("Lookup(nobody, %q) = %+v, %v", root.Name, a, err)
	}
	for _, bad := range [][2]string{{"", ""}, {"no-such-user-postie", ""}, {"nobody", "no-such-group-postie"}, {"4294967299", ""}} {
		if a, err := Lookup(bad[0], bad[1]); err == nil {
			t.Errorf("Lookup(%q, %q) = %+v; want an error", bad[0], bad[1], a)
		} else if bad[0] != "" && !strings.Contains(err.Error(), "postie") && !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("Lookup(%q, %q) error %q does not name what was asked", bad[0], bad[1], err)
		}
	}
}

// TestDrop runs the test binary again as root, switches it to nobody
// with supplementary groups set, and reads /proc/self/status in the child.
func TestDrop(t *testing.T) {
	if os.Getenv("PRIVDROP_CHILD") == "1" {
		a, err := Lookup("nobody", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := Drop(a); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.Write(b)
		return
	}
	if !IsRoot() {
		t.Skip("needs root")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no nobody account: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDrop$", "-test.v")
	cmd.Env = append(os.Environ(), "PRIVDROP_CHILD=1")
	// The child starts with supplementary groups, which Drop must clear.
	cmd.SysProcAttr = sysProcAttrGroups([]uint32{0, 4, 27})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, want := range []string{
		`(?m)^Uid:\s+` + nobody.Uid + `\s+` + nobody.Uid + `\s+` + nobody.Uid + `\s+` + nobody.Uid + `$`,
		`(?m)^Gid:\s+` + nobody.Gid + `\s+` + nobody.Gid + `\s+` + nobody.Gid + `\s+` + nobody.Gid + `$`,
		`(?m)^Groups:\s*$`,
		`(?m)^CapEff:\s+0+$`,
	} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("child's /proc/self/status does not match %s:\n%s", want, out)
		}
	}
}
