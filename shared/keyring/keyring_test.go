package keyring

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
)

// memDriver is a minimal in-memory driver with switchable failures, enough
// for the ring: newest-version reads and writes.
type memDriver struct {
	mu            sync.Mutex
	versions      map[string][]driver.Secret
	gets          atomic.Int64
	down          atomic.Bool
	throttle      atomic.Bool // answer every read as throttled for 10 s
	getsDown      atomic.Bool // fail reads only
	setBreaksGets atomic.Bool // the next write succeeds, then reads fail
	disabled      map[string]bool
}

var (
	errDown      = errors.New("store down")
	errThrottled = errors.New("throttled")
)

func newMem() *memDriver {
	return &memDriver{versions: map[string][]driver.Secret{}, disabled: map[string]bool{}}
}

func (m *memDriver) SetSecret(_ context.Context, name string, p driver.SetParams) (driver.Properties, error) {
	if m.down.Load() {
		return driver.Properties{}, errDown
	}
	if m.setBreaksGets.Swap(false) {
		defer m.getsDown.Store(true)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := driver.Secret{Value: p.Value, Properties: driver.Properties{Name: name, Version: fmt.Sprint(len(m.versions[name])), Enabled: true, Tags: p.Tags, Expires: p.Expires}}
	m.versions[name] = append(m.versions[name], s)
	return s.Properties, nil
}

func (m *memDriver) GetSecret(_ context.Context, name, version string) (driver.Secret, error) {
	m.gets.Add(1)
	if m.down.Load() {
		return driver.Secret{}, errDown
	}
	if m.throttle.Load() {
		return driver.Secret{}, errThrottled
	}
	if m.getsDown.Load() {
		return driver.Secret{}, errDown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.versions[name]
	if len(vs) == 0 {
		return driver.Secret{}, errNotFound
	}
	if m.disabled[name] {
		return driver.Secret{}, errDisabled
	}
	return vs[len(vs)-1], nil
}

var (
	errNotFound = errors.New("not found")
	errDisabled = errors.New("disabled")
)

func (m *memDriver) ListVersions(_ context.Context, name string) ([]driver.Properties, error) {
	if m.down.Load() {
		return nil, errDown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.versions[name]
	if len(vs) == 0 {
		return nil, errNotFound
	}
	out := make([]driver.Properties, 0, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		out = append(out, vs[i].Properties)
	}
	return out, nil
}

func (m *memDriver) UpdateProperties(context.Context, string, string, driver.Update) (driver.Properties, error) {
	return driver.Properties{}, errors.New("not used")
}

func (m *memDriver) ErrorCode(err error) driver.ErrorCode {
	switch {
	case errors.Is(err, errNotFound):
		return driver.NotFound
	case errors.Is(err, errDisabled):
		return driver.Disabled
	case errors.Is(err, errDown):
		return driver.Unavailable
	case errors.Is(err, errThrottled):
		return driver.Throttled
	}
	return driver.Unknown
}

func (m *memDriver) RetryAfter(err error) time.Duration {
	if errors.Is(err, errThrottled) {
		return 10 * time.Second
	}
	return 0
}

func (m *memDriver) Close() error { return nil }

func (m *memDriver) newest(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.versions[name]
	return vs[len(vs)-1].Value
}

// policy is the services' rotation policy in these tests.
var policy = rotation.Policy{Period: 30 * 24 * time.Hour, RefreshInterval: 24 * time.Hour}

// writer is the rotator that writes the keys of a ring over m, as the app
// wires them: it creates them on the ring's first need, and regenerates.
func writer(m *memDriver, c *fakeclock.Clock, r *Ring) *rotation.Rotator {
	return &rotation.Rotator{Store: secretstore.New(m), Keys: r, Policy: func(string) rotation.Policy { return policy }, Now: c.Now}
}

func newRing(m *memDriver, c *fakeclock.Clock) *Ring {
	return newRingWith(m, c, &Options{Bounds: cache.Bounds{TTL: 30 * time.Second, RefreshMinInterval: time.Second, MaxStale: 5 * time.Minute}}, "iris", "other")
}

// newRingWith is a ring over m with opts (its clock set to c's) whose
// missing keys a rotator creates.
func newRingWith(m *memDriver, c *fakeclock.Clock, opts *Options, services ...string) *Ring {
	o := *opts
	o.Now = c.Now
	o.Provision = func(ctx context.Context, service string) error { return writer(m, c, nil).Provision(ctx, service) }
	return New(secretstore.New(m), services, &o)
}

// regenerate is regen_key as the keys function runs it: the rotator
// writes, then the ring reads the keys back.
func regenerate(m *memDriver, c *fakeclock.Clock, r *Ring, service string, kt keysecret.KeyType, value string) (Keys, error) {
	if err := writer(m, c, r).Regenerate(ctx, service, kt, value); err != nil {
		return Keys{}, err
	}
	return r.Get(ctx, service)
}

var ctx = context.Background()

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
	if tags := m.versions["svc-iris-primary"][0].Tags; tags["managed-by"] != "modelauth" || tags["service"] != "iris" || tags["kind"] != "service-key" {
		t.Errorf("tags = %v", tags)
	}
	// A second ring (another instance) sees the same keys and creates none.
	r2 := newRing(m, c)
	keys2, err := r2.Get(ctx, "iris")
	if err != nil || keys2 != keys {
		t.Fatalf("second instance Get = %+v, %v; want %+v", keys2, err, keys)
	}
	if n := len(m.versions["svc-iris-primary"]); n != 1 {
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

func TestConcurrentCreationConverges(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	rings := make([]*Ring, 8)
	for i := range rings {
		rings[i] = newRing(m, c)
	}
	var wg sync.WaitGroup
	for _, r := range rings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Get(ctx, "iris"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Whatever raced, a read now gives every instance the newest keys.
	want := Keys{PrimaryKey: m.newest("svc-iris-primary"), SecondaryKey: m.newest("svc-iris-secondary"), ActiveKeyType: keysecret.Primary}
	for i, r := range rings {
		got, err := r.Get(ctx, "iris")
		if err != nil || got != want {
			t.Errorf("ring %d: %+v, %v", i, got, err)
		}
	}
}

func TestRegenerateRevokes(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	a, b := newRing(m, c), newRing(m, c) // two instances
	before, _ := a.Get(ctx, "iris")
	if _, err := b.Validate(ctx, "iris", before.PrimaryKey); err != nil {
		t.Fatal(err)
	}
	after, err := regenerate(m, c, a, "iris", keysecret.Primary, "")
	if err != nil {
		t.Fatal(err)
	}
	if after.PrimaryKey == before.PrimaryKey || after.SecondaryKey != before.SecondaryKey {
		t.Fatalf("Regenerate = %+v; before %+v", after, before)
	}
	// At once on the instance that did it.
	if _, err := a.Validate(ctx, "iris", before.PrimaryKey); !errors.Is(err, ErrNoMatch) {
		t.Errorf("old Primary on the regenerating instance: %v; want ErrNoMatch", err)
	}
	// The new key works at once everywhere (refresh on an unknown key).
	if kt, err := b.Validate(ctx, "iris", after.PrimaryKey); err != nil || kt != keysecret.Primary {
		t.Errorf("new Primary on the other instance: %q, %v", kt, err)
	}
	// And since b just re-read, the old one is refused there too.
	if _, err := b.Validate(ctx, "iris", before.PrimaryKey); !errors.Is(err, ErrNoMatch) {
		t.Errorf("old Primary on the other instance: %v", err)
	}

	// A third instance that cached the old key keeps it at most one TTL.
	c3 := newRing(m, c)
	c3.Validate(ctx, "iris", after.PrimaryKey)
	again, _ := regenerate(m, c, a, "iris", keysecret.Primary, strings.Repeat("k", 40))
	if again.PrimaryKey != strings.Repeat("k", 40) {
		t.Fatalf("user-supplied value not used: %+v", again)
	}
	if _, err := c3.Validate(ctx, "iris", after.PrimaryKey); err != nil {
		t.Errorf("within the TTL the cached key still works on another instance: %v", err)
	}
	c.Advance(30 * time.Second)
	if _, err := c3.Validate(ctx, "iris", after.PrimaryKey); !errors.Is(err, ErrNoMatch) {
		t.Errorf("after the TTL the replaced key is refused: %v", err)
	}
	if _, err := regenerate(m, c, a, "iris", keysecret.Primary, "short"); err == nil {
		t.Error("a malformed user-supplied key was accepted")
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
	if _, err := regenerate(m, c, newRing(m, c), "iris", keysecret.Secondary, ""); !errors.Is(err, rotation.ErrUnavailable) {
		t.Fatalf("regenerate during an outage: %v", err)
	}
}

func TestDisabledNewestVersion(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	r := newRing(m, c)
	keys, _ := r.Get(ctx, "iris")
	m.mu.Lock()
	m.disabled["svc-iris-primary"] = true
	m.mu.Unlock()
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

func TestParseKeyType(t *testing.T) {
	for in, want := range map[string]keysecret.KeyType{"Primary": keysecret.Primary, "primary": keysecret.Primary, "SECONDARY": keysecret.Secondary, "": "", "Tertiary": ""} {
		got, ok := keysecret.ParseKeyType(in)
		if got != want || ok != (want != "") {
			t.Errorf("ParseKeyType(%q) = %q, %v", in, got, ok)
		}
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

func TestRegenerateRevokesEvenIfReadBackFails(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	r := newRing(m, c)
	before, _ := r.Get(ctx, "iris")
	m.setBreaksGets.Store(true)
	_, err := regenerate(m, c, r, "iris", keysecret.Primary, "")
	if !errors.Is(err, rotation.ErrWritten) {
		t.Fatalf("Regenerate with reads failing: %v; want ErrWritten", err)
	}
	if _, err := r.Validate(ctx, "iris", before.PrimaryKey); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("the replaced key still validates on this instance: %v", err)
	}
	if kt, err := r.Validate(ctx, "iris", before.SecondaryKey); err != nil || kt != keysecret.Secondary {
		t.Fatalf("the other key stopped working: %q, %v", kt, err)
	}
	m.getsDown.Store(false)
	if kt, err := r.Validate(ctx, "iris", m.newest("svc-iris-primary")); err != nil || kt != keysecret.Primary {
		t.Fatalf("the written key: %q, %v", kt, err)
	}
}

func TestRegenerateRefusesAKeyInUse(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	r := newRing(m, c)
	r.EnsureAdminKey(ctx)
	iris, _ := r.Get(ctx, "iris")
	other, _ := r.Get(ctx, "other")
	for name, v := range map[string]string{
		"admin key": m.newest(keysecret.AdminKeySecret), "other service's key": other.PrimaryKey,
		"own other slot": iris.SecondaryKey, "same value": iris.PrimaryKey,
	} {
		if _, err := regenerate(m, c, r, "iris", keysecret.Primary, v); !errors.Is(err, rotation.ErrKeyInUse) {
			t.Errorf("regen to the %s: %v; want ErrKeyInUse", name, err)
		}
	}
	if got, _ := r.Get(ctx, "iris"); got != iris {
		t.Errorf("a refused regen changed the keys")
	}
}

func TestRetryAfterIsCappedAtTheTTL(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	r := newRingWith(m, c, &Options{Bounds: cache.Bounds{TTL: 5 * time.Second, RefreshMinInterval: time.Second, MaxStale: time.Minute}}, "iris")
	keys, _ := r.Get(ctx, "iris")
	m.throttle.Store(true) // asks for 10 s
	c.Advance(5 * time.Second)
	r.Validate(ctx, "iris", keys.PrimaryKey)
	m.throttle.Store(false)
	start := m.gets.Load()
	c.Advance(5 * time.Second) // the cap, not the 10 s asked
	r.Validate(ctx, "iris", keys.PrimaryKey)
	if m.gets.Load() == start {
		t.Fatal("the store was not read again after the TTL, despite the cap")
	}
}

func TestKeyVersionsExpireAtTheirDueTimePlusMargin(t *testing.T) {
	m, c := newMem(), fakeclock.New(time.Unix(1e9, 0))
	period := policy.Period // and the margin is as long
	r := newRingWith(m, c, &Options{Bounds: cache.Bounds{TTL: time.Second}}, "iris")
	if _, err := r.Get(ctx, "iris"); err != nil {
		t.Fatal(err)
	}
	want := c.Now().Add(2 * period)
	for _, name := range []string{"svc-iris-primary", "svc-iris-secondary"} {
		if e := m.versions[name][0].Expires; e == nil || !e.Equal(want) {
			t.Errorf("%s exp = %v; want %v", name, e, want)
		}
	}
	if e := m.versions[keysecret.ActiveSecret("iris")][0].Expires; e != nil {
		t.Errorf("the active copy expires: %v", e)
	}
	// A regenerated key keeps its slot's activation, and so its due time.
	m.mu.Lock()
	m.versions["svc-iris-secondary"][0].Tags = map[string]string{keysecret.TagState: keysecret.StateCurrent, keysecret.TagActivated: fmt.Sprint(c.Now().Add(-time.Hour).Unix())}
	m.mu.Unlock()
	c.Advance(24 * time.Hour)
	if _, err := regenerate(m, c, r, "iris", keysecret.Secondary, ""); err != nil {
		t.Fatal(err)
	}
	vs := m.versions["svc-iris-secondary"]
	if e := vs[len(vs)-1].Expires; e == nil || !e.Equal(c.Now().Add(-25*time.Hour).Add(2*period)) {
		t.Errorf("regenerated exp = %v", e)
	}
	if got := vs[len(vs)-1].Tags[keysecret.TagActivated]; got != vs[0].Tags[keysecret.TagActivated] {
		t.Errorf("regenerated activation %q; want %q", got, vs[0].Tags[keysecret.TagActivated])
	}
}
