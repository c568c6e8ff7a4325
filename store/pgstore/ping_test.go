package pgstore

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestPing: a fresh database has no schema, one a Store opened has the
// schema this postie knows; bad and unreachable DSNs are errors that
// never quote the password.
func TestPing(t *testing.T) {
	dsn := pg.DB(t)
	r, err := Ping(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if r.ServerVersion == "" || r.Schema != 0 || r.Known != SchemaVersion() {
		t.Errorf("fresh database: %+v", r)
	}
	newTestStore(t, dsn, "node-a")
	if r, err = Ping(t.Context(), dsn); err != nil || r.Schema != SchemaVersion() {
		t.Errorf("after New: %+v, %v", r, err)
	}
	for _, bad := range []string{
		"host=" + filepath.Join(t.TempDir(), "nothing") + " user=postgres password=s3cr3t-pw dbname=x",
		"postgres://postie:s3cr3t-pw@[::1:5432/x",
		"host='unterminated password=s3cr3t-pw",
	} {
		_, err := Ping(t.Context(), bad)
		if err == nil {
			t.Errorf("Ping(%q) worked", bad)
		} else if strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("Ping(%q): %v shows the password", bad, err)
		}
	}
}
