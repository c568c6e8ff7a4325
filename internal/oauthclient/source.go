package oauthclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/postie-mail/postie/internal/fsutil"
)

// The token file holds one account's tokens, as JSON:
//
//	{"version":1,"client_id":"…","token_url":"…","refresh_token":"…",
//	 "access_token":"…","expiry":"2026-01-02T15:04:05Z","scope":"…"}
//
// It is written whole (temporary file, fsync, rename, fsync of the
// directory) with mode 0600, so it is never seen half written. client_id
// and token_url say which client the refresh token belongs to: a token of
// another client is not sent to this one's token endpoint.
type tokenFile struct {
	Version  int    `json:"version"`
	ClientID string `json:"client_id"`
	TokenURL string `json:"token_url"`
	Token
}

const fileVersion = 1

// maxFile bounds what is read of a token file.
const maxFile = 1 << 20

// ErrNotSignedIn: there is no token file.
var ErrNotSignedIn = errors.New("not signed in")

// LoginNeededError says the stored sign-in no longer works: the refresh
// token was revoked or expired (invalid_grant), or it belongs to another
// client. The user must sign in again.
type LoginNeededError struct {
	Reason string
	Err    error
}

func (e *LoginNeededError) Error() string { return e.Reason }
func (e *LoginNeededError) Unwrap() error { return e.Err }

// DefaultMargin is how long before its expiry an access token is replaced.
const DefaultMargin = 5 * time.Minute

// Source hands out the access token of one account: the one stored while
// it has more than Margin to live, else a fresh one from the refresh
// token, stored with its expiry (and the new refresh token, when the
// server rotates them). It rereads the file when another process (a new
// login) replaced it. Safe for concurrent use; processes that share a
// file must be serialized by the caller (postie fetch holds the account's
// lock).
type Source struct {
	Config *Config
	// Path is the token file.
	Path string
	// Margin: see DefaultMargin.
	Margin time.Duration

	mu    sync.Mutex
	tok   *tokenFile
	stamp stamp // of the file tok was read from or written to
}

// stamp identifies a version of the file.
type stamp struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

func stampOf(fi fs.FileInfo) stamp {
	s := stamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), st.Ino
	}
	return s
}

// Token returns a valid access token, refreshing it when it expires within
// Margin.
func (s *Source) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reload(); err != nil {
		return "", err
	}
	margin := s.Margin
	if margin <= 0 {
		margin = DefaultMargin
	}
	t := s.tok
	if t.AccessToken != "" && (t.Expiry.IsZero() || s.Config.now().Add(margin).Before(t.Expiry)) {
		return t.AccessToken, nil
	}
	nt, err := s.Config.Refresh(ctx, t.RefreshToken)
	if IsInvalidGrant(err) {
		return "", &LoginNeededError{Reason: "the sign-in was revoked or has expired", Err: err}
	}
	if err != nil {
		return "", err
	}
	if err := s.save(nt); err != nil {
		return "", err
	}
	return nt.AccessToken, nil
}

// Invalidate forgets the access token (a server refused it), so that the
// next Token refreshes.
func (s *Source) Invalidate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil {
		s.tok.AccessToken = ""
	}
}

// Save stores t (a new sign-in) as the account's tokens.
func (s *Source) Save(t *Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.save(t)
}

func (s *Source) save(t *Token) error {
	tf := &tokenFile{Version: fileVersion, ClientID: s.Config.ClientID, TokenURL: s.Config.TokenURL, Token: *t}
	tf.Expiry = tf.Expiry.UTC().Truncate(time.Second)
	data, err := json.Marshal(tf)
	if err != nil {
		return fmt.Errorf("token file: %v", err)
	}
	data = append(data, '\n')
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if err := fsutil.WriteFileAtomic(s.Path, data, fsutil.WriteOptions{Perm: 0o600}); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	s.tok = tf
	if fi, err := os.Stat(s.Path); err == nil {
		s.stamp = stampOf(fi)
	}
	return nil
}

// reload reads the file when it is not loaded or has changed.
func (s *Source) reload() error {
	f, err := os.OpenFile(s.Path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotSignedIn
	}
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("token file %s: not a regular file", s.Path)
	}
	if s.tok != nil && stampOf(fi) == s.stamp {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	var tf tokenFile
	// The decoder's errors are not shown: they could quote the file.
	if len(data) > maxFile || json.Unmarshal(data, &tf) != nil || tf.Version != fileVersion {
		return &LoginNeededError{Reason: fmt.Sprintf("the token file %s is damaged or not postie's (version %d)", s.Path, fileVersion)}
	}
	if tf.RefreshToken == "" {
		return &LoginNeededError{Reason: "the stored sign-in has no refresh token"}
	}
	if tf.ClientID != s.Config.ClientID || tf.TokenURL != s.Config.TokenURL {
		return &LoginNeededError{Reason: "the stored sign-in was made with another OAuth client id or token endpoint"}
	}
	s.tok = &tf
	s.stamp = stampOf(fi)
	return nil
}
