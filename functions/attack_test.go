package functions

// The attack-token suite: every JWT attack class of golang-jwt's and the
// JWT BCP's (RFC 8725) lists, against the app's own tokens (validate and
// score of the token-mode service "tok", RS256 and ES256) and against
// tokens of the trusted OIDC provider (the management functions get_keys,
// get_token and signing-keys rotate, and validate of the entra-mode
// service "ent").
//
// Each case is an edit of a control token's parts: the header and the
// payload as JSON members written by hand (so that a claim can be
// duplicated or of the wrong JSON type), the signing method and key, and
// an optional change of the compact serialization after signing. The
// control is signed as the app or the provider would sign it and must be
// accepted; the attack differs from it only in the attacked property and
// must be refused. So no case passes for a reason other than the one it
// tests.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/jwk"
)

// TestAttackOwnTokens: the app's own tokens, RS256 and ES256, presented to
// validate and score of the token-mode service.
func TestAttackOwnTokens(t *testing.T) {
	kit := newAttackKit(t)
	rs := newTokenEnv(t, nil)
	es := newTokenEnv(t, func(s *config.Settings) { s.TokenSigningAlg = "ES256" })
	kit.runAttacks(t,
		ownTarget(t, rs, "own/validate", sendValidate(rs, "tok")),
		ownTarget(t, rs, "own/score", sendScore(rs)),
		ownTarget(t, es, "own-es256/validate", sendValidate(es, "tok")),
		ownTarget(t, es, "own-es256/score", sendScore(es)),
	)
}

// TestAttackCallerTokens: caller tokens of the trusted provider, presented
// to the management functions, with the role each needs.
func TestAttackCallerTokens(t *testing.T) {
	kit := newAttackKit(t)
	e := newTokenEnv(t, nil)
	kit.runAttacks(t,
		providerTarget(t, e, "caller/get_keys", "api://modelauth", "caller-attack", []string{"Keys.Read.All"},
			func(tok string) *httptest.ResponseRecorder { return e.do("GET", "/api/services/svc/keys", tok) }),
		providerTarget(t, e, "caller/get_token", "api://modelauth", "caller-attack", []string{"Tokens.Get.tok"},
			func(tok string) *httptest.ResponseRecorder { return e.do("POST", "/api/services/tok/token", tok) }),
		providerTarget(t, e, "caller/rotate", "api://modelauth", "caller-attack", []string{"Keys.Admin"},
			func(tok string) *httptest.ResponseRecorder { return e.do("POST", "/api/signing-keys/rotate", tok) }),
	)
}

// TestAttackEntraTokens: tokens of the trusted provider presented to
// validate of the entra-mode service (audience api://ent, role Score).
func TestAttackEntraTokens(t *testing.T) {
	kit := newAttackKit(t)
	e := newTokenEnv(t, nil)
	kit.runAttacks(t, providerTarget(t, e, "entra/validate", "api://ent", "user-1", []string{"Score"}, sendValidate(e, "ent")))
}

// --- Token parts ---

// jsonMember is one JSON object member; value is raw JSON, written by hand.
type jsonMember struct{ name, value string }

// tokenParts are a token before its compact serialization.
type tokenParts struct {
	header, claims []jsonMember
	// rawHeader and rawClaims, when set, replace the JSON of header and
	// claims verbatim (and need not be JSON).
	rawHeader, rawClaims *string
	// method signs header.payload with key; nil leaves the signature
	// empty. It need not be what the header's alg names.
	method jwt.SigningMethod
	key    any
	// post, if set, changes the signed compact serialization.
	post func(string) string
}

func (p tokenParts) clone() tokenParts {
	p.header, p.claims = slices.Clone(p.header), slices.Clone(p.claims)
	return p
}

func jsonObject(ms []jsonMember) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(jsonText(m.name))
		b.WriteByte(':')
		b.WriteString(m.value)
	}
	b.WriteByte('}')
	return b.String()
}

func (p tokenParts) headerJSON() string {
	if p.rawHeader != nil {
		return *p.rawHeader
	}
	return jsonObject(p.header)
}

func (p tokenParts) claimsJSON() string {
	if p.rawClaims != nil {
		return *p.rawClaims
	}
	return jsonObject(p.claims)
}

// compact signs p and returns the token. Signing fails only on a mistake
// in the suite, so it panics, as must does.
func (p tokenParts) compact() string {
	input := b64urlText(p.headerJSON()) + "." + b64urlText(p.claimsJSON())
	sig := ""
	if p.method != nil {
		sig = b64url(signCached(p.method, p.key, input))
	}
	tok := input + "." + sig
	if p.post != nil {
		tok = p.post(tok)
	}
	return tok
}

// signatureCache remembers the signatures of private keys: most cases share
// their control's signing input, and RSA signing is slow under -race.
var signatureCache sync.Map // signatureKey -> []byte

type signatureKey struct {
	alg   string
	key   any // a pointer
	input [sha256.Size]byte
}

func signCached(m jwt.SigningMethod, key any, input string) []byte {
	switch key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
	default: // HMAC secrets and the like: fast, and not comparable
		return must(m.Sign(input, key))
	}
	k := signatureKey{m.Alg(), key, sha256.Sum256([]byte(input))}
	if s, ok := signatureCache.Load(k); ok {
		return s.([]byte)
	}
	s := must(m.Sign(input, key))
	signatureCache.Store(k, s)
	return s
}

// setMember replaces the first member called name (exactly), or appends one.
func setMember(ms []jsonMember, name, value string) []jsonMember {
	for i := range ms {
		if ms[i].name == name {
			ms[i].value = value
			return ms
		}
	}
	return append(ms, jsonMember{name, value})
}

