package fetch

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/pop3client"
)

// ProbeOptions configure Probe.
type ProbeOptions struct {
	// TLS is "implicit", "starttls" or "none"; empty: implicit on port
	// 995, starttls on any other.
	TLS string
	// Timeout bounds each network operation (default 30s).
	Timeout time.Duration
	// Roots verify the certificate (default: the system's).
	Roots  *x509.CertPool
	Logger *slog.Logger
	// Now is the clock for certificate expiry (default time.Now).
	Now func() time.Time
}

// Probe connects to a POP3 server without logging in and writes what it
// offers to w: the greeting, TLS version and cipher suite, the
// certificate (subject, issuer, validity, SHA-256 fingerprint, whether it
// verifies), and the capabilities (SASL mechanisms, LOGIN-DELAY, EXPIRE,
// …). addr is "host" or "host:port" (port 995 by default). The
// certificate is shown even when it does not verify, and Probe then
// returns an error of KindTLS after showing the rest; it sends no
// credentials. Its errors are *Error.
func Probe(ctx context.Context, addr string, w io.Writer, po ProbeOptions) error {
	err := probe(ctx, addr, w, po)
	if err == nil {
		return nil
	}
	host, port, serr := net.SplitHostPort(addr)
	if serr != nil {
		host, port = addr, "995"
	}
	n, _ := strconv.Atoi(port)
	return classifyConn(&Account{Name: host, Server: host, Port: n, TLS: po.TLS}, err)
}

func probe(ctx context.Context, addr string, w io.Writer, po ProbeOptions) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = addr, "995"
		if po.TLS == "none" || po.TLS == "starttls" {
			port = "110"
		}
		addr = net.JoinHostPort(host, port)
	}
	mode := po.TLS
	if mode == "" {
		mode = "starttls"
		if port == "995" {
			mode = "implicit"
		}
	}
	if po.Timeout == 0 {
		po.Timeout = 30 * time.Second
	}
	now := time.Now
	if po.Now != nil {
		now = po.Now
	}
	opts := &pop3client.Options{
		Timeout: po.Timeout,
		Logger:  po.Logger,
		// Verified below, by hand, so that a certificate that does not
		// verify can still be shown.
		TLSConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, ServerName: host},
	}
	switch mode {
	case "implicit":
		opts.TLS = pop3client.TLSImplicit
	case "starttls", "none":
		opts.TLS = pop3client.TLSNone
	default:
		return fail(KindConfig, `--tls must be "implicit", "starttls" or "none", not %q`, mode)
	}
	fmt.Fprintf(w, "server:        %s (%s)\n", addr, map[string]string{"implicit": "implicit TLS", "starttls": "STLS", "none": "no TLS"}[mode])
	c, err := pop3client.Dial(ctx, addr, opts)
	if err != nil {
		if mode != "implicit" && isTimeout(err) {
			// A POP3S port waits for a TLS ClientHello and never greets
			// a plain client: say so rather than only "timeout".
			return &Error{Kind: KindTemporary, Err: fmt.Errorf("no POP3 greeting from %s in %v: %w", addr, po.Timeout, err),
				Hint: "If this is an implicit-TLS port (POP3S, usually 995), probe it with --tls implicit."}
		}
		return err
	}
	defer c.Close()
	fmt.Fprintf(w, "greeting:      +OK %s\n", c.Greeting())
	if mode == "starttls" {
		plain, err := c.Capabilities(ctx)
		if err != nil {
			return err
		}
		if !plain.Has(pop3.CapSTLS) {
			fmt.Fprintln(w, "STLS:          not announced")
		}
		if err := c.STLS(ctx); err != nil {
			fmt.Fprintf(w, "STLS:          refused: %v\n", err)
			fmt.Fprintln(w, "capabilities before TLS:")
			printCaps(w, plain)
			return err
		}
	}
	var verifyErr error
	if st, ok := c.TLSConnectionState(); ok {
		verifyErr = printTLS(w, st, host, po.Roots, now())
	}
	caps, err := c.Capabilities(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "capabilities (before login; they may change after):")
	printCaps(w, caps)
	c.Quit(ctx)
	if verifyErr != nil {
		// All is shown, and still it is a failure: postie fetch would
		// refuse this server without pin_sha256.
		return fail(KindTLS, "the certificate does not verify: %v", verifyErr)
	}
	return nil
}

