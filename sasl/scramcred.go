package sasl

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SCRAMCredentials are what a server stores for one user and one SCRAM
// hash (RFC 5802 §3): the salt and iteration count the client needs to
// derive its keys, StoredKey = H(ClientKey) to check the client's proof,
// and ServerKey to prove the server's own knowledge. The password cannot
// be recovered from them, but ServerKey lets its holder impersonate the
// server: keep them as secret as password hashes.
type SCRAMCredentials struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Mechanism names the SCRAM hash the credentials are for, from the key
// length: "SCRAM-SHA-1" (20 octets), "SCRAM-SHA-256" (32), or "" when the
// keys fit neither.
func (c SCRAMCredentials) Mechanism() string {
	if len(c.StoredKey) != len(c.ServerKey) {
		return ""
	}
	for _, h := range scramHashes {
		if h.size == len(c.StoredKey) {
			return h.name
		}
	}
	return ""
}

// valid reports whether c can run an exchange with hash h.
func (c SCRAMCredentials) valid(h scramHash) bool {
	return len(c.Salt) > 0 && c.Iterations >= 1 && c.Iterations <= maxIterations &&
		len(c.StoredKey) == h.size && len(c.ServerKey) == h.size
}

// DefaultSCRAMIterations is the iteration count NewSCRAMCredentials uses
// when given 0: RFC 7677 §4's minimum for SCRAM-SHA-256, and what
// Dovecot's doveadm pw writes.
const DefaultSCRAMIterations = 4096

// maxIterations bounds parsed iteration counts: a client must run PBKDF2
// that many times, so an absurd count is a broken entry.
const maxIterations = 1 << 24

// scramSaltLen is the salt length NewSCRAMCredentials draws (as Dovecot).
const scramSaltLen = 16

type scramHash struct {
	name string // mechanism name without -PLUS
	new  func() hash.Hash
	size int
}

var scramHashes = []scramHash{
	{"SCRAM-SHA-256", sha256.New, sha256.Size},
	{"SCRAM-SHA-1", sha1.New, sha1.Size},
}

// scramHashByName finds the hash for "SCRAM-SHA-256" or "SCRAM-SHA-1"
// (ASCII case-insensitively, without -PLUS).
func scramHashByName(name string) (scramHash, bool) {
	for _, h := range scramHashes {
		if sameUser(h.name, name) {
			return h, true
		}
	}
	return scramHash{}, false
}

// NewSCRAMCredentials derives the stored credentials for password with a
// fresh random 16-octet salt (RFC 5802 §3). mech is "SCRAM-SHA-256" or
// "SCRAM-SHA-1"; iterations 0 means DefaultSCRAMIterations, and fewer
// than 4096 are refused (RFC 7677 §4).
//
// The password is used as given, exactly as Dovecot's doveadm pw does
// (checked in the tests). RFC 5802 clients apply SASLprep (RFC 4013)
// first, which changes only passwords with non-ASCII spaces, soft hyphens
// and other mapped-to-nothing characters, or characters not in NFKC: a
// caller that must support such passwords should SASLprep them first.
func NewSCRAMCredentials(mech, password string, iterations int) (SCRAMCredentials, error) {
	h, ok := scramHashByName(mech)
	if !ok {
		return SCRAMCredentials{}, fmt.Errorf("sasl: unknown SCRAM hash %q", mech)
	}
	if iterations == 0 {
		iterations = DefaultSCRAMIterations
	}
	if iterations < DefaultSCRAMIterations || iterations > maxIterations {
		return SCRAMCredentials{}, fmt.Errorf("sasl: SCRAM iteration count %d outside [%d, %d]", iterations, DefaultSCRAMIterations, maxIterations)
	}
	salt := make([]byte, scramSaltLen)
	rand.Read(salt)
	return scramDerive(h, password, salt, iterations)
}

// scramDerive computes the stored credentials (RFC 5802 §3):
// SaltedPassword = Hi(password, salt, i), ClientKey = HMAC(SaltedPassword,
// "Client Key"), StoredKey = H(ClientKey), ServerKey = HMAC(SaltedPassword,
// "Server Key").
func scramDerive(h scramHash, password string, salt []byte, iterations int) (SCRAMCredentials, error) {
	salted, err := pbkdf2.Key(h.new, password, salt, iterations, h.size)
	if err != nil {
		return SCRAMCredentials{}, fmt.Errorf("sasl: SCRAM key derivation: %w", err)
	}
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	stored := h.new()
	stored.Write(clientKey)
	return SCRAMCredentials{
		Salt:       salt,
		Iterations: iterations,
		StoredKey:  stored.Sum(nil),
		ServerKey:  hmacSum(h, salted, []byte("Server Key")),
	}, nil
}

func hmacSum(h scramHash, key, msg []byte) []byte {
	m := hmac.New(h.new, key)
	m.Write(msg)
	return m.Sum(nil)
}

// ParseDovecotSCRAM parses a Dovecot SCRAM password entry,
// "{SCRAM-SHA-256}iter,salt,storedkey,serverkey" (or {SCRAM-SHA-1}), with
// salt and keys in standard base64, as written by `doveadm pw -s
// SCRAM-SHA-256`. The scheme prefix is required (it says which hash the
// keys are for) and matched ASCII case-insensitively.
func ParseDovecotSCRAM(s string) (SCRAMCredentials, error) {
	bad := func(why string) (SCRAMCredentials, error) {
		return SCRAMCredentials{}, errors.New("sasl: malformed Dovecot SCRAM entry: " + why)
	}
	if !strings.HasPrefix(s, "{") {
		return bad("no {SCHEME} prefix")
	}
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return bad("no {SCHEME} prefix")
	}
	h, ok := scramHashByName(s[1:end])
	if !ok {
		return bad("not a SCRAM scheme")
	}
	f := strings.Split(s[end+1:], ",")
	if len(f) != 4 {
		return bad("want 4 comma-separated fields")
	}
	iter, err := strconv.Atoi(f[0])
	if err != nil || iter < 1 || iter > maxIterations || f[0] != strconv.Itoa(iter) {
		return bad("bad iteration count")
	}
	var c SCRAMCredentials
	c.Iterations = iter
	for i, dst := range []*[]byte{&c.Salt, &c.StoredKey, &c.ServerKey} {
		b, err := base64.StdEncoding.DecodeString(f[i+1])
		if err != nil || len(b) == 0 {
			return bad("bad base64")
		}
		*dst = b
	}
	if !c.valid(h) {
		return bad("key length does not match " + h.name)
	}
	return c, nil
}

// FormatDovecotSCRAM writes c in the form ParseDovecotSCRAM reads and
// Dovecot's passwd-file holds.
func FormatDovecotSCRAM(c SCRAMCredentials) (string, error) {
	h, ok := scramHashByName(c.Mechanism())
	if !ok || !c.valid(h) {
		return "", errors.New("sasl: invalid SCRAM credentials")
	}
	b64 := base64.StdEncoding.EncodeToString
	return "{" + h.name + "}" + strconv.Itoa(c.Iterations) + "," + b64(c.Salt) + "," +
		b64(c.StoredKey) + "," + b64(c.ServerKey), nil
}
