package signingkey_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/secretstore/memstore"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// instance tags the store calls of one instance, through its context.
type instance struct{}

// getCounter counts the reads of signing-key values, by instance.
type getCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *getCounter) before(ctx context.Context, op, name string) error {
	if op == memstore.OpGet && name == signingkey.SecretName {
		who, _ := ctx.Value(instance{}).(string)
		c.mu.Lock()
		c.n[who]++
		c.mu.Unlock()
	}
	return nil
}

func (c *getCounter) get(who string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[who]
}

func (c *getCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

func (c *getCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = map[string]int{}
}

// TestInstancesKnowKeysFromTheJournal: two instances over one store, each
// with its own client and journal. A rotates; B verifies the new key's
// tokens and publishes it from its journal alone, reading no signing key;
// B signs with it once it signs, reading its private key once for any
// number of tokens; a revoke on A is refused on B within the journal's
// bound.
func TestInstancesKnowKeysFromTheJournal(t *testing.T) {
	for _, alg := range []string{signingkey.RS256, signingkey.ES256} {
		t.Run(alg, func(t *testing.T) { testInstances(t, alg) })
	}
}

func testInstances(t *testing.T, alg string) {
	clk := fakeclock.New(at(0))
	gets := &getCounter{n: map[string]int{}}
	base := memstore.Open(&memstore.Options{Now: clk.Now, BeforeFn: gets.before})
	ctxA := context.WithValue(context.Background(), instance{}, "a")
	ctxB := context.WithValue(context.Background(), instance{}, "b")
	p := policy
	p.Alg = alg
	a, b := newSet(base, clk, p), newSet(base, clk, p)
	var removedB []string
	b.OnRemove(func(k []string) { removedB = append(removedB, k...) })
	auth := func(s *signingkey.Set) *jwtauth.Authority {
		au, err := jwtauth.New(s, "https://app/api", alg, &jwtauth.Options{Leeway: time.Minute, MaxTokenBytes: jwtauth.DefaultMaxTokenBytes, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return au
	}
	authA, authB := auth(a), auth(b)
	issue := func(au *jwtauth.Authority, ctx context.Context) (string, string) {
		t.Helper()
		tok, issued, err := au.Issue(ctx, "svc", "client", time.Hour, time.Hour/2)
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken, issued.Kid
	}
	// pass lets d go by while both instances serve (their journals poll).
	pass := func(d time.Duration) {
		t.Helper()
		for end := clk.Now().Add(d); clk.Now().Before(end); {
			clk.Advance(min(20*time.Second, end.Sub(clk.Now())))
			if err := a.Sync(ctxA); err != nil {
				t.Fatal(err)
			}
			if err := b.Sync(ctxB); err != nil {
				t.Fatal(err)
			}
		}
	}

	first, _ := issue(authA, ctxA)
	if _, err := authB.Verify(ctxB, "svc", first); err != nil {
		t.Fatal(err)
	}
	gets.reset() // B's cold start read the first key: from now on, none

	res, err := a.RotateNow(ctxA)
	if err != nil || res.Outcome != signingkey.Rotated {
		t.Fatalf("RotateNow = %+v, %v", res, err)
	}
	pass(b.Journal().Bound())
	pub, err := b.Published(ctxB)
	if err != nil || !slices.Contains(kids(pub), res.Kid) {
		t.Fatalf("B's JWKS after the journal's bound = %v, %v; want the next key %s", kids(pub), err, res.Kid)
	}
	retired, _ := issue(authA, ctxA) // by the first key, still signing
	pass(p.PublishAhead - b.Journal().Bound())
	tok, kid := issue(authA, ctxA)
	if kid != res.Kid {
		t.Fatalf("A signs with %s; want the new %s", kid, res.Kid)
	}
	if _, err := authB.Verify(ctxB, "svc", tok); err != nil {
		t.Fatalf("B refuses the new key's token: %v", err)
	}
	if _, err := authB.Verify(ctxB, "svc", retired); err != nil {
		t.Fatalf("B refuses the retired key's token: %v", err)
	}
	if n := gets.get("b"); n != 0 {
		t.Fatalf("B read signing-key %d times to verify; want 0", n)
	}
	if n := gets.total(); n != 0 {
		// A wrote both keys: it signs with what it wrote, reading nothing.
		t.Fatalf("%d reads of signing-key in all; want 0", n)
	}

	// B signs with the new key: one read of its private key.
	var fromB []string
	for range 10 {
		tok, kid := issue(authB, ctxB)
		if kid != res.Kid {
			t.Fatalf("B signs with %s; want %s", kid, res.Kid)
		}
		if _, err := authA.Verify(ctxA, "svc", tok); err != nil {
			t.Fatalf("A refuses B's token: %v", err)
		}
		fromB = append(fromB, tok)
	}
	if n := gets.get("b"); n != 1 {
		t.Fatalf("B read signing-key %d times to sign 10 tokens; want 1", n)
	}

	// A revokes the key: refused on A at once, on B within the bound.
	rv, err := a.Revoke(ctxA)
	if err != nil || rv.RevokedKid != res.Kid {
		t.Fatalf("Revoke = %+v, %v", rv, err)
	}
	if _, err := authA.Verify(ctxA, "svc", fromB[0]); !errors.Is(err, jwtauth.ErrUnknownKey) {
		t.Fatalf("A verifies a revoked key's token: %v", err)
	}
	pass(b.Journal().Bound())
	for _, tok := range []string{tok, fromB[9]} {
		if _, err := authB.Verify(ctxB, "svc", tok); !errors.Is(err, jwtauth.ErrUnknownKey) {
			t.Fatalf("B verifies a key revoked on A past the journal's bound: %v", err)
		}
	}
	if !slices.Contains(removedB, res.Kid) {
		t.Fatalf("B's OnRemove told %v; want the revoked %s", removedB, res.Kid)
	}
	if pub, _ := b.Published(ctxB); slices.Contains(kids(pub), res.Kid) {
		t.Fatal("B still publishes the revoked key")
	}
	tok, kid = issue(authB, ctxB)
	if kid != rv.Kid {
		t.Fatalf("B signs with %s after the revoke; want the revoke's %s", kid, rv.Kid)
	}
	if _, err := authA.Verify(ctxA, "svc", tok); err != nil {
		t.Fatal(err)
	}
	if n := gets.get("b"); n != 2 {
		t.Fatalf("B read signing-key %d times in all; want 2 (each key it signed with, once)", n)
	}
}

// TestPublicOf: the public key of a signing-key value, PKIX in base64url,
// short enough for the journal's record (3 tags of 256 characters).
func TestPublicOf(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]interface {
		Public() crypto.PublicKey
	}{"RSA": rk, "EC": ek} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := signingkey.PublicOf(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
		if !ok || len(got) > 3*256 {
			t.Fatalf("%s: PublicOf = %d characters, %v", name, len(got), ok)
		}
		raw, err := base64.RawURLEncoding.DecodeString(got)
		if err != nil {
			t.Fatalf("%s: not base64url without padding: %v", name, err)
		}
		pub, err := x509.ParsePKIXPublicKey(raw)
		if err != nil || !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
			t.Fatalf("%s: PublicOf is not the key's public key (%v)", name, err)
		}
	}
	ecDER, _ := x509.MarshalECPrivateKey(ek)
	for _, v := range []string{"", "not a key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))} {
		if got, ok := signingkey.PublicOf(v); ok || got != "" {
			t.Errorf("PublicOf(%.20q) = %q, true; want false", v, got)
		}
	}
}
