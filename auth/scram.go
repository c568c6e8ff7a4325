package auth

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	stdencoding "encoding"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"

	"github.com/postie-mail/postie/sasl"
)

// scramHash returns the hash of a SCRAM scheme name ("SCRAM-SHA-256" or
// "SCRAM-SHA-1").
func scramHash(scheme string) (func() hash.Hash, bool) {
	switch scheme {
	case "SCRAM-SHA-256":
		return sha256.New, true
	case "SCRAM-SHA-1":
		return sha1.New, true
	}
	return nil, false
}

// verifySCRAM checks password against Dovecot's stored SCRAM keys,
// "{SCRAM-SHA-256}iter,salt,storedkey,serverkey" (RFC 5802 §3): it derives
// both keys from the password with the stored salt and iteration count, so
// that USER/PASS and AUTH PLAIN work for users who have only SCRAM keys.
func verifySCRAM(scheme, data, password string) (bool, error) {
	c, err := sasl.ParseDovecotSCRAM("{" + scheme + "}" + data)
	if err != nil {
		return false, fmt.Errorf("%w: %s", ErrMalformedHash, scheme)
	}
	newHash, _ := scramHash(scheme)
	storedKey, serverKey, err := scramKeys(newHash, password, c.Salt, c.Iterations)
	if err != nil {
		return false, fmt.Errorf("auth: %s: %w", scheme, err)
	}
	storedOK := subtle.ConstantTimeCompare(storedKey, c.StoredKey)
	serverOK := subtle.ConstantTimeCompare(serverKey, c.ServerKey)
	return storedOK&serverOK == 1, nil
}

// scramKeys derives StoredKey = H(HMAC(SaltedPassword, "Client Key")) and
// ServerKey = HMAC(SaltedPassword, "Server Key"), with SaltedPassword =
// PBKDF2(password, salt, iterations) (RFC 5802 §3). The password is used
// as is, without SASLprep, as Dovecot does.
func scramKeys(newHash func() hash.Hash, password string, salt []byte, iterations int) (storedKey, serverKey []byte, err error) {
	salted, err := pbkdf2.Key(newHash, password, salt, iterations, newHash().Size())
	if err != nil {
		return nil, nil, err
	}
	mac := func(msg string) []byte {
		m := hmac.New(newHash, salted)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	h := newHash()
	h.Write(mac("Client Key"))
	return h.Sum(nil), mac("Server Key"), nil
}

// cramMD5Context returns what Dovecot stores for {CRAM-MD5}: the MD5 states
// of HMAC-MD5 keyed with the password (RFC 2104) after its first block —
// the outer (key XOR opad) then the inner (key XOR ipad), each as the four
// state words in little-endian order. It is plaintext-equivalent for
// CRAM-MD5, but not the password.
func cramMD5Context(password string) [32]byte {
	key := []byte(password)
	if len(key) > md5.BlockSize {
		sum := md5.Sum(key)
		key = sum[:]
	}
	var out [32]byte
	for i, pad := range []byte{0x5c, 0x36} {
		var block [md5.BlockSize]byte
		copy(block[:], key)
		for j := range block {
			block[j] ^= pad
		}
		h := md5.New()
		h.Write(block[:])
		// The marshalled state is "md5\x01" then the four state words
		// big-endian (crypto/md5's stable encoding).
		state, err := h.(stdencoding.BinaryMarshaler).MarshalBinary()
		if err != nil || len(state) < 4+16 {
			panic("auth: crypto/md5 state encoding changed")
		}
		for w := 0; w < 4; w++ {
			v := binary.BigEndian.Uint32(state[4+4*w:])
			binary.LittleEndian.PutUint32(out[16*i+4*w:], v)
		}
	}
	return out
}

// verifyCRAMMD5 checks password against a {CRAM-MD5} entry (64 hex digits).
func verifyCRAMMD5(data, password string) (bool, error) {
	want, err := hex.DecodeString(data)
	if err != nil || len(want) != 32 {
		return false, fmt.Errorf("%w: CRAM-MD5", ErrMalformedHash)
	}
	got := cramMD5Context(password)
	return subtle.ConstantTimeCompare(got[:], want) == 1, nil
}