// printTLS shows the connection's TLS and certificate, and returns why the
// certificate does not verify (nil when it does).
func printTLS(w io.Writer, st tls.ConnectionState, host string, roots *x509.CertPool, now time.Time) error {
	fmt.Fprintf(w, "TLS:           %s, %s\n", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	if len(st.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	leaf := st.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	fmt.Fprintf(w, "certificate:   subject %s\n", leaf.Subject)
	fmt.Fprintf(w, "               issuer  %s\n", leaf.Issuer)
	if len(leaf.DNSNames) > 0 || len(leaf.IPAddresses) > 0 {
		names := slices.Clone(leaf.DNSNames)
		for _, ip := range leaf.IPAddresses {
			names = append(names, ip.String())
		}
		fmt.Fprintf(w, "               names   %s\n", strings.Join(names, ", "))
	}
	left := leaf.NotAfter.Sub(now)
	status := fmt.Sprintf("%d days left", int(left.Hours()/24))
	if left < 0 {
		status = "EXPIRED"
	} else if now.Before(leaf.NotBefore) {
		status = "NOT YET VALID"
	}
	fmt.Fprintf(w, "               valid   %s to %s (%s)\n", leaf.NotBefore.UTC().Format(time.DateOnly), leaf.NotAfter.UTC().Format(time.DateOnly), status)
	fmt.Fprintf(w, "               SHA-256 %s\n", pop3client.Fingerprint(sum[:]))
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter, CurrentTime: now})
	if err != nil {
		fmt.Fprintf(w, "               verify  FAILED: %v\n", err)
		fmt.Fprintf(w, "               (to trust it anyway, after checking the fingerprint: pin_sha256 = %q)\n", pop3client.Fingerprint(sum[:]))
		return err
	}
	fmt.Fprintln(w, "               verify  ok")
	return nil
}

func printCaps(w io.Writer, caps pop3client.Caps) {
	if len(caps) == 0 {
		fmt.Fprintln(w, "  (none: the server does not answer CAPA)")
		return
	}
	names := make([]string, 0, len(caps))
	for n := range caps {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		line := strings.TrimSpace(n + " " + strings.Join(caps[n], " "))
		switch n {
		case pop3.CapSASL:
			line = "SASL mechanisms: " + strings.Join(caps.SASL(), " ")
		case pop3.CapLoginDelay:
			line = "LOGIN-DELAY " + describeDelay(caps[n])
		case pop3.CapExpire:
			line = "EXPIRE " + describeExpire(caps[n])
		}
		fmt.Fprintf(w, "  %s\n", line)
	}
	if !caps.Has(pop3.CapUIDL) {
		fmt.Fprintln(w, "  (no UIDL: postie fetch identifies messages by a hash of their headers)")
	}
}

func describeDelay(args []string) string {
	if len(args) == 0 {
		return ""
	}
	s := args[0]
	if n, err := strconv.Atoi(args[0]); err == nil {
		s = fmt.Sprintf("%d (at most one login every %v)", n, time.Duration(n)*time.Second)
	}
	if len(args) > 1 && strings.EqualFold(args[1], "USER") {
		s += ", per user"
	}
	return s
}

func describeExpire(args []string) string {
	if len(args) == 0 {
		return ""
	}
	var s string
	switch n, err := strconv.Atoi(args[0]); {
	case strings.EqualFold(args[0], "NEVER"):
		s = "NEVER (mail may stay on the server)"
	case err == nil && n == 0:
		s = "0 (retrieved mail is deleted: keep = true is not possible)"
	case err == nil:
		s = fmt.Sprintf("%d (retrieved mail is deleted after %d days)", n, n)
	default:
		s = args[0]
	}
	if len(args) > 1 && strings.EqualFold(args[1], "USER") {
		s += ", per user"
	}
	return s
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
