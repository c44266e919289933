package functions

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/logtest"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/jwk"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/oidctest"
)

// tokenEnv is an app with key, token and entra services, an external OIDC
// provider for callers and entra-mode services, and a log to grep.
type tokenEnv struct {
	t     *testing.T
	a     *App
	h     http.Handler
	admin string
	idp   *oidctest.Provider
	log   *logtest.Buffer
}

const tokenServices = `{"services":[
	{"name":"svc"},
	{"name":"tok","authMode":"token","tokenLifetime":"10m","tokenRefreshAfter":"6m","scoringUri":"UPSTREAM"},
	{"name":"tok2","authMode":"token"},
	{"name":"ent","authMode":"entra","audience":"api://ent","requiredRole":"Score"},
	{"name":"open","authMode":"none"}]}`

func newTokenEnv(t *testing.T, edit func(*config.Settings)) *tokenEnv {
	t.Helper()
	idp := oidctest.NewProvider(t, oidctest.WithIssuerPath("/tenant-1/v2.0"))
	// The scoring upstream answers who modelauth said the caller was, and
	// whether it saw credentials.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Header.Get("X-Modelauth-Auth-Type") + " " + r.Header.Get("X-Modelauth-Subject") + " " + r.Header.Get("Authorization")))
	}))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "modelauth.json")
	os.WriteFile(cfgPath, []byte(strings.ReplaceAll(tokenServices, "UPSTREAM", up.URL+"/score")), 0o600)
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir = cfgPath, filepath.Join(dir, "data")
	s.OIDCIssuers, s.OIDCAudiences = []string{idp.Issuer()}, []string{"api://modelauth"}
	if edit != nil {
		edit(&s)
	}
	log, buf := logtest.New()
	e := &tokenEnv{t: t, idp: idp, log: buf}
	a, err := NewApp(context.Background(), s, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	adm, err := a.Store.GetSecret(context.Background(), keysecret.AdminKeySecret, "")
	if err != nil {
		t.Fatal(err)
	}
	e.a, e.h, e.admin = a, a.Handler(), adm.Value
	return e
}

func (e *tokenEnv) do(method, path, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// token gets a token for service as caller, failing the test unless 200.
func (e *tokenEnv) token(service, caller string) jwtauth.Token {
	e.t.Helper()
	rec := e.do("POST", "/api/services/"+service+"/token", caller)
	var tok jwtauth.Token
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &tok) != nil {
		e.t.Fatalf("get_token %s = %d %s", service, rec.Code, rec.Body)
	}
	return tok
}

func (e *tokenEnv) validate(service, cred string) *httptest.ResponseRecorder {
	return e.do("GET", "/api/services/"+service+"/validate/some/path", cred)
}

func (e *tokenEnv) caller(roles ...string) string {
	return e.idp.Token(e.t, jwt.MapClaims{"aud": "api://modelauth", "sub": "caller-" + strings.Join(roles, "+"), "roles": roles})
}

func errorCode(rec *httptest.ResponseRecorder) string {
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(rec.Body.Bytes(), &body)
	return body.Error.Code
}

