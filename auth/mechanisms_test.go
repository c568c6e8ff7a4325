package auth

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/xdg-go/scram"

	"github.com/postie-mail/postie/sasl"
)

// The POP3 server's APOPAuthenticator, restated.
var _ interface {
	AuthenticateAPOP(ctx context.Context, user, timestamp, digest string) (string, bool, error)
} = (*DB)(nil)

func apopDigest(timestamp, password string) string {
	sum := md5.Sum([]byte(timestamp + password))
	return hex.EncodeToString(sum[:])
}

func TestAuthenticateAPOP(t *testing.T) {
	db, _, logs := openTest(t, "alice:{PLAIN}secret\nbob:{PLAIN.B64}c2VjcmV0\ncarol:"+cheapArgon2id+"\ndave:\n", Options{})
	const ts = "<1896.697170952@dbc.mtview.ca.us>"
	for _, tt := range []struct {
		user, digest, want string
	}{
		{"alice", apopDigest(ts, "secret"), "alice"},
		{"ALICE", strings.ToUpper(apopDigest(ts, "secret")), "alice"},
		{"bob", apopDigest(ts, "secret"), "bob"}, // encoded PLAIN
		{"alice", apopDigest(ts, "Secret"), ""},
		{"alice", apopDigest("<other@host>", "secret"), ""},
		{"carol", apopDigest(ts, "secret"), ""}, // a one-way hash cannot serve APOP
		{"dave", apopDigest(ts, ""), ""},        // no password
		{"nobody", apopDigest(ts, "secret"), ""},
		{"../x", apopDigest(ts, "secret"), ""},
		{"alice", "", ""},
	} {
		name, ok, err := db.AuthenticateAPOP(context.Background(), tt.user, ts, tt.digest)
		if err != nil || name != tt.want || ok != (tt.want != "") {
			t.Errorf("AuthenticateAPOP(%q, %q) = %q, %v, %v; want %q", tt.user, tt.digest, name, ok, err, tt.want)
		}
	}
	// RFC 1939 §7's example: mrose, "tanstaaf".
	db, _, _ = openTest(t, "mrose:{PLAIN}tanstaaf\n", Options{})
	if name, ok, _ := db.AuthenticateAPOP(context.Background(), "mrose", ts, "c4c9334bac560ecc979e58001b3e22fb"); !ok || name != "mrose" {
		t.Errorf("RFC 1939 example refused")
	}
	if strings.Contains(logs.String(), "secret") {
		t.Errorf("log shows a password:\n%s", logs)
	}
}

