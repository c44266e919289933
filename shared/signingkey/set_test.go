package signingkey_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/logtest"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/filestore"
	"github.com/modelauth/modelauth/shared/signingkey"
)

const ttl = 30 * time.Second

func newStore(t *testing.T, clk *fakeclock.Clock) *secretstore.Store {
	t.Helper()
	st, err := filestore.Open(t.TempDir(), &filestore.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newSet returns the set of another instance over st: its own client of
// the store, whose write hook is the set's own journal.
func newSet(st *secretstore.Store, clk *fakeclock.Clock, p signingkey.Policy) *signingkey.Set {
	return newSetLog(st, clk, p, nil)
}

func newSetLog(st *secretstore.Store, clk *fakeclock.Clock, p signingkey.Policy, log *slog.Logger) *signingkey.Set {
	return signingkey.New(st.Share(), p, &signingkey.Options{
		Logger: log,
		Bounds: cache.Bounds{TTL: ttl, RefreshMinInterval: time.Second, MaxStale: 5 * time.Minute},
		Now:    clk.Now,
	})
}

func kids(keys []*signingkey.Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.Kid)
	}
	slices.Sort(out)
	return out
}

// sign checks that k's private key signs and its public key verifies.
func sign(t *testing.T, k *signingkey.Key) {
	t.Helper()
	sum := sha256.Sum256([]byte("x"))
	if _, err := k.Signer().Sign(rand.Reader, sum[:], crypto.SHA256); err != nil {
		t.Fatalf("signing with %s: %v", k.Kid, err)
	}
}

