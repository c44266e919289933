package jwtauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/jwk"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/jwtclaims"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/filestore"
	"github.com/modelauth/modelauth/shared/signingkey"
)

const (
	issuer   = "https://modelauth.example/api"
	service  = "svc"
	subject  = "caller-1"
	leeway   = time.Minute
	lifetime = time.Hour
	refresh  = 30 * time.Minute
	ttl      = 30 * time.Second
)

// t0 has a fraction of a second: issued times are whole seconds.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)

var algs = []string{signingkey.RS256, signingkey.ES256}

// env is an Authority over a filestore-backed signing-key set, on a fake
// clock, with an attacker's keys and a key server that counts its hits.
type env struct {
	alg    string
	clk    *fakeclock.Clock
	st     *secretstore.Store
	policy signingkey.Policy
	set    *signingkey.Set
	auth   *jwtauth.Authority

	// The attacker's keys: one of each algorithm.
	rsaKey *rsa.PrivateKey
	ecKey  *ecdsa.PrivateKey
	// keyServer serves the attacker's JWKS; hits counts its requests.
	keyServer *httptest.Server
	hits      atomic.Int64
}

func newEnv(t testing.TB, alg string) *env {
	t.Helper()
	e := &env{alg: alg, clk: fakeclock.New(t0)}
	st, err := filestore.Open(t.TempDir(), &filestore.Options{Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	e.policy = signingkey.Policy{
		Alg:          alg,
		PublishAhead: signingkey.JWKSMaxAge + ttl,
		Period:       30 * 24 * time.Hour,
		Retention:    lifetime + leeway,
	}
	e.set = e.newSet()
	e.auth = e.newAuthority(t, e.set)
	if _, err := e.set.Signer(context.Background()); err != nil {
		t.Fatal(err)
	}
	if alg == signingkey.RS256 {
		if e.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	}
	if e.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	e.keyServer = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		k, _ := jwk.FromPublic(e.attackerKid(t), e.alg, e.attackerKey().Public())
		json.NewEncoder(w).Encode(jwk.Set{Keys: []jwk.Key{k}})
	}))
	t.Cleanup(e.keyServer.Close)
	return e
}

// newSet returns another instance's view of the signing keys: its cache
// starts empty.
func (e *env) newSet() *signingkey.Set {
	return signingkey.New(e.st.Share(), e.policy, &signingkey.Options{
		Bounds: cache.Bounds{TTL: ttl, RefreshMinInterval: time.Second, MaxStale: 5 * time.Minute},
		Now:    e.clk.Now,
	})
}

