//go:build !linux

package testenv

import "testing"

// Freeze stops the server; only on Linux (it finds the server's processes
// in /proc): elsewhere the test is skipped.
func (p *Postgres) Freeze(t testing.TB) {
	t.Helper()
	t.Skip("testenv: Postgres.Freeze needs Linux")
}

// Thaw continues a server stopped by Freeze.
func (p *Postgres) Thaw(t testing.TB) {}

func (p *Postgres) thaw() {}
