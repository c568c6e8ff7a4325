package testenv

import (
	"strings"
	"sync"
)

// SyncBuffer collects output written from several goroutines (a logger,
// a child process's stdout or stderr) so that a test can poll it. The zero
// value is ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