// delMember removes every member called name (exactly).
func delMember(ms []jsonMember, name string) []jsonMember {
	return slices.DeleteFunc(ms, func(m jsonMember) bool { return m.name == name })
}

func getMember(ms []jsonMember, name string) (string, bool) {
	for _, m := range ms {
		if m.name == name {
			return m.value, true
		}
	}
	return "", false
}

func jsonText(v any) string                 { return string(must(json.Marshal(v))) }
func b64url(b []byte) string                { return base64.RawURLEncoding.EncodeToString(b) }
func b64urlText(s string) string            { return b64url([]byte(s)) }
func jsonInt(n int64) string                { return strconv.FormatInt(n, 10) }
func strPtr(s string) *string               { return &s }
func tokenSegment(tok string, i int) string { return strings.Split(tok, ".")[i] }

// withTokenSegment replaces the i-th dot-separated segment of tok.
func withTokenSegment(tok string, i int, seg string) string {
	s := strings.Split(tok, ".")
	s[i] = seg
	return strings.Join(s, ".")
}

// swapASCIICase swaps the case of ASCII letters.
func swapASCIICase(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		case 'A' <= r && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, s)
}

// --- Targets ---

// attackTarget is where tokens of one kind go, and how its control token
// is made.
type attackTarget struct {
	name string
	env  *tokenEnv
	send func(tok string) *httptest.ResponseRecorder
	// own: the app's tokens (jwtauth); else the provider's (oidc).
	own    bool
	alg    string
	method jwt.SigningMethod
	key    any              // signs the control
	kid    string           // of key
	pub    crypto.PublicKey // verifies the control
	jwks   []byte           // the JWKS document as the verifier reads it
	iss    string
	aud    string
	sub    string
	roles  []string // provider targets: the roles the control needs
	// otherKey and otherKid are a key the app trusts for the other kind of
	// token: the provider's for our tokens, our signing key for the
	// provider's.
	otherKey any
	otherKid string
	// otherIss is the other kind's issuer.
	otherIss string
	// encodings of pub, for HMAC key confusion.
	encodings []keyEncoding
}

// control returns the parts of a token the target accepts.
func (tg *attackTarget) control() tokenParts {
	now := time.Now().Unix()
	p := tokenParts{
		header: []jsonMember{{"alg", jsonText(tg.alg)}, {"kid", jsonText(tg.kid)}, {"typ", `"JWT"`}},
		claims: []jsonMember{
			{"iss", jsonText(tg.iss)}, {"aud", jsonText(tg.aud)}, {"sub", jsonText(tg.sub)},
			{"iat", jsonInt(now)}, {"nbf", jsonInt(now)}, {"exp", jsonInt(now + 300)}, {"jti", `"attack-jti-0001"`},
		},
		method: tg.method, key: tg.key,
	}
	if !tg.own {
		p.claims = append(p.claims,
			jsonMember{"roles", jsonText(tg.roles)},
			jsonMember{"tid", `"tenant-1"`}, jsonMember{"oid", `"object-1"`}, jsonMember{"azp", `"app-1"`}, jsonMember{"appid", `"app-1"`})
	}
	return p
}

func sendValidate(e *tokenEnv, service string) func(string) *httptest.ResponseRecorder {
	return func(tok string) *httptest.ResponseRecorder { return e.validate(service, tok) }
}

func sendScore(e *tokenEnv) func(string) *httptest.ResponseRecorder {
	return func(tok string) *httptest.ResponseRecorder { return e.do("POST", "/api/services/tok/score", tok) }
}

// ownTarget signs its control as the app does (see reissue).
func ownTarget(t *testing.T, e *tokenEnv, name string, send func(string) *httptest.ResponseRecorder) *attackTarget {
	t.Helper()
	k, err := e.a.SigningKeys.Signer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rec := e.do("GET", "/api/.well-known/jwks.json", "")
	if rec.Code != 200 {
		t.Fatalf("jwks = %d", rec.Code)
	}
	tg := &attackTarget{
		name: name, env: e, send: send, own: true,
		alg: k.Alg, method: jwt.GetSigningMethod(k.Alg), key: k.Signer(), kid: k.Kid, pub: k.Public, jwks: rec.Body.Bytes(),
		iss: e.a.Settings.Issuer, aud: "tok", sub: "attack-subject",
		otherKey: e.idp.PrivateKey(), otherKid: e.idp.KeyID(), otherIss: e.idp.Issuer(),
	}
	tg.encodings = keyEncodings(t, tg)
	return tg
}

// providerTarget signs its control with the provider's current key and
// kid, as oidctest.Provider.Token does.
func providerTarget(t *testing.T, e *tokenEnv, name, aud, sub string, roles []string, send func(string) *httptest.ResponseRecorder) *attackTarget {
	t.Helper()
	resp, err := http.Get(e.idp.JWKSURI())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("provider JWKS: %d %v", resp.StatusCode, err)
	}
	own, err := e.a.SigningKeys.Signer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	key := e.idp.PrivateKey()
	tg := &attackTarget{
		name: name, env: e, send: send,
		alg: "RS256", method: jwt.SigningMethodRS256, key: key, kid: e.idp.KeyID(), pub: &key.PublicKey, jwks: doc,
		iss: e.idp.Issuer(), aud: aud, sub: sub, roles: roles,
		otherKey: own.Signer(), otherKid: own.Kid, otherIss: e.a.Settings.Issuer,
	}
	tg.encodings = keyEncodings(t, tg)
	return tg
}

// --- The attacker's material and the runner ---

// attackerKeys are generated once per test binary: RSA keys are slow.
var attackerKeys = sync.OnceValues(func() (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	return must(rsa.GenerateKey(rand.Reader, 2048)), must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
})

