//go:build unix

package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A FIFO where the secret file should be is refused at once: reading it
// would wait for a writer for ever.
func TestReadSecretFileRefusesFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dsn")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readSecretFile("storage.postgres_dsn_file", path, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a FIFO: %v", err)
	}
}
