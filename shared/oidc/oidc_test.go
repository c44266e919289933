package oidc_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/modelauth/modelauth/shared/logtest"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/jwk"
	"github.com/modelauth/modelauth/shared/jwtclaims"
	"github.com/modelauth/modelauth/shared/oidc"
	"github.com/modelauth/modelauth/shared/oidctest"
)

// t0 is where every test's fake clock starts.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const aud = "api://modelauth"

var auds = []string{aud}

// foreignKey is an RSA key that no provider publishes.
var foreignKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// env is one provider, one fake clock and a verifier for the provider.
type env struct {
	clk *fakeclock.Clock
	p   *oidctest.Provider
	v   *oidc.Verifier
}

// newEnv starts a provider with popts and a verifier for its issuer;
// mod, if not nil, edits the verifier's options.
func newEnv(t *testing.T, mod func(*oidc.Options), popts ...oidctest.Option) *env {
	t.Helper()
	clk := fakeclock.New(t0)
	p := oidctest.NewProvider(t, append([]oidctest.Option{oidctest.WithNow(clk.Now)}, popts...)...)
	opts := oidc.DefaultOptions()
	opts.Now, opts.Logger = clk.Now, slog.New(slog.DiscardHandler)
	if mod != nil {
		mod(&opts)
	}
	v, err := oidc.New([]string{p.Issuer()}, &opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &env{clk: clk, p: p, v: v}
}

// token returns a valid token of e's provider for aud, with extra claims.
func (e *env) token(t *testing.T, extra jwt.MapClaims) string {
	t.Helper()
	c := jwt.MapClaims{"aud": aud, "sub": "alice"}
	for k, v := range extra {
		c[k] = v
	}
	return e.p.Token(t, c)
}

// mustVerify verifies tok and fails the test on error.
func (e *env) mustVerify(t *testing.T, tok string) *oidc.Claims {
	t.Helper()
	c, err := e.v.Verify(context.Background(), tok, auds)
	if err != nil {
		t.Fatalf("Verify(valid token) = %v", err)
	}
	return c
}

func checkRequests(t *testing.T, p *oidctest.Provider, wantDiscovery, wantJWKS int) {
	t.Helper()
	if d, j := p.DiscoveryRequests(), p.JWKSRequests(); d != wantDiscovery || j != wantJWKS {
		t.Errorf("provider got %d discovery and %d JWKS requests; want %d and %d", d, j, wantDiscovery, wantJWKS)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		issuers []string
		algs    []string // nil: the default
		wantErr bool
	}{
		{"https issuer", []string{"https://login.microsoftonline.com/t/v2.0"}, nil, false},
		{"both Entra shapes", []string{"https://sts.windows.net/t/", "https://login.microsoftonline.com/t/v2.0"}, nil, false},
		{"http 127.0.0.1", []string{"http://127.0.0.1:8080/x"}, nil, false},
		{"http 127.0.0.2", []string{"http://127.0.0.2/"}, nil, false},
		{"http ::1", []string{"http://[::1]:7071/api"}, nil, false},
		{"http localhost", []string{"http://localhost:7071/api"}, nil, false},
		{"ES256 allowed", []string{"https://a/"}, []string{"RS256", "ES256"}, false},
		{"no issuer", nil, nil, true},
		{"empty issuer", []string{""}, nil, true},
		{"http remote", []string{"http://sts.windows.net/t/"}, nil, true},
		{"http loopback-looking name", []string{"http://127.0.0.1.example.com/"}, nil, true},
		{"ftp", []string{"ftp://example.com/"}, nil, true},
		{"relative", []string{"/t/v2.0"}, nil, true},
		{"no scheme", []string{"login.microsoftonline.com/t/v2.0"}, nil, true},
		{"user info", []string{"https://u:p@example.com/"}, nil, true},
		{"query", []string{"https://example.com/?a=b"}, nil, true},
		{"fragment", []string{"https://example.com/#x"}, nil, true},
		{"duplicate", []string{"https://a/", "https://a/"}, nil, true},
		{"alg none", []string{"https://a/"}, []string{"none"}, true},
		{"alg HS256", []string{"https://a/"}, []string{"RS256", "HS256"}, true},
		{"alg ES384", []string{"https://a/"}, []string{"ES384"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := oidc.DefaultOptions()
			if tt.algs != nil {
				opts.Algorithms = tt.algs
			}
			v, err := oidc.New(tt.issuers, &opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%q, %q) error = %v; want error %v", tt.issuers, tt.algs, err, tt.wantErr)
			}
			if err == nil && !slices.Equal(v.Issuers(), tt.issuers) {
				t.Errorf("Issuers() = %q; want %q", v.Issuers(), tt.issuers)
			}
		})
	}
}

func TestNewFetchesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	checkRequests(t, e.p, 0, 0)
	iss := e.v.Issuers()
	iss[0] = "changed"
	if got := e.v.Issuers()[0]; got != e.p.Issuer() {
		t.Errorf("Issuers() shares its slice: got %q after changing the copy", got)
	}
}