func TestRotationLifecycle(t *testing.T) {
	for _, tc := range []struct{ alg, store string }{
		{signingkey.RS256, "file"}, {signingkey.ES256, "file"}, {signingkey.ES256, "keyvault"},
	} {
		t.Run(tc.alg+" "+tc.store, func(t *testing.T) {
			ctx := context.Background()
			clk := fakeclock.New(at(0))
			p := policy
			p.Alg = tc.alg
			set := newSet(openStore(t, tc.store, clk), clk, p)
			var removed []string
			set.OnRemove(func(k []string) { removed = append(removed, k...) })

			first, err := set.Signer(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sign(t, first)
			if again, _ := set.Signer(ctx); again.Kid != first.Kid {
				t.Fatalf("second Signer wrote another key: %s, then %s", first.Kid, again.Kid)
			}
			if res, err := set.RotateIfDue(ctx); err != nil || res.Outcome != signingkey.NotDue {
				t.Fatalf("Rotate before due = %+v, %v; want not_due", res, err)
			}
			clk.Advance(p.Period - p.PublishAhead)
			res, err := set.RotateIfDue(ctx)
			if err != nil || res.Outcome != signingkey.Rotated {
				t.Fatalf("Rotate when due = %+v, %v; want rotated", res, err)
			}
			if want := clk.Now().Add(p.PublishAhead).Truncate(time.Second); !res.Activates.Equal(want) {
				t.Fatalf("next key activates %v; want %v", res.Activates, want)
			}
			next := res.Kid
			if res, _ := set.RotateNow(ctx); res.Outcome != signingkey.Pending {
				t.Fatalf("forced Rotate with a key waiting = %q; want pending", res.Outcome)
			}
			pub, _ := set.Published(ctx)
			if got, want := kids(pub), kids([]*signingkey.Key{first, {Kid: next}}); !slices.Equal(got, want) {
				t.Fatalf("published = %v; want both %v", got, want)
			}
			if s, _ := set.Signer(ctx); s.Kid != first.Kid {
				t.Fatal("the next key signs before its activation")
			}
			clk.Advance(p.PublishAhead)
			s, _ := set.Signer(ctx)
			if s.Kid != next {
				t.Fatalf("signer after the activation = %s; want %s", s.Kid, next)
			}
			sign(t, s)
			// The retired key verifies until its retention ends.
			clk.Advance(p.Retention - time.Second)
			if _, err := set.Lookup(ctx, first.Kid); err != nil {
				t.Fatalf("retired key within its retention: %v", err)
			}
			clk.Advance(time.Second)
			if _, err := set.Lookup(ctx, first.Kid); !errors.Is(err, signingkey.ErrUnknownKey) {
				t.Fatalf("retired key past its retention: err = %v; want ErrUnknownKey", err)
			}
			pub, _ = set.Published(ctx)
			if got := kids(pub); !slices.Equal(got, []string{next}) {
				t.Fatalf("published past retention = %v; want [%s]", got, next)
			}
			clk.Advance(ttl) // the next read drops the key and says so
			if _, err := set.Published(ctx); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(removed, []string{first.Kid}) {
				t.Fatalf("OnRemove told %v; want [%s]", removed, first.Kid)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	for _, kind := range stores {
		t.Run(kind, func(t *testing.T) { testRevoke(t, kind) })
	}
}

func testRevoke(t *testing.T, kind string) {
	ctx := context.Background()
	clk := fakeclock.New(at(0))
	st := openStore(t, kind, clk)
	set := newSet(st, clk, policy)
	other := newSet(st, clk, policy) // another instance
	var removed []string
	set.OnRemove(func(k []string) { removed = append(removed, k...) })
	old, err := set.Signer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Lookup(ctx, old.Kid); err != nil {
		t.Fatal(err)
	}
	res, err := set.Revoke(ctx)
	if err != nil || res.Outcome != signingkey.RevokedOutcome || res.RevokedKid != old.Kid || res.Kid == old.Kid {
		t.Fatalf("Revoke = %+v, %v", res, err)
	}
	if !slices.Equal(removed, []string{old.Kid}) {
		t.Fatalf("OnRemove told %v; want the revoked %s at once", removed, old.Kid)
	}
	if _, err := set.Lookup(ctx, old.Kid); !errors.Is(err, signingkey.ErrUnknownKey) {
		t.Fatalf("revoked key on this instance: err = %v", err)
	}
	pub, _ := set.Published(ctx)
	if got := kids(pub); !slices.Equal(got, []string{res.Kid}) {
		t.Fatalf("published after revoke = %v; want only [%s]", got, res.Kid)
	}
	if s, _ := set.Signer(ctx); s.Kid != res.Kid {
		t.Fatalf("signer after revoke = %s; want the new %s at once", s.Kid, res.Kid)
	}
	// The other instance: the new key at once (an unknown kid lists the
	// journal's open slot); the old key refused within the journal's
	// bound.
	if _, err := other.Lookup(ctx, res.Kid); err != nil {
		t.Fatalf("other instance, new key: %v", err)
	}
	if b := other.Journal().Bound(); b != 2*ttl {
		t.Fatalf("bound = %v; want two slots", b)
	}
	clk.Advance(other.Journal().Bound())
	if _, err := other.Lookup(ctx, old.Kid); !errors.Is(err, signingkey.ErrUnknownKey) {
		t.Fatalf("other instance past the journal's bound: err = %v; want ErrUnknownKey", err)
	}
	// The revoked version stays disabled in the store.
	vs, _ := st.ListVersions(ctx, signingkey.SecretName)
	for _, v := range vs {
		if v.Tags[signingkey.TagKid] == old.Kid && (v.Enabled || v.Tags[signingkey.TagState] != "revoked") {
			t.Fatalf("revoked version: enabled %v, state %q", v.Enabled, v.Tags[signingkey.TagState])
		}
	}
}

func TestLookupRefusesMalformedKids(t *testing.T) {
	clk := fakeclock.New(at(0))
	set := newSet(newStore(t, clk), clk, policy)
	for _, kid := range []string{"", "../../etc/passwd", "https://evil.example/jwks.json", "a/b", "kid with spaces", string(make([]byte, 43))} {
		if _, err := set.Lookup(context.Background(), kid); !errors.Is(err, signingkey.ErrUnknownKey) {
			t.Errorf("Lookup(%q) err = %v; want ErrUnknownKey", kid, err)
		}
	}
}

// TestUnusableVersionsAreNotUsed: versions written by hand that are not
// keys this package wrote (garbage, or a key whose kid tag is not its
// thumbprint) are neither published nor verify, and are logged; the keys
// that are fine still serve.
func TestUnusableVersionsAreNotUsed(t *testing.T) {
	ctx := context.Background()
	clk := fakeclock.New(at(0))
	st := newStore(t, clk)
	log, logs := logtest.New()
	set := newSetLog(st, clk, policy, log)
	k, err := set.Signer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherKid, _ := signingkey.Thumbprint(other.Public())
	der, _ := x509.MarshalPKCS8PrivateKey(other)
	forged := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	pub, _ := signingkey.PublicOf(forged)
	reader := newSet(st, clk, policy) // another instance, started before the writes
	if _, err := reader.Lookup(ctx, k.Kid); err != nil {
		t.Fatal(err)
	}
	// Written by hand through a client whose hook is the set's journal:
	// their records are in the journal like any write's.
	hand := st.Share()
	hand.OnWrite(set.Journal().Hook)
	for i, w := range []struct{ value, kid string }{
		{"not a key", otherKid[:42] + "A"},
		// A real key under the signer's kid: its record's public key is
		// the other key's, whose thumbprint is not the kid.
		{forged, k.Kid},
		{forged, otherKid[:42] + "B"},
	} {
		if _, err := hand.SetSecret(ctx, signingkey.SecretName, secretstore.SetParams{
			Value: w.value, Enabled: true,
			// Activated before the signer, each retired within its
			// retention: published, if it were usable.
			Tags: map[string]string{"kind": "signing-key", "kid": w.kid, "alg": "RS256", "activated": strconv.FormatInt(at(0).Add(time.Duration(i-3)*10*time.Minute).Unix(), 10)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(reader.Journal().Bound())
	for name, s := range map[string]*signingkey.Set{"writer": set, "reader": reader} {
		pub, err := s.Published(ctx)
		if err != nil {
			t.Fatalf("%s: Published: %v", name, err)
		}
		if got := kids(pub); !slices.Equal(got, []string{k.Kid}) {
			t.Fatalf("%s: published = %v; want only the signer [%s]", name, got, k.Kid)
		}
		for _, p := range pub {
			if !p.Public.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public) {
				t.Fatalf("%s: the signer's kid verifies with the forged key", name)
			}
		}
		for _, kid := range []string{otherKid[:42] + "A", otherKid[:42] + "B"} {
			if _, err := s.Lookup(ctx, kid); !errors.Is(err, signingkey.ErrUnknownKey) {
				t.Fatalf("%s: Lookup of a hand-written version: %v; want ErrUnknownKey", name, err)
			}
		}
		got, err := s.Lookup(ctx, k.Kid)
		if err != nil || !got.Public.(*rsa.PublicKey).Equal(k.Public) {
			t.Fatalf("%s: Lookup of the signer = %v, %v", name, got, err)
		}
	}
	if n := strings.Count(logs.String(), "signing_key_unusable"); n < 3 {
		t.Fatalf("%d signing_key_unusable logs; want one per hand-written version:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), pub) || strings.Contains(logs.String(), "PRIVATE") {
		t.Fatal("key material in the log")
	}
	// Signing goes on with the signer.
	if s, err := set.Signer(ctx); err != nil || s.Kid != k.Kid {
		t.Fatalf("Signer = %v, %v", s, err)
	}
}

// TestNoValidTokenRefused drives two instances through random rotations,
// forced rotations and time, issuing real tokens from both (jwtauth over
// the set), and checks after every step that every unexpired token
// verifies on both instances and that its key is in both JWKSs: no valid
// token is ever refused before its exp, and the JWKS never lacks a key that
// a valid token needs.
func TestNoValidTokenRefused(t *testing.T) {
	const lifetime = time.Hour
	p := policy
	p.Period = 3 * time.Hour // rotations often
	p.Alg = signingkey.ES256 // the schedule is the same; RSA keys take long to generate
	for seed := range uint64(6) {
		t.Run("", func(t *testing.T) {
			ctx := context.Background()
			rng := mrand.New(mrand.NewPCG(seed, 1))
			clk := fakeclock.New(at(0))
			st := newStore(t, clk)
			var insts []*jwtauth.Authority
			var sets []*signingkey.Set
			for range 2 {
				set := newSet(st, clk, p)
				a, err := jwtauth.New(set, "https://app/api", p.Alg, &jwtauth.Options{Leeway: time.Minute, MaxTokenBytes: jwtauth.DefaultMaxTokenBytes, Now: clk.Now})
				if err != nil {
					t.Fatal(err)
				}
				insts, sets = append(insts, a), append(sets, set)
			}
			type token struct {
				raw, kid string
				exp      time.Time
			}
			var tokens []token
			rotations := 0
			for step := range 200 {
				i := rng.IntN(2)
				switch rng.IntN(4) {
				case 0:
					clk.Advance(time.Duration(rng.Int64N(int64(40 * time.Minute))))
				case 1:
					rotate := sets[i].RotateIfDue
					if rng.IntN(4) == 0 {
						rotate = sets[i].RotateNow
					}
					res, err := rotate(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if res.Outcome == signingkey.Rotated {
						rotations++
					}
				default:
					tok, issued, err := insts[i].Issue(ctx, "svc", "client", lifetime, lifetime/2)
					if err != nil {
						t.Fatal(err)
					}
					tokens = append(tokens, token{tok.AccessToken, issued.Kid, time.Unix(tok.ExpiryOn, 0)})
				}
				now := clk.Now()
				for _, tok := range tokens {
					if !now.Before(tok.exp) {
						continue
					}
					for i := range insts {
						if _, err := insts[i].Verify(ctx, "svc", tok.raw); err != nil {
							t.Fatalf("seed %d step %d: instance %d refuses a token valid until %v: %v", seed, step, i, tok.exp, err)
						}
						pub, _ := sets[i].Published(ctx)
						if !slices.Contains(kids(pub), tok.kid) {
							t.Fatalf("seed %d step %d: instance %d's JWKS lacks the key of a valid token", seed, step, i)
						}
					}
				}
			}
			if rotations < 3 {
				t.Fatalf("seed %d: only %d rotations: the walk does not exercise the timeline", seed, rotations)
			}
		})
	}
}

func TestConcurrentSignersConverge(t *testing.T) {
	ctx := context.Background()
	clk := fakeclock.New(at(0))
	st := newStore(t, clk)
	var wg sync.WaitGroup
	got := make([]string, 4)
	for i := range got {
		wg.Go(func() {
			k, err := newSet(st, clk, policy).Signer(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = k.Kid
		})
	}
	wg.Wait()
	// Whatever each wrote first, a fresh read agrees on one signer, and
	// every key written is published (each may have signed a token).
	fresh := newSet(st, clk, policy)
	s, err := fresh.Signer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := fresh.Published(ctx)
	for _, kid := range got {
		if !slices.Contains(kids(pub), kid) {
			t.Fatalf("key %s written by a concurrent first Signer is not published", kid)
		}
	}
	if !slices.Contains(got, s.Kid) {
		t.Fatalf("signer %s is none of the keys written", s.Kid)
	}
}

// TestConcurrentFirstSignerWritesOne: concurrent requests on one instance
// with no key write one key, not one each.
func TestConcurrentFirstSignerWritesOne(t *testing.T) {
	ctx := context.Background()
	clk := fakeclock.New(at(0))
	st := newStore(t, clk)
	p := policy
	p.Alg = signingkey.ES256
	set := newSet(st, clk, p)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := set.Signer(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	vs, err := st.ListVersions(ctx, signingkey.SecretName)
	if err != nil || len(vs) != 1 {
		t.Fatalf("versions written by 20 concurrent first Signers = %d (%v); want 1", len(vs), err)
	}
}
