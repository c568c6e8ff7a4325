package auth

import (
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/GehirnInc/crypt/md5_crypt"
	"github.com/GehirnInc/crypt/sha256_crypt"
	"github.com/GehirnInc/crypt/sha512_crypt"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/postie-mail/postie/sasl"
)

// DefaultScheme is the scheme Hash uses when DB.Add or DB.SetPassword is
// given none.
const DefaultScheme = "ARGON2ID"

// Parameters of the hashes this package generates. The Argon2 ones are
// Dovecot's defaults, so a hash moves between Dovecot and postie unchanged;
// at about 64 MiB and tens of milliseconds per check they are the reason
// for the credential cache.
const (
	argon2Threads   = 1
	argon2SaltLen   = 16
	argon2KeyLen    = 32
	shaCryptSaltLen = 16 // the maximum for $5$ and $6$
	sshaSaltLen     = 16
)

// costs are the work parameters of the slow hashes Hash writes.
type costs struct {
	argon2idMemory, argon2idTime uint32 // KiB, passes
	argon2iMemory, argon2iTime   uint32
	bcrypt                       int
}

// productionCosts are Dovecot's defaults.
var productionCosts = costs{
	argon2idMemory: 65536, argon2idTime: 3,
	argon2iMemory: 32768, argon2iTime: 4,
	bcrypt: 10,
}

// cost is what Hash and the dummy hash use: productionCosts, except in
// this package's tests, whose TestMain lowers it before any test runs so
// that they do not spend minutes in Argon2 (one test checks the
// production parameters).
var cost = productionCosts

// Limits on what a stored Argon2 string may ask for, so a corrupt or
// hostile entry cannot make one login allocate unbounded memory or panic.
const (
	argon2MaxMemory  = 4 << 20 // KiB (4 GiB)
	argon2MaxTime    = 1 << 16
	argon2MaxKeyLen  = 1024
	pbkdf2MaxRounds  = 1 << 24
	pbkdf2MaxKeySize = 64
)

// encoding is the transfer encoding of a digest scheme, chosen by a
// ".HEX", ".B64" or ".BASE64" suffix on the scheme name.
type encoding int

const (
	encDefault encoding = iota
	encHex
	encBase64
)

func (e encoding) suffix() string {
	switch e {
	case encHex:
		return ".HEX"
	case encBase64:
		return ".B64"
	}
	return ""
}

// digestScheme describes the schemes that are a plain or salted message
// digest: {SHA256}digest, {SSHA256}digest||salt.
type digestScheme struct {
	newHash    func() hash.Hash
	salted     bool
	defaultHex bool // the encoding Hash uses when none is named
}

var digestSchemes = map[string]digestScheme{
	"SHA":       {newHash: sha1.New},
	"SHA1":      {newHash: sha1.New},
	"SHA256":    {newHash: sha256.New},
	"SHA512":    {newHash: sha512.New},
	"PLAIN-MD5": {newHash: md5.New, defaultHex: true},
	"LDAP-MD5":  {newHash: md5.New},
	"SSHA":      {newHash: sha1.New, salted: true},
	"SSHA256":   {newHash: sha256.New, salted: true},
	"SSHA512":   {newHash: sha512.New, salted: true},
	"SMD5":      {newHash: md5.New, salted: true},
}

// schemeKind sorts every scheme name Verify knows.
type schemeKind int

const (
	kindUnknown schemeKind = iota
	kindPlain
	kindDigest
	kindCrypt
	kindArgon2
	kindPBKDF2
	kindSCRAM
	kindCRAMMD5
)

func kindOf(scheme string) schemeKind {
	switch scheme {
	case "PLAIN", "CLEAR", "CLEARTEXT":
		return kindPlain
	case "CRYPT", "BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "MD5-CRYPT", "MD5":
		return kindCrypt
	case "ARGON2ID", "ARGON2I":
		return kindArgon2
	case "PBKDF2":
		return kindPBKDF2
	case "SCRAM-SHA-256", "SCRAM-SHA-1":
		return kindSCRAM
	case "CRAM-MD5":
		return kindCRAMMD5
	}
	if _, ok := digestSchemes[scheme]; ok {
		return kindDigest
	}
	return kindUnknown
}

// parseSchemeName splits "ssha512.hex" into "SSHA512" and encHex. An
// encoding suffix is only allowed on schemes that have an encoding.
func parseSchemeName(name string) (string, encoding, error) {
	scheme := strings.ToUpper(name)
	enc := encDefault
	if i := strings.LastIndexByte(scheme, '.'); i >= 0 {
		switch scheme[i+1:] {
		case "HEX":
			enc = encHex
		case "B64", "BASE64":
			enc = encBase64
		default:
			return "", 0, fmt.Errorf("%w: %s", ErrUnknownScheme, schemeForLog(name))
		}
		scheme = scheme[:i]
	}
	k := kindOf(scheme)
	if k == kindUnknown || (enc != encDefault && k != kindDigest && k != kindPlain) {
		return "", 0, fmt.Errorf("%w: %s", ErrUnknownScheme, schemeForLog(name))
	}
	return scheme, enc, nil
}

