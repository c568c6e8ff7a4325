package oauthclient

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// DeviceCode is a device authorization response (RFC 8628 §3.2), less
// the device code, which only the polling needs.
type DeviceCode struct {
	// UserCode is what the user types at VerificationURI.
	UserCode        string
	VerificationURI string
	// VerificationURIComplete, when the server gives one, holds the code
	// already.
	VerificationURIComplete string
	// Expires is when the codes stop working.
	Expires time.Time
	// Interval is the wait between two polls the server asked for.
	Interval time.Duration
}

type deviceResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURL         string `json:"verification_url"` // Google's spelling
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// deviceGrant is the grant type of RFC 8628 §3.4.
const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// LoginDevice signs the user in with the device authorization grant (RFC
// 8628): it asks for a user code, gives it to show, and polls the token
// endpoint every interval (5s unless the server says otherwise, 5s more
// after each slow_down) until the user has approved or denied, or the
// code expires.
func (c *Config) LoginDevice(ctx context.Context, show func(*DeviceCode)) (*Token, error) {
	if c.DeviceURL == "" {
		return nil, errors.New("the provider offers no device authorization endpoint")
	}
	var dr deviceResponse
	form := url.Values{"scope": {strings.Join(c.Scopes, " ")}}
	if err := c.post(ctx, "device", c.DeviceURL, form, &dr); err != nil {
		return nil, err
	}
	if dr.VerificationURI == "" {
		dr.VerificationURI = dr.VerificationURL
	}
	if dr.DeviceCode == "" || dr.UserCode == "" || dr.VerificationURI == "" || dr.ExpiresIn <= 0 {
		return nil, fmt.Errorf("device endpoint %s: answer lacks device_code, user_code, verification_uri or expires_in", host(c.DeviceURL))
	}
	// Shown to the user: only what is printable, so a server cannot send
	// escape sequences to the terminal.
	dc := &DeviceCode{
		UserCode:                clean(dr.UserCode, 64),
		VerificationURI:         clean(dr.VerificationURI, 2000),
		VerificationURIComplete: clean(dr.VerificationURIComplete, 2000),
		Expires:                 c.now().Add(time.Duration(min(dr.ExpiresIn, 24*3600)) * time.Second),
		Interval:                5 * time.Second, // RFC 8628 §3.2 default
	}
	if dc.UserCode == "" || dc.VerificationURI == "" {
		return nil, fmt.Errorf("device endpoint %s: user_code or verification_uri is not printable text", host(c.DeviceURL))
	}
	if dr.Interval > 0 {
		dc.Interval = time.Duration(min(dr.Interval, 300)) * time.Second
	}
	show(dc)

	interval := dc.Interval
	poll := url.Values{"grant_type": {deviceGrant}, "device_code": {dr.DeviceCode}}
	for {
		if err := c.sleep(ctx, interval); err != nil {
			return nil, err
		}
		if !c.now().Before(dc.Expires) {
			return nil, errors.New("the code expired before the sign-in was approved; run the login again")
		}
		t, err := c.token(ctx, poll)
		var e *Error
		switch {
		case err == nil:
			if t.RefreshToken == "" {
				return nil, errors.New("token endpoint: no refresh token issued (for Microsoft, the offline_access scope is needed)")
			}
			return t, nil
		case !errors.As(err, &e):
			return nil, err
		case e.Code == "authorization_pending":
		case e.Code == "slow_down":
			// RFC 8628 §3.5: the interval grows by 5 seconds, for
			// this and all later polls.
			interval += 5 * time.Second
		case e.Code == "access_denied", e.Code == "authorization_declined": // the latter: Microsoft's
			return nil, errors.New("the sign-in was denied")
		case e.Code == "expired_token":
			return nil, errors.New("the code expired before the sign-in was approved; run the login again")
		default:
			return nil, err
		}
	}
}
