package tlsconf

import (
	"bufio"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkHandshake compares a server's CPU per full TLS handshake with
// the cost of the handshake's public-key crypto alone, in one run:
//
//	go test -run '^$' -bench Handshake -benchtime 2000x -count 6 ./internal/tlsconf
//
// crypto: what a TLS 1.3 server must compute for a full handshake with an
// ECDSA P-256 certificate and an X25519 key exchange: one ECDSA signature
// (of a SHA-256 digest, as the CertificateVerify's), one X25519 key pair
// and one X25519 shared secret. cpu-ns/op is this process's CPU per
// operation, which a busy machine does not inflate as it does ns/op.
// crypto-hybrid: the same for the X25519MLKEM768 exchange that a Go
// client offers by default, and a Go server prefers: an ML-KEM-768
// encapsulation to the client's key on top.
//
// full: full handshakes over loopback against a server in another process
// (this test binary, TestHandshakeServerProcess) serving
// ServerConfig(LoadCerts(...)) as postie does: each a fresh client (no
// session resumption) that offers X25519 only, as bench/compare.sh's
// does, verifies the certificate, reads a greeting and closes. server-ns/op
// is the server process's CPU (user and system, from getrusage) per
// handshake: the whole connection, accept to close, as postie pays it for
// an implicit-TLS session, less the POP3 part. full-hybrid: the same with
// a client offering Go's default key exchanges (X25519MLKEM768 chosen).
// plain: the same without TLS, what the connection itself costs the
// server. server-allocs/op and server-B/op are the server process's heap
// allocations per connection (crypto/tls's, nearly all).
//
// With TLSCONF_HANDSHAKE_CPUPROFILE=FILE in the environment (an absolute
// path, or one relative to the package directory), the server writes its
// CPU profile of each sub-benchmark to FILE.full, FILE.full-hybrid and
// FILE.plain.
func BenchmarkHandshake(b *testing.B) {
	b.Run("crypto", func(b *testing.B) { handshakeCrypto(b, false) })
	b.Run("crypto-hybrid", func(b *testing.B) { handshakeCrypto(b, true) })
	b.Run("full", func(b *testing.B) { connections(b, true, false) })
	b.Run("full-hybrid", func(b *testing.B) { connections(b, true, true) })
	b.Run("plain", func(b *testing.B) { connections(b, false, false) })
}

// handshakeCrypto is BenchmarkHandshake's crypto, with an ML-KEM-768
// encapsulation too when hybrid.
func handshakeCrypto(b *testing.B, hybrid bool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	peer, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	dk, err := mlkem.GenerateKey768()
	if err != nil {
		b.Fatal(err)
	}
	ek := dk.EncapsulationKey().Bytes() // as in a ClientHello
	digest := sha256.Sum256([]byte("transcript"))
	start, n := processCPU(), 0
	for b.Loop() {
		n++
		if hybrid {
			k, err := mlkem.NewEncapsulationKey768(ek)
			if err != nil {
				b.Fatal(err)
			}
			k.Encapsulate()
		}
		if _, err := ecdsa.SignASN1(rand.Reader, key, digest[:]); err != nil {
			b.Fatal(err)
		}
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := k.ECDH(peer.PublicKey()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-start)/float64(n), "cpu-ns/op")
}

// connections runs BenchmarkHandshake's full (tlsOn) or plain
// connections: plain is the same connection without TLS (accept, the
// greeting, close), the server's cost of a connection as such. With
// hybrid, the client offers Go's default key exchanges, not X25519 only.
func connections(b *testing.B, tlsOn, hybrid bool) {
	dir := b.TempDir()
	p, der := writePair(b, dir, "localhost")
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)

	args := []string{"-test.run=^TestHandshakeServerProcess$"}
	if prof := os.Getenv("TLSCONF_HANDSHAKE_CPUPROFILE"); prof != "" {
		_, sub, _ := strings.Cut(b.Name(), "/")
		args = append(args, "-test.cpuprofile="+prof+"."+sub)
	}
	srv := exec.Command(os.Args[0], args...)
	mode := "plain"
	if tlsOn {
		mode = p.CertFile + "\n" + p.KeyFile
	}
	srv.Env = append(os.Environ(), "TLSCONF_HANDSHAKE_SERVER="+mode)
	srv.Stderr = os.Stderr
	in, err := srv.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	outPipe, err := srv.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Wait()
	defer in.Close()
	out := bufio.NewReader(outPipe)
	addr := readField(b, out, "listening")

	connect := func() {
		var c net.Conn
		var err error
		want := tls.X25519
		if tlsOn {
			cfg := &tls.Config{ServerName: "localhost", RootCAs: roots, CurvePreferences: []tls.CurveID{want}}
			if hybrid {
				cfg.CurvePreferences, want = nil, tls.X25519MLKEM768
			}
			c, err = tls.Dial("tcp", addr, cfg)
		} else {
			c, err = net.Dial("tcp", addr)
		}
		if err != nil {
			b.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "+OK\r\n" {
			b.Fatalf("greeting %q: %v", line, err)
		}
		if tc, ok := c.(*tls.Conn); ok {
			if st := tc.ConnectionState(); st.DidResume || st.Version != tls.VersionTLS13 || st.CurveID != want {
				b.Fatalf("resumed %v, version %x, key exchange %v", st.DidResume, st.Version, st.CurveID)
			}
		}
		c.Close()
	}
	for range 20 { // warm up: the server's goroutines, pools, stacks
		connect()
	}
	// usage returns the server's CPU time (ns), heap allocations and
	// bytes allocated so far.
	usage := func() (u [3]float64) {
		fmt.Fprintln(in, "cpu")
		f := strings.Fields(readField(b, out, "cpu"))
		if len(f) != len(u) {
			b.Fatalf("server process said cpu %q", f)
		}
		for i := range u {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			u[i] = float64(v)
		}
		return u
	}
	start := usage()
	n := 0
	for b.Loop() {
		connect()
		n++
	}
	b.StopTimer()
	end := usage()
	b.ReportMetric((end[0]-start[0])/float64(n), "server-ns/op")
	b.ReportMetric((end[1]-start[1])/float64(n), "server-allocs/op")
	b.ReportMetric((end[2]-start[2])/float64(n), "server-B/op")
}

// processCPU is the CPU time of this process so far, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readField reads the next line of the server process, which must be
// "name value", and returns the value.
func readField(b *testing.B, r *bufio.Reader, name string) string {
	line, err := r.ReadString('\n')
	v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" ")
	if err != nil || !ok {
		b.Fatalf("server process said %q, want %s: %v", line, name, err)
	}
	return v
}

