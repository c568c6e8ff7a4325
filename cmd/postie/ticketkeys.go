package main

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
)

// maxTicketKeys bounds the keys of tls.session_ticket_key_file: every
// ticket may be tried against each.
const maxTicketKeys = 16

// loadTicketKeys reads tls.session_ticket_key_file: one key a line, 64
// hex digits, the newest first; blank lines and lines starting with '#'
// are skipped. A file readable by all is refused (whoever reads the keys
// can decrypt the sessions resumed with them, and forge tickets); one
// readable by its group is read with a warning, as other secret files.
// Errors name the line, never its content.
func loadTicketKeys(path string, log *slog.Logger) ([][32]byte, error) {
	const key = "tls.session_ticket_key_file"
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("%s: %s is readable by every user (mode %04o); make it 0600, or 0640 for postie's group", key, path, fi.Mode().Perm())
	}
	b, err := readSecretFile(key, path, log)
	if err != nil {
		return nil, err
	}
	var keys [][32]byte
	for i, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		var k [32]byte
		if len(line) != 64 || hexDecodeErr(k[:], line) {
			return nil, fmt.Errorf("%s: %s line %d: a key is 64 hex digits (32 octets, e.g. from `openssl rand -hex 32`)", key, path, i+1)
		}
		for _, old := range keys {
			if old == k {
				return nil, fmt.Errorf("%s: %s line %d: the same key twice", key, path, i+1)
			}
		}
		keys = append(keys, k)
	}
	switch {
	case len(keys) == 0:
		return nil, fmt.Errorf("%s: %s holds no key", key, path)
	case len(keys) > maxTicketKeys:
		return nil, fmt.Errorf("%s: %s holds %d keys, more than %d", key, path, len(keys), maxTicketKeys)
	}
	return keys, nil
}

// setTicketKeys loads the ticket keys of path into cfg.
func setTicketKeys(cfg *tls.Config, path string, log *slog.Logger) error {
	keys, err := loadTicketKeys(path, log)
	if err != nil {
		return err
	}
	cfg.SetSessionTicketKeys(keys)
	return nil
}

func hexDecodeErr(dst, src []byte) bool {
	_, err := hex.Decode(dst, src)
	return err != nil
}
