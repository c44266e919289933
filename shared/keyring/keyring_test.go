package keyring

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/memstore"
)

// mem is a memstore with the switchable failures and the read counter
// that these tests observe, built on its BeforeFn. The tests' own reads of
// what it holds use peekCtx, which neither fails nor counts.
type mem struct {
	store    *secretstore.Store
	gets     atomic.Int64 // reads by the ring and the rotator
	down     atomic.Bool
	throttle atomic.Bool // answer every read as throttled for 10 s
	// retryAfter, if set, replaces those 10 s.
	retryAfter atomic.Int64
	// block, if set, holds every read until it is closed.
	block atomic.Pointer[chan struct{}]
}

var (
	errDown      = errors.New("store down")
	errThrottled = errors.New("throttled")
)

// peek marks the tests' own reads of the store's contents.
type peek struct{}

var peekCtx = context.WithValue(context.Background(), peek{}, true)

func newMem() *mem {
	m := &mem{}
	m.store = memstore.Open(&memstore.Options{BeforeFn: m.before})
	return m
}

func (m *mem) before(ctx context.Context, op, name string) error {
	if ctx.Value(peek{}) != nil {
		return nil
	}
	unavailable := &memstore.Error{Code: secretstore.Unavailable, Err: errDown}
	if op == memstore.OpGet {
		m.gets.Add(1)
	}
	if b := m.block.Load(); b != nil && op == memstore.OpGet {
		<-*b
	}
	switch {
	case m.down.Load():
		return unavailable
	case op == memstore.OpGet && m.throttle.Load():
		ra := cmp.Or(time.Duration(m.retryAfter.Load()), 10*time.Second)
		return &memstore.Error{Code: secretstore.Throttled, RetryAfter: ra, Err: errThrottled}
	}
	return nil
}

// newest returns a secret's newest value.
func (m *mem) newest(name string) string {
	s, err := m.store.GetSecret(peekCtx, name, "")
	if err != nil {
		panic(err)
	}
	return s.Value
}

// versions returns the properties of a secret's versions, oldest first.
func (m *mem) versions(name string) []secretstore.Properties {
	list, _ := m.store.ListVersions(peekCtx, name)
	slices.Reverse(list)
	return list
}

// disableNewest disables a secret's newest version, as an operator would.
func (m *mem) disableNewest(name string) {
	off := false
	if _, err := m.store.UpdateProperties(peekCtx, name, "", secretstore.Update{Enabled: &off}); err != nil {
		panic(err)
	}
}

// policy is the services' rotation policy in these tests.
var policy = rotation.Policy{Period: 30 * 24 * time.Hour, RefreshInterval: 24 * time.Hour}

func newRing(m *mem, c *fakeclock.Clock) *Ring {
	return newRingWith(m, c, &Options{Bounds: cache.Bounds{TTL: 30 * time.Second, RefreshMinInterval: time.Second, MaxStale: 5 * time.Minute}}, "iris", "other")
}

// newRingWith is a ring over m with opts (its clock set to c's) whose
// missing keys a rotator creates, as the app wires them: the ring writes
// no service key itself. (Regenerating keys is rotation's, and so are its
// tests.)
func newRingWith(m *mem, c *fakeclock.Clock, opts *Options, services ...string) *Ring {
	o := *opts
	o.Now = c.Now
	rot := &rotation.Rotator{Store: m.store, Policy: func(string) rotation.Policy { return policy }, Now: c.Now}
	o.Provision = rot.Provision
	return New(m.store, services, &o)
}

var ctx = context.Background()

// TestCreatesKeysOnFirstNeed: the ring asks its Provision hook for keys it
// finds missing, and reads what the rotator created (rotation's
// TestConcurrentProvisionConverges is the rotator's side).
func TestCreatesKeysOnFirstNeed(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	r := newRing(m, c)
	keys, err := r.Get(ctx, "iris")
	if err != nil {
		t.Fatal(err)
	}
	if keys.PrimaryKey == "" || keys.SecondaryKey == "" || keys.PrimaryKey == keys.SecondaryKey || keys.ActiveKeyType != keysecret.Primary {
		t.Fatalf("Get = %+v", keys)
	}
	if got := m.newest("svc-iris-primary"); got != keys.PrimaryKey {
		t.Errorf("store holds a different Primary")
	}
	if tags := m.versions("svc-iris-primary")[0].Tags; tags["managed-by"] != "modelauth" || tags["service"] != "iris" || tags["kind"] != "service-key" {
		t.Errorf("tags = %v", tags)
	}
	// A second ring (another instance) sees the same keys and creates none.
	r2 := newRing(m, c)
	keys2, err := r2.Get(ctx, "iris")
	if err != nil || keys2 != keys {
		t.Fatalf("second instance Get = %+v, %v; want %+v", keys2, err, keys)
	}
	if n := len(m.versions("svc-iris-primary")); n != 1 {
		t.Errorf("%d versions of the Primary; want 1", n)
	}
	for kt, k := range map[keysecret.KeyType]string{keysecret.Primary: keys.PrimaryKey, keysecret.Secondary: keys.SecondaryKey} {
		got, err := r2.Validate(ctx, "iris", k)
		if err != nil || got != kt {
			t.Errorf("Validate(%s) = %q, %v", kt, got, err)
		}
	}
	if _, err := r.Validate(ctx, "other", keys.PrimaryKey); !errors.Is(err, ErrNoMatch) {
		t.Errorf("iris's key for another service: %v; want ErrNoMatch", err)
	}
	if _, err := r.Validate(ctx, "nosuch", keys.PrimaryKey); !errors.Is(err, ErrUnknownService) {
		t.Errorf("unknown service: %v", err)
	}
	if err := r.ValidateAdmin(ctx, keys.PrimaryKey); !errors.Is(err, ErrNoMatch) {
		t.Errorf("a service key as admin key: %v; want ErrNoMatch", err)
	}
}

