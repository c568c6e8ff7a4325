package testenv

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

// fatalTB records the first Fatal and ends the goroutine, as testing does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// configFails runs configText on cfg and returns its Fatal message ("" if
// none) and the text.
func configFails(t *testing.T, cfg any) (msg, text string) {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		text = configText(f, cfg, "/data")
	}()
	<-done
	return f.msg, text
}

// A config that would listen on a fixed port, rely on a default fixed
// port, or hide the lines the harness waits for is refused before a
// process starts.
func TestConfigTextRefuses(t *testing.T) {
	for _, tc := range []struct{ cfg, want string }{
		{"[pop3]\nlisten = [\"127.0.0.1:110\"]\n[lmtp]\nlisten = []\n", `pop3.listen = "127.0.0.1:110" is a fixed port`},
		{"[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\", \"127.0.0.1:995\"]\n[lmtp]\nlisten = []\n", `pop3.listen_tls = "127.0.0.1:995"`},
		{"[pop3]\nlisten = [\"127.0.0.1:0\"]\n[lmtp]\nlisten = [\"127.0.0.1:24\"]\n", `lmtp.listen = "127.0.0.1:24"`},
		{"[pop3]\nlisten = [\"127.0.0.1:0\"]\n[lmtp]\nlisten = []\n[smtp]\nlisten = [\"127.0.0.1:25\"]\n", `smtp.listen = "127.0.0.1:25"`},
		{"[pop3]\nlisten = [\"127.0.0.1:0\"]\n[lmtp]\nlisten = []\n[admin]\nlisten = \"127.0.0.1:9100\"\n", `admin.listen = "127.0.0.1:9100"`},
		{"[lmtp]\nlisten = []\n", "must set pop3.listen"},
		{"[pop3]\nlisten = [\"127.0.0.1:0\"]\n", "must set lmtp.listen"},
		{"[log]\nlevel = \"warn\"\n[pop3]\nlisten = [\"127.0.0.1:0\"]\n[lmtp]\nlisten = []\n", `log.level "warn"`},
		{"[log]\nformat = \"json\"\n[pop3]\nlisten = [\"127.0.0.1:0\"]\n[lmtp]\nlisten = []\n", `log.format "json"`},
		{"[pop3\n", "not TOML"},
	} {
		if msg, _ := configFails(t, tc.cfg); !strings.Contains(msg, tc.want) {
			t.Errorf("config %q: Fatal %q, want one with %q", tc.cfg, msg, tc.want)
		}
	}
}

// data_dir is added when the config has none, and only then; port 0 and
// Unix sockets pass.
func TestConfigTextDataDir(t *testing.T) {
	ok := "[pop3]\nlisten = [\"127.0.0.1:0\"]\n[lmtp]\nlisten = [\"unix:/data/lmtp.sock\"]\n"
	// As root, serve needs server.user: the harness adds it.
	root := ""
	if os.Geteuid() == 0 {
		root = "\n[server]\nuser = \"root\"\n"
	}
	msg, text := configFails(t, ok)
	if msg != "" || text != "data_dir = \"/data\"\n"+ok+root {
		t.Errorf("got %q (Fatal %q)", text, msg)
	}
	own := "data_dir = \"state\"\n" + ok
	if msg, text := configFails(t, own); msg != "" || text != own+root {
		t.Errorf("config with data_dir: got %q (Fatal %q)", text, msg)
	}
	// A struct goes through the TOML encoder.
	type pop3 struct {
		Listen []string `toml:"listen"`
	}
	msg, text = configFails(t, struct {
		DataDir string         `toml:"data_dir"`
		POP3    pop3           `toml:"pop3"`
		LMTP    map[string]any `toml:"lmtp"`
	}{"x", pop3{[]string{"127.0.0.1:0"}}, map[string]any{"listen": []string{}}})
	if msg != "" || !strings.Contains(text, "[pop3]") || strings.Contains(text, "/data") {
		t.Errorf("struct config: %q (Fatal %q)", text, msg)
	}
}
