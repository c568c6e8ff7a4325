package auth

import (
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
)

// generating lists every scheme Hash writes, with the shape of its output.
var generating = []struct {
	scheme string
	shape  string // regexp of the whole output
}{
	{"ARGON2ID", `^\{ARGON2ID\}\$argon2id\$v=19\$m=\d+,t=\d+,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`},
	{"ARGON2I", `^\{ARGON2I\}\$argon2i\$v=19\$m=\d+,t=\d+,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`},
	{"BLF-CRYPT", `^\{BLF-CRYPT\}\$2y\$\d\d\$[./A-Za-z0-9]{53}$`},
	{"SHA512-CRYPT", `^\{SHA512-CRYPT\}\$6\$[./A-Za-z0-9]{16}\$[./A-Za-z0-9]{86}$`},
	{"SHA256-CRYPT", `^\{SHA256-CRYPT\}\$5\$[./A-Za-z0-9]{16}\$[./A-Za-z0-9]{43}$`},
	{"SSHA512", `^\{SSHA512\}[A-Za-z0-9+/]{107}=$`}, // 64+16 bytes
	{"SSHA512.HEX", `^\{SSHA512\.HEX\}[0-9a-f]{160}$`},
	{"SSHA256", `^\{SSHA256\}[A-Za-z0-9+/]{64}$`}, // 32+16 bytes
	{"ssha256.b64", `^\{SSHA256\.B64\}[A-Za-z0-9+/]{64}$`},
	{"SSHA", `^\{SSHA\}[A-Za-z0-9+/]{48}$`}, // 20+16 bytes
	{"SCRAM-SHA-256", `^\{SCRAM-SHA-256\}4096,[A-Za-z0-9+/]{22}==,[A-Za-z0-9+/]{43}=,[A-Za-z0-9+/]{43}=$`},
	{"scram-sha-1", `^\{SCRAM-SHA-1\}4096,[A-Za-z0-9+/]{22}==,[A-Za-z0-9+/]{27}=,[A-Za-z0-9+/]{27}=$`},
	{"CRAM-MD5", `^\{CRAM-MD5\}[0-9a-f]{64}$`},
	{"PLAIN", `^\{PLAIN\}`},
	{"CLEAR", `^\{CLEAR\}`},
	{"plain.b64", `^\{PLAIN\.B64\}[A-Za-z0-9+/=]+$`},
}

func TestHashVerifyRoundTrip(t *testing.T) {
	for _, g := range generating {
		t.Run(g.scheme, func(t *testing.T) {
			t.Parallel()
			pws := []string{"secret", "pässwörd with spaces"}
			var hashes []string
			for _, pw := range pws {
				h, err := Hash(g.scheme, pw)
				if err != nil {
					t.Fatalf("Hash(%q): %v", g.scheme, err)
				}
				if !regexp.MustCompile(g.shape).MatchString(h) {
					t.Errorf("Hash(%q) = %q, does not match %s", g.scheme, h, g.shape)
				}
				hashes = append(hashes, h)
			}
			for i, h := range hashes {
				if ok, err := Verify(h, pws[i]); !ok || err != nil {
					t.Errorf("Verify(Hash(%q, %q)) = %v, %v; want true, nil", g.scheme, pws[i], ok, err)
				}
				if ok, err := Verify(h, pws[1-i]); ok || err != nil {
					t.Errorf("Verify of a wrong password against %s = %v, %v; want false, nil", g.scheme, ok, err)
				}
			}
			if strings.HasPrefix(strings.ToUpper(g.scheme), "PLAIN") || g.scheme == "CLEAR" || g.scheme == "CRAM-MD5" {
				return // unsalted
			}
			if again, _ := Hash(g.scheme, pws[0]); again == hashes[0] {
				t.Errorf("two hashes of the same password are equal (%q): no random salt", again)
			}
		})
	}
}