func (e *env) newAuthority(t testing.TB, set *signingkey.Set) *jwtauth.Authority {
	t.Helper()
	a, err := jwtauth.New(set, issuer, e.alg, &jwtauth.Options{Leeway: leeway, MaxTokenBytes: jwtauth.DefaultMaxTokenBytes, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (e *env) issue(t testing.TB, svc string) (jwtauth.Token, jwtauth.Issued) {
	t.Helper()
	tok, iss, err := e.auth.Issue(context.Background(), svc, subject, lifetime, refresh)
	if err != nil {
		t.Fatal(err)
	}
	return tok, iss
}

// signer is the key that signs now.
func (e *env) signer(t testing.TB) *signingkey.Key {
	t.Helper()
	k, err := e.set.Signer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// attackerKey is the attacker's key of the configured algorithm.
func (e *env) attackerKey() crypto.Signer {
	if e.alg == signingkey.RS256 {
		return e.rsaKey
	}
	return e.ecKey
}

func (e *env) attackerKid(t testing.TB) string {
	kid, err := signingkey.Thumbprint(e.attackerKey().Public())
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

// claims are the claims of a valid token issued now, to edit.
func (e *env) claims() jwt.MapClaims {
	now := e.clk.Now().Unix()
	return jwt.MapClaims{
		"iss": issuer, "aud": service, "sub": subject,
		"iat": now, "nbf": now, "exp": now + int64(lifetime/time.Second), "jti": "jti-1",
	}
}

// claimsWith returns the valid claims with edits; a nil value deletes.
func (e *env) claimsWith(edits map[string]any) jwt.MapClaims {
	c := e.claims()
	for k, v := range edits {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign signs claims with method and key, with kid and the extra headers.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims, headers map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kid
	for k, v := range headers {
		tok.Header[k] = v
	}
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// signOwn signs claims with the app's own signing key, as Issue would but
// with any claims and headers.
func (e *env) signOwn(t testing.TB, claims jwt.MapClaims, headers map[string]any) string {
	t.Helper()
	k := e.signer(t)
	return sign(t, jwt.GetSigningMethod(e.alg), k.Signer(), k.Kid, claims, headers)
}

// signAttacker signs valid claims with the attacker's key of the
// configured algorithm.
func (e *env) signAttacker(t testing.TB, kid string, headers map[string]any) string {
	t.Helper()
	return sign(t, jwt.GetSigningMethod(e.alg), e.attackerKey(), kid, e.claims(), headers)
}

var b64 = base64.RawURLEncoding

func segment(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

// decodeSegment decodes part i (0 header, 1 payload) of raw.
func decodeSegment(t testing.TB, raw string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts; want 3", len(parts))
	}
	b, err := b64.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// verify calls Verify and turns a panic into a test failure.
func verify(t testing.TB, a *jwtauth.Authority, svc, raw string) (c jwtauth.Claims, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Verify panicked: %v", r)
		}
	}()
	return a.Verify(context.Background(), svc, raw)
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, alg)
			now := t0.Truncate(time.Second)
			tok, issued := e.issue(t, service)
			if tok.TokenType != "Bearer" {
				t.Errorf("TokenType = %q; want Bearer", tok.TokenType)
			}
			if got, want := tok.ExpiryOn, now.Add(lifetime).Unix(); got != want {
				t.Errorf("ExpiryOn = %d; want %d (issue time + lifetime, Unix seconds)", got, want)
			}
			if got, want := tok.RefreshAfter, now.Add(refresh).Unix(); got != want {
				t.Errorf("RefreshAfter = %d; want %d", got, want)
			}
			if k := e.signer(t); issued.Kid != k.Kid {
				t.Errorf("Issued.Kid = %q; want the signer's %q", issued.Kid, k.Kid)
			}

			h := decodeSegment(t, tok.AccessToken, 0)
			wantHeader := map[string]any{"alg": alg, "typ": "JWT", "kid": issued.Kid}
			if len(h) != len(wantHeader) {
				t.Errorf("header = %v; want exactly %v", h, wantHeader)
			}
			for k, want := range wantHeader {
				if got := h[k]; got != want {
					t.Errorf("header %s = %v; want %v", k, got, want)
				}
			}
			p := decodeSegment(t, tok.AccessToken, 1)
			wantClaims := map[string]any{
				"iss": issuer, "aud": service, "sub": subject, "jti": issued.JTI,
				"iat": json.Number(strconv.FormatInt(now.Unix(), 10)), "nbf": json.Number(strconv.FormatInt(now.Unix(), 10)),
				"exp": json.Number(strconv.FormatInt(tok.ExpiryOn, 10)),
			}
			if len(p) != len(wantClaims) {
				t.Errorf("claims = %v; want exactly %v", p, wantClaims)
			}
			for k, want := range wantClaims {
				// aud must be a plain string, not an array.
				if got := p[k]; got != want {
					t.Errorf("claim %s = %#v; want %#v", k, got, want)
				}
			}
			if len(issued.JTI) < 22 {
				t.Errorf("jti %q is shorter than 128 bits", issued.JTI)
			}

			c, err := verify(t, e.auth, service, tok.AccessToken)
			if err != nil {
				t.Fatalf("Verify(issued token) = %v", err)
			}
			want := jwtauth.Claims{Service: service, Subject: subject, JTI: issued.JTI, Kid: issued.Kid, Expiry: time.Unix(tok.ExpiryOn, 0)}
			if c.Service != want.Service || c.Subject != want.Subject || c.JTI != want.JTI || c.Kid != want.Kid || !c.Expiry.Equal(want.Expiry) {
				t.Errorf("Verify = %+v; want %+v", c, want)
			}
			// Another instance, knowing nothing yet, verifies it from the store.
			if _, err := verify(t, e.newAuthority(t, e.newSet()), service, tok.AccessToken); err != nil {
				t.Errorf("Verify on a fresh instance = %v", err)
			}

			seen := map[string]bool{issued.JTI: true}
			for range 50 {
				_, is := e.issue(t, service)
				if seen[is.JTI] {
					t.Fatalf("jti %q issued twice", is.JTI)
				}
				seen[is.JTI] = true
			}
		})
	}
}

// secCase is a hostile or broken token and the refusal it must get.
type secCase struct {
	name    string
	service string // "" means service
	token   func(t testing.TB, e *env) string
	wantErr error
	// wantCause, if set, is the golang-jwt error the refusal wraps too.
	wantCause error
}

// securityCases are tokens Verify must refuse, for e's algorithm.
func securityCases() []secCase {
	beyond := int64((leeway + 2*time.Second) / time.Second)
	now := func(e *env) int64 { return e.clk.Now().Unix() }
	return []secCase{
		{
			name: "alg none, unsigned",
			token: func(t testing.TB, e *env) string {
				h := map[string]any{"alg": "none", "typ": "JWT", "kid": e.signer(t).Kid}
				return segment(t, h) + "." + segment(t, e.claims()) + "."
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "alg none, with a valid token's signature",
			token: func(t testing.TB, e *env) string {
				tok, _ := e.issue(t, service)
				parts := strings.Split(tok.AccessToken, ".")
				h := map[string]any{"alg": "none", "typ": "JWT", "kid": e.signer(t).Kid}
				return segment(t, h) + "." + parts[1] + "." + parts[2]
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "alg None, mixed case",
			token: func(t testing.TB, e *env) string {
				h := map[string]any{"alg": "None", "kid": e.signer(t).Kid}
				return segment(t, h) + "." + segment(t, e.claims()) + "."
			},
			wantErr: jwtauth.ErrInvalid,
		},
		{
			name: "HS256 keyed with our public key as PEM (key confusion)",
			token: func(t testing.TB, e *env) string {
				k := e.signer(t)
				der, err := x509.MarshalPKIXPublicKey(k.Public)
				if err != nil {
					t.Fatal(err)
				}
				secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
				return sign(t, jwt.SigningMethodHS256, secret, k.Kid, e.claims(), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "HS256 keyed with our public key as JWK JSON (key confusion)",
			token: func(t testing.TB, e *env) string {
				k := e.signer(t)
				j, err := jwk.FromPublic(k.Kid, k.Alg, k.Public)
				if err != nil {
					t.Fatal(err)
				}
				secret, _ := json.Marshal(j)
				return sign(t, jwt.SigningMethodHS256, secret, k.Kid, e.claims(), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "the other asymmetric algorithm, with our kid",
			token: func(t testing.TB, e *env) string {
				kid := e.signer(t).Kid
				if e.alg == signingkey.RS256 {
					return sign(t, jwt.SigningMethodES256, e.ecKey, kid, e.claims(), nil)
				}
				rk, err := rsa.GenerateKey(rand.Reader, 2048)
				if err != nil {
					t.Fatal(err)
				}
				return sign(t, jwt.SigningMethodRS256, rk, kid, e.claims(), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "our algorithm, the attacker's key, our kid",
			token: func(t testing.TB, e *env) string {
				return e.signAttacker(t, e.signer(t).Kid, nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenSignatureInvalid,
		},
		{
			name:    "unknown kid of the right form",
			token:   func(t testing.TB, e *env) string { return e.signAttacker(t, e.attackerKid(t), nil) },
			wantErr: jwtauth.ErrUnknownKey,
		},
		{
			name:    "no kid",
			token:   func(t testing.TB, e *env) string { return e.signAttacker(t, "", nil) },
			wantErr: jwtauth.ErrUnknownKey,
		},
		{
			name: "kid not a string",
			token: func(t testing.TB, e *env) string {
				return e.signAttacker(t, "", map[string]any{"kid": 42})
			},
			wantErr: jwtauth.ErrUnknownKey,
		},
		{
			name:    "kid with a path",
			token:   func(t testing.TB, e *env) string { return e.signAttacker(t, "../../x", nil) },
			wantErr: jwtauth.ErrUnknownKey,
		},
		{
			name:    "kid a URL",
			token:   func(t testing.TB, e *env) string { return e.signAttacker(t, "https://evil/jwks.json", nil) },
			wantErr: jwtauth.ErrUnknownKey,
		},
		{
			name: "jku header at the attacker's JWKS",
			token: func(t testing.TB, e *env) string {
				return e.signAttacker(t, e.attackerKid(t), map[string]any{"jku": e.keyServer.URL + "/jwks.json"})
			},
			wantErr: jwtauth.ErrMalformed,
		},
		{
			name: "jku header on a token we signed",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claims(), map[string]any{"jku": e.keyServer.URL + "/jwks.json"})
			},
			wantErr: jwtauth.ErrMalformed,
		},
		{
			name: "x5u header",
			token: func(t testing.TB, e *env) string {
				return e.signAttacker(t, e.attackerKid(t), map[string]any{"x5u": e.keyServer.URL + "/cert.pem"})
			},
			wantErr: jwtauth.ErrMalformed,
		},
		{
			name: "jwk header embedding the attacker's key",
			token: func(t testing.TB, e *env) string {
				j, err := jwk.FromPublic(e.attackerKid(t), e.alg, e.attackerKey().Public())
				if err != nil {
					t.Fatal(err)
				}
				return e.signAttacker(t, e.attackerKid(t), map[string]any{"jwk": j})
			},
			wantErr: jwtauth.ErrMalformed,
		},
		{
			name: "jwk header embedding the attacker's key, our kid",
			token: func(t testing.TB, e *env) string {
				j, _ := jwk.FromPublic(e.signer(t).Kid, e.alg, e.attackerKey().Public())
				return e.signAttacker(t, e.signer(t).Kid, map[string]any{"jwk": j})
			},
			wantErr: jwtauth.ErrMalformed,
		},
		{
			name: "x5c header",
			token: func(t testing.TB, e *env) string {
				return e.signAttacker(t, e.attackerKid(t), map[string]any{"x5c": []string{"MIIB"}})
			},
			wantErr: jwtauth.ErrMalformed,
		},
		{
			name: "crit header",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claims(), map[string]any{"crit": []string{"exp"}})
			},
			wantErr: jwtauth.ErrMalformed,
		},
		{
			name: "expired beyond the leeway",
			token: func(t testing.TB, e *env) string {
				n := now(e)
				return e.signOwn(t, e.claimsWith(map[string]any{"iat": n - 3600, "nbf": n - 3600, "exp": n - beyond}), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenExpired,
		},
		{
			name: "nbf in the future beyond the leeway",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"nbf": now(e) + beyond}), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenNotValidYet,
		},
		{
			name: "iat in the future beyond the leeway",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"iat": now(e) + beyond}), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenUsedBeforeIssued,
		},
		{
			name: "wrong iss",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"iss": "https://evil.example/api"}), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenInvalidIssuer,
		},
		{
			name: "iss with a trailing slash",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"iss": issuer + "/"}), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenInvalidIssuer,
		},
		{
			name: "no iss",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"iss": nil}), nil)
			},
			wantErr: jwtauth.ErrInvalid,
		},
		{
			name:    "another service's token",
			service: service,
			token: func(t testing.TB, e *env) string {
				tok, _ := e.issue(t, "other-svc")
				return tok.AccessToken
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenInvalidAudience,
		},
		{
			name: "aud an array with two entries",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"aud": []string{service, "other-svc"}}), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenInvalidAudience,
		},
		{
			name: "no aud",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"aud": nil}), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenInvalidAudience,
		},
		{
			name: "no exp",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"exp": nil}), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenRequiredClaimMissing,
		},
		{
			name: "no sub",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"sub": nil}), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenRequiredClaimMissing,
		},
		{
			name: "exp a quoted future number",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"exp": strconv.FormatInt(now(e)+600, 10)}), nil)
			},
			wantErr: jwtauth.ErrMalformed, wantCause: jwtclaims.ErrType,
		},
		{
			name: "nbf a quoted number",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"nbf": strconv.FormatInt(now(e), 10)}), nil)
			},
			wantErr: jwtauth.ErrMalformed, wantCause: jwtclaims.ErrType,
		},
		{
			name: "iat a quoted number",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"iat": strconv.FormatInt(now(e), 10)}), nil)
			},
			wantErr: jwtauth.ErrMalformed, wantCause: jwtclaims.ErrType,
		},
		{
			name: "ISS of another issuer beside iss",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"ISS": "https://evil.example/api"}), nil)
			},
			wantErr: jwtauth.ErrMalformed, wantCause: jwtclaims.ErrDuplicate,
		},
		{
			name:    "AUD of this service beside the aud of another",
			service: "other-svc",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"AUD": "other-svc"}), nil)
			},
			wantErr: jwtauth.ErrMalformed, wantCause: jwtclaims.ErrDuplicate,
		},
		{
			name: "empty sub",
			token: func(t testing.TB, e *env) string {
				return e.signOwn(t, e.claimsWith(map[string]any{"sub": ""}), nil)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenRequiredClaimMissing,
		},
		{
			name: "oversized: MaxTokenBytes+1",
			token: func(t testing.TB, e *env) string {
				tok, _ := e.issue(t, service)
				return tok.AccessToken + strings.Repeat("A", jwtauth.DefaultMaxTokenBytes+1-len(tok.AccessToken))
			},
			wantErr: jwtauth.ErrTooLarge,
		},
		{
			name:    "1,000 dots",
			token:   func(testing.TB, *env) string { return strings.Repeat(".", 1000) },
			wantErr: jwtauth.ErrMalformed,
		},
		{
			name:    "two dots only",
			token:   func(testing.TB, *env) string { return ".." },
			wantErr: jwtauth.ErrMalformed,
		},
		{
			name:    "empty",
			token:   func(testing.TB, *env) string { return "" },
			wantErr: jwtauth.ErrMalformed,
		},
		{
			name: "four segments",
			token: func(t testing.TB, e *env) string {
				tok, _ := e.issue(t, service)
				return tok.AccessToken + ".x"
			},
			wantErr: jwtauth.ErrMalformed,
		},
		{
			name: "header not JSON",
			token: func(t testing.TB, e *env) string {
				tok, _ := e.issue(t, service)
				return b64.EncodeToString([]byte("{not json")) + tok.AccessToken[strings.Index(tok.AccessToken, "."):]
			},
			wantErr: jwtauth.ErrMalformed,
		},
		{
			name: "tampered payload (sub changed, signature kept)",
			token: func(t testing.TB, e *env) string {
				tok, _ := e.issue(t, service)
				parts := strings.Split(tok.AccessToken, ".")
				p := decodeSegment(t, tok.AccessToken, 1)
				p["sub"] = "admin"
				return parts[0] + "." + segment(t, p) + "." + parts[2]
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "tampered signature (one bit flipped)",
			token: func(t testing.TB, e *env) string {
				tok, _ := e.issue(t, service)
				parts := strings.Split(tok.AccessToken, ".")
				sig, err := b64.DecodeString(parts[2])
				if err != nil {
					t.Fatal(err)
				}
				sig[len(sig)/2] ^= 0x01
				return parts[0] + "." + parts[1] + "." + b64.EncodeToString(sig)
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "signature removed",
			token: func(t testing.TB, e *env) string {
				tok, _ := e.issue(t, service)
				return tok.AccessToken[:strings.LastIndex(tok.AccessToken, ".")+1]
			},
			wantErr: jwtauth.ErrInvalid, wantCause: jwt.ErrTokenSignatureInvalid,
		},
	}
}

func TestVerifyRefuses(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, alg)
			for _, tt := range securityCases() {
				t.Run(tt.name, func(t *testing.T) {
					raw := tt.token(t, e)
					svc := tt.service
					if svc == "" {
						svc = service
					}
					c, err := verify(t, e.auth, svc, raw)
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("Verify = %+v, %v; want %v", c, err, tt.wantErr)
					}
					if tt.wantCause != nil && !errors.Is(err, tt.wantCause) {
						t.Errorf("Verify err = %v; want it to wrap %v", err, tt.wantCause)
					}
					if c != (jwtauth.Claims{}) {
						t.Errorf("Verify refused but returned claims %+v", c)
					}
					if len(raw) > 16 && strings.Contains(err.Error(), raw) {
						t.Errorf("the error contains the token")
					}
				})
			}
			if n := e.hits.Load(); n != 0 {
				t.Errorf("the attacker's key server got %d requests; want 0 (jku/x5u must never be fetched)", n)
			}
		})
	}
}

