package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/postie-mail/postie/config"
)

// checkTLSFiles opens each certificate and key file of [tls] and names the
// config key of the first that cannot be read, with a hint when the
// account serve runs as lacks the permission (after it gave up root).
func checkTLSFiles(c *config.Config) error {
	type file struct{ key, path string }
	files := []file{{"tls.cert_file", c.TLS.CertFile}, {"tls.key_file", c.TLS.KeyFile}}
	for i, p := range c.TLS.Certificates {
		files = append(files, file{fmt.Sprintf("tls.certificates[%d].cert_file", i), p.CertFile},
			file{fmt.Sprintf("tls.certificates[%d].key_file", i), p.KeyFile})
	}
	for _, f := range files {
		fh, err := os.Open(f.path)
		if err == nil {
			fh.Close()
			continue
		}
		if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
			return fmt.Errorf("%s: %w (it must be readable by uid %d, gid %d, which postie serve runs as: see docs/operations.md)", f.key, err, os.Geteuid(), os.Getegid())
		}
		return fmt.Errorf("%s: %w", f.key, err)
	}
	return nil
}
