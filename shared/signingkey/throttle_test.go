package signingkey_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keyring"
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
			<-*b
		}
		if ra := time.Duration(h.throttle.Load()); ra > 0 {
			return &memstore.Error{Code: secretstore.Throttled, RetryAfter: ra}
		}
		return nil
	}})
	return h
}

// TestThrottledKeyringStopsSigningKeyReads: the signing keys and the
// service keys share one gate per store (as the app wires them): a 429 on
// the administrator key's read stops the signing keys' reads for its
// Retry-After, while the cached keys keep verifying; past the staleness
// bound their failure says how long the hold still lasts.
func TestThrottledKeyringStopsSigningKeyReads(t *testing.T) {
	ctx := context.Background()
	h, clk := newHooked(), fakeclock.New(time.Unix(1e9, 0))
	b := cache.Bounds{TTL: 30 * time.Second, RefreshMinInterval: time.Second, MaxStale: time.Minute}
	gate := cache.NewGate(b, secretstore.IsThrottled)
	set := signingkey.New(h.store, policy, &signingkey.Options{Bounds: b, Now: clk.Now, Gate: gate})
	ring := keyring.New(h.store, nil, &keyring.Options{Bounds: b, Now: clk.Now, Gate: gate})
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
	clk.Advance(25 * time.Second) // both past their TTL
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
	clk.Advance(59 * time.Second) // the read is 90 s old: TTL + staleness
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