// scramLogin runs a SCRAM exchange between postie's server mechanism, with
// db as its store, and an independent client (xdg-go/scram).
func scramLogin(t *testing.T, db *DB, mech, user, password string) (string, error) {
	t.Helper()
	srv, err := sasl.NewSCRAM(mech, sasl.SCRAMOptions{Store: db, Secret: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	gen := scram.SHA256
	if mech == "SCRAM-SHA-1" {
		gen = scram.SHA1
	}
	cl, err := gen.NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := cl.NewConversation()
	ctx := context.Background()
	msg, _ := conv.Step("")
	for range 4 {
		challenge, done, err := srv.Next(ctx, []byte(msg))
		if err != nil {
			return "", err
		}
		if done {
			if _, err := conv.Step(string(challenge)); err != nil || !conv.Valid() {
				t.Fatalf("%s %s: server signature refused: %v", mech, user, err)
			}
			return srv.User(), nil
		}
		if msg, err = conv.Step(string(challenge)); err != nil {
			t.Fatalf("%s %s: client: %v", mech, user, err)
		}
	}
	t.Fatalf("%s %s: exchange does not end", mech, user)
	return "", nil
}

func TestSCRAMCredentials(t *testing.T) {
	stored256, err := Hash("SCRAM-SHA-256", "hashed pw")
	if err != nil {
		t.Fatal(err)
	}
	file := "" +
		// doveadm pw -s SCRAM-SHA-256 -p secret / -s SCRAM-SHA-1
		"dove:{SCRAM-SHA-256}4096,qCq1t4n2BWb1JoMeEMdBbw==,rR44eKbc7XccLz9aCDOn3aCCFEDSYUG9bMCPpuf2kgw=,HoRSjqrM7QGJqfZYmB+FS1nNmChi1WSw6KzvgzZ8MBU=\n" +
		"dove1:{SCRAM-SHA-1}4096,7mO0h+E/OZNU/7DG8W5s2Q==,/SWfQjaVCQ7vkaMGbY1otRYCg4o=,/xkcoNmxMKFsgqJggnJgrSUXiPk=\n" +
		"ours:" + stored256 + "\n" +
		"plain:{PLAIN}pässwörd\n" +
		"argon:" + cheapArgon2id + "\n" +
		"broken:{SCRAM-SHA-256}4096,xx,yy,zz\n"
	db, _, logs := openTest(t, file, Options{SCRAMSecret: []byte("stable")})
	for _, tt := range []struct {
		mech, user, password, want string
	}{
		{"SCRAM-SHA-256", "dove", "secret", "dove"},
		{"SCRAM-SHA-256", "DOVE", "secret", "dove"},
		{"SCRAM-SHA-256", "dove", "Secret", ""},
		{"SCRAM-SHA-1", "dove", "secret", ""}, // keys for the other hash
		{"SCRAM-SHA-1", "dove1", "secret", "dove1"},
		{"SCRAM-SHA-256", "ours", "hashed pw", "ours"},
		{"SCRAM-SHA-256", "plain", "pässwörd", "plain"}, // derived from PLAIN
		{"SCRAM-SHA-1", "plain", "pässwörd", "plain"},
		{"SCRAM-SHA-256", "plain", "wrong", ""},
		{"SCRAM-SHA-256", "argon", "secret", ""}, // no SCRAM keys from a one-way hash
		{"SCRAM-SHA-256", "broken", "secret", ""},
		{"SCRAM-SHA-256", "nobody", "secret", ""},
	} {
		got, err := scramLogin(t, db, tt.mech, tt.user, tt.password)
		if tt.want == "" {
			if !errors.Is(err, sasl.ErrAuthFailed) {
				t.Errorf("%s %s/%s: %q, %v; want ErrAuthFailed", tt.mech, tt.user, tt.password, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s %s/%s: %q, %v; want %q", tt.mech, tt.user, tt.password, got, err, tt.want)
		}
	}
	if !strings.Contains(logs.String(), "user=broken") {
		t.Errorf("broken SCRAM entry not logged:\n%s", logs)
	}

	// Derived credentials: the same salt each time (an attacker cannot
	// tell a PLAIN user from a SCRAM one by a changing salt), a new one
	// when the password changes.
	ctx := context.Background()
	c1, _, ok1, _ := db.SCRAMCredentials(ctx, "plain", "SCRAM-SHA-256")
	c2, _, ok2, _ := db.SCRAMCredentials(ctx, "plain", "SCRAM-SHA-256")
	if !ok1 || !ok2 || string(c1.Salt) != string(c2.Salt) || c1.Iterations != 4096 {
		t.Errorf("derived credentials differ between calls: %+v %+v", c1, c2)
	}
	if err := db.SetPassword("plain", "new", "PLAIN"); err != nil {
		t.Fatal(err)
	}
	c3, _, _, _ := db.SCRAMCredentials(ctx, "plain", "SCRAM-SHA-256")
	if string(c3.Salt) == string(c1.Salt) {
		t.Errorf("the salt did not change with the password")
	}
	if _, err := scramLogin(t, db, "SCRAM-SHA-256", "plain", "new"); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
}

// USER/PASS for users who have only SCRAM keys or a CRAM-MD5 context.
func TestAuthenticateSCRAMEntries(t *testing.T) {
	db, _, _ := openTest(t, ""+
		"dove:{SCRAM-SHA-256}4096,qCq1t4n2BWb1JoMeEMdBbw==,rR44eKbc7XccLz9aCDOn3aCCFEDSYUG9bMCPpuf2kgw=,HoRSjqrM7QGJqfZYmB+FS1nNmChi1WSw6KzvgzZ8MBU=\n"+
		"cram:{CRAM-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56\n", Options{CacheTTL: -1})
	cheapDummy(db)
	for _, u := range []string{"dove", "cram"} {
		if _, ok := authOK(t, db, u, "secret"); !ok {
			t.Errorf("%s: right password refused", u)
		}
		if _, ok := authOK(t, db, u, "secreT"); ok {
			t.Errorf("%s: wrong password accepted", u)
		}
	}
}