func TestGetTokenAndValidate(t *testing.T) {
	e := newTokenEnv(t, nil)
	before := time.Now().Unix()
	rec := e.do("POST", "/api/services/tok/token", e.admin)
	if rec.Code != 200 || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("get_token = %d (Cache-Control %q) %s", rec.Code, rec.Header().Get("Cache-Control"), rec.Body)
	}
	var raw map[string]any
	json.Unmarshal(rec.Body.Bytes(), &raw)
	for _, k := range []string{"accessToken", "tokenType", "expiryOn", "refreshAfter"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("get_token answer lacks %q: %s", k, rec.Body)
		}
	}
	var tok jwtauth.Token
	json.Unmarshal(rec.Body.Bytes(), &tok)
	if tok.TokenType != "Bearer" || tok.ExpiryOn < before+600 || tok.ExpiryOn > before+601 || tok.RefreshAfter < before+360 || tok.RefreshAfter > before+361 {
		t.Errorf("token = %s %d %d; want Bearer, expiry in 10m, refresh in 6m from %d", tok.TokenType, tok.ExpiryOn, tok.RefreshAfter, before)
	}
	// The claims design.md lists.
	parsed, _, err := jwt.NewParser().ParseUnverified(tok.AccessToken, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	c := parsed.Claims.(jwt.MapClaims)
	if c["iss"] != "http://localhost:7071/api" || c["aud"] != "tok" || c["sub"] != "admin" || c["jti"] == nil || c["nbf"] == nil || c["iat"] == nil ||
		parsed.Header["alg"] != "RS256" || parsed.Header["kid"] == nil {
		t.Errorf("claims %v, header %v", c, parsed.Header)
	}
	// Default lifetime for tok2: an hour, refresh at half.
	t2 := e.token("tok2", e.admin)
	if d := t2.ExpiryOn - t2.RefreshAfter; d < 1799 || d > 1801 {
		t.Errorf("tok2 refreshAfter %d before expiry; want 1800", d)
	}

	rec = e.validate("tok", tok.AccessToken)
	if rec.Code != 200 || rec.Header().Get("X-Modelauth-Auth-Type") != "token" || rec.Header().Get("X-Modelauth-Subject") != "admin" ||
		rec.Header().Get("X-Modelauth-Key-Type") != "none" {
		t.Fatalf("validate = %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	// Again: from the cache, the same answer.
	if again := e.validate("tok", tok.AccessToken); again.Code != 200 || again.Body.String() != rec.Body.String() {
		t.Fatalf("validate from the cache = %d %s; want %s", again.Code, again.Body, rec.Body)
	}
	// The audit event names the jti, and no log line holds a token or key.
	log := e.log.String()
	if !strings.Contains(log, `"event":"get_token"`) || !strings.Contains(log, c["jti"].(string)) {
		t.Errorf("no get_token audit event with the jti in the log")
	}
	for _, secret := range []string{tok.AccessToken, t2.AccessToken, e.admin, strings.Split(tok.AccessToken, ".")[2]} {
		if strings.Contains(log, secret) {
			t.Errorf("the log holds a token or key")
		}
	}
}

func TestGetTokenRefusals(t *testing.T) {
	e := newTokenEnv(t, nil)
	tests := []struct {
		name, method, path, auth string
		status                   int
		msg                      string
	}{
		{"key-mode service", "POST", "/api/services/svc/token", e.admin, 409, "tokens are issued only for services in token mode"},
		{"entra-mode service", "POST", "/api/services/ent/token", e.admin, 409, "token mode"},
		{"unknown service", "POST", "/api/services/nope/token", e.admin, 404, "unknown service"},
		{"no credentials", "POST", "/api/services/tok/token", "", 401, ""},
		{"wrong admin key", "POST", "/api/services/tok/token", strings.Repeat("A", 43), 401, ""},
		{"GET", "GET", "/api/services/tok/token", e.admin, 405, ""},
		{"a service key", "POST", "/api/services/tok/token", e.keysOf("svc").PrimaryKey, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(tt.method, tt.path, tt.auth)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.msg) {
				t.Fatalf("%s %s = %d %s; want %d mentioning %q", tt.method, tt.path, rec.Code, rec.Body, tt.status, tt.msg)
			}
		})
	}
}

