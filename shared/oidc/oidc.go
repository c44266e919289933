package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/shared/jwtclaims"
	"github.com/modelauth/modelauth/shared/jwterrors"
)

var (
	// ErrMalformed means the token is not a well-formed JWT: wrong number of
	// parts, bad base64 or JSON, or claims of the wrong type.
	ErrMalformed = errors.New("oidc: malformed token")

	// ErrTooLarge means the token is longer than Options.MaxTokenBytes. It
	// was not parsed.
	ErrTooLarge = errors.New("oidc: token too large")

	// ErrUnknownIssuer means the token's "iss" is not a configured issuer.
	// Nothing was fetched.
	ErrUnknownIssuer = errors.New("oidc: unknown issuer")

	// ErrUnknownKey means the token has no "kid", or its issuer's JWKS has
	// no key with that kid, even after a refresh where one was allowed.
	ErrUnknownKey = errors.New("oidc: unknown signing key")

	// ErrInvalid means the token's algorithm, signature or claims are not
	// acceptable: bad signature, disallowed algorithm, expired, not yet
	// valid, issued in the future, wrong audience, missing "exp". It wraps
	// the error of github.com/golang-jwt/jwt/v5.
	ErrInvalid = errors.New("oidc: invalid token")

	// ErrUnavailable means the issuer's discovery document or JWKS could not
	// be fetched and no usable keys are cached (or the context ended while
	// waiting for them).
	ErrUnavailable = errors.New("oidc: issuer keys unavailable")
)

// Defaults of [Options] ([DefaultOptions]).
const (
	DefaultLeeway             = 60 * time.Second
	DefaultMaxTokenBytes      = 16 << 10
	DefaultMaxAge             = time.Hour
	DefaultRefreshMinInterval = 5 * time.Minute
	DefaultRetryInterval      = 10 * time.Second
	DefaultHTTPTimeout        = 10 * time.Second
)

// Bounds on a JWKS response's max-age, and how long keys that could not be
// refreshed stay in use beyond it.
const (
	minMaxAge = time.Minute
	maxMaxAge = 24 * time.Hour
	maxStale  = 24 * time.Hour
)

// Limits on fetched documents and on one fetch (discovery plus JWKS), which
// runs on after the context of the verification that started it ends, so
// that a caller giving up does not fail the fetch for others.
const (
	maxDiscoveryBytes = 64 << 10
	fetchTimeout      = 30 * time.Second
)

// supportedAlgs are the algorithms Options.Algorithms may name.
var supportedAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256"}

// Options tune a [Verifier]; nil means [DefaultOptions]. Fields are used
// as given (a zero duration means none); a nil HTTPClient, Now or Logger
// takes its default.
type Options struct {
	// Algorithms lists the accepted "alg" values, at least one of RS256,
	// RS384, RS512, PS256, PS384, PS512, ES256 (default RS256 alone, as
	// Entra ID signs); "none" and HMAC algorithms are refused by New.
	Algorithms []string

	// Leeway is the clock skew allowed for exp, nbf and iat; 0 allows
	// none. Default 60s.
	Leeway time.Duration

	// MaxTokenBytes is the longest token accepted, positive; longer ones
	// are refused before parsing. Default 16 KiB.
	MaxTokenBytes int

	// DefaultMaxAge is how long a JWKS is cached when its response has no
	// usable Cache-Control max-age, within 1 minute and 24 hours. Default
	// 1 hour.
	DefaultMaxAge time.Duration

	// RefreshMinInterval is the least time between two JWKS refreshes of
	// one issuer caused by tokens with an unknown kid; 0: no limit.
	// Default 5 minutes.
	RefreshMinInterval time.Duration

	// RetryInterval is the least time between a failed discovery or JWKS
	// fetch for an issuer and the next attempt; 0: at once. Default 10
	// seconds.
	RetryInterval time.Duration

	// HTTPClient fetches discovery documents and JWKS. Nil: a client
	// with a 10 second timeout that follows redirects only to URLs allowed
	// for issuers (https, or http on loopback).
	HTTPClient *http.Client

	// Now returns the current time. Nil: time.Now.
	Now func() time.Time

	// Logger receives warnings about failed fetches and debug lines about
	// successful ones. Nil: slog.Default().
	Logger *slog.Logger
}

