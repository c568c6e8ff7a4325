package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 13, finding 8: a DSN or client secret file that other users may
// read is logged as a warning naming the key, the path and who can read
// it, never the secret; a private one is read silently; a directory is
// refused.
func TestReadSecretFileWarnsWhenReadable(t *testing.T) {
	const secret = "postgres://postie:s3cret@db/postie"
	for _, tc := range []struct {
		mode os.FileMode
		warn string // "" for none
	}{
		{0o600, ""},
		{0o400, ""},
		{0o640, `mode=0640 readable_by="its group"`},
		{0o604, `mode=0604 readable_by="every user"`},
		{0o644, `mode=0644 readable_by="every user"`},
	} {
		path := filepath.Join(t.TempDir(), "dsn")
		if err := os.WriteFile(path, []byte(secret+"\n"), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil { // past the umask
			t.Fatal(err)
		}
		var logs bytes.Buffer
		b, err := readSecretFile("storage.postgres_dsn_file", path, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil || string(b) != secret+"\n" {
			t.Fatalf("%04o: read %q, %v", tc.mode, b, err)
		}
		got := logs.String()
		switch {
		case tc.warn == "" && got != "":
			t.Errorf("%04o: logged %q", tc.mode, got)
		case tc.warn != "" && (!strings.Contains(got, "level=WARN") || !strings.Contains(got, "key=storage.postgres_dsn_file path="+path+" "+tc.warn)):
			t.Errorf("%04o: logged %q, want a warning with %q", tc.mode, got, tc.warn)
		}
		if strings.Contains(got, "s3cret") {
			t.Errorf("%04o: the log holds the secret: %q", tc.mode, got)
		}
	}
	dir := t.TempDir()
	if _, err := readSecretFile("auth.oauth.client_secret_file", dir, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}