// TestVerifyAcceptsWithinLeeway: the times the leeway allows.
func TestVerifyAcceptsWithinLeeway(t *testing.T) {
	within := int64((leeway - 2*time.Second) / time.Second)
	tests := []struct {
		name  string
		edits func(now int64) map[string]any
	}{
		{"expired within the leeway", func(n int64) map[string]any {
			return map[string]any{"iat": n - 3600, "nbf": n - 3600, "exp": n - within}
		}},
		{"nbf in the future within the leeway", func(n int64) map[string]any { return map[string]any{"nbf": n + within} }},
		{"iat in the future within the leeway", func(n int64) map[string]any { return map[string]any{"iat": n + within} }},
		{"no nbf, no iat, no jti", func(int64) map[string]any { return map[string]any{"nbf": nil, "iat": nil, "jti": nil} }},
		{"aud an array of the service alone", func(int64) map[string]any { return map[string]any{"aud": []string{service}} }},
	}
	e := newEnv(t, signingkey.ES256)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := e.signOwn(t, e.claimsWith(tt.edits(e.clk.Now().Unix())), nil)
			c, err := verify(t, e.auth, service, raw)
			if err != nil {
				t.Fatalf("Verify = %v; want it accepted", err)
			}
			if c.Service != service || c.Subject != subject || c.Kid != e.signer(t).Kid {
				t.Errorf("Verify = %+v; want service %q, subject %q, the signer's kid", c, service, subject)
			}
		})
	}
}