// DefaultOptions returns the defaults named on each field of [Options].
func DefaultOptions() Options {
	return Options{
		Algorithms: []string{"RS256"}, Leeway: DefaultLeeway, MaxTokenBytes: DefaultMaxTokenBytes,
		DefaultMaxAge: DefaultMaxAge, RefreshMinInterval: DefaultRefreshMinInterval, RetryInterval: DefaultRetryInterval,
	}
}

// Verifier verifies tokens of a fixed set of issuers. It is safe for
// concurrent use; create it with [New].
type Verifier struct {
	issuers   map[string]*issuer
	order     []string
	algs      []string
	leeway    time.Duration
	maxBytes  int
	defMaxAge time.Duration
	minRefr   time.Duration
	retry     time.Duration
	client    *http.Client
	now       func() time.Time
	log       *slog.Logger
}

// Claims are the verified claims of a token that callers use.
type Claims struct {
	Issuer   string    // iss
	Subject  string    // sub
	Audience []string  // aud
	Roles    []string  // roles: app roles granted to the caller; nil if absent
	TenantID string    // tid
	ObjectID string    // oid
	AppID    string    // azp (v2 tokens), or appid (v1 tokens)
	Expiry   time.Time // exp
}

// New returns a Verifier of tokens of issuers, whose "iss" values are
// compared exactly; each must be an absolute https URL, or http with a
// loopback host. It checks the configuration but fetches nothing:
// discovery happens on first need.
func New(issuers []string, opts *Options) (*Verifier, error) {
	if len(issuers) == 0 {
		return nil, errors.New("oidc: no issuer configured")
	}
	o := DefaultOptions()
	if opts != nil {
		o = *opts
	}
	v := &Verifier{
		issuers:   make(map[string]*issuer, len(issuers)),
		leeway:    o.Leeway,
		maxBytes:  o.MaxTokenBytes,
		defMaxAge: min(max(o.DefaultMaxAge, minMaxAge), maxMaxAge),
		minRefr:   o.RefreshMinInterval,
		retry:     o.RetryInterval,
		client:    o.HTTPClient,
		now:       o.Now,
		log:       o.Logger,
	}
	for _, iss := range issuers {
		if err := checkURL(iss, false); err != nil {
			return nil, fmt.Errorf("oidc: issuer %q: %w", iss, err)
		}
		if _, dup := v.issuers[iss]; dup {
			return nil, fmt.Errorf("oidc: issuer %q listed twice", iss)
		}
		v.issuers[iss] = &issuer{iss: iss, v: v}
		v.order = append(v.order, iss)
	}
	if len(o.Algorithms) == 0 {
		return nil, errors.New("oidc: no algorithm accepted")
	}
	for _, a := range o.Algorithms {
		if !slices.Contains(supportedAlgs, a) {
			return nil, fmt.Errorf("oidc: algorithm %q not supported; use some of %s", a, strings.Join(supportedAlgs, ", "))
		}
	}
	v.algs = slices.Clone(o.Algorithms)
	switch {
	case v.leeway < 0 || v.minRefr < 0 || v.retry < 0:
		return nil, errors.New("oidc: a negative duration")
	case v.maxBytes <= 0:
		return nil, fmt.Errorf("oidc: MaxTokenBytes %d is not positive", v.maxBytes)
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: DefaultHTTPTimeout, CheckRedirect: checkRedirect}
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	return v, nil
}

// Issuers returns the configured issuers, in configuration order.
func (v *Verifier) Issuers() []string { return slices.Clone(v.order) }