// attackKit is the attacker's keys, certificates and web server, and the
// tokens presented, for the log check.
type attackKit struct {
	rsa     *rsa.PrivateKey
	ec      *ecdsa.PrivateKey
	rsaCert []byte // certificates (DER) of the attacker's keys
	ecCert  []byte
	// evil serves the attacker's JWKS (/jwks?kid=&alg=) and certificate
	// (/cert.pem?alg=), and counts every request.
	evil    *httptest.Server
	fetched atomic.Int32
	seen    map[string]string // token -> case that presented it
}

func newAttackKit(t *testing.T) *attackKit {
	t.Helper()
	k := &attackKit{seen: map[string]string{}}
	k.rsa, k.ec = attackerKeys()
	k.rsaCert = attackerCertificate(t, &k.rsa.PublicKey)
	k.ecCert = attackerCertificate(t, &k.ec.PublicKey)
	k.evil = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.fetched.Add(1)
		_, pub, cert := k.attacker(r.URL.Query().Get("alg"))
		switch r.URL.Path {
		case "/jwks":
			j := must(jwk.FromPublic(r.URL.Query().Get("kid"), r.URL.Query().Get("alg"), pub))
			writeJSONBody(w, jwk.Set{Keys: []jwk.Key{j}})
		case "/cert.pem":
			pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: cert})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(k.evil.Close)
	return k
}

func writeJSONBody(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// attacker returns the attacker's key of alg's type, its public key and
// its certificate.
func (k *attackKit) attacker(alg string) (any, crypto.PublicKey, []byte) {
	if strings.HasPrefix(alg, "ES") {
		return k.ec, &k.ec.PublicKey, k.ecCert
	}
	return k.rsa, &k.rsa.PublicKey, k.rsaCert
}

// attackerCertificate returns a certificate (DER) of pub issued by the attacker's
// EC key: an attacker can make a certificate of any public key, its own
// or the app's.
func attackerCertificate(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	_, ec := attackerKeys()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "attacker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, ec)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// attackCase is one attack: an edit of the control's parts.
type attackCase struct {
	name string
	edit func(p *tokenParts)
	// status is the answer wanted: 0 means 401 with error="invalid_token";
	// 400 (a malformed Authorization header) wants error="invalid_request";
	// 403 wants error="insufficient_scope".
	status int
}

// attackClass makes a class's cases for a target (none if it does not
// apply).
type attackClass struct {
	name  string
	cases func(k *attackKit, tg *attackTarget) []attackCase
}

var attackClasses = []attackClass{
	{"alg none and other algorithms", algCases},
	{"HMAC key confusion", hmacCases},
	{"foreign keys with a known kid", foreignKeyCases},
	{"embedded or referenced keys", embeddedKeyCases},
	{"kid injection", kidCases},
	{"malformed and oversized tokens", malformedCases},
	{"tampering", tamperCases},
	{"wrong iss, aud, exp, nbf, iat", claimValueCases},
	{"claims of the wrong JSON type", claimTypeCases},
	{"duplicated claims", duplicateCases},
	{"missing or empty sub", subCases},
}

func (k *attackKit) runAttacks(t *testing.T, targets ...*attackTarget) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			names := map[string]bool{}
			for _, class := range attackClasses {
				for _, c := range class.cases(k, tg) {
					if names[c.name] {
						t.Fatalf("two cases named %q", c.name)
					}
					names[c.name] = true
					t.Run(c.name, func(t *testing.T) { k.runAttack(t, tg, class.name, c) })
				}
			}
		})
	}
	if n := k.fetched.Load(); n != 0 {
		t.Errorf("a URL from a token header was fetched %d times", n)
	}
	// The count is sound: the attacker's server counts what it serves.
	if resp, err := http.Get(k.evil.URL + "/jwks?alg=RS256&kid=x"); err != nil || resp.StatusCode != 200 || k.fetched.Load() == 0 {
		t.Errorf("the attacker's server does not serve or count: %v", err)
	} else {
		resp.Body.Close()
	}
	// No log line holds a token, a signature or the administrator key.
	seenEnv := map[*tokenEnv]bool{}
	for _, tg := range targets {
		if seenEnv[tg.env] {
			continue
		}
		seenEnv[tg.env] = true
		log := tg.env.log.String()
		if strings.Contains(log, tg.env.admin) {
			t.Errorf("%s: the log holds the administrator key", tg.name)
		}
		for tok, name := range k.seen {
			sig := tok[strings.LastIndexByte(tok, '.')+1:]
			if len(tok) >= 40 && strings.Contains(log, tok) || len(sig) >= 40 && strings.Contains(log, sig) {
				t.Errorf("the log holds the token (or its signature) of %s", name)
			}
		}
	}
}