func TestMaxTokenBytesBoundary(t *testing.T) {
	e := newEnv(t, signingkey.ES256)
	// Grow a padding claim until the token is as long as allowed.
	var raw string
	for pad := jwtauth.DefaultMaxTokenBytes * 3 / 4; ; pad-- {
		raw = e.signOwn(t, e.claimsWith(map[string]any{"pad": strings.Repeat("p", pad)}), nil)
		if len(raw) <= jwtauth.DefaultMaxTokenBytes {
			break
		}
	}
	if len(raw) < jwtauth.DefaultMaxTokenBytes-4 {
		t.Fatalf("padded token is %d bytes; want close to %d", len(raw), jwtauth.DefaultMaxTokenBytes)
	}
	if _, err := verify(t, e.auth, service, raw); err != nil {
		t.Errorf("Verify(%d-byte token) = %v; want accepted up to %d", len(raw), err, jwtauth.DefaultMaxTokenBytes)
	}
	big := raw + strings.Repeat("A", jwtauth.DefaultMaxTokenBytes+1-len(raw))
	if _, err := verify(t, e.auth, service, big); !errors.Is(err, jwtauth.ErrTooLarge) {
		t.Errorf("Verify(%d-byte token) = %v; want ErrTooLarge", len(big), err)
	}
}