func TestUnknownKeyRefreshIsRateLimited(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	r := newRing(m, c)
	r.Get(ctx, "iris")
	start := m.gets.Load()
	for i := 0; i < 100; i++ {
		r.Validate(ctx, "iris", fmt.Sprintf("guess-%d", i))
	}
	// One refresh reads three secrets: both keys and the active copy.
	if n := m.gets.Load() - start; n > 3 {
		t.Fatalf("100 wrong keys within a second caused %d store reads; want at most 3", n)
	}
	c.Advance(time.Second)
	r.Validate(ctx, "iris", "guess")
	if n := m.gets.Load() - start; n != 6 {
		t.Fatalf("after the interval: %d reads; want 6", n)
	}
	// Correct keys cost no store read while the cache is fresh.
	keys, _ := r.Get(ctx, "iris")
	mark := m.gets.Load()
	for i := 0; i < 100; i++ {
		if _, err := r.Validate(ctx, "iris", keys.PrimaryKey); err != nil {
			t.Fatal(err)
		}
	}
	if m.gets.Load() != mark {
		t.Fatalf("valid keys read the store")
	}
}

func TestStoreOutageServesStaleThenUnavailable(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	r := newRing(m, c)
	keys, _ := r.Get(ctx, "iris")
	m.down.Store(true)
	c.Advance(31 * time.Second) // past the TTL
	if kt, err := r.Validate(ctx, "iris", keys.PrimaryKey); err != nil || kt != keysecret.Primary {
		t.Fatalf("during an outage within the staleness bound: %q, %v", kt, err)
	}
	if _, err := r.Validate(ctx, "iris", "wrong"); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("a wrong key during an outage: %v; want ErrNoMatch", err)
	}
	c.Advance(5 * time.Minute) // TTL + MaxStale passed
	_, err := r.Validate(ctx, "iris", keys.PrimaryKey)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past the staleness bound: %v; want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), keys.PrimaryKey) {
		t.Fatal("error contains the key")
	}
	m.down.Store(false)
	c.Advance(time.Second)
	if _, err := r.Validate(ctx, "iris", keys.PrimaryKey); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	// A ring that never read the keys has nothing to serve.
	m.down.Store(true)
	if _, err := newRing(m, c).Validate(ctx, "iris", keys.PrimaryKey); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cold ring during an outage: %v", err)
	}
}

func TestDisabledNewestVersion(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	r := newRing(m, c)
	keys, _ := r.Get(ctx, "iris")
	m.disableNewest("svc-iris-primary")
	if _, err := r.Get(ctx, "iris"); !errors.Is(err, ErrDisabled) {
		t.Fatalf("Get with a disabled newest version: %v", err)
	}
	c.Advance(time.Minute)
	if _, err := r.Validate(ctx, "iris", keys.PrimaryKey); err == nil {
		t.Fatal("a key whose version was disabled still validates")
	}
}

func TestAdminKey(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	r := newRing(m, c)
	if err := r.EnsureAdminKey(ctx); err != nil {
		t.Fatal(err)
	}
	admin := m.newest(keysecret.AdminKeySecret)
	if err := r.EnsureAdminKey(ctx); err != nil || m.newest(keysecret.AdminKeySecret) != admin {
		t.Fatalf("EnsureAdminKey replaced the key: %v", err)
	}
	if err := r.ValidateAdmin(ctx, admin); err != nil {
		t.Fatalf("ValidateAdmin: %v", err)
	}
	if err := r.ValidateAdmin(ctx, admin+"x"); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("wrong admin key: %v", err)
	}
	if _, err := r.Validate(ctx, "iris", admin); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("the admin key as a service key: %v", err)
	}
}

