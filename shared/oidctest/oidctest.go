// Package oidctest runs a small OpenID Connect provider for tests: an
// httptest server with a discovery document and a JWKS, RSA 2048 signing
// keys, and helpers that sign tokens, including hostile ones.
//
// A provider imitates Microsoft Entra ID closely enough for verifiers:
// its issuer can carry a path like Entra's v2 "/{tenant}/v2.0" or v1
// "/{tenant}/" ([WithIssuerPath]), its JWKS carries a Cache-Control
// max-age ([WithMaxAge]), and it counts requests so tests can assert how
// often a verifier fetches. It serves plain HTTP on 127.0.0.1.
//
//	p := oidctest.NewProvider(t, oidctest.WithIssuerPath("/tenant-1/v2.0"), oidctest.WithNow(clock.Now))
//	tok := p.Token(t, jwt.MapClaims{"aud": "api://svc", "sub": "alice"})
//
// All methods of [Provider] are safe for concurrent use.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/shared/jwk"
)

// Paths the provider serves, relative to its URL. The discovery path is
// the issuer's path plus DiscoveryPath.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/discovery/keys"
)

// DefaultMaxAge is the JWKS max-age when [WithMaxAge] is not given.
const DefaultMaxAge = time.Hour

// TokenLifetime is the lifetime [Provider.Token] gives a token without "exp".
const TokenLifetime = time.Hour

// DefaultSubject is the "sub" [Provider.Token] gives a token without one.
const DefaultSubject = "oidctest-subject"

// Option configures a [Provider].
type Option func(*config)

type config struct {
	issuerPath   string
	docIssuer    *string
	cacheControl string
	keepOld      bool
	now          func() time.Time
}

// WithIssuerPath makes the issuer the server URL plus path, which must
// start with "/": "/{tenant}/v2.0" imitates an Entra v2 issuer
// (https://login.microsoftonline.com/{tenant}/v2.0) and "/{tenant}/" a v1
// issuer (https://sts.windows.net/{tenant}/). The default is no path.
func WithIssuerPath(path string) Option {
	return func(c *config) { c.issuerPath = path }
}

// WithDocumentIssuer makes the discovery document name iss as its issuer
// instead of the provider's own: a broken or hostile provider.
func WithDocumentIssuer(iss string) Option {
	return func(c *config) { c.docIssuer = &iss }
}

// WithMaxAge sets the max-age of the JWKS response's Cache-Control
// header, in whole seconds. The default is [DefaultMaxAge].
func WithMaxAge(d time.Duration) Option {
	return func(c *config) { c.cacheControl = fmt.Sprintf("public, max-age=%d", int64(d/time.Second)) }
}

// WithCacheControl sets the JWKS response's Cache-Control header verbatim;
// "" leaves the header out.
func WithCacheControl(v string) Option {
	return func(c *config) { c.cacheControl = v }
}

// WithKeepOldKeys makes [Provider.RotateKeys] keep publishing the keys it
// replaces, as a provider rotating with overlap does. By default the old
// key leaves the JWKS at once.
func WithKeepOldKeys() Option {
	return func(c *config) { c.keepOld = true }
}

// WithNow sets the clock [Provider.Token] takes iat, nbf and exp from. The
// default is time.Now.
func WithNow(now func() time.Time) Option {
	return func(c *config) { c.now = now }
}

// signingKey is one RSA key and its key ID.
type signingKey struct {
	kid string
	key *rsa.PrivateKey
}

// Provider is a running test OpenID provider. Create it with
// [NewProvider]; it shuts down when the test ends.
type Provider struct {
	srv       *httptest.Server
	issuer    string
	docIssuer string
	cfg       config

	mu   sync.Mutex
	keys []signingKey // published keys; the last one signs

	failing       atomic.Bool
	discoveryReqs atomic.Int64
	jwksReqs      atomic.Int64
}

// NewProvider starts a provider with one signing key. It is closed by
// t.Cleanup.
func NewProvider(t testing.TB, opts ...Option) *Provider {
	t.Helper()
	cfg := config{cacheControl: fmt.Sprintf("public, max-age=%d", int64(DefaultMaxAge/time.Second)), now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.issuerPath != "" && !strings.HasPrefix(cfg.issuerPath, "/") {
		t.Fatalf("oidctest: issuer path %q does not start with /", cfg.issuerPath)
	}
	p := &Provider{cfg: cfg}
	p.keys = []signingKey{newKey()}

	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	p.issuer = p.srv.URL + cfg.issuerPath
	p.docIssuer = p.issuer
	if cfg.docIssuer != nil {
		p.docIssuer = *cfg.docIssuer
	}
	mux.HandleFunc("GET "+strings.TrimSuffix(cfg.issuerPath, "/")+DiscoveryPath, p.serveDiscovery)
	mux.HandleFunc("GET "+JWKSPath, p.serveJWKS)
	return p
}

// newKey makes an RSA 2048 key with a random key ID.
func newKey() signingKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		// crypto/rand does not fail; a failure here is a broken system.
		panic(fmt.Sprintf("oidctest: generating RSA key: %v", err))
	}
	return signingKey{kid: rand.Text()[:16], key: k}
}

