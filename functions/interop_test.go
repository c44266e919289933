package functions

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/keysecret"
)

// interopEnv is the app served over loopback HTTP at the issuer it signs
// with, as a gateway sees it.
type interopEnv struct {
	t      *testing.T
	iss    string // the server's URL plus /api
	admin  string
	client *http.Client
}

const interopService = "tok"

func newInteropEnv(t *testing.T, alg string) *interopEnv {
	t.Helper()
	// The issuer is the server's URL, so the listener comes first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "modelauth.json")
	services := `{"services":[{"name":"` + interopService + `","authMode":"token"},{"name":"tok2","authMode":"token"}]}`
	if err := os.WriteFile(cfgPath, []byte(services), 0o600); err != nil {
		t.Fatal(err)
	}
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir = cfgPath, filepath.Join(dir, "data")
	s.Issuer, s.TokenSigningAlg = base+RoutePrefix, alg
	a, err := NewApp(context.Background(), s, slog.New(slog.DiscardHandler))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	if srv.URL != base {
		t.Fatalf("server at %s; want %s", srv.URL, base)
	}
	adm, err := a.Store.GetSecret(context.Background(), keysecret.AdminKeySecret, "")
	if err != nil {
		t.Fatal(err)
	}
	return &interopEnv{t: t, iss: s.Issuer, admin: adm.Value, client: &http.Client{Timeout: 10 * time.Second}}
}

// call makes a request with plain net/http and returns the response with
// its body read.
func (e *interopEnv) call(method, url, auth string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, body
}

// token gets a token for service with the administrator key.
func (e *interopEnv) token(service string) string {
	e.t.Helper()
	resp, body := e.call("POST", e.iss+"/services/"+service+"/token", e.admin)
	var tok jwtauth.Token
	if resp.StatusCode != 200 || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
		e.t.Fatalf("POST /services/%s/token = %d %s", service, resp.StatusCode, body)
	}
	return tok.AccessToken
}

// discover reads {iss}/.well-known/openid-configuration and checks that it
// has exactly design.md's members, the issuer and the algorithm; it
// returns jwks_uri.
func (e *interopEnv) discover(alg string) string {
	e.t.Helper()
	resp, body := e.call("GET", e.iss+"/.well-known/openid-configuration", "")
	if resp.StatusCode != 200 {
		e.t.Fatalf("GET openid-configuration = %d %s", resp.StatusCode, body)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		e.t.Fatalf("openid-configuration is not a JSON object: %v", err)
	}
	var got []string
	for k := range members {
		got = append(got, k)
	}
	slices.Sort(got)
	want := []string{"id_token_signing_alg_values_supported", "issuer", "jwks_uri", "response_types_supported", "subject_types_supported"}
	if !slices.Equal(got, want) {
		e.t.Errorf("openid-configuration members = %v; want exactly %v", got, want)
	}
	var doc struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		e.t.Fatal(err)
	}
	if doc.Issuer != e.iss {
		e.t.Errorf("openid-configuration issuer = %q; want %q", doc.Issuer, e.iss)
	}
	if !slices.Equal(doc.Algs, []string{alg}) {
		e.t.Errorf("id_token_signing_alg_values_supported = %v; want [%s]", doc.Algs, alg)
	}
	if !strings.HasPrefix(doc.JWKSURI, e.iss+"/") {
		e.t.Fatalf("jwks_uri %q is not under the issuer %q", doc.JWKSURI, e.iss)
	}
	return doc.JWKSURI
}

