// Package jwtauth issues modelauth's own tokens and verifies them: short
// JWTs for one service, signed with the app's signing key (package
// signingkey), the way Azure ML's get_token answers.
//
// Verification pins the algorithm, looks the kid up only among the app's
// own published keys (never jku, x5u, jwk or x5c from the token: a token
// carrying any of them is refused), requires exp, checks nbf, iat, iss and
// aud exactly with a leeway, and caps the token's size before parsing.
//
// # Errors
//
// Verify wraps one of [ErrTooLarge], [ErrMalformed], [ErrUnknownKey] or
// [ErrInvalid] (with golang-jwt's own error, such as jwt.ErrTokenExpired)
// for a token that is refused, and [ErrUnavailable] when the signing keys
// cannot be read. No error contains the token.
package jwtauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/shared/jwtclaims"
	"github.com/modelauth/modelauth/shared/jwterrors"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// Errors.
var (
	// ErrTooLarge: the token is longer than MaxTokenBytes.
	ErrTooLarge = errors.New("jwtauth: token too large")
	// ErrMalformed: not a JWS compact serialization this app issues.
	ErrMalformed = errors.New("jwtauth: malformed token")
	// ErrUnknownKey: the kid is not one of the app's published keys.
	ErrUnknownKey = errors.New("jwtauth: unknown signing key")
	// ErrInvalid: the signature or a claim does not hold.
	ErrInvalid = errors.New("jwtauth: invalid token")
	// ErrUnavailable: the signing keys cannot be read.
	ErrUnavailable = errors.New("jwtauth: signing keys unavailable")
)

// Defaults.
const (
	DefaultLeeway        = 60 * time.Second
	DefaultMaxTokenBytes = 8 << 10
)