// TestVerifyRevokedKey: after Revoke, a token of the revoked key is refused
// on this instance at once and on a fresh instance; an instance that cached
// the key refuses it after one TTL. Tokens of the new key verify.
func TestVerifyRevokedKey(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, alg)
			other := e.newAuthority(t, e.newSet()) // another instance
			old, oldIssued := e.issue(t, service)
			for name, a := range map[string]*jwtauth.Authority{"this": e.auth, "other": other} {
				if _, err := verify(t, a, service, old.AccessToken); err != nil {
					t.Fatalf("%s instance before the revoke: %v", name, err)
				}
			}
			res, err := e.set.Revoke(ctx)
			if err != nil || res.RevokedKid != oldIssued.Kid {
				t.Fatalf("Revoke = %+v, %v; want %s revoked", res, err, oldIssued.Kid)
			}
			if _, err := verify(t, e.auth, service, old.AccessToken); !errors.Is(err, jwtauth.ErrUnknownKey) {
				t.Errorf("this instance after the revoke: err = %v; want ErrUnknownKey at once", err)
			}
			fresh := e.newAuthority(t, e.newSet())
			if _, err := verify(t, fresh, service, old.AccessToken); !errors.Is(err, jwtauth.ErrUnknownKey) {
				t.Errorf("fresh instance after the revoke: err = %v; want ErrUnknownKey", err)
			}
			e.clk.Advance(2 * ttl) // the journal's bound
			if _, err := verify(t, other, service, old.AccessToken); !errors.Is(err, jwtauth.ErrUnknownKey) {
				t.Errorf("other instance 2 x TTL after the revoke: err = %v; want ErrUnknownKey", err)
			}
			tok, issued := e.issue(t, service)
			if issued.Kid == oldIssued.Kid || issued.Kid != res.Kid {
				t.Fatalf("token after the revoke signed by %s; want the new key %s", issued.Kid, res.Kid)
			}
			for name, a := range map[string]*jwtauth.Authority{"this": e.auth, "other": other, "fresh": fresh} {
				if _, err := verify(t, a, service, tok.AccessToken); err != nil {
					t.Errorf("%s instance, token of the new key: %v", name, err)
				}
			}
		})
	}
}