func TestVerifyValid(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.token(t, jwt.MapClaims{
		"aud":   []string{"other", aud},
		"roles": []string{"Keys.Read.All", "Tokens.Get.svc-a"},
		"tid":   "tenant-1",
		"oid":   "object-1",
		"azp":   "app-1",
	})
	got := e.mustVerify(t, tok)
	want := &oidc.Claims{
		Issuer:   e.p.Issuer(),
		Subject:  "alice",
		Audience: []string{"other", aud},
		Roles:    []string{"Keys.Read.All", "Tokens.Get.svc-a"},
		TenantID: "tenant-1",
		ObjectID: "object-1",
		AppID:    "app-1",
		Expiry:   t0.Add(oidctest.TokenLifetime),
	}
	if !equalClaims(got, want) {
		t.Errorf("Verify = %+v;\nwant %+v", got, want)
	}
	checkRequests(t, e.p, 1, 1)

	t.Run("v1 appid, no roles", func(t *testing.T) {
		got := e.mustVerify(t, e.token(t, jwt.MapClaims{"appid": "app-v1"}))
		if got.AppID != "app-v1" || got.Roles != nil {
			t.Errorf("AppID, Roles = %q, %q; want app-v1, nil", got.AppID, got.Roles)
		}
	})
	t.Run("azp wins over appid", func(t *testing.T) {
		got := e.mustVerify(t, e.token(t, jwt.MapClaims{"appid": "v1", "azp": "v2"}))
		if got.AppID != "v2" {
			t.Errorf("AppID = %q; want v2", got.AppID)
		}
	})
	t.Run("any one audience suffices", func(t *testing.T) {
		if _, err := e.v.Verify(context.Background(), tok, []string{"nope", "other"}); err != nil {
			t.Errorf("Verify with audiences [nope other] = %v", err)
		}
	})
	checkRequests(t, e.p, 1, 1)
}

func equalClaims(a, b *oidc.Claims) bool {
	return a.Issuer == b.Issuer && a.Subject == b.Subject && slices.Equal(a.Audience, b.Audience) &&
		slices.Equal(a.Roles, b.Roles) && a.TenantID == b.TenantID && a.ObjectID == b.ObjectID &&
		a.AppID == b.AppID && a.Expiry.Equal(b.Expiry)
}

