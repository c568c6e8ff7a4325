package auth

import (
	"fmt"

	"github.com/postie-mail/postie/internal/fsutil"
)

// fileMode is the mode of a new passwd-file: it holds hashes (or worse)
// and is read only by the server. A file replaced keeps its owner's and
// group's read and write bits (keptMode: a file root:postie 0640, which
// the server running as postie reads, stays so) but never other users'.
const (
	fileMode = 0o600
	keptMode = 0o660
)

// writeAtomic replaces path with data (fsutil.WriteFileAtomic): a crash
// leaves either the old file or the new one, never a mix. The new file
// keeps the owner of the old one, so that `postie user` run as root does
// not leave the server (running as its own user) unable to read it.
func writeAtomic(path string, data []byte) error {
	if err := fsutil.WriteFileAtomic(path, data, fsutil.WriteOptions{Perm: fileMode, KeepOwner: true, KeepPerm: keptMode}); err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	return nil
}
