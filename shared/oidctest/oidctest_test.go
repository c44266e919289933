package oidctest_test

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/jwk"
	"github.com/modelauth/modelauth/shared/oidctest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// get fetches u and returns the status, the Cache-Control header and the body.
func get(t *testing.T, u string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Cache-Control"), body
}

type discoveryDoc struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

func discovery(t *testing.T, p *oidctest.Provider) discoveryDoc {
	t.Helper()
	status, _, body := get(t, strings.TrimSuffix(p.Issuer(), "/")+oidctest.DiscoveryPath)
	if status != http.StatusOK {
		t.Fatalf("discovery status %d", status)
	}
	var d discoveryDoc
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func jwks(t *testing.T, p *oidctest.Provider) []jwk.Key {
	t.Helper()
	status, _, body := get(t, p.JWKSURI())
	if status != http.StatusOK {
		t.Fatalf("JWKS status %d", status)
	}
	keys, err := jwk.ParseSet(body)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		path       string
		wantSuffix string
	}{
		{"no path", "", ""},
		{"Entra v2 shape", "/tenant-1/v2.0", "/tenant-1/v2.0"},
		{"Entra v1 shape", "/tenant-1/", "/tenant-1/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := oidctest.NewProvider(t, oidctest.WithIssuerPath(tt.path))
			if want := p.URL() + tt.wantSuffix; p.Issuer() != want {
				t.Errorf("Issuer() = %q; want %q", p.Issuer(), want)
			}
			d := discovery(t, p)
			if d.Issuer != p.Issuer() || d.JWKSURI != p.JWKSURI() {
				t.Errorf("discovery = %+v; want issuer %q, jwks_uri %q", d, p.Issuer(), p.JWKSURI())
			}
			status, cc, _ := get(t, p.JWKSURI())
			if status != http.StatusOK || cc != "public, max-age=3600" {
				t.Errorf("JWKS: status %d, Cache-Control %q; want 200, public, max-age=3600", status, cc)
			}
			keys := jwks(t, p)
			if len(keys) != 1 || keys[0].Kid != p.KeyID() || keys[0].Kty != jwk.KtyRSA {
				t.Fatalf("JWKS keys = %+v; want one RSA key with kid %q", keys, p.KeyID())
			}
			pub, err := keys[0].PublicKey()
			if err != nil {
				t.Fatal(err)
			}
			if !p.PrivateKey().PublicKey.Equal(pub) {
				t.Error("JWKS key is not the signing key's public key")
			}
			if p.DiscoveryRequests() != 1 || p.JWKSRequests() != 2 || p.Requests() != 3 {
				t.Errorf("requests: discovery %d, JWKS %d, total %d; want 1, 2, 3", p.DiscoveryRequests(), p.JWKSRequests(), p.Requests())
			}
			if tt.path != "" {
				if status, _, _ := get(t, p.URL()+oidctest.DiscoveryPath); status != http.StatusNotFound {
					t.Errorf("discovery at the root: status %d; want 404", status)
				}
			}
		})
	}
}

func TestCacheControlOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opt  oidctest.Option
		want string
	}{
		{"WithMaxAge", oidctest.WithMaxAge(60 * time.Second), "public, max-age=60"},
		{"WithCacheControl", oidctest.WithCacheControl("no-store"), "no-store"},
		{"WithCacheControl empty", oidctest.WithCacheControl(""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := oidctest.NewProvider(t, tt.opt)
			if _, got, _ := get(t, p.JWKSURI()); got != tt.want {
				t.Errorf("Cache-Control = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestWithDocumentIssuer(t *testing.T) {
	t.Parallel()
	p := oidctest.NewProvider(t, oidctest.WithDocumentIssuer("https://evil.example/"))
	if d := discovery(t, p); d.Issuer != "https://evil.example/" {
		t.Errorf("discovery issuer = %q; want https://evil.example/", d.Issuer)
	}
	if p.Issuer() == "https://evil.example/" {
		t.Error("Issuer() changed too")
	}
}

func TestSetFailing(t *testing.T) {
	t.Parallel()
	p := oidctest.NewProvider(t)
	p.SetFailing(true)
	for _, u := range []string{p.Issuer() + oidctest.DiscoveryPath, p.JWKSURI()} {
		if status, _, _ := get(t, u); status != http.StatusServiceUnavailable {
			t.Errorf("GET %s while failing: status %d; want 503", u, status)
		}
	}
	if p.Requests() != 2 {
		t.Errorf("Requests() = %d; want 2 (failed requests count)", p.Requests())
	}
	p.SetFailing(false)
	if len(jwks(t, p)) != 1 {
		t.Error("JWKS not served after SetFailing(false)")
	}
}

func TestRotateKeys(t *testing.T) {
	t.Parallel()
	kids := func(keys []jwk.Key) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k.Kid)
		}
		return out
	}
	t.Run("old key removed", func(t *testing.T) {
		t.Parallel()
		p := oidctest.NewProvider(t)
		old := p.KeyID()
		kid := p.RotateKeys()
		if kid == old || p.KeyID() != kid {
			t.Fatalf("RotateKeys() = %q, KeyID() = %q, old %q", kid, p.KeyID(), old)
		}
		if got := kids(jwks(t, p)); len(got) != 1 || got[0] != kid {
			t.Errorf("JWKS kids = %q; want [%q]", got, kid)
		}
	})
	t.Run("WithKeepOldKeys", func(t *testing.T) {
		t.Parallel()
		p := oidctest.NewProvider(t, oidctest.WithKeepOldKeys())
		old := p.KeyID()
		kid := p.RotateKeys()
		if got := kids(jwks(t, p)); len(got) != 2 || got[0] != old || got[1] != kid {
			t.Errorf("JWKS kids = %q; want [%q %q]", got, old, kid)
		}
	})
}

func TestToken(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0)
	p := oidctest.NewProvider(t, oidctest.WithNow(clk.Now))
	parse := func(t *testing.T, tok string) (*jwt.Token, jwt.MapClaims) {
		t.Helper()
		c := jwt.MapClaims{}
		parsed, err := jwt.ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return &p.PrivateKey().PublicKey, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(clk.Now))
		if err != nil {
			t.Fatalf("parsing the provider's token: %v", err)
		}
		return parsed, c
	}

	in := jwt.MapClaims{"aud": "svc", "sub": "alice"}
	inCopy := maps.Clone(in)
	tok, c := parse(t, p.Token(t, in))
	want := map[string]any{
		"iss": p.Issuer(), "aud": "svc", "sub": "alice",
		"iat": float64(t0.Unix()), "nbf": float64(t0.Unix()), "exp": float64(t0.Add(oidctest.TokenLifetime).Unix()),
	}
	if !maps.Equal(map[string]any(c), want) {
		t.Errorf("claims = %v; want %v", c, want)
	}
	if tok.Header["kid"] != p.KeyID() || tok.Header["alg"] != "RS256" {
		t.Errorf("header = %v; want kid %q, alg RS256", tok.Header, p.KeyID())
	}
	if !maps.Equal(in, inCopy) {
		t.Errorf("Token modified its claims argument: %v", in)
	}

	_, c = parse(t, p.Token(t, jwt.MapClaims{"iss": "custom", "nbf": nil, "exp": t0.Add(time.Minute).Unix()}))
	if _, ok := c["nbf"]; ok || c["iss"] != "custom" || c["exp"] != float64(t0.Add(time.Minute).Unix()) {
		t.Errorf("claims = %v; want iss custom, no nbf, exp in a minute", c)
	}

	tok, _ = parse(t, p.TokenWithHeader(t, jwt.SigningMethodRS256, p.PrivateKey(),
		map[string]any{"jku": "https://evil.example/keys", "alg": "none"}, nil))
	if tok.Header["jku"] != "https://evil.example/keys" || tok.Header["alg"] != "RS256" || tok.Header["kid"] != nil {
		t.Errorf("header = %v; want jku set, alg RS256, no kid", tok.Header)
	}

	hs := p.TokenWith(t, jwt.SigningMethodHS256, []byte("secret"), "k", nil)
	if _, err := jwt.Parse(hs, func(*jwt.Token) (any, error) { return []byte("secret"), nil }, jwt.WithTimeFunc(clk.Now)); err != nil {
		t.Errorf("HS256 token from TokenWith does not verify with its key: %v", err)
	}
}