// schemeForLog quotes a scheme name for an error or a log, unless it does
// not look like one (a plaintext password that happens to start with '{'
// must not end up in a log).
func schemeForLog(name string) string {
	if len(name) == 0 || len(name) > 32 {
		return "(unprintable)"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "(unprintable)"
		}
	}
	return strconv.Quote(name)
}

// splitStored splits a stored password into its scheme, encoding and
// data. A string without a {SCHEME} prefix is a crypt(3) string.
func splitStored(stored string) (scheme string, enc encoding, data string, err error) {
	if !strings.HasPrefix(stored, "{") {
		return "CRYPT", encDefault, stored, nil
	}
	end := strings.IndexByte(stored, '}')
	if end < 0 {
		return "", 0, "", fmt.Errorf("%w: no closing '}'", ErrMalformedHash)
	}
	scheme, enc, err = parseSchemeName(stored[1:end])
	if err != nil {
		return "", 0, "", err
	}
	return scheme, enc, stored[end+1:], nil
}

// storedScheme returns the scheme name of a stored password for logs
// ("CRYPT" for a bare crypt string), and whether this package knows it.
// It never returns any part of the hash itself.
func storedScheme(stored string) (string, bool) {
	scheme, enc, _, err := splitStored(stored)
	if err != nil {
		return "", false
	}
	return scheme + enc.suffix(), true
}

// Hash hashes password in the given scheme (case-insensitive name, with an
// optional .HEX or .B64 suffix for the digest and plain schemes) and
// returns "{SCHEME}encoded". It generates ARGON2ID (the default), ARGON2I,
// BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT, SSHA512, SSHA256, SSHA,
// SCRAM-SHA-256 and SCRAM-SHA-1 (Dovecot's stored SCRAM keys, with which
// the SCRAM mechanisms work without a plaintext password), CRAM-MD5 and
// PLAIN/CLEAR/CLEARTEXT; the other schemes Verify knows are verify-only
// and give an error wrapping ErrUnknownScheme.
func Hash(scheme, password string) (string, error) {
	return hashWith(cost, scheme, password)
}

// hashWith is Hash with the given costs.
func hashWith(c costs, scheme, password string) (string, error) {
	name, enc, err := parseSchemeName(scheme)
	if err != nil {
		return "", err
	}
	prefix := "{" + name + enc.suffix() + "}"
	switch name {
	case "ARGON2ID":
		return prefix + argon2Hash("argon2id", password, c.argon2idTime, c.argon2idMemory), nil
	case "ARGON2I":
		return prefix + argon2Hash("argon2i", password, c.argon2iTime, c.argon2iMemory), nil
	case "BLF-CRYPT":
		h, err := bcrypt.GenerateFromPassword([]byte(password), c.bcrypt)
		if err != nil {
			return "", fmt.Errorf("auth: BLF-CRYPT: %w", err)
		}
		// x/crypto writes $2a$; its algorithm is the corrected one that
		// $2b$ and $2y$ name, and $2y$ is what Dovecot and PHP write.
		return prefix + "$2y$" + strings.TrimPrefix(string(h), "$2a$"), nil
	case "SHA512-CRYPT":
		return shaCryptHash(prefix, sha512_crypt.MagicPrefix, password)
	case "SHA256-CRYPT":
		return shaCryptHash(prefix, sha256_crypt.MagicPrefix, password)
	case "SSHA", "SSHA256", "SSHA512":
		d := digestSchemes[name]
		salt := randomBytes(sshaSaltLen)
		h := d.newHash()
		h.Write([]byte(password))
		h.Write(salt)
		return prefix + encode(append(h.Sum(nil), salt...), enc, false), nil
	case "PLAIN", "CLEAR", "CLEARTEXT":
		if enc == encDefault {
			return prefix + password, nil
		}
		return prefix + encode([]byte(password), enc, false), nil
	case "SCRAM-SHA-256", "SCRAM-SHA-1":
		c, err := sasl.NewSCRAMCredentials(name, password, 0)
		if err != nil {
			return "", fmt.Errorf("auth: %s: %w", name, err)
		}
		return sasl.FormatDovecotSCRAM(c)
	case "CRAM-MD5":
		ctx := cramMD5Context(password)
		return prefix + hex.EncodeToString(ctx[:]), nil
	}
	return "", fmt.Errorf("%w: %s is verify-only", ErrUnknownScheme, name)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return b
}

