// Package reliability holds postie's end-to-end reliability tests: they
// build the real postie binary, run `postie serve` and `postie deliver` on
// real Maildirs, kill them with SIGKILL at random points and inject
// storage faults (full and read-only file systems, unreadable maildrops,
// files changed behind the server's back, a clock that jumps), then check
// through POP3 that no acknowledged message was lost, duplicated or
// damaged. See docs/reliability.md for the scenarios and how to run them.
//
// The package has no non-test code.
package reliability
