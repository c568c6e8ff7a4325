package pop3client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/pop3client"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store/maildir"
)

// exampleServer starts postie's POP3 server (with STLS) over a temporary
// Maildir in which alice, password "secret", has two messages. It returns
// the address, a pool trusting the server's self-signed certificate, and
// a function that stops it all.
func exampleServer() (addr string, roots *x509.CertPool, stop func()) {
	dir, err := os.MkdirTemp("", "pop3client-example")
	if err != nil {
		log.Fatal(err)
	}
	st, err := maildir.New(maildir.Options{Root: dir, Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range []string{
		"Subject: hello\n\nHi Alice!\n",
		"Subject: dots\n\n.a line starting with a dot\nbye\n",
	} {
		if _, err := st.Deliver(context.Background(), "alice", strings.NewReader(m)); err != nil {
			log.Fatal(err)
		}
	}
	certPEM, keyPEM, err := testenv.SelfSigned()
	if err != nil {
		log.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		log.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	srv, err := pop3server.New(pop3server.Options{
		Logger: quiet(),
		Store:  st,
		Authenticator: pop3server.AuthenticatorFunc(func(_ context.Context, user, pass string) (string, bool, error) {
			return user, user == "alice" && pass == "secret", nil
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Limits:    pop3server.Limits{AuthFailDelay: -1},
	})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	return ln.Addr().String(), roots, func() {
		srv.Close()
		os.RemoveAll(dir)
	}
}

// Fetch every message, then delete them all.
func Example() {
	addr, roots, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	c, err := pop3client.Dial(ctx, addr, &pop3client.Options{
		TLS:       pop3client.TLSStartTLS,
		TLSConfig: &tls.Config{RootCAs: roots},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "alice", "secret"); err != nil {
		log.Fatal(err)
	}
	msgs, err := c.ListAndUIDL(ctx)
	if err != nil {
		log.Fatal(err)
	}
	var nums []int
	for _, m := range msgs {
		r, err := c.Retr(ctx, m.Num)
		if err != nil {
			log.Fatal(err)
		}
		body, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("message %d, %d octets listed, %d received:\n%s", m.Num, m.Size, len(body), strings.ReplaceAll(string(body), "\r\n", "\n"))
		nums = append(nums, m.Num)
	}
	if err := c.DeleMany(ctx, nums); err != nil {
		log.Fatal(err)
	}
	// Only a successful QUIT removes the messages.
	if err := c.Quit(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// message 1, 29 octets listed, 29 received:
	// Subject: hello
	//
	// Hi Alice!
	// message 2, 51 octets listed, 51 received:
	// Subject: dots
	//
	// .a line starting with a dot
	// bye
}

// Top streams the header and the first lines of the body.
func ExampleClient_Top() {
	addr, _, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	c, err := pop3client.Dial(ctx, addr, nil) // plain text: fine on loopback only
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "alice", "secret"); err != nil {
		log.Fatal(err)
	}
	r, err := c.Top(ctx, 2, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	if _, err := io.Copy(os.Stdout, r); err != nil {
		log.Fatal(err)
	}
	// Output:
	// Subject: dots
}

// Response codes tell a wrong password from a locked maildrop.
func ExampleError() {
	addr, _, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	first, err := pop3client.Dial(ctx, addr, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer first.Close()
	second, err := pop3client.Dial(ctx, addr, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer second.Close()

	for _, try := range []struct {
		c    *pop3client.Client
		pass string
	}{{first, "guess"}, {first, "secret"}, {second, "secret"}} {
		err := try.c.Login(ctx, "alice", try.pass)
		var perr *pop3.Error
		switch {
		case err == nil:
			fmt.Println("logged in")
		case errors.As(err, &perr) && perr.Code == pop3.CodeAuth:
			fmt.Println("wrong password")
		case errors.As(err, &perr) && perr.Code == pop3.CodeInUse:
			fmt.Println("mailbox busy, try later")
		default:
			log.Fatal(err)
		}
	}
	// Output:
	// wrong password
	// logged in
	// mailbox busy, try later
}