// TestVerifyAcrossRotation: a token signed just before its key is
// superseded verifies, on this instance and a fresh one, until its exp
// (plus leeway); tokens of the new key verify from its activation.
func TestVerifyAcrossRotation(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, alg)
			first := e.signer(t).Kid
			e.clk.Advance(e.policy.Period - e.policy.PublishAhead)
			res, err := e.set.RotateIfDue(ctx)
			if err != nil || res.Outcome != signingkey.Rotated {
				t.Fatalf("Rotate when due = %+v, %v; want rotated", res, err)
			}
			// One second before the new key signs: the last token of the old.
			e.clk.Advance(res.Activates.Sub(e.clk.Now()) - time.Second)
			last, issued := e.issue(t, service)
			if issued.Kid != first {
				t.Fatalf("token before the activation signed by %s; want %s", issued.Kid, first)
			}
			e.clk.Advance(time.Second)
			next, issuedNext := e.issue(t, service)
			if issuedNext.Kid != res.Kid {
				t.Fatalf("token after the activation signed by %s; want the new %s", issuedNext.Kid, res.Kid)
			}
			exp := time.Unix(last.ExpiryOn, 0)
			for _, at := range []time.Time{e.clk.Now(), exp.Add(-time.Second), exp.Add(leeway - time.Second)} {
				e.clk.Advance(at.Sub(e.clk.Now()))
				for name, a := range map[string]*jwtauth.Authority{"this": e.auth, "fresh": e.newAuthority(t, e.newSet())} {
					if _, err := verify(t, a, service, last.AccessToken); err != nil {
						t.Errorf("%s instance at exp%+v: token of the superseded key: %v", name, at.Sub(exp), err)
					}
					if _, err := verify(t, a, service, next.AccessToken); err != nil {
						t.Errorf("%s instance at exp%+v: token of the new key: %v", name, at.Sub(exp), err)
					}
				}
			}
			// At exp plus leeway the token is expired; its key is still
			// published (for one more second: Retention is the lifetime plus
			// the leeway), so the refusal is the expiry's.
			e.clk.Advance(time.Second)
			if _, err := verify(t, e.auth, service, last.AccessToken); !errors.Is(err, jwtauth.ErrInvalid) || !errors.Is(err, jwt.ErrTokenExpired) {
				t.Errorf("at exp plus leeway: err = %v; want ErrInvalid wrapping jwt.ErrTokenExpired", err)
			}
			if _, err := e.set.Lookup(ctx, first); err != nil {
				t.Errorf("the superseded key left before its retention ended: %v", err)
			}
		})
	}
}