func TestVerifyKnownVectors(t *testing.T) {
	for _, v := range knownVectors {
		t.Run(v.source, func(t *testing.T) {
			t.Parallel()
			if ok, err := Verify(v.stored, v.password); !ok || err != nil {
				t.Errorf("Verify(%q, %q) = %v, %v; want true, nil", v.stored, v.password, ok, err)
			}
			wrong := []string{"Secret"}
			// Hashes at production cost (Argon2 with tens of MiB,
			// bcrypt 10) take seconds under the race detector: one
			// wrong password is enough for them.
			expensive := regexp.MustCompile(`m=(65536|32768),|\$2[aby]\$10\$`).MatchString(v.stored)
			if !expensive && !strings.Contains(v.stored, "$argon2") {
				wrong = append(wrong, "")
			}
			if !expensive && !strings.HasPrefix(v.stored, "{PBKDF2}") && !strings.HasPrefix(v.stored, "{SCRAM-") && !strings.HasPrefix(v.stored, "{CRAM-MD5}") {
				// HMAC pads its key with zeros: a trailing NUL is the
				// same key in PBKDF2, SCRAM and CRAM-MD5, in Dovecot as
				// anywhere.
				wrong = append(wrong, v.password+"\x00")
			}
			for _, wrong := range wrong {
				if ok, err := Verify(v.stored, wrong); ok || err != nil {
					t.Errorf("Verify(%q, %q) = %v, %v; want false, nil", v.stored, wrong, ok, err)
				}
			}
		})
	}
	for _, v := range mismatchVectors {
		if ok, err := Verify(v.stored, v.password); ok || err != nil {
			t.Errorf("%s: Verify(%q, %q) = %v, %v; want false, nil", v.source, v.stored, v.password, ok, err)
		}
	}
}

func TestVerifyErrors(t *testing.T) {
	tests := []struct {
		stored string
		want   error
	}{
		{"{FOO}bar", ErrUnknownScheme},
		{"{ARGON2ID.HEX}$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$c2FsdHNhbHQ", ErrUnknownScheme},
		{"{SSHA.ROT13}abc", ErrUnknownScheme},
		{"abJnggxhB/yWI", ErrUnknownScheme},        // DES crypt
		{"{CRYPT}abJnggxhB/yWI", ErrUnknownScheme}, // DES crypt
		{"_J9..CCCCXBrJUJV154M", ErrUnknownScheme}, // BSDi crypt
		{"$y$j9T$salt$hash", ErrUnknownScheme},     // yescrypt
		{"", ErrUnknownScheme},
		{"{SHA256", ErrMalformedHash},
		{"{SSHA512}!!!!", ErrMalformedHash},
		{"{SSHA512}c2FsdA==", ErrMalformedHash},     // shorter than a digest
		{"{SHA256}c2FsdA==", ErrMalformedHash},      // not 32 bytes
		{"{SHA256.HEX}zz", ErrMalformedHash},        // not hex
		{"{PLAIN.B64}*", ErrMalformedHash},          // not base64
		{"{BLF-CRYPT}$2y$99$abc", ErrMalformedHash}, // bad cost
		{"{BLF-CRYPT}$2y$10$short", ErrMalformedHash},
		{"{SHA512-CRYPT}$6$", ErrMalformedHash},
		{"{SHA512-CRYPT}$6$rounds=x$salt$hash", ErrMalformedHash},
		{"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=0$c2FsdHNhbHRzYWx0$LcBKbTcQtxTjD10CS0pJKNMjiKPLwxdtPSUUFItPFIg", ErrMalformedHash},
		{"{ARGON2ID}$argon2id$v=19$m=65536,t=0,p=1$c2FsdHNhbHRzYWx0$LcBKbTcQtxTjD10CS0pJKNMjiKPLwxdtPSUUFItPFIg", ErrMalformedHash},
		{"{ARGON2ID}$argon2id$v=19$m=4,t=1,p=1$c2FsdHNhbHRzYWx0$LcBKbTcQtxTjD10CS0pJKNMjiKPLwxdtPSUUFItPFIg", ErrMalformedHash},
		{"{ARGON2ID}$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0$LcBKbTcQtxTjD10CS0pJKNMjiKPLwxdtPSUUFItPFIg", ErrMalformedHash},
		{"{ARGON2ID}$argon2id$v=19$m=64,t=1,t=1,p=1$c2FsdHNhbHRzYWx0$LcBKbTcQtxTjD10CS0pJKNMjiKPLwxdtPSUUFItPFIg", ErrMalformedHash},
		{"{ARGON2ID}$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$LcBKbTcQtxTjD10CS0pJKNMjiKPLwxdtPSUUFItPFIg", ErrMalformedHash},
		{"{ARGON2ID}$argon2id$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$LcBKbTcQtxTjD10CS0pJKNMjiKPLwxdtPSUUFItPFIg", ErrMalformedHash},
		{"{ARGON2ID}$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$LcBKbTcQtxTjD10CS0pJKNMjiKPLwxdtPSUUFItPFIg", ErrMalformedHash},
		{"{ARGON2ID}$argon2id$v=19$m=64,t=1,p=1$$LcBKbTcQtxTjD10CS0pJKNMjiKPLwxdtPSUUFItPFIg", ErrMalformedHash},
		{"{PBKDF2}$1$salt$0$d9f1288cea48296ee31a0870594c8ece0669ff7d", ErrMalformedHash},
		{"{PBKDF2}$2$salt$1000$d9f1288cea48296ee31a0870594c8ece0669ff7d", ErrMalformedHash},
	}
	for _, tt := range tests {
		ok, err := Verify(tt.stored, "secret")
		if ok || !errors.Is(err, tt.want) {
			t.Errorf("Verify(%q) = %v, %v; want false, %v", tt.stored, ok, err, tt.want)
		}
	}
}