// TestHandshakeServerProcess is BenchmarkHandshake's server, in a process
// of its own so that its CPU can be measured apart from the client's. It
// does nothing in a normal test run. It serves implicit TLS with the
// certificate of $TLSCONF_HANDSHAKE_SERVER ("certfile\nkeyfile"), or
// plain TCP when it says "plain": a greeting after the handshake, then
// close once the client has. It says
// "listening ADDR", and "cpu NS MALLOCS BYTES" (its CPU time, heap
// allocations and bytes allocated so far) for each line on stdin; it
// ends when stdin does.
func TestHandshakeServerProcess(t *testing.T) {
	mode := os.Getenv("TLSCONF_HANDSHAKE_SERVER")
	var cfg *tls.Config
	if cert, key, ok := strings.Cut(mode, "\n"); ok {
		certs, err := LoadCerts([]Pair{{CertFile: cert, KeyFile: key}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg = ServerConfig(certs, nil)
	} else if mode != "plain" {
		t.Skip("BenchmarkHandshake's server process")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if cfg != nil {
					tc := tls.Server(c, cfg)
					if tc.Handshake() != nil {
						return
					}
					c = tc
				}
				io.WriteString(c, "+OK\r\n")
				io.Copy(io.Discard, c)
			}()
		}
	}()
	fmt.Printf("listening %s\n", ln.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("cpu %d %d %d\n", processCPU(), ms.Mallocs, ms.TotalAlloc)
	}
}
