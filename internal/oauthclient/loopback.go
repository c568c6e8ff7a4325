package oauthclient

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// LoopbackOptions steer LoginLoopback.
type LoopbackOptions struct {
	// Show is given the authorization URL to print, and to open in a
	// browser when there is one. Required.
	Show func(authURL string)
	// Wait bounds the wait for the browser's redirect (default 5m).
	Wait time.Duration
}

// DefaultLoopbackWait is how long LoginLoopback waits for the user.
const DefaultLoopbackWait = 5 * time.Minute

// LoginLoopback signs the user in with the authorization code grant and
// PKCE (RFC 7636, method S256) and a loopback redirect (RFC 8252 §7.3): it
// listens on 127.0.0.1 on a port the system picks, shows the URL to send
// the user to, waits for the redirect that brings the code (checking the
// "state" it sent), and exchanges the code for tokens.
func (c *Config) LoginLoopback(ctx context.Context, opts LoopbackOptions) (*Token, error) {
	if c.AuthURL == "" {
		return nil, errors.New("no authorization endpoint")
	}
	wait := opts.Wait
	if wait <= 0 {
		wait = DefaultLoopbackWait
	}
	// RFC 8252 §8.3: the loopback IP literal, not "localhost", which a
	// resolver or firewall could send elsewhere.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loopback redirect: %w", err)
	}
	redirect := fmt.Sprintf("http://%s/", ln.Addr().String())
	verifier := randomString(32) // 43 characters (RFC 7636 §4.1)
	state := randomString(16)

	u, err := url.Parse(c.AuthURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		ln.Close()
		return nil, errors.New("authorization endpoint: not an absolute URL")
	}
	q := u.Query()
	for k, vs := range c.AuthParams {
		q[k] = vs
	}
	q.Set("response_type", "code")
	q.Set("client_id", c.ClientID)
	q.Set("redirect_uri", redirect)
	q.Set("scope", strings.Join(c.Scopes, " "))
	q.Set("state", state)
	q.Set("code_challenge", challengeS256(verifier))
	q.Set("code_challenge_method", "S256")
	u.RawQuery = q.Encode()

	type result struct {
		code string
		err  error
	}
	got := make(chan result, 1)
	srv := &http.Server{
		ReadHeaderTimeout: 30 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			if r.Method != http.MethodGet || r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			q := r.URL.Query()
			// RFC 6749 §10.12: a redirect without our state is not the
			// answer to our request (CSRF); it is refused and the wait
			// goes on.
			if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintln(w, "postie: this sign-in answer does not belong to the sign-in in progress (state mismatch); it was ignored.")
				return
			}
			var res result
			switch {
			case q.Get("error") != "":
				e := &Error{Endpoint: "authorization", Code: clean(q.Get("error"), 64), Description: cleanDesc(q.Get("error_description"))}
				if e.Code == "" {
					e.Code = "(unreadable error)"
				}
				res.err = e
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, "postie: sign-in failed: %v. You can close this window.\n", res.err)
			case q.Get("code") != "":
				res.code = q.Get("code")
				fmt.Fprintln(w, "postie: signed in. You can close this window.")
			default:
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintln(w, "postie: the answer holds neither a code nor an error.")
				return
			}
			select {
			case got <- res:
			default: // a second answer with our state: the first counts
			}
		}),
	}
	go srv.Serve(ln)
	defer func() {
		// Shutdown lets the page telling the user to close the window
		// finish; a browser that keeps the connection open does not
		// hold postie for longer than a second.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	}()

	opts.Show(u.String())

	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var res result
	select {
	case res = <-got:
	case <-wctx.Done():
		if ctx.Err() == nil {
			return nil, fmt.Errorf("no answer from the browser within %v", wait)
		}
		return nil, ctx.Err()
	}
	if res.err != nil {
		return nil, res.err
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {res.code},
		"redirect_uri":  {redirect},
		"code_verifier": {verifier},
	}
	t, err := c.token(ctx, form)
	if err != nil {
		return nil, err
	}
	if t.RefreshToken == "" {
		return nil, errors.New("token endpoint: no refresh token issued (for Google, the authorization request needs access_type=offline; for Microsoft, the offline_access scope)")
	}
	return t, nil
}
