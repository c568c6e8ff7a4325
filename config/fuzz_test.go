package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzLoad feeds arbitrary files to Load: it never panics; every error
// names the file and then a line of it or the key at fault; and a file it
// accepts is valid and survives being written back out and loaded again
// unchanged.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("../examples/postie.toml")
	if err != nil {
		f.Fatal(err)
	}
	// The [pop3] table of the example: the whole file is a slow seed (the
	// fuzzer spends its time minimizing inputs of that size).
	if _, after, ok := strings.Cut(string(example), "\n[pop3]\n"); ok {
		pop3, _, _ := strings.Cut(after, "\n[")
		f.Add("[pop3]\n" + pop3)
	}
	for _, s := range []string{
		"",
		"data_dir = \"/srv/postie\"\n[pop3]\nlisten = [\"127.0.0.1:0\"]\nidle_timeout = \"30m\"\nexpire = 30\n",
		"[pop3]\nidle_timeout = \"1m\"\n",
		"[pop3]\nidle_timeout = 600\n",
		"[pop3]\nmax_connections = \"many\"\n",
		"[pop3]\nmax_connections_per_ip = 20000\n",
		"[pop3]\nlisten = [\"nohost\"]\n",
		"[pop3]\ntrusted_networks = [\"10.0.0.0/33\"]\n",
		"[pop3]\nexpire = \"never\"\nlogin_delay = \"1500ms\"\n",
		"[pop3.extra]\nkey = 1\n",
		"[log]\nlevel = \"loud\"\n",
		"[tls]\ncert_file = \"c.pem\"\n",
		"[[tls.certificates]]\ncert_file = \"a.pem\"\n",
		"[intake]\nmax_message_size = \"50X\"\nquota_overrides = { alice = { bytes = \"1G\" } }\n",
		"[intake.quota_overrides.bob]\nmessages = -1\n",
		"[auth.oauth]\njwks_url = \"http://insecure\"\n",
		"data_dir = \"\"\n",
		"a = = b",
		"[pop3\n",
		"\x00",
		"data_dir = \"\\uD800\"\n",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "postie.toml")
	// A key named in an error: a known table or top-level key, dotted.
	keyRE := regexp.MustCompile(`(?i)^(data_dir|(log|pop3|storage|auth|tls|intake|lmtp|smtp)(\.|\[|:|$))`)
	f.Fuzz(func(t *testing.T, body string) {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			if c != nil {
				t.Fatalf("Load returned a config with the error %v", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				rest, ok := strings.CutPrefix(line, "config: "+path)
				if !ok {
					if strings.HasPrefix(line, "config: ") || line == "" {
						t.Fatalf("error line %q does not name the file", line)
					}
					continue // continuation of a multi-line message
				}
				switch {
				case regexp.MustCompile(`^:\d+: `).MatchString(rest):
				case strings.HasPrefix(rest, ": unknown key"):
				case keyRE.MatchString(strings.TrimPrefix(rest, ": ")):
				default:
					t.Fatalf("error %q names neither a line nor a key", line)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted a config that Validate refuses: %v", err)
		}
		// Written back out, it loads the same.
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(c); err != nil {
			t.Fatalf("encoding the loaded config: %v", err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		c2, err := Load(path)
		if err != nil {
			t.Fatalf("the loaded config, written out, does not load: %v\n%s", err, buf.String())
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("the loaded config changed when written out and loaded again:\n%+v\n%+v\n%s", c, c2, buf.String())
		}
	})
}