// Verify's errors end up in logs: they must not carry the stored value,
// which for the PLAIN schemes is the password itself.
func TestVerifyErrorsDoNotLeak(t *testing.T) {
	for _, stored := range []string{
		"{PLAIN.HEX}topsecret",
		"{PLAIN.B64}top*secret",
		"{SSHA256.HEX}topsecret",
		"{BLF-CRYPT}$2y$10$topsecret",
		"{SHA512-CRYPT}$6$rounds=topsecret$x$y",
		"{ARGON2ID}$argon2id$v=19$m=64,t=1,p=1$topsecret$topsecret",
		"topsecret",
	} {
		_, err := Verify(stored, "x")
		if err == nil {
			t.Errorf("Verify(%q): no error", stored)
			continue
		}
		if strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), "'t'") {
			t.Errorf("Verify(%q) error %q shows the stored value", stored, err)
		}
	}
}

func TestHashErrors(t *testing.T) {
	for _, scheme := range []string{"FOO", "", "MD5-CRYPT", "SHA256", "CRYPT", "PBKDF2", "ARGON2ID.HEX", "SSHA.ROT13"} {
		if h, err := Hash(scheme, "secret"); !errors.Is(err, ErrUnknownScheme) {
			t.Errorf("Hash(%q) = %q, %v; want ErrUnknownScheme", scheme, h, err)
		}
	}
	// bcrypt uses the first 72 bytes only; refuse rather than truncate.
	if _, err := Hash("BLF-CRYPT", strings.Repeat("x", 73)); err == nil {
		t.Error("Hash(BLF-CRYPT) of a 73-byte password: no error")
	}
}

// TestDoveadmAcceptsOurHashes checks the hashes postie writes with the
// real Dovecot, when doveadm is installed.
func TestDoveadmAcceptsOurHashes(t *testing.T) {
	doveadm := testenv.LookPath(t, "doveadm")
	// doveadm spends about half a second starting: run them side by side.
	var wg sync.WaitGroup
	check := func(h, pw string, want bool) {
		defer wg.Done()
		out, err := exec.Command(doveadm, "-c", "/dev/null", "pw", "-t", h, "-p", pw).CombinedOutput()
		if got := err == nil && strings.Contains(string(out), "(verified)"); got != want {
			t.Errorf("doveadm pw -t %q -p %q: verified %v, want %v (%v)\n%s", h, pw, got, want, err, out)
		}
	}
	for _, g := range generating {
		for _, pw := range []string{"secret", "pässwörd"} {
			h, err := Hash(g.scheme, pw)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(2)
			go check(h, pw, true)
			go check(h, pw+"x", false)
		}
	}
	wg.Wait()
}