// jwks fetches the JWKS, checks its caching and that it holds public
// members only, and parses it with jwx.
func (e *interopEnv) jwks(uri, alg string) jwk.Set {
	e.t.Helper()
	resp, body := e.call("GET", uri, "")
	if resp.StatusCode != 200 {
		e.t.Fatalf("GET %s = %d %s", uri, resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); !slices.Contains(strings.Split(strings.ReplaceAll(cc, " ", ""), ","), "max-age=3600") {
		e.t.Errorf("JWKS Cache-Control = %q; want max-age=3600", cc)
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		e.t.Fatalf("JWKS: %v", err)
	}
	for _, k := range raw.Keys {
		for m := range k {
			if slices.Contains([]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}, strings.ToLower(m)) {
				e.t.Errorf("JWKS key %v carries the private member %q", k["kid"], m)
			}
		}
		if k["alg"] != alg || k["use"] != "sig" {
			e.t.Errorf("JWKS key %v: alg %v, use %v; want %s, sig", k["kid"], k["alg"], k["use"], alg)
		}
	}
	set, err := jwk.Parse(body)
	if err != nil {
		e.t.Fatalf("jwx cannot parse the JWKS: %v", err)
	}
	if set.Len() != len(raw.Keys) {
		e.t.Fatalf("jwx parsed %d keys of %d", set.Len(), len(raw.Keys))
	}
	// jwx computes each kid independently: the RFC 7638 thumbprint.
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, _ := k.KeyID()
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			e.t.Fatal(err)
		}
		if got := base64.RawURLEncoding.EncodeToString(tp); got != kid {
			e.t.Errorf("JWKS kid %q is not its key's RFC 7638 thumbprint %q", kid, got)
		}
	}
	return set
}

// verifyJWX verifies token with jwx as a gateway would and returns its
// claims.
func (e *interopEnv) verifyJWX(token string, set jwk.Set, audience string) (jwt.Token, error) {
	return jwt.Parse([]byte(token), jwt.WithKeySet(set), jwt.WithIssuer(e.iss), jwt.WithAudience(audience), jwt.WithValidate(true))
}

// TestTokensVerifyWithJWX: the app's tokens verify with an independent
// library (lestrrat-go/jwx) from nothing but the served discovery document
// and JWKS, before and after a signing-key rotation.
func TestTokensVerifyWithJWX(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			e := newInteropEnv(t, alg)
			tok := e.token(interopService)
			set := e.jwks(e.discover(alg), alg)
			if set.Len() != 1 {
				t.Fatalf("JWKS holds %d keys; want the one signing key", set.Len())
			}

			parsed, err := e.verifyJWX(tok, set, interopService)
			if err != nil {
				t.Fatalf("jwx refuses the app's token: %v", err)
			}
			if sub, _ := parsed.Subject(); sub == "" {
				t.Errorf("jwx: token has no sub")
			}
			if aud, _ := parsed.Audience(); !slices.Equal(aud, []string{interopService}) {
				t.Errorf("jwx: aud = %v; want [%s]", aud, interopService)
			}
			if _, err := jws.Verify([]byte(tok), jws.WithKeySet(set, jws.WithRequireKid(true))); err != nil {
				t.Errorf("jwx jws.Verify by kid: %v", err)
			}

			// The same verifier refuses what it should: it really checks.
			if _, err := e.verifyJWX(tok, set, "tok2"); err == nil {
				t.Errorf("jwx accepts the token for another audience")
			}
			if _, err := e.verifyJWX(e.token("tok2"), set, interopService); err == nil {
				t.Errorf("jwx accepts another service's token")
			}
			parts := strings.Split(tok, ".")
			forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+e.iss+`","aud":"`+interopService+`","sub":"x","exp":4102444800}`)) + "." + parts[2]
			if _, err := e.verifyJWX(forged, set, interopService); err == nil {
				t.Errorf("jwx accepts a token with a forged payload")
			}

			// Rotate: the next key is published beside the current one, and
			// the token issued before verifies against the new JWKS.
			resp, body := e.call("POST", e.iss+"/signing-keys/rotate", e.admin)
			if resp.StatusCode != 200 {
				t.Fatalf("POST /signing-keys/rotate = %d %s", resp.StatusCode, body)
			}
			var rot struct {
				Outcome, Kid string
			}
			if err := json.Unmarshal(body, &rot); err != nil || rot.Outcome != "rotated" || rot.Kid == "" {
				t.Fatalf("rotate = %s; want outcome rotated and the new kid", body)
			}
			after := e.jwks(e.discover(alg), alg)
			if after.Len() != 2 {
				t.Fatalf("JWKS after the rotation holds %d keys; want 2", after.Len())
			}
			if _, ok := after.LookupKeyID(rot.Kid); !ok {
				t.Errorf("JWKS after the rotation lacks the new key %s", rot.Kid)
			}
			if _, err := e.verifyJWX(tok, after, interopService); err != nil {
				t.Errorf("jwx refuses the token issued before the rotation: %v", err)
			}
			if _, err := e.verifyJWX(e.token(interopService), after, interopService); err != nil {
				t.Errorf("jwx refuses a token issued after the rotation: %v", err)
			}
		})
	}
}