func (e *tokenEnv) keysOf(service string) keyring.Keys {
	e.t.Helper()
	k, err := e.a.Keys.Get(context.Background(), service)
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// TestModesStayExclusive: each mode accepts its own credentials only.
func TestModesStayExclusive(t *testing.T) {
	e := newTokenEnv(t, nil)
	ours := e.token("tok", e.admin).AccessToken
	key := e.keysOf("svc").PrimaryKey
	entra := e.idp.Token(t, jwt.MapClaims{"aud": "api://ent", "sub": "user-1", "roles": []string{"Score"}})
	tests := []struct {
		name, service, cred string
		status              int
	}{
		{"key to key service", "svc", key, 200},
		{"our token to key service", "svc", ours, 401},
		{"entra token to key service", "svc", entra, 401},
		{"our token to token service", "tok", ours, 200},
		{"key to token service", "tok", key, 401},
		{"entra token to token service", "tok", entra, 401},
		{"our token for tok to tok2", "tok2", ours, 401},
		{"entra token to entra service", "ent", entra, 200},
		{"our token to entra service", "ent", ours, 401},
		{"key to entra service", "ent", key, 401},
		{"admin key to token service", "tok", e.admin, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.validate(tt.service, tt.cred)
			if rec.Code != tt.status {
				t.Fatalf("validate %s = %d %s; want %d", tt.service, rec.Code, rec.Body, tt.status)
			}
			if tt.status == 401 && !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("challenge %q; want invalid_token", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
	rec := e.validate("ent", entra)
	if rec.Header().Get("X-Modelauth-Auth-Type") != "entra" || rec.Header().Get("X-Modelauth-Subject") != "user-1" {
		t.Errorf("entra identity headers = %v", rec.Header())
	}
	// The entra service's audience and role.
	wrongAud := e.idp.Token(t, jwt.MapClaims{"aud": "api://other", "sub": "u", "roles": []string{"Score"}})
	if rec := e.validate("ent", wrongAud); rec.Code != 401 {
		t.Errorf("entra token for another audience = %d; want 401", rec.Code)
	}
	noRole := e.idp.Token(t, jwt.MapClaims{"aud": "api://ent", "sub": "u"})
	if rec := e.validate("ent", noRole); rec.Code != 403 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("entra token without the role = %d %q; want 403 insufficient_scope", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// score takes the same path: our token passes, and the upstream sees
	// the identity but not the token; a key does not pass.
	if rec := e.do("POST", "/api/services/tok/score", ours); rec.Code != 200 || rec.Body.String() != "token admin " {
		t.Errorf("score with our token = %d %q; want 200 %q", rec.Code, rec.Body, "token admin ")
	}
	if rec := e.do("POST", "/api/services/tok/score", key); rec.Code != 401 {
		t.Errorf("score with a key for a token service = %d; want 401", rec.Code)
	}
}

// TestCallerRoles drives the management functions with caller tokens from
// an external OIDC provider: each right is enforced.
func TestCallerRoles(t *testing.T) {
	e := newTokenEnv(t, nil)
	tests := []struct {
		name, method, path string
		roles              []string
		status             int
	}{
		{"get_keys with Keys.Read.svc", "GET", "/api/services/svc/keys", []string{"Keys.Read.svc"}, 200},
		{"get_keys with Keys.Read.All", "GET", "/api/services/svc/keys", []string{"Keys.Read.All"}, 200},
		{"get_keys with Keys.Admin", "GET", "/api/services/svc/keys", []string{"Keys.Admin"}, 200},
		{"get_keys with another service's role", "GET", "/api/services/svc/keys", []string{"Keys.Read.other"}, 403},
		{"get_keys with a token role", "GET", "/api/services/svc/keys", []string{"Tokens.Get.All"}, 403},
		{"get_keys with no role", "GET", "/api/services/svc/keys", nil, 403},
		{"regen with Keys.Read.All", "POST", "/api/services/svc/keys/regenerate", []string{"Keys.Read.All"}, 403},
		{"token with Tokens.Get.tok", "POST", "/api/services/tok/token", []string{"Tokens.Get.tok"}, 200},
		{"token with Tokens.Get.All", "POST", "/api/services/tok/token", []string{"Tokens.Get.All"}, 200},
		{"token with Tokens.Get.tok2 for tok", "POST", "/api/services/tok/token", []string{"Tokens.Get.tok2"}, 403},
		{"token with Keys.Admin", "POST", "/api/services/tok/token", []string{"Keys.Admin"}, 403},
		{"signing-key rotate with Keys.Read.All", "POST", "/api/signing-keys/rotate", []string{"Keys.Read.All"}, 403},
		{"signing-key rotate with Keys.Admin", "POST", "/api/signing-keys/rotate", []string{"Keys.Admin"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(tt.method, tt.path, e.caller(tt.roles...))
			if rec.Code != tt.status {
				t.Fatalf("%s %s with roles %v = %d %s; want %d", tt.method, tt.path, tt.roles, rec.Code, rec.Body, tt.status)
			}
			if tt.status == 403 && (errorCode(rec) != "Forbidden" || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "insufficient_scope")) {
				t.Errorf("403 body %s, challenge %q", rec.Body, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
	// The token's sub is the caller.
	tok := e.token("tok", e.caller("Tokens.Get.tok"))
	if rec := e.validate("tok", tok.AccessToken); rec.Header().Get("X-Modelauth-Subject") != "caller-Tokens.Get.tok" {
		t.Errorf("subject of a caller's token = %q", rec.Header().Get("X-Modelauth-Subject"))
	}
	// A caller token for another audience, or of an unknown issuer.
	other := e.idp.Token(t, jwt.MapClaims{"aud": "api://other", "sub": "x", "roles": []string{"Keys.Admin"}})
	if rec := e.do("GET", "/api/services/svc/keys", other); rec.Code != 401 {
		t.Errorf("caller token for another audience = %d; want 401", rec.Code)
	}
	stranger := oidctest.NewProvider(t)
	if rec := e.do("GET", "/api/services/svc/keys", stranger.Token(t, jwt.MapClaims{"aud": "api://modelauth", "sub": "x", "roles": []string{"Keys.Admin"}})); rec.Code != 401 {
		t.Errorf("caller token of an unknown issuer = %d; want 401", rec.Code)
	}
	if stranger.Requests() != 0 {
		t.Errorf("the unknown issuer was fetched %d times", stranger.Requests())
	}
}

func TestAdminKeyDisabled(t *testing.T) {
	e := newTokenEnv(t, func(s *config.Settings) { s.AdminKeyEnabled = false })
	if rec := e.do("GET", "/api/services/svc/keys", e.admin); rec.Code != 401 || !strings.Contains(rec.Body.String(), "switched off") {
		t.Fatalf("admin key while disabled = %d %s; want 401", rec.Code, rec.Body)
	}
	if rec := e.do("GET", "/api/services/svc/keys", e.caller("Keys.Admin")); rec.Code != 200 {
		t.Fatalf("caller token while the admin key is off = %d %s", rec.Code, rec.Body)
	}
}

func TestEntraCallersFollowKeyRotation(t *testing.T) {
	e := newTokenEnv(t, nil)
	if rec := e.do("GET", "/api/services/svc/keys", e.caller("Keys.Admin")); rec.Code != 200 {
		t.Fatalf("get_keys = %d", rec.Code)
	}
	n := e.idp.JWKSRequests()
	e.idp.RotateKeys()
	if rec := e.do("GET", "/api/services/svc/keys", e.caller("Keys.Admin")); rec.Code != 200 {
		t.Fatalf("get_keys after the provider rotated its keys = %d %s", rec.Code, rec.Body)
	}
	if got := e.idp.JWKSRequests() - n; got != 1 {
		t.Fatalf("JWKS fetches for the new kid = %d; want 1", got)
	}
}

func TestSigningKeyRevokeAndRotate(t *testing.T) {
	e := newTokenEnv(t, nil)
	old := e.token("tok", e.admin)
	oldKid := kidOf(t, old.AccessToken)
	if rec := e.validate("tok", old.AccessToken); rec.Code != 200 {
		t.Fatalf("validate = %d", rec.Code)
	}
	rec := e.do("POST", "/api/signing-keys/revoke", e.admin)
	var ans struct {
		Outcome, Kid, RevokedKid string
		Keys                     []struct{ Kid, State string }
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &ans) != nil || ans.Outcome != "revoked" || ans.RevokedKid != oldKid || ans.Kid == oldKid {
		t.Fatalf("revoke = %d %s", rec.Code, rec.Body)
	}
	// Refused at once on this instance, even though it was cached.
	if rec := e.validate("tok", old.AccessToken); rec.Code != 401 {
		t.Fatalf("token of the revoked key = %d; want 401", rec.Code)
	}
	if kids := e.jwksKids(); slices.Contains(kids, oldKid) || !slices.Contains(kids, ans.Kid) {
		t.Fatalf("JWKS after revoke = %v; want %s without %s", kids, ans.Kid, oldKid)
	}
	fresh := e.token("tok", e.admin)
	if kidOf(t, fresh.AccessToken) != ans.Kid || e.validate("tok", fresh.AccessToken).Code != 200 {
		t.Fatalf("a new token after revoke does not use the new key or fails")
	}
	// rotate publishes a next key that does not sign yet.
	rec = e.do("POST", "/api/signing-keys/rotate", e.admin)
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &ans) != nil || ans.Outcome != "rotated" {
		t.Fatalf("rotate = %d %s", rec.Code, rec.Body)
	}
	if kids := e.jwksKids(); len(kids) != 2 || !slices.Contains(kids, ans.Kid) {
		t.Fatalf("JWKS after rotate = %v; want the current and the next key", kids)
	}
	if again := e.token("tok", e.admin); kidOf(t, again.AccessToken) == ans.Kid {
		t.Fatal("the next key signs before its activation")
	}
	if rec := e.do("POST", "/api/signing-keys/rotate", e.admin); !strings.Contains(rec.Body.String(), `"outcome":"pending"`) {
		t.Fatalf("second rotate = %s; want pending", rec.Body)
	}
	for _, tt := range []struct {
		method, path, auth string
		status             int
	}{
		{"POST", "/api/signing-keys/revoke", "", 401},
		{"POST", "/api/signing-keys/delete", e.admin, 404},
		{"GET", "/api/signing-keys/rotate", e.admin, 405},
	} {
		if rec := e.do(tt.method, tt.path, tt.auth); rec.Code != tt.status {
			t.Errorf("%s %s = %d; want %d", tt.method, tt.path, rec.Code, tt.status)
		}
	}
	log := e.log.String()
	for _, ev := range []string{`"event":"signing_key_revoke"`, `"event":"signing_key_rotate"`} {
		if !strings.Contains(log, ev) {
			t.Errorf("no audit event %s", ev)
		}
	}
	if strings.Contains(log, "PRIVATE KEY") {
		t.Error("the log holds a private key")
	}
}

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

func (e *tokenEnv) jwksKids() []string {
	e.t.Helper()
	rec := e.do("GET", "/api/.well-known/jwks.json", "")
	if rec.Code != 200 || rec.Header().Get("Cache-Control") != "public, max-age=3600" {
		e.t.Fatalf("jwks = %d (Cache-Control %q)", rec.Code, rec.Header().Get("Cache-Control"))
	}
	keys, err := jwk.ParseSet(rec.Body.Bytes())
	if err != nil {
		e.t.Fatal(err)
	}
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func TestWellKnown(t *testing.T) {
	e := newTokenEnv(t, nil)
	rec := e.do("GET", "/api/.well-known/openid-configuration", "")
	var doc map[string]any
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &doc) != nil {
		t.Fatalf("openid-configuration = %d %s", rec.Code, rec.Body)
	}
	if doc["issuer"] != "http://localhost:7071/api" || doc["jwks_uri"] != "http://localhost:7071/api/.well-known/jwks.json" {
		t.Errorf("discovery = %v", doc)
	}
	if kids := e.jwksKids(); len(kids) != 1 {
		t.Errorf("JWKS at start = %v; want the first signing key", kids)
	}
	if body := e.do("GET", "/api/.well-known/jwks.json", "").Body.String(); strings.Contains(body, `"d"`) || strings.Contains(body, `"p"`) {
		t.Errorf("the JWKS holds private members: %s", body)
	}
	for _, p := range []string{"/api/.well-known/other", "/api/.well-known/jwks"} {
		if rec := e.do("GET", p, ""); rec.Code != 404 {
			t.Errorf("GET %s = %d; want 404", p, rec.Code)
		}
	}
	if rec := e.do("POST", "/api/.well-known/jwks.json", ""); rec.Code != 405 {
		t.Errorf("POST jwks = %d; want 405", rec.Code)
	}
}

// TestRevokeReachesOtherInstances: an instance that remembers a verified
// token forgets it within KEY_CACHE_TTL of a revoke on another instance.
func TestRevokeReachesOtherInstances(t *testing.T) {
	ttl := time.Second
	a := newTokenEnv(t, func(s *config.Settings) { s.KeyCacheTTL = ttl })
	// A second instance on the same store and configuration.
	b, err := NewApp(context.Background(), a.a.Settings, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	bh := b.Handler()
	validateB := func(tok string) int {
		req := httptest.NewRequest("GET", "/api/services/tok/validate", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		bh.ServeHTTP(rec, req)
		return rec.Code
	}
	tok := a.token("tok", a.admin).AccessToken
	if got := validateB(tok); got != 200 {
		t.Fatalf("instance B = %d; want 200", got)
	}
	if rec := a.do("POST", "/api/signing-keys/revoke", a.admin); rec.Code != 200 {
		t.Fatalf("revoke = %d %s", rec.Code, rec.Body)
	}
	time.Sleep(ttl + 100*time.Millisecond) // the TTL is the bound under test
	if got := validateB(tok); got != 401 {
		t.Fatalf("instance B one TTL after the revoke = %d; want 401", got)
	}
	// B takes the new key's tokens.
	if got := validateB(a.token("tok", a.admin).AccessToken); got != 200 {
		t.Fatalf("instance B, a token of the new key = %d; want 200", got)
	}
}

// TestTokenSecurityTable presents hostile tokens to validate for a
// token-mode service: each is refused 401 invalid_token, nothing crashes,
// and nothing is fetched from a URL in a token.
func TestTokenSecurityTable(t *testing.T) {
	e := newTokenEnv(t, nil)
	good := e.token("tok", e.admin).AccessToken
	parts := strings.Split(good, ".")
	kid := kidOf(t, good)
	keys, err := e.a.SigningKeys.Published(context.Background())
	if err != nil || len(keys) != 1 {
		t.Fatalf("published keys: %v, %v", keys, err)
	}
	pemPub := publicPEM(t, keys[0].Public)
	jwkPub, _ := json.Marshal(must(jwk.FromPublic(kid, "RS256", keys[0].Public)))
	var fetched atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fetched.Add(1) }))
	defer evil.Close()
	now := time.Now()
	claims := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "http://localhost:7071/api", "aud": "tok", "sub": "mallory", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	sign := func(m jwt.SigningMethod, key any, header map[string]any, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(m, c)
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	attacker := e.idp.PrivateKey()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + b64(strings.Replace(string(payload), `"sub":"admin"`, `"sub":"root!"`, 1)) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	flipped := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)

	tests := []struct{ name, token string }{
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": kid}, claims(nil))},
		{"HS256 keyed with the public key PEM", sign(jwt.SigningMethodHS256, pemPub, map[string]any{"kid": kid}, claims(nil))},
		{"HS256 keyed with the public JWK", sign(jwt.SigningMethodHS256, jwkPub, map[string]any{"kid": kid}, claims(nil))},
		{"ES256 with our kid", sign(jwt.SigningMethodES256, ecKey, map[string]any{"kid": kid}, claims(nil))},
		{"RS256 by another key with our kid", sign(jwt.SigningMethodRS256, attacker, map[string]any{"kid": kid}, claims(nil))},
		{"unknown kid", sign(jwt.SigningMethodRS256, attacker, map[string]any{"kid": strings.Repeat("A", 43)}, claims(nil))},
		{"kid with a path", sign(jwt.SigningMethodRS256, attacker, map[string]any{"kid": "../../admin-key"}, claims(nil))},
		{"jku header", sign(jwt.SigningMethodRS256, attacker, map[string]any{"kid": kid, "jku": evil.URL + "/jwks.json"}, claims(nil))},
		{"x5u header", sign(jwt.SigningMethodRS256, attacker, map[string]any{"kid": kid, "x5u": evil.URL + "/cert.pem"}, claims(nil))},
		{"expired", reissue(t, e, claims(jwt.MapClaims{"exp": now.Add(-2 * time.Minute).Unix(), "iat": now.Add(-time.Hour).Unix(), "nbf": now.Add(-time.Hour).Unix()}))},
		{"nbf in the future", reissue(t, e, claims(jwt.MapClaims{"nbf": now.Add(5 * time.Minute).Unix()}))},
		{"wrong iss", reissue(t, e, claims(jwt.MapClaims{"iss": "https://evil.example/api"}))},
		{"another service's token", e.token("tok2", e.admin).AccessToken},
		{"no exp", reissue(t, e, claims(jwt.MapClaims{"exp": nil}))},
		{"longer-lived than any token issued", reissue(t, e, claims(jwt.MapClaims{"exp": now.Add(48 * time.Hour).Unix()}))},
		{"no iat", reissue(t, e, claims(jwt.MapClaims{"iat": nil}))},
		{"oversized", parts[0] + "." + b64(strings.Repeat("x", 9000)) + "." + parts[2]},
		{"1,000 dots", strings.Repeat(".", 1000)},
		{"tampered payload", tampered},
		{"tampered signature", flipped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.validate("tok", tt.token)
			if rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("validate = %d %q %s; want 401 invalid_token", rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
			}
		})
	}
	if fetched.Load() != 0 {
		t.Errorf("a URL from a token header was fetched %d times", fetched.Load())
	}
	if rec := e.validate("tok", good); rec.Code != 200 {
		t.Fatalf("the good token after the table = %d", rec.Code)
	}
	if strings.Contains(e.log.String(), good) {
		t.Error("the log holds a token")
	}
}

// reissue signs claims with the app's current signing key, as if the app
// had issued them: for tokens whose claims, not signature, are wrong.
func reissue(t *testing.T, e *tokenEnv, c jwt.MapClaims) string {
	t.Helper()
	k, err := e.a.SigningKeys.Signer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = k.Kid
	s, err := tok.SignedString(k.Signer())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func publicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestTokenSyntaxComesFirst: validate looks a token up among the ones it
// remembers before checking its b64token syntax (docs/design.md 2.1), yet a
// malformed credential is answered 400 before every other refusal: with a
// token remembered, for a value without a '.', and with the signing keys
// unreadable (where a well-formed token gets 503).
func TestTokenSyntaxComesFirst(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "modelauth.json")
	if err := os.WriteFile(cfgPath, []byte(`{"services":[{"name":"tok","authMode":"token"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir = cfgPath, filepath.Join(dir, "data")
	s.KeyCacheTTL, s.KeyCacheMaxStale, s.KeyRefreshMinInterval = time.Second, 0, 0
	a, err := NewApp(t.Context(), s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	h := a.Handler()
	tok, _, err := a.Tokens.Issue(t.Context(), "tok", "admin", time.Hour, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	validate := func(auth string) int {
		req := httptest.NewRequest("GET", "/api/services/tok/validate", nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	malformed := []string{
		"Bearer " + tok.AccessToken + "*",   // a byte outside b64token
		"Bearer " + tok.AccessToken + " x",  // a second word
		"Bearer =" + tok.AccessToken,        // '=' first
		"Bearer key*without-a-dot",          // not a JWT either
		"Bearer " + strings.Repeat("*", 43), // a key's length, all wrong
	}
	check := func(state string, want int) {
		t.Helper()
		if got := validate("Bearer " + tok.AccessToken); got != want {
			t.Errorf("%s: the token = %d; want %d", state, got, want)
		}
		for _, m := range malformed {
			if got := validate(m); got != http.StatusBadRequest {
				t.Errorf("%s: %.40q... = %d; want 400", state, m, got)
			}
		}
	}
	check("remembered", http.StatusOK)
	check("remembered, again", http.StatusOK)
	a.Store.Close()
	time.Sleep(s.KeyCacheTTL + 100*time.Millisecond) // the signing keys are due a read, which fails
	check("signing keys unreadable", http.StatusServiceUnavailable)
}