// TestVerifyRetiredKeyAfterRetention: a retired key verifies nothing once
// its retention has passed, even a token it signed whose exp lies beyond.
func TestVerifyRetiredKeyAfterRetention(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, alg)
			e.clk.Advance(e.policy.Period - e.policy.PublishAhead)
			res, err := e.set.RotateIfDue(ctx)
			if err != nil || res.Outcome != signingkey.Rotated {
				t.Fatalf("Rotate when due = %+v, %v; want rotated", res, err)
			}
			end := res.Activates.Add(e.policy.Retention) // the old key leaves the JWKS
			// A token of the old key valid beyond its retention: never
			// issued, but signed by the key.
			n := e.clk.Now().Unix()
			raw := e.signOwn(t, e.claimsWith(map[string]any{"iat": n, "nbf": n, "exp": end.Add(24 * time.Hour).Unix()}), nil)
			e.clk.Advance(end.Add(-time.Second).Sub(e.clk.Now()))
			if _, err := verify(t, e.auth, service, raw); err != nil {
				t.Fatalf("one second before the retention ends: %v", err)
			}
			e.clk.Advance(time.Second)
			for name, a := range map[string]*jwtauth.Authority{"this": e.auth, "fresh": e.newAuthority(t, e.newSet())} {
				if _, err := verify(t, a, service, raw); !errors.Is(err, jwtauth.ErrUnknownKey) {
					t.Errorf("%s instance past the retention: err = %v; want ErrUnknownKey", name, err)
				}
			}
		})
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	e := newEnv(t, signingkey.ES256)
	for _, tt := range []struct {
		name, issuer, alg string
		opts              *jwtauth.Options
	}{
		{"no issuer", "", "ES256", nil},
		{"HS256", issuer, "HS256", nil},
		{"none", issuer, "none", nil},
		{"PS256", issuer, "PS256", nil},
		{"no alg", issuer, "", nil},
		{"no token size", issuer, "ES256", &jwtauth.Options{Leeway: time.Minute}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if a, err := jwtauth.New(e.set, tt.issuer, tt.alg, tt.opts); err == nil {
				t.Errorf("New(%q, %q, %+v) = %v, nil; want an error", tt.issuer, tt.alg, tt.opts, a)
			}
		})
	}
}

// TestZeroLeewayAllowsNone: Options.Leeway 0 (TOKEN_LEEWAY=0s) allows no
// clock skew at all, while the defaults allow DefaultLeeway.
func TestZeroLeewayAllowsNone(t *testing.T) {
	e := newEnv(t, signingkey.ES256)
	tok, _ := e.issue(t, service)
	e.clk.Advance(time.Hour + time.Second) // a second past exp (DefaultTokenLifetime 1h)
	for _, tt := range []struct {
		name string
		opts *jwtauth.Options
		ok   bool
	}{
		{"default leeway", &jwtauth.Options{Leeway: jwtauth.DefaultLeeway, MaxTokenBytes: jwtauth.DefaultMaxTokenBytes, Now: e.clk.Now}, true},
		{"zero leeway", &jwtauth.Options{MaxTokenBytes: jwtauth.DefaultMaxTokenBytes, Now: e.clk.Now}, false},
	} {
		a, err := jwtauth.New(e.set, issuer, signingkey.ES256, tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Verify(context.Background(), service, tok.AccessToken); (err == nil) != tt.ok {
			t.Errorf("%s: a token a second past exp: %v; want accepted %v", tt.name, err, tt.ok)
		}
	}
}
