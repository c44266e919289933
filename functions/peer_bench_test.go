package functions

import (
	"crypto/rsa"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/shared/authn"
)

// The new-token benchmarks verify the same 4096 tokens in turn, in
// process: BenchmarkNewTokenPeerVerify as cmd/benchvalidate's peer server
// does (golang-jwt with RegisteredClaims, the algorithm pinned, iss, aud
// and exp required), BenchmarkNewTokenOwnVerify with the app's own checks
// (jwtauth.Authority.Verify: strict claims, iat, the lifetime bound,
// forbidden headers, the kid from the published keys), and
// BenchmarkNewTokenAuthenticate through authn with every token new to
// the cache. The differences are what the hardening and the cache cost a
// new token.

func benchTokens(b *testing.B) (*App, []string) {
	a := newTestApp(b, benchTokenServices)
	toks := issueTokens(b, a, 4096)
	for i := range toks {
		toks[i] = strings.TrimPrefix(toks[i], "Bearer ")
	}
	return a, toks
}

func BenchmarkNewTokenPeerVerify(b *testing.B) {
	a, toks := benchTokens(b)
	key, err := a.SigningKeys.Signer(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	keys := map[string]*rsa.PublicKey{key.Kid: key.Public.(*rsa.PublicKey)}
	p := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}), jwt.WithIssuer(a.Settings.Issuer),
		jwt.WithAudience("bench"), jwt.WithExpirationRequired())
	keyFunc := func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, errors.New("unknown kid")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var c jwt.RegisteredClaims
		if _, err := p.ParseWithClaims(toks[i%len(toks)], &c, keyFunc); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkNewTokenOwnVerify(b *testing.B) {
	a, toks := benchTokens(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := a.Tokens.Verify(b.Context(), "bench", toks[i%len(toks)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkNewTokenAuthenticate(b *testing.B) {
	a, toks := benchTokens(b)
	s := a.Services()
	s.TokenCacheSize = 1 // one slot: the tokens in turn are each new to it
	creds := make([]authn.Credential, len(toks))
	for i, tok := range toks {
		creds[i] = authn.FromHeader([]string{"Bearer " + tok})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, f := s.Authenticate(b.Context(), "bench", creds[i%len(creds)]); f != nil {
			b.Fatal(f)
		}
		i++
	}
}