// parts splits a token into its three decoded-or-not parts.
func parts(t *testing.T, tok string) (header, payload, sig string) {
	t.Helper()
	p := strings.Split(tok, ".")
	if len(p) != 3 {
		t.Fatalf("token has %d parts", len(p))
	}
	return p[0], p[1], p[2]
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	other := oidctest.NewProvider(t, oidctest.WithNow(e.clk.Now))
	now := t0.Unix()
	pub := &e.p.PrivateKey().PublicKey
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})
	jk, err := jwk.FromPublic(e.p.KeyID(), "", pub)
	if err != nil {
		t.Fatal(err)
	}
	kid := e.p.KeyID()
	claims := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"aud": aud, "sub": "alice"}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	valid := e.token(t, nil)
	h, p, s := parts(t, valid)

	var payload map[string]any
	if err := json.Unmarshal(unb64(t, p), &payload); err != nil {
		t.Fatal(err)
	}
	payload["sub"] = "mallory"
	tamperedPayload, _ := json.Marshal(payload)
	sig := unb64(t, s)
	sig[len(sig)/2] ^= 0x01

	tests := []struct {
		name    string
		tok     string
		want    error // sentinel of package oidc
		wantJWT error // sentinel of package jwt, or nil
	}{
		{"expired", e.token(t, jwt.MapClaims{"exp": now - 120, "iat": now - 3600, "nbf": now - 3600}), oidc.ErrInvalid, jwt.ErrTokenExpired},
		{"nbf in the future", e.token(t, jwt.MapClaims{"nbf": now + 120}), oidc.ErrInvalid, jwt.ErrTokenNotValidYet},
		{"iat in the future", e.token(t, jwt.MapClaims{"iat": now + 120}), oidc.ErrInvalid, jwt.ErrTokenUsedBeforeIssued},
		{"no exp", e.token(t, jwt.MapClaims{"exp": nil}), oidc.ErrInvalid, jwt.ErrTokenRequiredClaimMissing},
		{"wrong audience", e.token(t, jwt.MapClaims{"aud": "api://other"}), oidc.ErrInvalid, jwt.ErrTokenInvalidAudience},
		{"audience differs in case", e.token(t, jwt.MapClaims{"aud": strings.ToUpper(aud)}), oidc.ErrInvalid, jwt.ErrTokenInvalidAudience},
		{"no audience", e.token(t, jwt.MapClaims{"aud": nil}), oidc.ErrInvalid, jwt.ErrTokenRequiredClaimMissing},
		{"alg none", e.p.TokenWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims(nil)), oidc.ErrInvalid, jwt.ErrTokenSignatureInvalid},
		{"HS256 with PEM public key", e.p.TokenWith(t, jwt.SigningMethodHS256, pemKey, kid, claims(nil)), oidc.ErrInvalid, jwt.ErrTokenSignatureInvalid},
		{"HS256 with PKCS1 PEM", e.p.TokenWith(t, jwt.SigningMethodHS256, pkcs1, kid, claims(nil)), oidc.ErrInvalid, jwt.ErrTokenSignatureInvalid},
		{"HS256 with JWK n bytes", e.p.TokenWith(t, jwt.SigningMethodHS256, unb64(t, jk.N), kid, claims(nil)), oidc.ErrInvalid, jwt.ErrTokenSignatureInvalid},
		{"HS256 with JWK n text", e.p.TokenWith(t, jwt.SigningMethodHS256, []byte(jk.N), kid, claims(nil)), oidc.ErrInvalid, jwt.ErrTokenSignatureInvalid},
		{"RS512 not allowed", e.p.TokenWith(t, jwt.SigningMethodRS512, e.p.PrivateKey(), kid, claims(nil)), oidc.ErrInvalid, jwt.ErrTokenSignatureInvalid},
		{"PS256 not allowed", e.p.TokenWith(t, jwt.SigningMethodPS256, e.p.PrivateKey(), kid, claims(nil)), oidc.ErrInvalid, jwt.ErrTokenSignatureInvalid},
		{"foreign key, published kid", e.p.TokenWith(t, jwt.SigningMethodRS256, foreignKey(), kid, claims(nil)), oidc.ErrInvalid, jwt.ErrTokenSignatureInvalid},
		{"foreign key, unknown kid", e.p.TokenWith(t, jwt.SigningMethodRS256, foreignKey(), "foreign", claims(nil)), oidc.ErrUnknownKey, nil},
		{"no kid", e.p.TokenWith(t, jwt.SigningMethodRS256, e.p.PrivateKey(), "", claims(nil)), oidc.ErrUnknownKey, nil},
		{"crit header", e.p.TokenWithHeader(t, jwt.SigningMethodRS256, e.p.PrivateKey(), map[string]any{"kid": kid, "crit": []string{"x-unknown"}, "x-unknown": 1}, claims(nil)), oidc.ErrMalformed, nil},
		{"crit b64 false", e.p.TokenWithHeader(t, jwt.SigningMethodRS256, e.p.PrivateKey(), map[string]any{"kid": kid, "crit": []string{"b64"}, "b64": false}, claims(nil)), oidc.ErrMalformed, nil},
		{"kid not a string", e.p.TokenWithHeader(t, jwt.SigningMethodRS256, e.p.PrivateKey(), map[string]any{"kid": 7}, claims(nil)), oidc.ErrUnknownKey, nil},
		{"other provider's token", other.Token(t, claims(nil)), oidc.ErrUnknownIssuer, nil},
		{"wrong issuer, right key", e.token(t, jwt.MapClaims{"iss": "https://evil.example/"}), oidc.ErrUnknownIssuer, nil},
		{"issuer with extra slash", e.token(t, jwt.MapClaims{"iss": e.p.Issuer() + "/"}), oidc.ErrUnknownIssuer, nil},
		{"no issuer", e.token(t, jwt.MapClaims{"iss": nil}), oidc.ErrUnknownIssuer, nil},
		{"oversized", e.token(t, jwt.MapClaims{"pad": strings.Repeat("x", oidc.DefaultMaxTokenBytes)}), oidc.ErrTooLarge, nil},
		{"1000 dots", strings.Repeat(".", 1000), oidc.ErrMalformed, jwt.ErrTokenMalformed},
		{"empty", "", oidc.ErrMalformed, jwt.ErrTokenMalformed},
		{"two parts", h + "." + p, oidc.ErrMalformed, jwt.ErrTokenMalformed},
		{"four parts", valid + ".x", oidc.ErrMalformed, jwt.ErrTokenMalformed},
		{"header not JSON", b64([]byte("hello")) + "." + p + "." + s, oidc.ErrMalformed, jwt.ErrTokenMalformed},
		{"payload not base64", h + ".!!!." + s, oidc.ErrMalformed, jwt.ErrTokenMalformed},
		{"padded payload", h + "." + p + "==." + s, oidc.ErrMalformed, jwt.ErrTokenMalformed},
		{"roles not an array", e.token(t, jwt.MapClaims{"roles": "Keys.Admin"}), oidc.ErrMalformed, jwt.ErrTokenMalformed},
		{"exp not a number", e.token(t, jwt.MapClaims{"exp": "tomorrow"}), oidc.ErrMalformed, jwt.ErrTokenMalformed},
		{"exp a quoted future number", e.token(t, jwt.MapClaims{"exp": strconv.FormatInt(now+600, 10)}), oidc.ErrMalformed, jwtclaims.ErrType},
		{"nbf a quoted number", e.token(t, jwt.MapClaims{"nbf": strconv.FormatInt(now, 10)}), oidc.ErrMalformed, jwtclaims.ErrType},
		{"iat a quoted number", e.token(t, jwt.MapClaims{"iat": strconv.FormatInt(now, 10)}), oidc.ErrMalformed, jwtclaims.ErrType},
		{"ROLES beside roles", e.token(t, jwt.MapClaims{"roles": []string{"x"}, "ROLES": []string{"Keys.Read.All"}}), oidc.ErrMalformed, jwtclaims.ErrDuplicate},
		{"ISS beside iss", e.token(t, jwt.MapClaims{"ISS": "https://evil.example/"}), oidc.ErrMalformed, jwtclaims.ErrDuplicate},
		{"Aud beside aud", e.token(t, jwt.MapClaims{"Aud": "api://other"}), oidc.ErrMalformed, jwtclaims.ErrDuplicate},
		{"no sub", e.token(t, jwt.MapClaims{"sub": nil}), oidc.ErrInvalid, jwt.ErrTokenRequiredClaimMissing},
		{"empty sub", e.token(t, jwt.MapClaims{"sub": ""}), oidc.ErrInvalid, jwt.ErrTokenRequiredClaimMissing},
		{"blank sub", e.token(t, jwt.MapClaims{"sub": " \t"}), oidc.ErrInvalid, jwt.ErrTokenRequiredClaimMissing},
		{"tampered payload", h + "." + b64(tamperedPayload) + "." + s, oidc.ErrInvalid, jwt.ErrTokenSignatureInvalid},
		{"tampered signature", h + "." + p + "." + b64(sig), oidc.ErrInvalid, jwt.ErrTokenSignatureInvalid},
		{"no signature", h + "." + p + ".", oidc.ErrInvalid, jwt.ErrTokenSignatureInvalid},
	}
	sentinels := []error{oidc.ErrMalformed, oidc.ErrTooLarge, oidc.ErrUnknownIssuer, oidc.ErrUnknownKey, oidc.ErrInvalid, oidc.ErrUnavailable}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.v.Verify(context.Background(), tt.tok, auds)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tt.want)
			}
			if c != nil {
				t.Errorf("Verify returned claims %+v with an error", c)
			}
			if tt.wantJWT != nil && !errors.Is(err, tt.wantJWT) {
				t.Errorf("Verify error %v does not wrap %v", err, tt.wantJWT)
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("Verify error %v also wraps %v", err, s)
				}
			}
			if msg := err.Error(); len(tt.tok) > 20 && (strings.Contains(msg, tt.tok) || strings.Contains(msg, tt.tok[:20])) {
				t.Errorf("error %q contains the token", msg)
			}
		})
	}
	// Only the first lookup fetched: every other refusal came before any
	// key was needed, or found the kid missing within RefreshMinInterval.
	checkRequests(t, e.p, 1, 2)
	checkRequests(t, other, 0, 0)

	t.Run("no audiences accepted", func(t *testing.T) {
		if _, err := e.v.Verify(context.Background(), valid, nil); !errors.Is(err, oidc.ErrInvalid) {
			t.Errorf("Verify(audiences nil) = %v; want ErrInvalid", err)
		}
	})
}