// Options tune an [Authority]; nil means [DefaultOptions]. Fields are used
// as given.
type Options struct {
	// Leeway is the clock skew allowed on exp, nbf and iat; 0 allows none.
	Leeway time.Duration
	// MaxTokenBytes caps a token's length; it must be positive.
	MaxTokenBytes int
	// MaxLifetime, if set, refuses a token whose exp is more than this
	// after its iat (iat then required): no token this app issues lives
	// longer, so a longer one was forged with a stolen key, and must not
	// outlive the key's revocation in a verifier's memory. 0: no bound.
	MaxLifetime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultOptions returns the defaults: [DefaultLeeway] and
// [DefaultMaxTokenBytes], no lifetime bound.
func DefaultOptions() Options {
	return Options{Leeway: DefaultLeeway, MaxTokenBytes: DefaultMaxTokenBytes}
}

// Authority issues and verifies the app's tokens. It is safe for
// concurrent use.
type Authority struct {
	keys   *signingkey.Set
	issuer string
	alg    string
	opts   Options
	method jwt.SigningMethod
	parser *jwt.Parser
}

// New returns the authority over keys for tokens of issuer (the iss of
// issued tokens and the one accepted: MODELAUTH_ISSUER) signed with alg,
// RS256 or ES256, the signing keys' algorithm.
func New(keys *signingkey.Set, issuer, alg string, opts *Options) (*Authority, error) {
	if issuer == "" {
		return nil, errors.New("jwtauth: an issuer is required")
	}
	method := jwt.GetSigningMethod(alg)
	if alg != signingkey.RS256 && alg != signingkey.ES256 || method == nil {
		return nil, fmt.Errorf("jwtauth: algorithm %q is not RS256 or ES256", alg)
	}
	o := DefaultOptions()
	if opts != nil {
		o = *opts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxTokenBytes <= 0 {
		return nil, fmt.Errorf("jwtauth: MaxTokenBytes %d is not positive", o.MaxTokenBytes)
	}
	a := &Authority{keys: keys, issuer: issuer, alg: alg, opts: o, method: method}
	a.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(o.Leeway),
		jwt.WithTimeFunc(o.Now),
		// Canonical base64url only: a signature whose unused bits are set
		// decodes to the same bytes, and would be a second spelling of
		// one token, which the verified-token cache keys by its text.
		jwt.WithStrictDecoding(),
	)
	return a, nil
}

// Token is get_token's answer, as Azure ML's v1 token API: Unix seconds.
type Token struct {
	AccessToken  string `json:"accessToken"`
	TokenType    string `json:"tokenType"`
	ExpiryOn     int64  `json:"expiryOn"`
	RefreshAfter int64  `json:"refreshAfter"`
}

// Issued describes an issued token for the audit log: never the token.
type Issued struct {
	JTI string
	Kid string
}

// Issue signs a token for service to subject that expires after lifetime
// and should be replaced after refreshAfter.
func (a *Authority) Issue(ctx context.Context, service, subject string, lifetime, refreshAfter time.Duration) (Token, Issued, error) {
	key, err := a.keys.Signer(ctx)
	if err != nil {
		return Token{}, Issued{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Token{}, Issued{}, err
	}
	jti := base64.RawURLEncoding.EncodeToString(id[:])
	now := a.opts.Now().Truncate(time.Second)
	exp := now.Add(lifetime)
	tok := jwt.NewWithClaims(a.method, jwt.MapClaims{
		"iss": a.issuer, "aud": service, "sub": subject,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(), "jti": jti,
	})
	tok.Header["kid"] = key.Kid
	raw, err := tok.SignedString(key.Signer())
	if err != nil {
		return Token{}, Issued{}, fmt.Errorf("jwtauth: signing: %w", err)
	}
	return Token{AccessToken: raw, TokenType: "Bearer", ExpiryOn: exp.Unix(), RefreshAfter: now.Add(refreshAfter).Unix()},
		Issued{JTI: jti, Kid: key.Kid}, nil
}

// Sync refreshes the signing keys if their cached read has outlived the
// key-cache TTL; see [signingkey.Set.Sync]. A verifier that remembers
// tokens calls it before trusting what it remembers, so that a key revoked
// on another instance is forgotten within the TTL.
func (a *Authority) Sync(ctx context.Context) error {
	if err := a.keys.Sync(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Claims are what a verified token proves.
type Claims struct {
	Service string
	Subject string
	JTI     string
	Kid     string
	Expiry  time.Time
}

// forbiddenHeaders are JOSE header members that point at keys: this app's
// tokens never carry them, so a token that does is refused.
var forbiddenHeaders = []string{"jku", "x5u", "jwk", "x5c", "crit"}

// Verify checks raw as a token for service and returns its claims.
func (a *Authority) Verify(ctx context.Context, service, raw string) (Claims, error) {
	if len(raw) > a.opts.MaxTokenBytes {
		return Claims{}, ErrTooLarge
	}
	if strings.Count(raw, ".") != 2 {
		return Claims{}, ErrMalformed
	}
	var (
		claims  jwtclaims.Claims
		kid     string
		keyErr  error
		headers = func(t *jwt.Token) (any, error) {
			for _, h := range forbiddenHeaders {
				if _, ok := t.Header[h]; ok {
					keyErr = fmt.Errorf("%w: the header carries %q", ErrMalformed, h)
					return nil, keyErr
				}
			}
			kid, _ = t.Header["kid"].(string)
			k, err := a.keys.Lookup(ctx, kid)
			switch {
			case errors.Is(err, signingkey.ErrUnknownKey):
				keyErr = ErrUnknownKey
				return nil, keyErr
			case err != nil:
				keyErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
				return nil, keyErr
			case k.Alg != a.alg:
				keyErr = ErrUnknownKey
				return nil, keyErr
			}
			return k.Public, nil
		}
	)
	_, err := a.parser.ParseWithClaims(raw, &claims, headers)
	switch {
	case keyErr != nil:
		return Claims{}, keyErr
	case errors.Is(err, jwt.ErrTokenMalformed):
		return Claims{}, fmt.Errorf("%w: %w", ErrMalformed, jwterrors.Quiet(err))
	case err != nil:
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalid, jwterrors.Quiet(err))
	}
	if len(claims.Audience) != 1 || claims.Audience[0] != service {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalid, jwt.ErrTokenInvalidAudience)
	}
	if strings.TrimSpace(claims.Subject) == "" || claims.ExpiresAt == nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalid, jwt.ErrTokenRequiredClaimMissing)
	}
	if m := a.opts.MaxLifetime; m > 0 && (claims.IssuedAt == nil || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > m) {
		return Claims{}, fmt.Errorf("%w: %w: lives longer than %v", ErrInvalid, jwt.ErrTokenInvalidClaims, m)
	}
	return Claims{Service: service, Subject: claims.Subject, JTI: claims.ID, Kid: kid, Expiry: claims.ExpiresAt.Time}, nil
}
