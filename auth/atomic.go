package auth

import (
	"fmt"

	"github.com/postie-mail/postie/internal/fsutil"
)

// fileMode is the mode of the passwd-file postie writes: it holds hashes
// (or worse) and is read only by the server.
const fileMode = 0o600

// writeAtomic replaces path with data (fsutil.WriteFileAtomic): a crash
// leaves either the old file or the new one, never a mix. The new file
// keeps the owner of the old one, so that `postie user` run as root does
// not leave the server (running as its own user) unable to read it.
func writeAtomic(path string, data []byte) error {
	if err := fsutil.WriteFileAtomic(path, data, fsutil.WriteOptions{Perm: fileMode, KeepOwner: true}); err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	return nil
}