func TestRefusedBeforeAnyFetch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	other := oidctest.NewProvider(t, oidctest.WithNow(e.clk.Now))
	kid := e.p.KeyID()
	for name, tok := range map[string]string{
		"unknown issuer": other.Token(t, jwt.MapClaims{"aud": aud}),
		"alg none":       e.p.TokenWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, jwt.MapClaims{"aud": aud}),
		"HS256":          e.p.TokenWith(t, jwt.SigningMethodHS256, []byte("secret"), kid, jwt.MapClaims{"aud": aud}),
		"no kid":         e.p.TokenWith(t, jwt.SigningMethodRS256, e.p.PrivateKey(), "", jwt.MapClaims{"aud": aud}),
		"malformed":      "a.b.c",
	} {
		if _, err := e.v.Verify(context.Background(), tok, auds); err == nil {
			t.Errorf("%s: Verify accepted the token", name)
		}
	}
	checkRequests(t, e.p, 0, 0)
	checkRequests(t, other, 0, 0)
}

func TestHeaderKeyReferencesIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	attacker := oidctest.NewProvider(t, oidctest.WithNow(e.clk.Now))
	e.mustVerify(t, e.token(t, nil))
	ak, err := jwk.FromPublic(attacker.KeyID(), "RS256", &attacker.PrivateKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	header := map[string]any{
		"kid": attacker.KeyID(),
		"jku": attacker.JWKSURI(),
		"x5u": attacker.JWKSURI(),
		"jwk": ak,
	}
	tok := attacker.TokenWithHeader(t, jwt.SigningMethodRS256, attacker.PrivateKey(), header,
		jwt.MapClaims{"iss": e.p.Issuer(), "aud": aud, "sub": "mallory"})
	if _, err := e.v.Verify(context.Background(), tok, auds); !errors.Is(err, oidc.ErrUnknownKey) {
		t.Errorf("Verify(token with jku, x5u, jwk headers) = %v; want ErrUnknownKey", err)
	}
	// Same again with the victim's kid: the attacker's key is still not used.
	header["kid"] = e.p.KeyID()
	tok = attacker.TokenWithHeader(t, jwt.SigningMethodRS256, attacker.PrivateKey(), header,
		jwt.MapClaims{"iss": e.p.Issuer(), "aud": aud, "sub": "mallory"})
	if _, err := e.v.Verify(context.Background(), tok, auds); !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		t.Errorf("Verify(token with jku and the victim's kid) = %v; want jwt.ErrTokenSignatureInvalid", err)
	}
	if n := attacker.Requests(); n != 0 {
		t.Errorf("attacker's provider got %d requests; want 0", n)
	}
}

func TestKeyTypeMustSuitAlgorithm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *oidc.Options) { o.Algorithms = []string{"RS256", "ES256"} })
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// An ES256 token naming the provider's RSA key.
	tok := e.p.TokenWith(t, jwt.SigningMethodES256, ec, e.p.KeyID(), jwt.MapClaims{"aud": aud})
	_, err = e.v.Verify(context.Background(), tok, auds)
	if !errors.Is(err, oidc.ErrInvalid) || !errors.Is(err, jwt.ErrInvalidKeyType) {
		t.Errorf("Verify(ES256 token, RSA kid) = %v; want ErrInvalid and jwt.ErrInvalidKeyType", err)
	}
	e.mustVerify(t, e.token(t, nil))
}