func encode(b []byte, enc encoding, defaultHex bool) string {
	if enc == encHex || (enc == encDefault && defaultHex) {
		return hex.EncodeToString(b)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// argon2Hash returns the PHC string Dovecot (libsodium) writes:
// $argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>, unpadded standard base64.
func argon2Hash(variant, password string, time, memory uint32) string {
	salt := randomBytes(argon2SaltLen)
	var key []byte
	if variant == "argon2id" {
		key = argon2.IDKey([]byte(password), salt, time, memory, argon2Threads, argon2KeyLen)
	} else {
		key = argon2.Key([]byte(password), salt, time, memory, argon2Threads, argon2KeyLen)
	}
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", variant, argon2.Version, memory, time,
		argon2Threads, base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// cryptAlphabet is the salt alphabet of crypt(3).
const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func shaCryptHash(prefix, magic, password string) (string, error) {
	salt := randomBytes(shaCryptSaltLen)
	for i := range salt {
		salt[i] = cryptAlphabet[salt[i]&63]
	}
	var (
		out string
		err error
	)
	setting := []byte(magic + string(salt))
	if magic == sha512_crypt.MagicPrefix {
		out, err = sha512_crypt.New().Generate([]byte(password), setting)
	} else {
		out, err = sha256_crypt.New().Generate([]byte(password), setting)
	}
	if err != nil {
		return "", fmt.Errorf("auth: crypt: %w", err)
	}
	return prefix + out, nil
}

// Verify checks password against a stored "{SCHEME}..." string (or a bare
// crypt(3) string). A wrong password is (false, nil). A scheme this
// package does not know gives an error wrapping ErrUnknownScheme, and a
// stored value it cannot decode one wrapping ErrMalformedHash. Hashes are
// compared in constant time.
func Verify(stored, password string) (bool, error) {
	scheme, enc, data, err := splitStored(stored)
	if err != nil {
		return false, err
	}
	switch kindOf(scheme) {
	case kindPlain:
		want := []byte(data)
		if enc != encDefault {
			if want, err = decode(data, enc); err != nil {
				return false, fmt.Errorf("%w: %s: %v", ErrMalformedHash, scheme, err)
			}
		}
		// Compare digests so that not even the length leaks.
		a, b := sha256.Sum256(want), sha256.Sum256([]byte(password))
		return subtle.ConstantTimeCompare(a[:], b[:]) == 1, nil
	case kindDigest:
		return verifyDigest(scheme, digestSchemes[scheme], enc, data, password)
	case kindCrypt:
		if scheme == "MD5" && !strings.HasPrefix(data, md5_crypt.MagicPrefix) {
			// Dovecot's {MD5} is MD5-CRYPT; LDAP tools write a bare MD5
			// digest under the same name.
			return verifyDigest(scheme, digestSchemes["PLAIN-MD5"], enc, data, password)
		}
		return verifyCrypt(data, password)
	case kindArgon2:
		return verifyArgon2(data, password)
	case kindPBKDF2:
		return verifyPBKDF2(data, password)
	case kindSCRAM:
		return verifySCRAM(scheme, data, password)
	case kindCRAMMD5:
		return verifyCRAMMD5(data, password)
	}
	return false, fmt.Errorf("%w: %s", ErrUnknownScheme, scheme)
}

// decode undoes an explicit encoding. Base64 is accepted with or without
// padding.
// The errors name no byte of the input: it may be an encoded plaintext
// password.
func decode(data string, enc encoding) ([]byte, error) {
	if enc == encHex {
		b, err := hex.DecodeString(data)
		if err != nil {
			return nil, errors.New("invalid hex")
		}
		return b, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(data, "="))
	if err != nil {
		return nil, errors.New("invalid base64")
	}
	return b, nil
}

func verifyDigest(scheme string, d digestScheme, enc encoding, data, password string) (bool, error) {
	h := d.newHash()
	size := h.Size()
	if enc == encDefault {
		// Like Dovecot: base64 unless it is exactly the length of the
		// hex-encoded digest (only possible without a salt).
		enc = encBase64
		if !d.salted && len(data) == 2*size {
			enc = encHex
		}
	}
	raw, err := decode(data, enc)
	if err != nil {
		return false, fmt.Errorf("%w: %s: %v", ErrMalformedHash, scheme, err)
	}
	if len(raw) < size || (!d.salted && len(raw) != size) {
		return false, fmt.Errorf("%w: %s: %d bytes", ErrMalformedHash, scheme, len(raw))
	}
	h.Write([]byte(password))
	h.Write(raw[size:]) // the salt, empty for unsalted schemes
	return subtle.ConstantTimeCompare(h.Sum(nil), raw[:size]) == 1, nil
}

// verifyCrypt recognises a crypt(3) string by its prefix.
func verifyCrypt(data, password string) (bool, error) {
	switch {
	case strings.HasPrefix(data, "$2a$"), strings.HasPrefix(data, "$2b$"), strings.HasPrefix(data, "$2y$"):
		err := bcrypt.CompareHashAndPassword([]byte(data), []byte(password))
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, nil
		}
		return false, fmt.Errorf("%w: BLF-CRYPT", ErrMalformedHash)
	case strings.HasPrefix(data, sha512_crypt.MagicPrefix):
		return verifyShaCrypt(data, password, sha512_crypt.New().Generate)
	case strings.HasPrefix(data, sha256_crypt.MagicPrefix):
		return verifyShaCrypt(data, password, sha256_crypt.New().Generate)
	case strings.HasPrefix(data, md5_crypt.MagicPrefix):
		return verifyShaCrypt(data, password, md5_crypt.New().Generate)
	}
	return false, fmt.Errorf("%w: unrecognised crypt(3) format", ErrUnknownScheme)
}

// verifyShaCrypt recomputes the hash from the stored setting (everything
// before the last '$': magic, optional rounds=N, salt) and compares the
// whole string.
func verifyShaCrypt(data, password string, generate func(key, salt []byte) (string, error)) (bool, error) {
	i := strings.LastIndexByte(data, '$')
	if i < 3 {
		return false, fmt.Errorf("%w: crypt: no salt", ErrMalformedHash)
	}
	out, err := generate([]byte(password), []byte(data[:i]))
	if err != nil {
		return false, fmt.Errorf("%w: crypt setting", ErrMalformedHash)
	}
	return subtle.ConstantTimeCompare([]byte(out), []byte(data)) == 1, nil
}

// argon2Params is a parsed PHC string.
type argon2Params struct {
	variant      string // "argon2id" or "argon2i"
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

// parseArgon2 parses $argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>. Only
// version 19 (0x13) exists in x/crypto; the parameters may come in any
// order but each exactly once.
func parseArgon2(data string) (argon2Params, error) {
	var p argon2Params
	f := strings.Split(data, "$")
	if len(f) != 6 || f[0] != "" {
		return p, errors.New("not a PHC string")
	}
	p.variant = f[1]
	if p.variant != "argon2id" && p.variant != "argon2i" {
		return p, fmt.Errorf("variant %q", p.variant)
	}
	if f[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, fmt.Errorf("version %q", f[2])
	}
	var seen [3]bool
	for _, kv := range strings.Split(f[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, fmt.Errorf("parameter %q", kv)
		}
		switch {
		case k == "m" && !seen[0] && n <= argon2MaxMemory:
			p.memory, seen[0] = uint32(n), true
		case k == "t" && !seen[1] && n >= 1 && n <= argon2MaxTime:
			p.time, seen[1] = uint32(n), true
		case k == "p" && !seen[2] && n >= 1 && n <= 255:
			p.threads, seen[2] = uint8(n), true
		default:
			return p, fmt.Errorf("parameter %q", kv)
		}
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return p, errors.New("missing parameter")
	}
	if p.memory < 8*uint32(p.threads) {
		return p, errors.New("memory below 8*p KiB")
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(f[4], "=")); err != nil || len(p.salt) == 0 {
		return p, errors.New("bad salt")
	}
	if p.key, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(f[5], "=")); err != nil ||
		len(p.key) < 4 || len(p.key) > argon2MaxKeyLen {
		return p, errors.New("bad hash")
	}
	return p, nil
}

func verifyArgon2(data, password string) (bool, error) {
	p, err := parseArgon2(data)
	if err != nil {
		return false, fmt.Errorf("%w: argon2: %v", ErrMalformedHash, err)
	}
	var key []byte
	if p.variant == "argon2id" {
		key = argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	} else {
		key = argon2.Key([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	}
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

// verifyPBKDF2 checks Dovecot's {PBKDF2}$1$<salt>$<rounds>$<hex>: PBKDF2
// with HMAC-SHA1, the salt string used as is.
func verifyPBKDF2(data, password string) (bool, error) {
	f := strings.Split(data, "$")
	if len(f) != 5 || f[0] != "" || f[1] != "1" {
		return false, fmt.Errorf("%w: PBKDF2: format", ErrMalformedHash)
	}
	rounds, err := strconv.Atoi(f[3])
	if err != nil || rounds < 1 || rounds > pbkdf2MaxRounds {
		return false, fmt.Errorf("%w: PBKDF2: rounds", ErrMalformedHash)
	}
	want, err := hex.DecodeString(f[4])
	if err != nil || len(want) == 0 || len(want) > pbkdf2MaxKeySize {
		return false, fmt.Errorf("%w: PBKDF2: hash", ErrMalformedHash)
	}
	got, err := pbkdf2.Key(sha1.New, password, []byte(f[2]), rounds, len(want))
	if err != nil {
		return false, fmt.Errorf("auth: PBKDF2: %w", err)
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
