package main

import (
	"bytes"
	"strings"
	"testing"
)

// The progress bar counts octets in the units of the run's summary (MiB,
// fetch/run.go), not in SI megabytes.
func TestBarProgressUnits(t *testing.T) {
	var out bytes.Buffer
	p := &barProgress{w: &out, name: "acct"}
	p.Start(2, 3<<20)
	p.Done()
	p.Add(2 << 20) // the first Add renders; a finished bar is cleared
	got := out.String()
	p.Done()
	p.Add(1 << 20)
	p.Finish()
	if !strings.Contains(got, "MiB") || strings.Contains(got, " MB") {
		t.Fatalf("progress bar output %q: want MiB, never MB", got)
	}
	if !strings.Contains(got, "acct 1/2 messages") {
		t.Fatalf("progress bar output %q: want the account and its count", got)
	}
}