func BenchmarkValidate(b *testing.B) {
	m := newMem()
	r := newRingWith(m, fakeclock.New(time.Unix(1e9, 0)), &Options{Bounds: cache.Bounds{TTL: 30 * time.Second}}, "iris")
	keys, _ := r.Get(ctx, "iris")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Validate(ctx, "iris", keys.SecondaryKey); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestThrottledStoreIsLeftAloneForRetryAfter(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	r := newRing(m, c) // TTL 30s: the 10 s asked for is under the cap
	keys, _ := r.Get(ctx, "iris")
	m.throttle.Store(true)
	c.Advance(31 * time.Second) // past the TTL: the next request reads
	if _, err := r.Validate(ctx, "iris", keys.PrimaryKey); err != nil {
		t.Fatalf("throttled within the staleness bound: %v", err)
	}
	start := m.gets.Load()
	for i := 0; i < 9; i++ { // 9 s: less than the 10 s asked for
		c.Advance(time.Second)
		r.Validate(ctx, "iris", keys.PrimaryKey)
		r.Validate(ctx, "iris", "wrong")
	}
	if n := m.gets.Load() - start; n != 0 {
		t.Fatalf("%d store reads within Retry-After; want 0", n)
	}
	c.Advance(time.Second)
	r.Validate(ctx, "iris", keys.PrimaryKey)
	if n := m.gets.Load() - start; n == 0 {
		t.Fatal("no store read after Retry-After passed")
	}
}

func TestNoStalenessMeansUnavailableAfterTTL(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	r := newRingWith(m, c, &Options{Bounds: cache.Bounds{TTL: 30 * time.Second, RefreshMinInterval: time.Second, MaxStale: 0}}, "iris")
	keys, _ := r.Get(ctx, "iris")
	m.down.Store(true)
	c.Advance(30 * time.Second)
	if _, err := r.Validate(ctx, "iris", keys.PrimaryKey); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("MaxStale 0, store down, TTL passed: %v; want ErrUnavailable", err)
	}
}

// TestRetryAfterIsCappedAtTheStalenessBound: a Retry-After longer than
// the larger of the TTL and KEY_CACHE_MAX_STALENESS holds reads back only
// that long; with a staleness bound of 0, the TTL.
func TestRetryAfterIsCappedAtTheStalenessBound(t *testing.T) {
	for _, tt := range []struct {
		name     string
		maxStale time.Duration
		cap      time.Duration
	}{
		{"the staleness bound", 20 * time.Second, 20 * time.Second},
		{"no staleness: the TTL", 0, 5 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
			r := newRingWith(m, c, &Options{Bounds: cache.Bounds{TTL: 5 * time.Second, RefreshMinInterval: time.Second, MaxStale: tt.maxStale}}, "iris")
			keys, _ := r.Get(ctx, "iris")
			m.retryAfter.Store(int64(time.Hour))
			m.throttle.Store(true) // asks for an hour
			c.Advance(5 * time.Second)
			r.Validate(ctx, "iris", keys.PrimaryKey)
			m.throttle.Store(false)
			start := m.gets.Load()
			c.Advance(tt.cap - time.Second)
			r.Validate(ctx, "iris", keys.PrimaryKey)
			if n := m.gets.Load() - start; n != 0 {
				t.Fatalf("%d store reads before the cap", n)
			}
			c.Advance(time.Second) // the cap, not the hour asked
			if _, err := r.Validate(ctx, "iris", keys.PrimaryKey); err != nil {
				t.Fatal(err)
			}
			if m.gets.Load() == start {
				t.Fatal("the store was not read again after the cap")
			}
		})
	}
}

