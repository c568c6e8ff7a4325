// Package abuse holds postie's load and abuse tests (issue 7, part 3):
// a real `postie serve` built from cmd/postie, real TCP and TLS clients
// on loopback, and the server's peak memory read from /proc. The package
// has no code of its own; see docs/reliability.md, "Load and abuse".
//
// Run with:
//
//	go test ./internal/abuse/ -v                # short variants (CI)
//	POSTIE_LONG=1 go test ./internal/abuse/ -v  # 10,000 connections, longer floods
package abuse