func TestLeeway(t *testing.T) {
	t.Parallel()
	now := t0.Unix()
	tests := []struct {
		name   string
		leeway time.Duration
		claims jwt.MapClaims
		ok     bool
	}{
		{"expired 30s ago, default leeway", oidc.DefaultLeeway, jwt.MapClaims{"exp": now - 30}, true},
		{"expired 61s ago, default leeway", oidc.DefaultLeeway, jwt.MapClaims{"exp": now - 61}, false},
		{"nbf 30s ahead, default leeway", oidc.DefaultLeeway, jwt.MapClaims{"nbf": now + 30}, true},
		{"iat 30s ahead, default leeway", oidc.DefaultLeeway, jwt.MapClaims{"iat": now + 30}, true},
		{"expired 30s ago, leeway 10s", 10 * time.Second, jwt.MapClaims{"exp": now - 30}, false},
		{"expired 1s ago, zero leeway", 0, jwt.MapClaims{"exp": now - 1}, false},
		{"nbf 1s ahead, zero leeway", 0, jwt.MapClaims{"nbf": now + 1}, false},
		{"expires in 1s, zero leeway", 0, jwt.MapClaims{"exp": now + 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(o *oidc.Options) { o.Leeway = tt.leeway })
			_, err := e.v.Verify(context.Background(), e.token(t, tt.claims), auds)
			if (err == nil) != tt.ok {
				t.Errorf("Verify = %v; want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, oidc.ErrInvalid) {
				t.Errorf("Verify = %v; want ErrInvalid", err)
			}
		})
	}
}

func TestMaxTokenBytes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.token(t, nil)
	for _, tt := range []struct {
		limit int
		want  error
	}{
		{len(tok), nil},
		{len(tok) - 1, oidc.ErrTooLarge},
	} {
		v, err := oidc.New([]string{e.p.Issuer()}, opts(func(o *oidc.Options) { o.Now = e.clk.Now; o.MaxTokenBytes = tt.limit }))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), tok, auds); !errors.Is(err, tt.want) {
			t.Errorf("MaxTokenBytes %d, token of %d: Verify = %v; want %v", tt.limit, len(tok), err, tt.want)
		}
	}
}

func TestEntraIssuerShapes(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0)
	const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	v2 := oidctest.NewProvider(t, oidctest.WithIssuerPath("/"+tenant+"/v2.0"), oidctest.WithNow(clk.Now))
	v1 := oidctest.NewProvider(t, oidctest.WithIssuerPath("/"+tenant+"/"), oidctest.WithNow(clk.Now))
	if !strings.HasSuffix(v2.Issuer(), "/"+tenant+"/v2.0") || !strings.HasSuffix(v1.Issuer(), "/"+tenant+"/") {
		t.Fatalf("issuers %q and %q do not have the Entra shapes", v2.Issuer(), v1.Issuer())
	}
	v, err := oidc.New([]string{v1.Issuer(), v2.Issuer()}, opts(func(o *oidc.Options) { o.Now = clk.Now; o.Logger = slog.New(slog.DiscardHandler) }))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*oidctest.Provider{v1, v2} {
		c, err := v.Verify(context.Background(), p.Token(t, jwt.MapClaims{"aud": aud}), auds)
		if err != nil {
			t.Fatalf("Verify(token of %s) = %v", p.Issuer(), err)
		}
		if c.Issuer != p.Issuer() {
			t.Errorf("Claims.Issuer = %q; want %q", c.Issuer, p.Issuer())
		}
	}
	// A token of each provider claiming the other's issuer is refused: keys
	// come only from the JWKS of the issuer the token names.
	for _, pair := range [][2]*oidctest.Provider{{v1, v2}, {v2, v1}} {
		signer, claimed := pair[0], pair[1]
		tok := signer.Token(t, jwt.MapClaims{"aud": aud, "iss": claimed.Issuer()})
		if _, err := v.Verify(context.Background(), tok, auds); !errors.Is(err, oidc.ErrUnknownKey) {
			t.Errorf("Verify(token of %s claiming %s) = %v; want ErrUnknownKey", signer.Issuer(), claimed.Issuer(), err)
		}
	}
	checkRequests(t, v1, 1, 2) // one fetch, one refresh for the unknown kid
	checkRequests(t, v2, 1, 2)
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	t.Parallel()
	t.Run("different issuer in document", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil, oidctest.WithDocumentIssuer("https://login.microsoftonline.com/other/v2.0"))
		_, err := e.v.Verify(context.Background(), e.token(t, nil), auds)
		if !errors.Is(err, oidc.ErrUnavailable) {
			t.Errorf("Verify = %v; want ErrUnavailable", err)
		}
		checkRequests(t, e.p, 1, 0)
	})
	t.Run("configured issuer lacks the trailing slash", func(t *testing.T) {
		t.Parallel()
		clk := fakeclock.New(t0)
		p := oidctest.NewProvider(t, oidctest.WithIssuerPath("/tenant/"), oidctest.WithNow(clk.Now))
		iss := strings.TrimSuffix(p.Issuer(), "/") // same discovery URL, different issuer
		v, err := oidc.New([]string{iss}, opts(func(o *oidc.Options) { o.Now = clk.Now; o.Logger = slog.New(slog.DiscardHandler) }))
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(context.Background(), p.Token(t, jwt.MapClaims{"aud": aud, "iss": iss}), auds)
		if !errors.Is(err, oidc.ErrUnavailable) {
			t.Errorf("Verify = %v; want ErrUnavailable", err)
		}
		checkRequests(t, p, 1, 0)
	})
}