// TestThrottleBacksOffTheWholeInstance: a 429 on one service's read stops
// reads for every service of the ring, and of a signing-key set sharing
// the gate... (signingkey's TestThrottledKeyringStopsSigningKeyReads), for
// its Retry-After; cached keys keep serving (a wrong key: no match), and
// past the staleness bound the failure says how long the hold still lasts.
func TestThrottleBacksOffTheWholeInstance(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	b := cache.Bounds{TTL: 30 * time.Second, RefreshMinInterval: time.Second, MaxStale: time.Minute}
	services := []string{"iris", "rose", "lily"}
	r := newRingWith(m, c, &Options{Bounds: b}, services...)
	keys := map[string]Keys{}
	for _, s := range services {
		k, err := r.Get(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		keys[s] = k
	}
	c.Advance(10 * time.Second)
	r.Get(ctx, "iris") // iris is read 20 s after the others

	m.retryAfter.Store(int64(10 * time.Minute)) // capped at the minute of staleness
	m.throttle.Store(true)
	c.Advance(25 * time.Second) // rose and lily past their TTL, iris not
	if _, err := r.Validate(ctx, "iris", "wrong"); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("an unknown key while throttled: %v; want ErrNoMatch", err)
	}
	start := m.gets.Load()
	if start == 0 {
		t.Fatal("no read")
	}
	m.throttle.Store(false) // the store recovered: the instance still leaves it alone
	for i := 0; i < 59; i++ {
		for _, s := range services {
			if _, err := r.Validate(ctx, s, keys[s].PrimaryKey); err != nil && s == "iris" {
				t.Fatalf("%ds into the hold, %s: %v", i, s, err)
			}
			r.Validate(ctx, s, "wrong")
		}
		r.ValidateAdmin(ctx, "wrong")
		c.Advance(time.Second)
	}
	if n := m.gets.Load() - start; n != 0 {
		t.Fatalf("%d store reads within the hold; want 0", n)
	}
	// 59 s into the hold: rose and lily are 94 s old, past TTL + staleness
	// (90 s): their failure carries the second left.
	_, err := r.Validate(ctx, "rose", keys["rose"].PrimaryKey)
	var held *cache.HeldError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &held) || held.RetryAfter != time.Second {
		t.Fatalf("past the staleness bound: %v; want ErrUnavailable with a HeldError of 1s", err)
	}
	if _, ok := secretstore.IsThrottled(err); !ok {
		t.Fatalf("the failure does not show the 429: %v", err)
	}
	c.Advance(time.Second)
	for _, s := range services {
		if _, err := r.Validate(ctx, s, keys[s].PrimaryKey); err != nil {
			t.Fatalf("after the hold, %s: %v", s, err)
		}
	}
	if m.gets.Load() == start {
		t.Fatal("no read after the hold")
	}
}

// TestSlowStoreDoesNotHoldAnUnknownKey: a validation waits for a read
// caused by an unknown key (or an expired cache) at most ReadTimeout; the
// read goes on in the background and updates the cache.
func TestSlowStoreDoesNotHoldAnUnknownKey(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	b := cache.Bounds{TTL: 30 * time.Second, RefreshMinInterval: time.Second, MaxStale: time.Minute, ReadTimeout: 50 * time.Millisecond}
	r := newRingWith(m, c, &Options{Bounds: b}, "iris")
	keys, err := r.Get(ctx, "iris")
	if err != nil {
		t.Fatal(err)
	}
	// Another instance replaces the Primary.
	next := "newprimarykeyvalue"
	if _, err := m.store.SetSecret(peekCtx, "svc-iris-primary", secretstore.SetParams{Value: next, Enabled: true, Tags: keysecret.ServiceTags("iris")}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	m.block.Store(&release)
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	// The unknown key's read hangs: the answer comes from the cached keys.
	if _, err := r.Validate(ctx, "iris", next); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("unknown key, slow store: %v; want ErrNoMatch", err)
	}
	if _, err := r.Validate(ctx, "iris", keys.SecondaryKey); err != nil {
		t.Fatalf("a cached key while a read hangs: %v", err)
	}
	// Past the TTL, within the staleness bound: the cached keys.
	c.Advance(31 * time.Second)
	if _, err := r.Validate(ctx, "iris", keys.SecondaryKey); err != nil {
		t.Fatalf("expired cache, slow store: %v", err)
	}
	// Past TTL + staleness: unavailable, as after a failed read.
	c.Advance(time.Minute)
	if _, err := r.Validate(ctx, "iris", keys.SecondaryKey); !errors.Is(err, ErrUnavailable) || !errors.Is(err, cache.ErrReadTimeout) {
		t.Fatalf("past the staleness bound, slow store: %v; want ErrUnavailable (ErrReadTimeout)", err)
	}
	select {
	case <-release:
		t.Fatal("released early")
	default:
	}
	// Released, the background read lands in the cache.
	m.block.Store(nil)
	close(release)
	released = true
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := r.Validate(ctx, "iris", next); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the background read never landed: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKeyVersionsExpireAtTheirDueTimePlusMargin: the key versions created
// on the ring's first need expire at their due time plus the margin, and
// the active copy never (a regenerated key's: rotation's
// TestRegeneratedKeyKeepsItsDueTime).
func TestKeyVersionsExpireAtTheirDueTimePlusMargin(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	period := policy.Period // and the margin is as long
	r := newRingWith(m, c, &Options{Bounds: cache.Bounds{TTL: time.Second}}, "iris")
	if _, err := r.Get(ctx, "iris"); err != nil {
		t.Fatal(err)
	}
	want := c.Now().Add(2 * period)
	for _, name := range []string{"svc-iris-primary", "svc-iris-secondary"} {
		if e := m.versions(name)[0].Expires; e == nil || !e.Equal(want) {
			t.Errorf("%s exp = %v; want %v", name, e, want)
		}
	}
	if e := m.versions(keysecret.ActiveSecret("iris"))[0].Expires; e != nil {
		t.Errorf("the active copy expires: %v", e)
	}
}