// Verify checks raw, a compact JWS, and returns its claims. The token must
// be at most Options.MaxTokenBytes long, use one of Options.Algorithms, be
// signed by a key with its "kid" in the JWKS of its issuer, which must be
// a configured one, have an "exp" in the future and "nbf" and "iat" (when
// present) not in the future, all within Options.Leeway, and have an
// "aud" containing at least one of audiences. An empty audiences accepts
// nothing.
//
// Verify fetches discovery documents and JWKS as described in the package
// documentation; ctx bounds how long it waits for them. The error wraps
// one of the package's sentinel errors.
func (v *Verifier) Verify(ctx context.Context, raw string, audiences []string) (*Claims, error) {
	if len(raw) > v.maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), v.maxBytes)
	}
	if len(audiences) == 0 {
		return nil, fmt.Errorf("%w: no audience is accepted: %w", ErrInvalid, jwt.ErrTokenInvalidAudience)
	}
	p := jwt.NewParser(
		jwt.WithValidMethods(v.algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
		jwt.WithAudience(audiences...),
		jwt.WithStrictDecoding(),
	)
	var (
		c     jwtclaims.Claims
		kfErr error // the keyfunc's own error, returned as is
	)
	_, err := p.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		key, err := v.keyFor(ctx, t, &c)
		kfErr = err
		return key, err
	})
	switch {
	case err == nil:
	case kfErr != nil:
		return nil, kfErr
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, fmt.Errorf("%w: %w", ErrMalformed, jwterrors.Quiet(err))
	default:
		return nil, fmt.Errorf("%w: %w", ErrInvalid, jwterrors.Quiet(err))
	}
	if strings.TrimSpace(c.Subject) == "" {
		// Every caller and every Entra token names its subject: one
		// without is refused, rather than audited as nobody.
		return nil, fmt.Errorf("%w: %w: sub", ErrInvalid, jwt.ErrTokenRequiredClaimMissing)
	}
	out := &Claims{
		Issuer:   c.Issuer,
		Subject:  c.Subject,
		Audience: slices.Clone([]string(c.Audience)),
		Roles:    c.Roles,
		TenantID: c.TID,
		ObjectID: c.OID,
		AppID:    c.AZP,
	}
	if out.AppID == "" {
		out.AppID = c.AppID
	}
	if c.ExpiresAt != nil {
		out.Expiry = c.ExpiresAt.Time
	}
	return out, nil
}

// keyFor is the jwt.Keyfunc: it picks the verification key for t from the
// JWKS of the issuer named in c, which the parser has decoded but not yet
// verified.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token, c *jwtclaims.Claims) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 section 4.1.11: the extensions crit names must be
		// understood, and this verifier understands none (b64 among
		// them: an unencoded payload would be signed differently).
		return nil, fmt.Errorf("%w: the header names critical extensions", ErrMalformed)
	}
	s, ok := v.issuers[c.Issuer]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownIssuer, short(c.Issuer))
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, fmt.Errorf("%w: token has no kid", ErrUnknownKey)
	}
	keys, err := s.lookup(ctx, kid)
	if err != nil {
		return nil, err
	}
	alg := t.Method.Alg()
	var usable []jwt.VerificationKey
	for _, k := range keys {
		if k.suits(alg) {
			usable = append(usable, k.pub)
		}
	}
	switch len(usable) {
	case 0:
		return nil, fmt.Errorf("%w: %w: the key with this kid does not suit the token's algorithm", ErrInvalid, jwt.ErrInvalidKeyType)
	case 1:
		return usable[0], nil
	default:
		return jwt.VerificationKeySet{Keys: usable}, nil
	}
}

// suits reports whether k may verify a signature made with alg.
func (k verifyKey) suits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch alg[:2] {
	case "RS", "PS":
		_, ok := k.pub.(*rsa.PublicKey)
		return ok
	case "ES":
		// package jwk yields only P-256 EC keys, and only ES256 is allowed.
		_, ok := k.pub.(*ecdsa.PublicKey)
		return ok && alg == "ES256"
	}
	return false
}

// short quotes s, cut to 64 bytes, for error text.
func short(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}

// checkURL reports whether raw is allowed as an issuer (query false) or a
// URL to fetch (query true): absolute, https or http on a loopback host,
// no user info or fragment, and a query only when allowed.
func checkURL(raw string, query bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Host == "" || !u.IsAbs():
		return errors.New("not an absolute URL")
	case u.User != nil:
		return errors.New("user info not allowed in URL")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("fragment not allowed in URL")
	case !query && (u.RawQuery != "" || u.ForceQuery):
		return errors.New("query not allowed in issuer")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return errors.New("http allowed only for a loopback host; use https")
	default:
		return fmt.Errorf("scheme %q not allowed; use https", u.Scheme)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// checkRedirect is the default client's redirect policy: at most 5
// redirects, each to a URL checkURL allows.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	if err := checkURL(req.URL.String(), true); err != nil {
		return fmt.Errorf("redirect refused: %w", err)
	}
	return nil
}
