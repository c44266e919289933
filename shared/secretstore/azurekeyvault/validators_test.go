package azurekeyvault_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// TestOutageServesCachedKeysThenUnavailable: validators on Key Vault keep
// answering from cached keys within TTL + MaxStale of their last good read,
// answer right and wrong keys correctly meanwhile, then answer
// ErrUnavailable: never a wrong yes or no.
func TestOutageServesCachedKeysThenUnavailable(t *testing.T) {
	kv := keyvaulttest.NewServer(t, nil)
	store := openStore(t, kv, fast)
	c := fakeclock.New(time.Unix(2e9, 0))
	ring := keyring.New(store, []string{"iris"}, &keyring.Options{
		Bounds: cache.Bounds{TTL: 30 * time.Second, RefreshMinInterval: time.Second, MaxStale: 5 * time.Minute}, Now: c.Now,
		Provision: provisioner(store),
	})
	ctx := context.Background()
	keys, err := ring.Get(ctx, "iris")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []keyvaulttest.Fault{{Status: 503}, {Reset: true}} {
		kv.ClearFaults()
		// Validators read the change journal's slots (listings) and, on
		// a cold start or a conflict, secrets: both fail.
		kv.InjectFault(keyvaulttest.OpGet, f)
		kv.InjectFault(keyvaulttest.OpList, f)
		c.Advance(31 * time.Second)
		if kt, err := ring.Validate(ctx, "iris", keys.SecondaryKey); err != nil || kt != keysecret.Secondary {
			t.Fatalf("%+v: cached key within the bound: %q, %v", f, kt, err)
		}
		c.Advance(2 * time.Second)
		if _, err := ring.Validate(ctx, "iris", "not-a-key-not-a-key-not-a-key-000000"); !errors.Is(err, keyring.ErrNoMatch) {
			t.Fatalf("%+v: wrong key within the bound: %v; want ErrNoMatch", f, err)
		}
		c.Advance(5 * time.Minute)
		if _, err := ring.Validate(ctx, "iris", keys.PrimaryKey); !errors.Is(err, keyring.ErrUnavailable) {
			t.Fatalf("%+v: past the bound: %v; want ErrUnavailable", f, err)
		}
		if _, err := ring.Validate(ctx, "iris", "not-a-key-not-a-key-not-a-key-000000"); !errors.Is(err, keyring.ErrUnavailable) {
			t.Fatalf("%+v: wrong key past the bound: %v; want ErrUnavailable, not a no", f, err)
		}
		kv.ClearFaults()
		c.Advance(time.Second)
		if _, err := ring.Validate(ctx, "iris", keys.PrimaryKey); err != nil {
			t.Fatalf("%+v: after the outage: %v", f, err)
		}
	}
}

// storeCallsUnderLoad runs n validations against a ring on Key Vault, half
// with a right key and half with random wrong keys, from 8 goroutines,
// spread over at least span (0: as fast as they go), and returns the vault
// GETs they caused and how long they took.
func storeCallsUnderLoad(t testing.TB, n int, span, ttl, interval time.Duration) (gets int64, d time.Duration) {
	kv := keyvaulttest.NewServer(t, nil)
	store := openStore(t, kv, nil)
	ring := keyring.New(store, []string{"iris"}, &keyring.Options{Bounds: cache.Bounds{TTL: ttl, RefreshMinInterval: interval, MaxStale: time.Minute},
		Provision: provisioner(store)})
	ctx := context.Background()
	keys, err := ring.Get(ctx, "iris") // creates the keys: not counted
	if err != nil {
		t.Fatal(err)
	}
	start, before := time.Now(), kv.Stats().Get
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				if span > 0 {
					time.Sleep(time.Until(start.Add(span * time.Duration(i) / time.Duration(n))))
				}
				key := keys.PrimaryKey
				if i%2 == 0 {
					var b [32]byte
					rand.Read(b[:])
					key = base64.RawURLEncoding.EncodeToString(b[:])
				}
				_, err := ring.Validate(ctx, "iris", key)
				if (i%2 == 0) != errors.Is(err, keyring.ErrNoMatch) {
					t.Errorf("validation %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return kv.Stats().Get - before, time.Since(start)
}

// bound is the limit on store refreshes, duration/TTL +
// duration/interval + 2; each refresh reads three secrets (both keys and
// the active copy), so the vault sees at most three times that many GETs.
func bound(d, ttl, interval time.Duration) float64 {
	return 3 * (float64(d)/float64(ttl) + float64(d)/float64(interval) + 2)
}

func TestStoreCallsUnderLoadStayBounded(t *testing.T) {
	ttl, interval := 200*time.Millisecond, 100*time.Millisecond
	for _, span := range []time.Duration{0, 1500 * time.Millisecond} {
		gets, d := storeCallsUnderLoad(t, 20000, span, ttl, interval)
		b := bound(d, ttl, interval)
		if float64(gets) > b {
			t.Fatalf("20000 validations in %v caused %d vault GETs; bound %.1f", d, gets, b)
		}
		t.Logf("20000 validations (half wrong keys) in %v: %d vault GETs (bound %.1f)", d, gets, b)
	}
}

// BenchmarkStoreCallsUnderLoad reports the figure with the production
// defaults (TTL 30s, refresh interval 1s).
func BenchmarkStoreCallsUnderLoad(b *testing.B) {
	ttl, interval := 30*time.Second, time.Second
	for b.Loop() {
		gets, d := storeCallsUnderLoad(b, 20000, 0, ttl, interval)
		b.ReportMetric(float64(gets), "vault-gets")
		b.ReportMetric(bound(d, ttl, interval), "bound")
		b.ReportMetric(20000/d.Seconds(), "validations/s")
	}
}

// provisioner creates a service's missing keys, as the app's rotator does
// for its validators.
func provisioner(store *secretstore.Store) func(context.Context, string) error {
	rot := &rotation.Rotator{Store: store, Policy: func(string) rotation.Policy { return rotation.Policy{Period: rotation.DefaultPeriod} }}
	return rot.Provision
}