func (k *attackKit) runAttack(t *testing.T, tg *attackTarget, class string, c attackCase) {
	base := tg.control()
	attacked := base.clone()
	c.edit(&attacked)
	ctl, atk := base.compact(), attacked.compact()
	if ctl == atk {
		t.Fatal("the attack leaves the control token as it is")
	}
	k.seen[ctl], k.seen[atk] = t.Name()+" (control)", t.Name()
	if rec := tg.send(ctl); rec.Code != 200 {
		t.Fatalf("%s: control = %d %q %s; want 200", class, rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
	}
	rec := tg.send(atk)
	want, code := 401, "invalid_token"
	switch c.status {
	case 400:
		want, code = 400, "invalid_request"
	case 403:
		want, code = 403, "insufficient_scope"
	}
	if rec.Code != want || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="`+code+`"`) {
		body := strings.TrimSpace(rec.Body.String())
		if rec.Code == 200 {
			body = "(a success; its body may hold keys or tokens)"
		}
		t.Errorf("%s: attack = %d %q %s; want %d %s", class, rec.Code, rec.Header().Get("WWW-Authenticate"), body, want, code)
	}
}

// --- The attack classes ---

// signWith makes p sign with method and key under the header alg of
// method.
func signWith(p *tokenParts, method jwt.SigningMethod, key any) {
	p.header = setMember(p.header, "alg", jsonText(method.Alg()))
	p.method, p.key = method, key
}

func algCases(k *attackKit, tg *attackTarget) []attackCase {
	var cs []attackCase
	for _, none := range []string{"none", "None", "NONE", "nOnE"} {
		cs = append(cs,
			attackCase{name: "alg none (" + none + ")", edit: func(p *tokenParts) {
				p.header = setMember(p.header, "alg", jsonText(none))
				p.method = nil
			}},
			attackCase{name: "alg none (" + none + ") with a genuine signature", edit: func(p *tokenParts) {
				p.header = setMember(p.header, "alg", jsonText(none))
			}},
		)
	}
	cs = append(cs,
		attackCase{name: "alg missing", edit: func(p *tokenParts) { p.header = delMember(p.header, "alg") }},
		attackCase{name: "alg empty", edit: func(p *tokenParts) { p.header = setMember(p.header, "alg", `""`) }},
		attackCase{name: "alg not a string", edit: func(p *tokenParts) { p.header = setMember(p.header, "alg", jsonText([]string{tg.alg})) }},
		attackCase{name: "alg in another case", edit: func(p *tokenParts) { p.header = setMember(p.header, "alg", jsonText(strings.ToLower(tg.alg))) }},
	)
	if _, ok := tg.key.(*rsa.PrivateKey); ok {
		// Another algorithm of the same key: only the configured one counts.
		for _, m := range []jwt.SigningMethod{jwt.SigningMethodPS256, jwt.SigningMethodRS384, jwt.SigningMethodRS512} {
			cs = append(cs, attackCase{name: "alg " + m.Alg() + " with the genuine key", edit: func(p *tokenParts) { signWith(p, m, tg.key) }})
		}
	}
	return cs
}

// keyEncoding is one encoding of a verification key.
type keyEncoding struct {
	name string
	b    []byte
}

// keyEncodings are the verification key's encodings an HMAC confusion
// might use as the secret.
func keyEncodings(t *testing.T, tg *attackTarget) []keyEncoding {
	t.Helper()
	type enc = keyEncoding
	spki := must(x509.MarshalPKIXPublicKey(tg.pub))
	pemSPKI := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	jwkJSON := publishedJWK(t, tg.jwks, tg.kid)
	cert := attackerCertificate(t, tg.pub)
	encs := []enc{
		{"PEM SPKI", pemSPKI},
		{"PEM SPKI without its final newline", []byte(strings.TrimSuffix(string(pemSPKI), "\n"))},
		{"DER SPKI", spki},
		{"JWK as published", jwkJSON},
		{"JWKS document as published", tg.jwks},
		{"certificate DER", cert},
		{"certificate PEM", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert})},
	}
	switch pub := tg.pub.(type) {
	case *rsa.PublicKey:
		pkcs1 := x509.MarshalPKCS1PublicKey(pub)
		encs = append(encs,
			enc{"PEM PKCS#1", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1})},
			enc{"DER PKCS#1", pkcs1},
			enc{"modulus bytes", pub.N.Bytes()},
			enc{"modulus base64url (n)", []byte(b64url(pub.N.Bytes()))},
		)
	case *ecdsa.PublicKey:
		pt := must(pub.Bytes())
		encs = append(encs,
			enc{"uncompressed point", pt},
			enc{"x coordinate bytes", pt[1:33]},
			enc{"x base64url", []byte(b64url(pt[1:33]))},
		)
	default:
		t.Fatalf("public key of type %T", tg.pub)
	}
	return encs
}

// publishedJWK returns the member of the JWKS document doc with kid, as
// its bytes appear there.
func publishedJWK(t *testing.T, doc []byte, kid string) []byte {
	t.Helper()
	var jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &jwks); err != nil {
		t.Fatal(err)
	}
	for _, raw := range jwks.Keys {
		var m struct{ Kid string }
		if json.Unmarshal(raw, &m) == nil && m.Kid == kid {
			return raw
		}
	}
	t.Fatalf("no key %s in the JWKS %s", kid, doc)
	return nil
}

func hmacCases(k *attackKit, tg *attackTarget) []attackCase {
	var cs []attackCase
	for _, e := range tg.encodings {
		methods := []jwt.SigningMethod{jwt.SigningMethodHS256}
		if e.name == "PEM SPKI" || e.name == "JWK as published" {
			methods = append(methods, jwt.SigningMethodHS384, jwt.SigningMethodHS512)
		}
		for _, m := range methods {
			cs = append(cs, attackCase{name: m.Alg() + " keyed with the " + e.name, edit: func(p *tokenParts) { signWith(p, m, e.b) }})
		}
	}
	return cs
}

func foreignKeyCases(k *attackKit, tg *attackTarget) []attackCase {
	// Every case keeps the known kid: the key, not the kid, is the
	// attacked property.
	return []attackCase{
		{name: "RS256 by a foreign RSA key", edit: func(p *tokenParts) { signWith(p, jwt.SigningMethodRS256, k.rsa) }},
		{name: "PS256 by a foreign RSA key", edit: func(p *tokenParts) { signWith(p, jwt.SigningMethodPS256, k.rsa) }},
		{name: "ES256 by a foreign EC key", edit: func(p *tokenParts) { signWith(p, jwt.SigningMethodES256, k.ec) }},
		{name: "RS256 by the key the app trusts for the other kind of token", edit: func(p *tokenParts) {
			signWith(p, jwt.SigningMethodRS256, tg.otherKey)
		}},
		// The other kind's key with its own kid and issuer: a token of one
		// trust domain presented to the other.
		{name: "a token of the other kind (its key, kid and issuer)", edit: func(p *tokenParts) {
			signWith(p, jwt.SigningMethodRS256, tg.otherKey)
			p.header = setMember(p.header, "kid", jsonText(tg.otherKid))
			p.claims = setMember(p.claims, "iss", jsonText(tg.otherIss))
		}},
	}
}

func embeddedKeyCases(k *attackKit, tg *attackTarget) []attackCase {
	key, pub, cert := k.attacker(tg.alg)
	method := jwt.GetSigningMethod(tg.alg)
	attackerJWK := jsonText(must(jwk.FromPublic(tg.kid, tg.alg, pub)))
	jku := jsonText(k.evil.URL + "/jwks?alg=" + tg.alg + "&kid=" + tg.kid)
	x5u := jsonText(k.evil.URL + "/cert.pem?alg=" + tg.alg)
	x5c := jsonText([]string{base64.StdEncoding.EncodeToString(cert)})
	// The attacker signs with the key the header carries or points at,
	// keeping the known kid; the evil server would serve that key under
	// this kid.
	embed := func(name, header, value string) attackCase {
		return attackCase{name: name, edit: func(p *tokenParts) {
			p.header = setMember(p.header, header, value)
			p.key = key
			p.method = method
		}}
	}
	cs := []attackCase{
		embed("jwk header with the attacker's key", "jwk", attackerJWK),
		embed("jku header to the attacker's JWKS", "jku", jku),
		embed("x5u header to the attacker's certificate", "x5u", x5u),
		embed("x5c header with the attacker's certificate", "x5c", x5c),
	}
	if tg.own {
		// The app's tokens never carry these members, and jwtauth refuses
		// a token that does even with a genuine signature. (The OIDC
		// verifier ignores them instead: with a genuine signature the
		// provider's token is sound, so there is no attack to refuse.)
		for _, h := range []jsonMember{{"jwk", attackerJWK}, {"jku", jku}, {"x5u", x5u}, {"x5c", x5c}, {"crit", `["exp"]`}} {
			cs = append(cs, attackCase{name: h.name + " header with a genuine signature", edit: func(p *tokenParts) {
				p.header = setMember(p.header, h.name, h.value)
			}})
		}
	} else {
		// RFC 7515 section 4.1.11: a token whose crit names an extension
		// the verifier does not understand must be refused, however
		// genuine its signature; the OIDC verifier understands none.
		for _, hs := range [][]jsonMember{{{"crit", `["x-unknown"]`}, {"x-unknown", "1"}}, {{"crit", `["b64"]`}, {"b64", "false"}}} {
			cs = append(cs, attackCase{name: "crit " + hs[0].value + " with a genuine signature", edit: func(p *tokenParts) {
				for _, h := range hs {
					p.header = setMember(p.header, h.name, h.value)
				}
			}})
		}
	}
	return cs
}

func kidCases(k *attackKit, tg *attackTarget) []attackCase {
	// Each signs with the genuine key: only the kid differs.
	kid := func(name, value string) attackCase {
		return attackCase{name: name, edit: func(p *tokenParts) { p.header = setMember(p.header, "kid", value) }}
	}
	cs := []attackCase{
		kid("kid a path", jsonText("../../../../../../etc/passwd")),
		kid("kid a path to the known kid", jsonText("../"+tg.kid)),
		kid("kid the known kid with a path after it", jsonText(tg.kid+"/../../admin-key")),
		kid("kid SQL injection", jsonText("' OR '1'='1")),
		kid("kid the known kid with SQL injection", jsonText(tg.kid+"' OR '1'='1' --")),
		kid("kid a URL", jsonText(k.evil.URL+"/jwks")),
		kid("kid empty", `""`),
		kid("kid very long", jsonText(tg.kid+strings.Repeat("A", 3000))),
		kid("kid with a NUL byte", jsonText(tg.kid+"\x00")),
		kid("kid with a space", jsonText(tg.kid+" ")),
		kid("kid a number", "123"),
		kid("kid true", "true"),
		kid("kid null", "null"),
		kid("kid an array of the known kid", jsonText([]string{tg.kid})),
		kid("kid an object", jsonText(map[string]string{"kid": tg.kid})),
		{name: "kid missing", edit: func(p *tokenParts) { p.header = delMember(p.header, "kid") }},
	}
	if s := swapASCIICase(tg.kid); s != tg.kid {
		cs = append(cs, kid("kid in another case", jsonText(s)))
	}
	return cs
}

func malformedCases(k *attackKit, tg *attackTarget) []attackCase {
	post := func(name string, status int, f func(tok string) string) attackCase {
		return attackCase{name: name, status: status, edit: func(p *tokenParts) { p.post = f }}
	}
	raw := func(name string, header bool, f func(json string) string) attackCase {
		return attackCase{name: name, edit: func(p *tokenParts) {
			if header {
				p.rawHeader = strPtr(f(p.headerJSON()))
			} else {
				p.rawClaims = strPtr(f(p.claimsJSON()))
			}
		}}
	}
	// badChar puts c in the middle of segment i.
	badChar := func(i int, c string) func(string) string {
		return func(tok string) string {
			s := tokenSegment(tok, i)
			return withTokenSegment(tok, i, s[:len(s)/2]+c+s[len(s)/2+1:])
		}
	}
	return []attackCase{
		// A token without a dot: the validate of a token-mode service
		// refuses it as not a token; the management functions take it for
		// an administrator key, and refuse it as a wrong one. Both 401.
		post("one part", 0, func(tok string) string { return tokenSegment(tok, 0) }),
		post("two parts", 0, func(tok string) string { return tokenSegment(tok, 0) + "." + tokenSegment(tok, 1) }),
		post("four parts", 0, func(tok string) string { return tok + "." + tokenSegment(tok, 2) }),
		post("five parts (JWE shape)", 0, func(tok string) string { return tok + ".AAAA.BBBB" }),
		post("a trailing dot", 0, func(tok string) string { return tok + "." }),
		post("empty header", 0, func(tok string) string { return withTokenSegment(tok, 0, "") }),
		post("empty payload", 0, func(tok string) string { return withTokenSegment(tok, 1, "") }),
		post("only dots", 0, func(string) string { return ".." }),
		// '+' and '/' are of base64's standard alphabet, not base64url's:
		// the Authorization header allows them (RFC 6750 b64token), the
		// token's decoding does not.
		post("bad base64 in the header (+)", 0, badChar(0, "+")),
		post("bad base64 in the payload (/)", 0, badChar(1, "/")),
		post("bad base64 in the signature (+)", 0, badChar(2, "+")),
		// A character outside RFC 6750's b64token breaks the header's
		// syntax: 400 invalid_request, before any token is looked at.
		post("a character outside base64 (*)", 400, badChar(1, "*")),
		// '=' is allowed only at the end of a b64token: padding on the
		// header or the payload breaks the Authorization header (400); on
		// the signature, the token's base64url decoding refuses it (401).
		post("padding on the header", 400, func(tok string) string { return withTokenSegment(tok, 0, withPadding(tokenSegment(tok, 0))) }),
		post("padding on the payload", 400, func(tok string) string { return withTokenSegment(tok, 1, withPadding(tokenSegment(tok, 1))) }),
		post("padding on the signature", 0, func(tok string) string { return withTokenSegment(tok, 2, withPadding(tokenSegment(tok, 2))) }),
		raw("header not JSON", true, func(string) string { return "not json" }),
		raw("header a JSON array", true, func(h string) string { return "[" + h + "]" }),
		raw("header with trailing data", true, func(h string) string { return h + "{}" }),
		raw("payload not JSON", false, func(string) string { return "not json" }),
		raw("payload a JSON array", false, func(c string) string { return "[" + c + "]" }),
		raw("payload null", false, func(string) string { return "null" }),
		raw("payload a JSON string", false, func(c string) string { return jsonText(c) }),
		raw("payload with trailing data", false, func(c string) string { return c + "{}" }),
		raw("payload truncated", false, func(c string) string { return c[:len(c)-1] }),
		// Longer than TOKEN_MAX_BYTES (8 KiB): refused before parsing.
		{name: "huge (a 9 KB claim)", edit: func(p *tokenParts) { p.claims = append(p.claims, jsonMember{"x", jsonText(strings.Repeat("A", 9000))}) }},
		// Longer than the Authorization header limit (16 KiB): a malformed
		// header, 400.
		{name: "huge (a 1 MiB claim)", status: 400, edit: func(p *tokenParts) {
			p.claims = append(p.claims, jsonMember{"x", jsonText(strings.Repeat("A", 1<<20))})
		}},
	}
}

// withPadding adds the base64 padding a segment lacks (at least one '=').
func withPadding(s string) string {
	n := (4 - len(s)%4) % 4
	if n == 0 {
		n = 4 // a full group of padding: still not base64url
	}
	return s + strings.Repeat("=", n)
}

func tamperCases(k *attackKit, tg *attackTarget) []attackCase {
	// payload and header replace a segment after signing, so the
	// signature is the control's.
	payload := func(name string, f func(ms []jsonMember) []jsonMember) attackCase {
		return attackCase{name: name, edit: func(p *tokenParts) {
			seg := b64urlText(jsonObject(f(slices.Clone(p.claims))))
			p.post = func(tok string) string { return withTokenSegment(tok, 1, seg) }
		}}
	}
	header := func(name string, f func(ms []jsonMember) []jsonMember) attackCase {
		return attackCase{name: name, edit: func(p *tokenParts) {
			seg := b64urlText(jsonObject(f(slices.Clone(p.header))))
			p.post = func(tok string) string { return withTokenSegment(tok, 0, seg) }
		}}
	}
	sig := func(name string, f func(sig []byte) []byte) attackCase {
		return attackCase{name: name, edit: func(p *tokenParts) {
			p.post = func(tok string) string {
				s := must(base64.RawURLEncoding.DecodeString(tokenSegment(tok, 2)))
				return withTokenSegment(tok, 2, b64url(f(s)))
			}
		}}
	}
	cs := []attackCase{
		payload("payload tampered (sub)", func(ms []jsonMember) []jsonMember { return setMember(ms, "sub", `"admin"`) }),
		payload("payload tampered (exp extended)", func(ms []jsonMember) []jsonMember {
			exp, _ := getMember(ms, "exp")
			return setMember(ms, "exp", jsonInt(must(strconv.ParseInt(exp, 10, 64))+3000))
		}),
		payload("payload tampered (a claim added)", func(ms []jsonMember) []jsonMember { return append(ms, jsonMember{"admin", "true"}) }),
		header("header tampered (typ)", func(ms []jsonMember) []jsonMember { return setMember(ms, "typ", `"at+jwt"`) }),
		header("header tampered (a member added)", func(ms []jsonMember) []jsonMember { return append(ms, jsonMember{"x", "1"}) }),
		sig("signature with a bit flipped (first byte)", func(s []byte) []byte { s[0] ^= 1; return s }),
		sig("signature with a bit flipped (last byte)", func(s []byte) []byte { s[len(s)-1] ^= 1; return s }),
		sig("signature truncated by a byte", func(s []byte) []byte { return s[:len(s)-1] }),
		sig("signature with a byte added", func(s []byte) []byte { return append(s, 0) }),
		sig("signature doubled", func(s []byte) []byte { return append(s, s...) }),
		sig("signature zeroed", func(s []byte) []byte { return make([]byte, len(s)) }),
		{name: "signature empty", edit: func(p *tokenParts) { p.post = func(tok string) string { return withTokenSegment(tok, 2, "") } }},
		// A signature that decodes to the genuine bytes, in a spelling the
		// app never writes: base64 with the unused low bits of the last
		// character set (RFC 4648 section 3.5). Accepting it makes tokens
		// malleable: one token, many strings.
		{name: "signature in non-canonical base64 (unused bits set)", edit: func(p *tokenParts) {
			p.post = func(tok string) string { return withTokenSegment(tok, 2, nonCanonicalBase64(tokenSegment(tok, 2))) }
		}},
		{name: "signature of another token", edit: func(p *tokenParts) {
			other := p.clone()
			other.claims = setMember(other.claims, "sub", `"someone-else"`)
			s := tokenSegment(other.compact(), 2)
			p.post = func(tok string) string { return withTokenSegment(tok, 2, s) }
		}},
	}
	if !tg.own {
		cs = append(cs, payload("payload tampered (roles)", func(ms []jsonMember) []jsonMember {
			return setMember(ms, "roles", jsonText(append(slices.Clone(tg.roles), "Keys.Admin", "Tokens.Get.All")))
		}))
	}
	return cs
}

// nonCanonicalBase64 sets the unused low bits of the last character of s, a
// canonical unpadded base64url string.
func nonCanonicalBase64(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	unused := map[int]int{2: 0xF, 3: 0x3}[len(s)%4]
	if unused == 0 {
		panic("nonCanonical: no unused bits in a string of this length")
	}
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last|unused])
}

func claimValueCases(k *attackKit, tg *attackTarget) []attackCase {
	claim := func(name, c, value string) attackCase {
		return attackCase{name: name, edit: func(p *tokenParts) { p.claims = setMember(p.claims, c, value) }}
	}
	drop := func(name, c string) attackCase {
		return attackCase{name: name, edit: func(p *tokenParts) { p.claims = delMember(p.claims, c) }}
	}
	now := time.Now().Unix()
	// Times beyond the 60 s leeway.
	cs := []attackCase{
		claim("iss wrong", "iss", `"https://evil.example/tenant-1/v2.0"`),
		claim("iss with a trailing slash", "iss", jsonText(tg.iss+"/")),
		claim("iss in another case", "iss", jsonText(strings.ToUpper(tg.iss))),
		claim("iss empty", "iss", `""`),
		claim("iss of the other kind of token", "iss", jsonText(tg.otherIss)),
		drop("iss missing", "iss"),
		claim("aud empty", "aud", `""`),
		claim("aud an empty array", "aud", `[]`),
		drop("aud missing", "aud"),
		claim("exp in the past", "exp", jsonInt(now-120)),
		claim("exp 0", "exp", "0"),
		claim("exp beyond float64 (1e400)", "exp", "1e400"),
		drop("exp missing", "exp"),
		claim("nbf in the future", "nbf", jsonInt(now+300)),
		claim("iat in the future", "iat", jsonInt(now+300)),
	}
	if tg.own {
		cs = append(cs,
			claim("aud another service", "aud", `"tok2"`),
			claim("aud two services", "aud", `["tok","tok2"]`),
			// iat is required by the maximum lifetime check.
			drop("iat missing", "iat"),
			claim("lifetime longer than any token issued", "exp", jsonInt(now+2*3600)),
			claim("exp in the year 3000", "exp", jsonInt(32503680000)),
		)
	} else {
		other := "api://ent" // the audience of the other kind of provider token
		if tg.aud == "api://ent" {
			other = "api://modelauth"
		}
		cs = append(cs,
			claim("aud wrong", "aud", `"api://other"`),
			claim("aud of the other use of the provider", "aud", jsonText(other)),
		)
	}
	return cs
}

func claimTypeCases(k *attackKit, tg *attackTarget) []attackCase {
	claim := func(name, c string, value func(v string) string) attackCase {
		return attackCase{name: name, edit: func(p *tokenParts) {
			v, _ := getMember(p.claims, c)
			p.claims = setMember(p.claims, c, value(v))
		}}
	}
	quoted := func(v string) string { return `"` + v + `"` }
	fixed := func(s string) func(string) string { return func(string) string { return s } }
	cs := []attackCase{
		// The same times as JSON strings: "<future unix>".
		claim("exp a string", "exp", quoted),
		claim("nbf a string", "nbf", quoted),
		claim("iat a string", "iat", quoted),
		claim("exp a boolean", "exp", fixed("true")),
		claim("exp an object", "exp", fixed("{}")),
		claim("exp an array", "exp", func(v string) string { return "[" + v + "]" }),
		claim("exp null", "exp", fixed("null")),
		claim("nbf a boolean", "nbf", fixed("true")),
		claim("iat an array", "iat", func(v string) string { return "[" + v + "]" }),
		claim("aud a number", "aud", fixed("123")),
		claim("aud an array of a number", "aud", fixed("[123]")),
		claim("aud an object", "aud", func(v string) string { return `{"aud":` + v + `}` }),
		claim("aud a boolean", "aud", fixed("true")),
		claim("sub a number", "sub", fixed("123")),
		claim("sub an array", "sub", func(v string) string { return "[" + v + "]" }),
		claim("sub an object", "sub", func(v string) string { return `{"sub":` + v + `}` }),
		claim("iss a number", "iss", fixed("123")),
		claim("iss an array", "iss", func(v string) string { return "[" + v + "]" }),
		claim("jti a number", "jti", fixed("123")),
	}
	if !tg.own {
		cs = append(cs,
			// The needed role as a string, not an array of strings.
			claim("roles a string", "roles", fixed(jsonText(strings.Join(tg.roles, " ")))),
			claim("roles an array of numbers", "roles", fixed("[1,2]")),
			claim("roles an array of arrays", "roles", func(v string) string { return "[" + v + "]" }),
			claim("roles an object", "roles", func(v string) string { return `{"roles":` + v + `}` }),
			claim("tid a number", "tid", fixed("123")),
			claim("oid a number", "oid", fixed("123")),
			claim("azp a number", "azp", fixed("123")),
			claim("appid a number", "appid", fixed("123")),
		)
	}
	return cs
}

func duplicateCases(k *attackKit, tg *attackTarget) []attackCase {
	edit := func(name string, status int, f func(ms []jsonMember) []jsonMember) attackCase {
		return attackCase{name: name, status: status, edit: func(p *tokenParts) { p.claims = f(p.claims) }}
	}
	// rename writes the claim under another spelling only.
	rename := func(ms []jsonMember, from, to string) []jsonMember {
		v, _ := getMember(ms, from)
		return append(delMember(ms, from), jsonMember{to, v})
	}
	var cs []attackCase
	// Every claim the app reads, once more with the same value, exactly
	// or in another case: refused whatever the value.
	ctl := tg.control()
	for _, m := range ctl.claims {
		cs = append(cs,
			edit(m.name+" twice (the same value)", 0, func(ms []jsonMember) []jsonMember { return append(ms, m) }),
			edit(m.name+" twice (then as "+strings.ToUpper(m.name)+", the same value)", 0, func(ms []jsonMember) []jsonMember {
				return append(ms, jsonMember{strings.ToUpper(m.name), m.value})
			}),
		)
	}
	badIss, badAud := `"https://evil.example/tenant-1/v2.0"`, `"api://other"`
	if tg.own {
		badAud = `"tok2"`
	}
	now := time.Now().Unix()
	future, past := jsonInt(now+300), jsonInt(now-600)
	cs = append(cs,
		edit("iss twice (a wrong one, then the right one)", 0, func(ms []jsonMember) []jsonMember {
			v, _ := getMember(ms, "iss")
			return append(setMember(ms, "iss", badIss), jsonMember{"iss", v})
		}),
		edit("ISS wrong after the right iss", 0, func(ms []jsonMember) []jsonMember { return append(ms, jsonMember{"ISS", badIss}) }),
		edit("ISS right after a wrong iss", 0, func(ms []jsonMember) []jsonMember {
			v, _ := getMember(ms, "iss")
			return append(setMember(ms, "iss", badIss), jsonMember{"ISS", v})
		}),
		edit("aud twice (a wrong one, then the right one)", 0, func(ms []jsonMember) []jsonMember {
			v, _ := getMember(ms, "aud")
			return append(setMember(ms, "aud", badAud), jsonMember{"aud", v})
		}),
		edit("AUD right after a wrong aud", 0, func(ms []jsonMember) []jsonMember {
			v, _ := getMember(ms, "aud")
			return append(setMember(ms, "aud", badAud), jsonMember{"AUD", v})
		}),
		edit("exp twice (the second expired)", 0, func(ms []jsonMember) []jsonMember {
			return append(setMember(ms, "exp", future), jsonMember{"exp", past})
		}),
		edit("exp twice (the second in the future)", 0, func(ms []jsonMember) []jsonMember {
			return append(setMember(ms, "exp", past), jsonMember{"exp", future})
		}),
		edit("sub twice (another, then the right one)", 0, func(ms []jsonMember) []jsonMember {
			v, _ := getMember(ms, "sub")
			return append(setMember(ms, "sub", `"someone-else"`), jsonMember{"sub", v})
		}),
		// Only exact names count: a claim spelled otherwise is not there.
		edit("iss only as ISS", 0, func(ms []jsonMember) []jsonMember { return rename(ms, "iss", "ISS") }),
		edit("aud only as Aud", 0, func(ms []jsonMember) []jsonMember { return rename(ms, "aud", "Aud") }),
		edit("exp only as EXP", 0, func(ms []jsonMember) []jsonMember { return rename(ms, "exp", "EXP") }),
		edit("sub only as Sub", 0, func(ms []jsonMember) []jsonMember { return rename(ms, "sub", "Sub") }),
	)
	if !tg.own {
		right := jsonText(tg.roles)
		cs = append(cs,
			edit("roles twice (x, then ROLES with the right role)", 0, func(ms []jsonMember) []jsonMember {
				return append(setMember(ms, "roles", `["x"]`), jsonMember{"ROLES", right})
			}),
			edit("roles twice (x, then roles with the right role)", 0, func(ms []jsonMember) []jsonMember {
				return append(setMember(ms, "roles", `["x"]`), jsonMember{"roles", right})
			}),
			// The token is sound but names no roles under "roles": the
			// caller lacks the right, 403 insufficient_scope.
			edit("roles only as Roles", 403, func(ms []jsonMember) []jsonMember { return rename(ms, "roles", "Roles") }),
		)
	}
	return cs
}

func subCases(k *attackKit, tg *attackTarget) []attackCase {
	return []attackCase{
		{name: "sub missing", edit: func(p *tokenParts) { p.claims = delMember(p.claims, "sub") }},
		{name: "sub empty", edit: func(p *tokenParts) { p.claims = setMember(p.claims, "sub", `""`) }},
		{name: "sub null", edit: func(p *tokenParts) { p.claims = setMember(p.claims, "sub", "null") }},
	}
}