func TestBrokenProviders(t *testing.T) {
	t.Parallel()
	validSet := func(t *testing.T) []byte {
		k, err := jwk.FromPublic("k1", "", &foreignKey().PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(jwk.Set{Keys: []jwk.Key{k}})
		return b
	}
	tests := []struct {
		name      string
		discovery func(iss, srv string) (int, string) // status, body
		jwks      func(t *testing.T) (int, []byte)
	}{
		{"discovery 404", func(iss, srv string) (int, string) { return 404, "" }, nil},
		{"discovery not JSON", func(iss, srv string) (int, string) { return 200, "<html>" }, nil},
		{"discovery without jwks_uri", func(iss, srv string) (int, string) {
			return 200, fmt.Sprintf(`{"issuer":%q}`, iss)
		}, nil},
		{"jwks_uri over http to a remote host", func(iss, srv string) (int, string) {
			return 200, fmt.Sprintf(`{"issuer":%q,"jwks_uri":"http://example.com/keys"}`, iss)
		}, nil},
		{"discovery too large", func(iss, srv string) (int, string) {
			return 200, fmt.Sprintf(`{"issuer":%q,"jwks_uri":%q,"x":%q}`, iss, srv+"/keys", strings.Repeat("x", 70<<10))
		}, nil},
		{"JWKS 500", nil, func(t *testing.T) (int, []byte) { return 500, validSet(t) }},
		{"JWKS 204", nil, func(t *testing.T) (int, []byte) { return 204, nil }},
		{"JWKS not JSON", nil, func(t *testing.T) (int, []byte) { return 200, []byte("nope") }},
		{"JWKS empty", nil, func(t *testing.T) (int, []byte) { return 200, []byte(`{"keys":[]}`) }},
		{"JWKS only private keys", nil, func(t *testing.T) (int, []byte) {
			return 200, bytes.Replace(validSet(t), []byte(`"kty"`), []byte(`"d":"AQAB","kty"`), 1)
		}},
		{"JWKS too large", nil, func(t *testing.T) (int, []byte) {
			return 200, append([]byte(`{"pad":"`+strings.Repeat("x", jwk.MaxSetBytes)+`",`), validSet(t)[1:]...)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var srv *httptest.Server
			mux := http.NewServeMux()
			srv = httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			iss := srv.URL + "/t"
			mux.HandleFunc("/t/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
				status, body := 200, fmt.Sprintf(`{"issuer":%q,"jwks_uri":%q}`, iss, srv.URL+"/keys")
				if tt.discovery != nil {
					status, body = tt.discovery(iss, srv.URL)
				}
				w.WriteHeader(status)
				_, _ = w.Write([]byte(body))
			})
			mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
				status, body := 200, validSet(t)
				if tt.jwks != nil {
					status, body = tt.jwks(t)
				}
				w.WriteHeader(status)
				_, _ = w.Write(body)
			})
			clk := fakeclock.New(t0)
			v, err := oidc.New([]string{iss}, opts(func(o *oidc.Options) { o.Now = clk.Now; o.Logger = slog.New(slog.DiscardHandler) }))
			if err != nil {
				t.Fatal(err)
			}
			tk := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": iss, "aud": aud, "exp": t0.Add(time.Hour).Unix()})
			tk.Header["kid"] = "k1"
			tok, err := tk.SignedString(foreignKey())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(context.Background(), tok, auds); !errors.Is(err, oidc.ErrUnavailable) {
				t.Errorf("Verify = %v; want ErrUnavailable", err)
			}
		})
	}
	t.Run("control: the same server serving well verifies", func(t *testing.T) {
		t.Parallel()
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		iss := srv.URL + "/t"
		mux.HandleFunc("/t/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, iss, srv.URL+"/keys")
		})
		mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(validSet(t)) })
		v, err := oidc.New([]string{iss}, opts(func(o *oidc.Options) { o.Now = fakeclock.New(t0).Now }))
		if err != nil {
			t.Fatal(err)
		}
		tk := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": iss, "sub": "s", "aud": aud, "exp": t0.Add(time.Hour).Unix()})
		tk.Header["kid"] = "k1"
		tok, err := tk.SignedString(foreignKey())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), tok, auds); err != nil {
			t.Errorf("Verify = %v", err)
		}
	})
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	t.Run("old key removed", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		old := e.token(t, nil)
		e.mustVerify(t, old)
		checkRequests(t, e.p, 1, 1)

		e.p.RotateKeys()
		e.mustVerify(t, e.token(t, nil))
		checkRequests(t, e.p, 1, 2)
		e.mustVerify(t, e.token(t, nil))
		checkRequests(t, e.p, 1, 2)

		if _, err := e.v.Verify(context.Background(), old, auds); !errors.Is(err, oidc.ErrUnknownKey) {
			t.Errorf("Verify(token of the removed key) = %v; want ErrUnknownKey", err)
		}
		checkRequests(t, e.p, 1, 2)
	})
	t.Run("old key kept", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil, oidctest.WithKeepOldKeys())
		old := e.token(t, nil)
		e.mustVerify(t, old)
		e.p.RotateKeys()
		e.mustVerify(t, e.token(t, nil))
		e.mustVerify(t, old)
		checkRequests(t, e.p, 1, 2)
	})
}

