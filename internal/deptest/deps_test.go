// Package deptest holds the import rules of DESIGN.md as a test, so the
// layering stays true as the code grows: the protocol engine never names a
// concrete store or reads config, the storage contract and the framing
// layer import only the standard library.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/postie-mail/postie"

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", module+"/"+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var d []string
	for _, l := range strings.Fields(string(out)) {
		if l != module+"/"+pkg {
			d = append(d, l)
		}
	}
	return d
}

func TestLayering(t *testing.T) {
	rules := []struct {
		pkg     string
		allowed []string // import-path prefixes (within or outside the module)
	}{
		{"pop3", nil},
		{"store", nil},
		{"internal/wire", nil},
		{"internal/fsutil", nil},
		{"internal/exitcode", nil},
		{"internal/maildirname", nil},
		{"internal/tlsconf", nil},
		// One warning a second: shared by the server and the PROXY listener.
		{"internal/lograte", nil},
		{"internal/proxyproto", []string{module + "/internal/lograte"}},
		{"config", []string{"github.com/BurntSushi/toml"}},
		{"pop3server", []string{module + "/pop3", module + "/internal/wire", module + "/internal/lograte", module + "/store", module + "/sasl"}},
		{"pop3client", []string{module + "/pop3", module + "/internal/wire", "github.com/xdg-go", "golang.org/x/text"}},
		// maildir works relative to directory descriptors (openat(2) and
		// friends) from x/sys/unix.
		{"store/maildir", []string{module + "/store", module + "/internal/wire", module + "/internal/maildirname", "golang.org/x/sys/unix"}},
		// The PostgreSQL store: the contract, the wire-size counter and pgx (with what pgx
		// itself pulls in: its pool, SASL's precis via x/text, x/sync).
		{"store/pgstore", []string{module + "/store", module + "/internal/wire", "github.com/jackc/pgx/v5", "github.com/jackc/pgpassfile",
			"github.com/jackc/pgservicefile", "github.com/jackc/puddle/v2", "golang.org/x/text", "golang.org/x/sync"}},
		{"intake", []string{module + "/store", module + "/internal/exitcode", "github.com/emersion/go-smtp", "github.com/emersion/go-sasl", "golang.org/x/time/rate"}},
		{"sasl", nil},
		{"sasl/oauth", []string{module + "/sasl", "github.com/golang-jwt/jwt/v5", "github.com/MicahParks", "golang.org/x/time/rate"}},
		// The retriever and the load generator speak POP3 only through
		// pop3client; they never reach into the server, a store or auth.
		// fetch shares config's Size and Duration (config imports nothing
		// of postie).
		{"fetch", []string{module + "/pop3client", module + "/pop3", module + "/internal/wire", module + "/internal/fsutil", module + "/internal/exitcode", module + "/internal/maildirname", module + "/internal/oauthclient", module + "/config", "github.com/xdg-go", "golang.org/x/text",
			"github.com/BurntSushi/toml", "github.com/emersion/go-smtp", "github.com/emersion/go-sasl"}},
		// fetch's OAuth client: the standard library and atomic writes.
		{"internal/oauthclient", []string{module + "/internal/fsutil"}},
		{"bench", []string{module + "/pop3client", module + "/pop3", module + "/internal/wire", module + "/internal/maildirname", "github.com/xdg-go", "golang.org/x/text"}},
		// auth: the passwd-file and the PostgreSQL users table (pgx and what it pulls in).
		{"auth", []string{"golang.org/x/crypto", "golang.org/x/sys", "github.com/GehirnInc/crypt", module + "/sasl", module + "/internal/fsutil",
			"github.com/jackc/pgx/v5", "github.com/jackc/pgpassfile", "github.com/jackc/pgservicefile", "github.com/jackc/puddle/v2", "golang.org/x/text", "golang.org/x/sync"}},
		// The web pages check passwords through the POP3 engine (its
		// bounds and penalties) and know no config, store or auth.
		{"web", []string{module + "/pop3server", module + "/pop3", module + "/internal/wire", module + "/internal/lograte", module + "/store", module + "/sasl"}},
		// Process plumbing of cmd/postie: the standard library only.
		{"internal/privdrop", nil},
		{"internal/posixacl", nil},
		{"internal/systemd", []string{"golang.org/x/sys"}},
	}
	for _, r := range rules {
		for _, d := range deps(t, r.pkg) {
			ok := false
			for _, a := range r.allowed {
				if d == a || strings.HasPrefix(d, a+"/") {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s imports %s, which the layering does not allow", r.pkg, d)
			}
		}
	}
}
