package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// JWTOptions configure NewJWTValidator. Exactly one of JWKSURL and
// JWKSFile is required, and so are Issuer and Audience.
type JWTOptions struct {
	// JWKSURL is the https URL of the issuer's JWK Set (its "jwks_uri").
	// It is fetched at start, refreshed hourly, and refetched (at most
	// once per minute) when a token names a key id it does not hold.
	JWKSURL string
	// JWKSFile is the path of a JWK Set file, read once by
	// NewJWTValidator (build a new validator to reload it).
	JWKSFile string
	// Issuer must equal the token's "iss".
	Issuer string
	// Audience: the token's "aud" must contain one of these (this
	// server's client id or resource name), so that a token the issuer
	// minted for another application is refused.
	Audience []string
	// UserClaim is the claim that names the user (default "email"); a
	// token without it is refused ("sub" is used only when named). An
	// "email" claim with "email_verified": false is refused.
	UserClaim string
	// Algorithms are the accepted signature algorithms (default: RS256,
	// RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA).
	// Symmetric (HS*) and "none" are never accepted.
	Algorithms []string
	// Leeway is the clock skew allowed on exp, nbf and iat (default 1m).
	Leeway time.Duration
	// HTTPClient fetches JWKSURL (default: a client with a 10s timeout).
	HTTPClient *http.Client
	// Logger receives JWK Set refresh failures and the reasons tokens are
	// refused (never the tokens). Default slog.Default().
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

var defaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// JWTValidator validates JWT access tokens locally (RFC 9068 style)
// against a JWK Set. It implements sasl.TokenValidator and is safe for
// concurrent use.
type JWTValidator struct {
	kf        keyfunc.Keyfunc
	parser    *jwt.Parser
	userClaim string
	log       *slog.Logger
}

// NewJWTValidator builds a validator. With JWKSURL the key set is
// refreshed in the background until ctx is done; an identity provider
// that cannot be reached at start is logged, not fatal (tokens are
// refused until a fetch succeeds).
func NewJWTValidator(ctx context.Context, opts JWTOptions) (*JWTValidator, error) {
	ctx = ctxOrBackground(ctx)
	if opts.Issuer == "" {
		return nil, errors.New("oauth: JWTOptions.Issuer is required")
	}
	if len(opts.Audience) == 0 {
		return nil, errors.New("oauth: JWTOptions.Audience is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	algs := opts.Algorithms
	if algs == nil {
		algs = defaultAlgorithms
	}
	for _, a := range algs {
		if !isAsymmetric(a) {
			return nil, fmt.Errorf("oauth: signature algorithm %q not allowed", a)
		}
	}
	var kf keyfunc.Keyfunc
	switch {
	case (opts.JWKSURL == "") == (opts.JWKSFile == ""):
		return nil, errors.New("oauth: exactly one of JWTOptions.JWKSURL and JWKSFile is required")
	case opts.JWKSFile != "":
		raw, err := os.ReadFile(opts.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("oauth: JWK Set: %w", err)
		}
		if kf, err = keyfunc.NewJWKSetJSON(raw); err != nil {
			return nil, fmt.Errorf("oauth: JWK Set %s: %w", opts.JWKSFile, err)
		}
	default:
		u, err := url.Parse(opts.JWKSURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("oauth: JWKSURL %q is not an https URL", opts.JWKSURL)
		}
		kf, err = keyfunc.NewDefaultOverrideCtx(ctx, []string{opts.JWKSURL}, keyfunc.Override{
			Client:      defaultClient(opts.HTTPClient),
			HTTPTimeout: defaultHTTPTimeout,
			// An unknown key id triggers at most one refetch a
			// minute. RateLimitWaitMax also bounds that refetch; a
			// login never sleeps for the limiter (rate.Limiter.Wait
			// fails at once when the wait would pass the deadline).
			RefreshUnknownKID: rate.NewLimiter(rate.Every(time.Minute), 1),
			RateLimitWaitMax:  defaultHTTPTimeout,
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(ctx context.Context, err error) {
					log.WarnContext(ctx, "oauth: JWK Set refresh failed", "url", u, "err", err)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("oauth: JWK Set: %w", err)
		}
	}
	leeway := opts.Leeway
	if leeway == 0 {
		leeway = time.Minute
	}
	claim := opts.UserClaim
	if claim == "" {
		claim = "email"
	}
	return &JWTValidator{
		kf: kf,
		parser: jwt.NewParser(
			jwt.WithValidMethods(algs),
			jwt.WithIssuer(opts.Issuer),
			jwt.WithAudience(opts.Audience...),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(leeway),
			jwt.WithTimeFunc(nowFunc(opts.Now)),
		),
		userClaim: claim,
		log:       log,
	}, nil
}

func isAsymmetric(alg string) bool {
	for _, a := range defaultAlgorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// ValidateToken implements sasl.TokenValidator: the token's signature
// (by a key of the set), issuer, audience and lifetime are checked, then
// its user claim must match user (when user is not empty). err is always
// nil: a key set that cannot be fetched makes tokens fail as invalid.
func (v *JWTValidator) ValidateToken(ctx context.Context, user, token string) (string, bool, error) {
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.kf.KeyfuncCtx(ctx)); err != nil {
		v.log.DebugContext(ctx, "oauth: token refused", "user", user, "err", err)
		return "", false, nil
	}
	name := userFromClaims(claims, v.userClaim)
	if !matchUser(user, name) {
		v.log.DebugContext(ctx, "oauth: token refused", "user", user, "err", "user does not match the token")
		return "", false, nil
	}
	return name, true, nil
}