func (p *Provider) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	p.discoveryReqs.Add(1)
	if p.failing.Load() {
		http.Error(w, "failing", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]any{
		"issuer":                                p.docIssuer,
		"jwks_uri":                              p.JWKSURI(),
		"authorization_endpoint":                p.srv.URL + "/oauth2/authorize",
		"token_endpoint":                        p.srv.URL + "/oauth2/token",
		"response_types_supported":              []string{"code", "id_token", "code id_token", "token id_token", "token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

func (p *Provider) serveJWKS(w http.ResponseWriter, r *http.Request) {
	p.jwksReqs.Add(1)
	if p.failing.Load() {
		http.Error(w, "failing", http.StatusServiceUnavailable)
		return
	}
	p.mu.Lock()
	set := jwk.Set{Keys: make([]jwk.Key, 0, len(p.keys))}
	for _, k := range p.keys {
		// Entra's keys carry no "alg"; imitate that.
		j, err := jwk.FromPublic(k.kid, "", &k.key.PublicKey)
		if err != nil {
			p.mu.Unlock()
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		set.Keys = append(set.Keys, j)
	}
	p.mu.Unlock()
	if p.cfg.cacheControl != "" {
		w.Header().Set("Cache-Control", p.cfg.cacheControl)
	}
	writeJSON(w, set)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

// URL returns the server's base URL, without the issuer path.
func (p *Provider) URL() string { return p.srv.URL }

// Issuer returns the provider's issuer: [Provider.URL] plus the issuer path.
func (p *Provider) Issuer() string { return p.issuer }

// JWKSURI returns the URL of the provider's JWKS.
func (p *Provider) JWKSURI() string { return p.srv.URL + JWKSPath }

// KeyID returns the key ID of the current signing key.
func (p *Provider) KeyID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[len(p.keys)-1].kid
}

// PrivateKey returns the current signing key, for crafting tokens with
// [Provider.TokenWithHeader].
func (p *Provider) PrivateKey() *rsa.PrivateKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[len(p.keys)-1].key
}

// RotateKeys makes a new signing key and returns its key ID. The old key
// leaves the JWKS unless the provider was made [WithKeepOldKeys].
func (p *Provider) RotateKeys() string {
	k := newKey()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg.keepOld {
		p.keys = append(p.keys, k)
	} else {
		p.keys = []signingKey{k}
	}
	return k.kid
}

// SetFailing makes every endpoint answer 503 Service Unavailable (true) or
// serve normally again (false). Failed requests are counted too.
func (p *Provider) SetFailing(failing bool) { p.failing.Store(failing) }

// DiscoveryRequests returns how many discovery requests the provider got.
func (p *Provider) DiscoveryRequests() int { return int(p.discoveryReqs.Load()) }

// JWKSRequests returns how many JWKS requests the provider got.
func (p *Provider) JWKSRequests() int { return int(p.jwksReqs.Load()) }

// Requests returns DiscoveryRequests plus JWKSRequests.
func (p *Provider) Requests() int { return p.DiscoveryRequests() + p.JWKSRequests() }

// Token returns a token signed RS256 with the current key, with the
// current key ID in its "kid" header. It fills "iss" (the provider's
// issuer), "sub" ([DefaultSubject]), "iat" and "nbf" (now) and "exp" (now
// plus [TokenLifetime])
// unless claims has them; a claim set to nil is left out, so
// jwt.MapClaims{"exp": nil} makes a token without "exp". claims is not
// modified.
func (p *Provider) Token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	p.mu.Lock()
	k := p.keys[len(p.keys)-1]
	p.mu.Unlock()
	return p.TokenWith(t, jwt.SigningMethodRS256, k.key, k.kid, claims)
}

// TokenWith returns a token signed with method and key, which may be
// anything method accepts (for example []byte for HS256, or
// jwt.UnsafeAllowNoneSignatureType for "none"). kid goes into the
// header unless empty. Claims are filled as by [Provider.Token].
func (p *Provider) TokenWith(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	header := map[string]any{}
	if kid != "" {
		header["kid"] = kid
	}
	return p.TokenWithHeader(t, method, key, header, claims)
}

// TokenWithHeader is like [Provider.TokenWith] with arbitrary extra header
// parameters, such as "jku" or "x5u"; "alg" and "typ" are set by method.
func (p *Provider) TokenWithHeader(t testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, p.fill(claims))
	for k, v := range header {
		if k != "alg" {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("oidctest: signing token: %v", err)
	}
	return s
}

// fill returns a copy of claims with the default claims added and nil
// claims removed.
func (p *Provider) fill(claims jwt.MapClaims) jwt.MapClaims {
	now := p.cfg.now()
	c := jwt.MapClaims{
		"iss": p.issuer,
		"sub": DefaultSubject,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(TokenLifetime).Unix(),
	}
	maps.Copy(c, claims)
	for k, v := range c {
		if v == nil {
			delete(c, k)
		}
	}
	return c
}
