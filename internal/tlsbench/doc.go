// Package tlsbench holds BenchmarkTLSSessions, which compares postie's
// implicit-TLS sessions with Dovecot's on this machine. It has no code of
// its own: the benchmark starts the real `postie serve` binary and Dovecot
// (internal/testenv).
package tlsbench
