package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
)

// maxSecretFile bounds what readSecretFile reads: a DSN or a client
// secret is a line, not a file to load whole whatever its size.
const maxSecretFile = 64 << 10

// readSecretFile reads the file named by the config key key, which holds a
// secret (a database password in a DSN, an OAuth client secret). A file
// that users other than its owner may read is read, but logged as a
// warning: whoever can read it can log in to the database or the token
// endpoint as postie.
func readSecretFile(key, path string, log *slog.Logger) ([]byte, error) {
	// O_NONBLOCK: a FIFO put there is refused below, not waited on.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %s is not a regular file", key, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		who := "its group"
		if perm&0o007 != 0 {
			who = "every user"
		}
		log.Warn("secret file readable by others than its owner; make it mode 0600 (or 0640 for postie's group)",
			"key", key, "path", path, "mode", fmt.Sprintf("%04o", perm), "readable_by", who)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("%s: %s is larger than %d octets", key, path, maxSecretFile)
	}
	return b, nil
}