func TestUnknownKidFlood(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.mustVerify(t, e.token(t, nil))
	checkRequests(t, e.p, 1, 1)

	const n, workers = 1000, 16
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		wrong []error
	)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				tok := e.p.TokenWith(t, jwt.SigningMethodRS256, foreignKey(), rand.Text(), jwt.MapClaims{"aud": aud})
				if _, err := e.v.Verify(context.Background(), tok, auds); !errors.Is(err, oidc.ErrUnknownKey) {
					mu.Lock()
					wrong = append(wrong, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(wrong) > 0 {
		t.Errorf("%d verifications did not fail with ErrUnknownKey; first: %v", len(wrong), wrong[0])
	}
	checkRequests(t, e.p, 1, 2)

	e.clk.Advance(oidc.DefaultRefreshMinInterval - time.Second)
	tok := e.p.TokenWith(t, jwt.SigningMethodRS256, foreignKey(), "late", jwt.MapClaims{"aud": aud})
	if _, err := e.v.Verify(context.Background(), tok, auds); !errors.Is(err, oidc.ErrUnknownKey) {
		t.Errorf("Verify = %v; want ErrUnknownKey", err)
	}
	checkRequests(t, e.p, 1, 2)

	e.clk.Advance(time.Second)
	for range 10 {
		if _, err := e.v.Verify(context.Background(), tok, auds); !errors.Is(err, oidc.ErrUnknownKey) {
			t.Errorf("Verify = %v; want ErrUnknownKey", err)
		}
	}
	checkRequests(t, e.p, 1, 3)
	e.mustVerify(t, e.token(t, nil))
	checkRequests(t, e.p, 1, 3)
}

func TestConcurrentFirstUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := e.token(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			if _, err := e.v.Verify(context.Background(), tok, auds); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Verify = %v", err)
	}
	checkRequests(t, e.p, 1, 1)
}

func TestCacheLifetime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		cacheControl string
		defMaxAge    time.Duration
		wantLife     time.Duration
	}{
		{"max-age=60", "public, max-age=60", oidc.DefaultMaxAge, 60 * time.Second},
		{"max-age=3600", "max-age=3600", oidc.DefaultMaxAge, time.Hour},
		{"max-age below the floor", "max-age=5", oidc.DefaultMaxAge, time.Minute},
		{"max-age above the ceiling", "max-age=999999", oidc.DefaultMaxAge, 24 * time.Hour},
		{"no header, default", "", oidc.DefaultMaxAge, oidc.DefaultMaxAge},
		{"no header, zero default: the floor", "", 0, time.Minute},
		{"no header, configured default", "", 10 * time.Minute, 10 * time.Minute},
		{"no-store", "no-store, max-age=60", 10 * time.Minute, 10 * time.Minute},
		{"unparseable", "max-age=soon", 10 * time.Minute, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(o *oidc.Options) { o.DefaultMaxAge = tt.defMaxAge }, oidctest.WithCacheControl(tt.cacheControl))
			e.mustVerify(t, e.token(t, nil))
			e.clk.Advance(tt.wantLife - time.Second)
			e.mustVerify(t, e.token(t, nil))
			checkRequests(t, e.p, 1, 1)
			e.clk.Advance(2 * time.Second)
			e.mustVerify(t, e.token(t, nil))
			checkRequests(t, e.p, 1, 2)
			e.mustVerify(t, e.token(t, nil))
			checkRequests(t, e.p, 1, 2)
		})
	}
	t.Run("max-age honoured with WithMaxAge", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil, oidctest.WithMaxAge(60*time.Second))
		e.mustVerify(t, e.token(t, nil))
		e.clk.Advance(59 * time.Second)
		e.mustVerify(t, e.token(t, nil))
		checkRequests(t, e.p, 1, 1)
		e.clk.Advance(2 * time.Second)
		e.mustVerify(t, e.token(t, nil))
		checkRequests(t, e.p, 1, 2)
	})
}

func TestProviderFailsAfterFetch(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	e := newEnv(t, func(o *oidc.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}, oidctest.WithMaxAge(10*time.Minute))
	e.mustVerify(t, e.token(t, nil))
	e.p.SetFailing(true)

	// Fresh keys: no request.
	e.mustVerify(t, e.token(t, nil))
	checkRequests(t, e.p, 1, 1)

	// Expired keys: one refresh attempt fails; the old keys still verify,
	// and no further attempt starts within RetryInterval.
	e.clk.Advance(10 * time.Minute)
	var tok string
	for range 50 {
		tok = e.token(t, nil)
		e.mustVerify(t, tok)
	}
	checkRequests(t, e.p, 1, 2)
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "fetching issuer keys failed") {
		t.Errorf("no warning logged for the failed refresh; logs:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), tok[:40]) {
		t.Errorf("logs contain a token:\n%s", logs.String())
	}

	// After RetryInterval another attempt; it discovers again first.
	e.clk.Advance(oidc.DefaultRetryInterval)
	e.mustVerify(t, e.token(t, nil))
	checkRequests(t, e.p, 2, 2)

	// 24 hours beyond expiry the old keys are no longer used.
	e.clk.Advance(24*time.Hour - oidc.DefaultRetryInterval - time.Second)
	e.mustVerify(t, e.token(t, nil))
	e.clk.Advance(time.Second)
	if _, err := e.v.Verify(context.Background(), e.token(t, nil), auds); !errors.Is(err, oidc.ErrUnavailable) {
		t.Errorf("Verify a day after expiry = %v; want ErrUnavailable", err)
	}

	// The provider recovers: the next attempt succeeds.
	e.p.SetFailing(false)
	e.clk.Advance(oidc.DefaultRetryInterval)
	e.mustVerify(t, e.token(t, nil))
}

func TestProviderFailsFromStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.p.SetFailing(true)
	tok := e.token(t, nil)

	verifyAll := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		bad := make(chan error, n)
		for range n {
			wg.Go(func() {
				if _, err := e.v.Verify(context.Background(), tok, auds); !errors.Is(err, oidc.ErrUnavailable) {
					bad <- err
				}
			})
		}
		wg.Wait()
		close(bad)
		for err := range bad {
			t.Errorf("Verify = %v; want ErrUnavailable", err)
		}
	}
	verifyAll(100)
	checkRequests(t, e.p, 1, 0)

	e.clk.Advance(oidc.DefaultRetryInterval - time.Second)
	verifyAll(100)
	checkRequests(t, e.p, 1, 0)

	e.clk.Advance(time.Second)
	verifyAll(100)
	checkRequests(t, e.p, 2, 0)

	e.p.SetFailing(false)
	e.mustVerifyAfter(t, tok, oidc.DefaultRetryInterval)
	checkRequests(t, e.p, 3, 1)
}

// mustVerifyAfter advances the clock by d, then verifies tok.
func (e *env) mustVerifyAfter(t *testing.T, tok string, d time.Duration) {
	t.Helper()
	e.clk.Advance(d)
	e.mustVerify(t, tok)
}

func TestRetryIntervalOption(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *oidc.Options) { o.RetryInterval = time.Minute })
	e.p.SetFailing(true)
	tok := e.token(t, nil)
	for _, step := range []struct {
		advance time.Duration
		want    int
	}{{0, 1}, {oidc.DefaultRetryInterval, 1}, {time.Minute - oidc.DefaultRetryInterval, 2}} {
		e.clk.Advance(step.advance)
		if _, err := e.v.Verify(context.Background(), tok, auds); !errors.Is(err, oidc.ErrUnavailable) {
			t.Errorf("Verify = %v; want ErrUnavailable", err)
		}
		if got := e.p.Requests(); got != step.want {
			t.Errorf("after %v: %d requests; want %d", step.advance, got, step.want)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A fetch started by a canceled caller still completes for everyone.
	if _, err := e.v.Verify(ctx, e.token(t, nil), auds); err != nil {
		t.Errorf("Verify with a canceled context = %v; want the fetch to complete", err)
	}
	e.mustVerify(t, e.token(t, nil))
	checkRequests(t, e.p, 1, 1)
}

func FuzzVerify(f *testing.F) {
	clk := fakeclock.New(t0)
	p := oidctest.NewProvider(f, oidctest.WithNow(clk.Now))
	v, err := oidc.New([]string{p.Issuer()}, opts(func(o *oidc.Options) { o.Now = clk.Now; o.Logger = slog.New(slog.DiscardHandler) }))
	if err != nil {
		f.Fatal(err)
	}
	valid := p.Token(f, jwt.MapClaims{"aud": aud, "sub": "alice", "roles": []string{"Keys.Admin"}})
	f.Add(valid)
	f.Add(valid[:len(valid)-5])
	f.Add(strings.Replace(valid, ".", "..", 1))
	f.Add(strings.Repeat(".", 1000))
	f.Add("")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(p.TokenWith(f, jwt.SigningMethodHS256, []byte("k"), p.KeyID(), jwt.MapClaims{"aud": aud}))
	f.Add(p.Token(f, jwt.MapClaims{"aud": aud, "exp": "x"}))
	f.Add(p.Token(f, jwt.MapClaims{"aud": []any{1, nil}, "roles": map[string]any{}}))
	f.Add(p.TokenWithHeader(f, jwt.SigningMethodRS256, p.PrivateKey(), map[string]any{"kid": []int{1}}, jwt.MapClaims{"aud": aud}))

	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(context.Background(), raw, auds)
		if err == nil {
			if c == nil || c.Issuer != p.Issuer() || !slices.Contains(c.Audience, aud) {
				t.Fatalf("Verify accepted a token with claims %+v", c)
			}
			if raw != valid {
				// Only the seed is validly signed; strict base64 decoding
				// means no other spelling of it verifies.
				t.Fatalf("Verify accepted a token other than the valid seed")
			}
			return
		}
		if c != nil {
			t.Fatalf("Verify returned claims with error %v", err)
		}
		if len(raw) > 20 && strings.Contains(err.Error(), raw) {
			t.Fatalf("error contains the token")
		}
	})
}

func TestDiscoveryURL(t *testing.T) {
	tests := []struct{ iss, want string }{
		{"https://login.microsoftonline.com/t1/v2.0", "https://login.microsoftonline.com/t1/v2.0/.well-known/openid-configuration"},
		{"https://sts.windows.net/0d1e2f3a-aaaa-bbbb-cccc-123456789abc/", "https://login.microsoftonline.com/0d1e2f3a-aaaa-bbbb-cccc-123456789abc/.well-known/openid-configuration"},
		{"https://sts.windows.net/t1", "https://sts.windows.net/t1/.well-known/openid-configuration"}, // not the v1 shape
		{"https://idp.example.com/", "https://idp.example.com/.well-known/openid-configuration"},
		{"http://127.0.0.1:8080/tenant/", "http://127.0.0.1:8080/tenant/.well-known/openid-configuration"},
	}
	for _, tt := range tests {
		if got := oidc.DiscoveryURL(tt.iss); got != tt.want {
			t.Errorf("DiscoveryURL(%q) = %q; want %q", tt.iss, got, tt.want)
		}
	}
}

// opts returns the default options edited by mod.
func opts(mod func(*oidc.Options)) *oidc.Options {
	o := oidc.DefaultOptions()
	mod(&o)
	return &o
}
