package signingkey_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/journal"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/memstore"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// hooked is a memstore whose calls are counted and can be throttled or
// held.
type hooked struct {
	store    *secretstore.Store
	calls    atomic.Int64
	throttle atomic.Int64 // a Retry-After: every call answers 429 while > 0
	block    atomic.Pointer[chan struct{}]
}

func newHooked() *hooked {
	h := &hooked{}
	h.store = memstore.Open(&memstore.Options{BeforeFn: func(ctx context.Context, op, name string) error {
		h.calls.Add(1)
		if b := h.block.Load(); b != nil {
			select { // a store honours its caller's deadline
			case <-*b:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if ra := time.Duration(h.throttle.Load()); ra > 0 {
			return &memstore.Error{Code: secretstore.Throttled, RetryAfter: ra}
		}
		return nil
	}})
	return h
}

// TestThrottledKeyringStopsSigningKeyReads: the signing keys and the
// service keys read through one journal over the store, with one gate (as
// the app wires them): a 429 on the administrator key's miss stops the
// journal's reads, the signing keys' included, for its Retry-After, while
// the known keys keep verifying; past the staleness bound their failure
// says how long the hold still lasts.
func TestThrottledKeyringStopsSigningKeyReads(t *testing.T) {
	ctx := context.Background()
	h, clk := newHooked(), fakeclock.New(time.Unix(1e9, 0))
	b := cache.Bounds{TTL: 30 * time.Second, RefreshMinInterval: time.Second, MaxStale: time.Minute}
	gate := cache.NewGate(b, secretstore.IsThrottled)
	jo := journal.DefaultOptions()
	jo.Bounds, jo.Gate, jo.Now = b, gate, clk.Now
	jo.Tracked, jo.AllVersions = keysecret.Tracked, keysecret.AllVersions
	jo.Private = func(n string) bool { return n == signingkey.SecretName }
	jo.Public = signingkey.PublicOf
	jo.Names = func() []string { return append(keyring.Secrets(nil), signingkey.SecretName) }
	j := journal.New(h.store, &jo)
	h.store.OnWrite(j.Hook)
	set := signingkey.New(h.store, policy, &signingkey.Options{Bounds: b, Now: clk.Now, Gate: gate, Journal: j})
	ring := keyring.New(h.store, nil, &keyring.Options{Bounds: b, Now: clk.Now, Gate: gate, Journal: j})
	if set.Journal() != j {
		t.Fatal("the set does not use the journal it is given")
	}
	k, err := set.Signer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.EnsureAdminKey(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	if _, err := set.Published(ctx); err != nil {
		t.Fatal(err)
	}

	h.throttle.Store(int64(20 * time.Second))
	clk.Advance(25 * time.Second) // a poll is due (the slot less its grace)
	ring.ValidateAdmin(ctx, "wrong")
	h.throttle.Store(0) // recovered: the instance still leaves it alone
	start := h.calls.Load()
	for i := 0; i < 19; i++ {
		if got, err := set.Lookup(ctx, k.Kid); err != nil || got.Kid != k.Kid {
			t.Fatalf("%ds into the hold: Lookup = %v, %v", i, got, err)
		}
		set.Lookup(ctx, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") // an unknown kid
		if _, err := set.Published(ctx); err != nil {
			t.Fatalf("%ds into the hold: Published: %v", i, err)
		}
		clk.Advance(time.Second)
	}
	if n := h.calls.Load() - start; n != 0 {
		t.Fatalf("%d store calls within the hold; want 0", n)
	}
	clk.Advance(time.Second)
	if _, err := set.Published(ctx); err != nil {
		t.Fatal(err)
	}
	if h.calls.Load() == start {
		t.Fatal("no read after the hold")
	}

	// A hold that outlasts the staleness bound: the failure carries what is
	// left of it.
	h.throttle.Store(int64(time.Hour)) // capped at the minute of staleness
	clk.Advance(31 * time.Second)
	if _, err := set.Published(ctx); err != nil {
		t.Fatalf("throttled within the staleness bound: %v", err)
	}
	h.throttle.Store(0)
	clk.Advance(59 * time.Second) // the view is 90 s old: past a poll period (25 s) + staleness
	_, err = set.Lookup(ctx, k.Kid)
	var held *cache.HeldError
	if !errors.As(err, &held) || held.RetryAfter != time.Second {
		t.Fatalf("past the staleness bound: %v; want a HeldError of 1s", err)
	}
}

// TestSlowStoreDoesNotHoldAnUnknownKid: a kid that is not cached waits for
// the store at most ReadTimeout, then is unknown (the cached keys answer).
func TestSlowStoreDoesNotHoldAnUnknownKid(t *testing.T) {
	ctx := context.Background()
	h, clk := newHooked(), fakeclock.New(time.Unix(1e9, 0))
	b := cache.Bounds{TTL: 30 * time.Second, RefreshMinInterval: time.Second, MaxStale: time.Minute, ReadTimeout: 50 * time.Millisecond}
	set := signingkey.New(h.store, policy, &signingkey.Options{Bounds: b, Now: clk.Now})
	if _, err := set.Signer(ctx); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	h.block.Store(&release)
	defer close(release)
	if _, err := set.Lookup(ctx, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); !errors.Is(err, signingkey.ErrUnknownKey) {
		t.Fatalf("unknown kid, slow store: %v; want ErrUnknownKey", err)
	}
}
