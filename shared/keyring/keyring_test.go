package keyring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/journal"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/memstore"
)

// These tests run several instances (rings, each with its own journal and
// its own *secretstore.Store) over one in-memory vault, on a fake clock.
// The vault counts every call the instances make (memstore's BeforeFn);
// the tests' own looks at what it holds use peekCtx, which is neither
// counted nor failed.

var ctx = context.Background()

// peek marks the tests' own calls.
type peek struct{}

var peekCtx = context.WithValue(context.Background(), peek{}, true)

var errDown = errors.New("store down")

// vault is one store shared by several instances.
type vault struct {
	t     *testing.T
	clock *fakeclock.Clock
	base  *secretstore.Store // no write hook: the tests' own handle

	mu    sync.Mutex
	calls map[string]int // "op name" -> count

	down       atomic.Bool  // every call fails, Unavailable
	failWrites atomic.Bool  // every write (set, update) fails, Unavailable
	throttle   atomic.Bool  // every read (get, list) fails, Throttled
	retryAfter atomic.Int64 // the throttle's Retry-After
	block      atomic.Pointer[chan struct{}]
}

// start is mid-slot (slots are 30 s from the epoch): a miss lists only the
// open slot.
var start = time.Date(2026, 12, 2, 10, 0, 10, 0, time.UTC)

func newVault(t *testing.T) *vault {
	v := &vault{t: t, clock: fakeclock.New(start)}
	v.retryAfter.Store(int64(20 * time.Second))
	v.base = memstore.Open(&memstore.Options{Now: v.clock.Now, BeforeFn: v.before})
	return v
}

func (v *vault) before(ctx context.Context, op, name string) error {
	if ctx.Value(peek{}) != nil {
		return nil
	}
	v.mu.Lock()
	if v.calls == nil {
		v.calls = map[string]int{}
	}
	v.calls[op+" "+name]++
	v.mu.Unlock()
	read := op == memstore.OpGet || op == memstore.OpList
	if b := v.block.Load(); b != nil && read {
		select { // a slow store that honours its caller's deadline
		case <-*b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	switch {
	case v.down.Load():
		return &memstore.Error{Code: secretstore.Unavailable, Err: errDown}
	case !read && v.failWrites.Load():
		return &memstore.Error{Code: secretstore.Unavailable, Err: errDown}
	case read && v.throttle.Load():
		return &memstore.Error{Code: secretstore.Throttled, RetryAfter: time.Duration(v.retryAfter.Load())}
	}
	return nil
}

// count counts the calls whose "op name" starts with prefix.
func (v *vault) count(prefix string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for k, c := range v.calls {
		if strings.HasPrefix(k, prefix) {
			n += c
		}
	}
	return n
}

// reads counts the reads: gets and lists.
func (v *vault) reads() int { return v.count(memstore.OpGet+" ") + v.count(memstore.OpList+" ") }

// writes counts the writes: sets and updates.
func (v *vault) writes() int { return v.count(memstore.OpSet+" ") + v.count(memstore.OpUpdate+" ") }

func (v *vault) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = nil
}

// newest returns a secret's newest value.
func (v *vault) newest(name string) string {
	v.t.Helper()
	s, err := v.base.GetSecret(peekCtx, name, "")
	if err != nil {
		v.t.Fatalf("reading %s: %v", name, err)
	}
	return s.Value
}

// versions returns the properties of a secret's versions.
func (v *vault) versions(name string) []secretstore.Properties {
	list, _ := v.base.ListVersions(peekCtx, name)
	return list
}

// policy is the services' rotation policy in these tests.
var policy = rotation.Policy{Period: 30 * 24 * time.Hour, RefreshInterval: 24 * time.Hour}

// bounds are the key caches' bounds in these tests: a TTL of 30 s, misses
// 1 s apart, 5 min of staleness, no read timeout (the fake clock does not
// move while a read runs).
var bounds = cache.Bounds{TTL: 30 * time.Second, RefreshMinInterval: time.Second, MaxStale: 5 * time.Minute}

// The journal polls once per slot, at a time of its own in the slot: the
// slot is a little shorter than the TTL, and at least the TTL less the
// largest Grace (5 s). A view is fresh at least minFresh after it was read
// and at most the TTL.
const minFresh = 25 * time.Second

// instance is one instance of the app: its store client, carrying its
// ring's journal's write hook, its ring and its rotator.
type instance struct {
	store      *secretstore.Store
	ring       *Ring
	rot        *rotation.Rotator
	provisions atomic.Int64
}

type instanceOpts struct {
	bounds cache.Bounds
	gate   *cache.Gate
	// journal: make the journal outside the ring, as the app does.
	journal bool
}

func (v *vault) instance(services ...string) *instance {
	return v.instanceWith(instanceOpts{bounds: bounds}, services...)
}

func (v *vault) instanceWith(io instanceOpts, services ...string) *instance {
	in := &instance{store: v.base.Share()}
	in.rot = &rotation.Rotator{Store: in.store, Policy: func(string) rotation.Policy { return policy }, Now: v.clock.Now}
	o := &Options{Bounds: io.bounds, Gate: io.gate, Now: v.clock.Now, Provision: func(ctx context.Context, service string) error {
		in.provisions.Add(1)
		return in.rot.Provision(ctx, service)
	}}
	if io.journal {
		jo := journal.DefaultOptions()
		jo.Bounds, jo.Gate, jo.Now = io.bounds, io.gate, v.clock.Now
		jo.Tracked = keysecret.Tracked
		names := Secrets(services)
		jo.Names = func() []string { return names }
		o.Journal = journal.New(in.store, &jo)
		in.store.OnWrite(o.Journal.Hook)
	}
	in.ring = New(in.store, services, o)
	if io.journal && in.ring.Journal() != o.Journal {
		v.t.Fatal("the ring does not use the journal it was given")
	}
	in.rot.Keys = in.ring
	return in
}

// get returns a service's keys, creating them if needed.
func (in *instance) get(t *testing.T, service string) Keys {
	t.Helper()
	k, err := in.ring.Get(ctx, service)
	if err != nil {
		t.Fatalf("Get(%s): %v", service, err)
	}
	return k
}

// want checks that key validates for service as kt.
func (in *instance) want(t *testing.T, service, key string, kt keysecret.KeyType) {
	t.Helper()
	got, err := in.ring.Validate(ctx, service, key)
	if err != nil || got != kt {
		t.Fatalf("Validate(%s) = %q, %v; want %s", service, got, err, kt)
	}
}

// refused checks that key is refused for service with ErrNoMatch.
func (in *instance) refused(t *testing.T, service, key string) {
	t.Helper()
	if got, err := in.ring.Validate(ctx, service, key); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("Validate(%s) = %q, %v; want ErrNoMatch", service, got, err)
	}
}

// TestCreatesKeysOnFirstNeed: the keys a ring finds missing are created
// (by its Provision hook, the rotator), once; the instance that created
// them knows them at once, and so does an instance that starts later.
func TestCreatesKeysOnFirstNeed(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris", "other")
	// The first validation creates the keys; the key presented is none.
	a.refused(t, "iris", "not-a-key-of-anyone")
	if n := a.provisions.Load(); n != 1 {
		t.Fatalf("%d provisions; want 1", n)
	}
	for _, name := range []string{"svc-iris-primary", "svc-iris-secondary", "svc-iris-active"} {
		if n := len(v.versions(name)); n != 1 {
			t.Fatalf("%s has %d versions; want 1", name, n)
		}
	}
	if n := len(v.versions("svc-other-primary")); n != 0 {
		t.Fatalf("another service's keys were created: %d versions", n)
	}
	keys := a.get(t, "iris")
	if keys.PrimaryKey == "" || keys.SecondaryKey == "" || keys.PrimaryKey == keys.SecondaryKey || keys.ActiveKeyType != keysecret.Primary {
		t.Fatalf("Get = %+v", keys)
	}
	if keys.PrimaryKey != v.newest("svc-iris-primary") || keys.SecondaryKey != v.newest("svc-iris-secondary") || keys.PrimaryKey != v.newest("svc-iris-active") {
		t.Fatal("Get does not return what the store holds")
	}
	if tags := v.versions("svc-iris-primary")[0].Tags; tags["managed-by"] != "modelauth" || tags["service"] != "iris" || tags["kind"] != "service-key" {
		t.Errorf("tags = %v", tags)
	}
	// Known at once on the instance that created them: no read.
	v.reset()
	a.want(t, "iris", keys.PrimaryKey, keysecret.Primary)
	a.want(t, "iris", keys.SecondaryKey, keysecret.Secondary)
	if n := v.reads(); n != 0 {
		t.Fatalf("validating keys just created made %d reads", n)
	}

	// An instance that starts later knows them, and creates nothing.
	b := v.instance("iris", "other")
	b.want(t, "iris", keys.PrimaryKey, keysecret.Primary)
	b.want(t, "iris", keys.SecondaryKey, keysecret.Secondary)
	if k := b.get(t, "iris"); k != keys {
		t.Fatalf("second instance Get = %+v; want %+v", k, keys)
	}
	if n := b.provisions.Load(); n != 0 {
		t.Fatalf("the second instance provisioned %d times", n)
	}
	if n := len(v.versions("svc-iris-primary")); n != 1 {
		t.Fatalf("%d versions of the Primary; want 1", n)
	}
}

// TestKeysCreatedElsewhereWorkAtOnce: keys that another instance created
// after this one last read the journal work here at once (a miss), not
// ErrUnavailable until the next poll.
func TestKeysCreatedElsewhereWorkAtOnce(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris", "other")
	b := v.instance("iris", "other")
	a.get(t, "iris")
	a.want(t, "iris", a.get(t, "iris").PrimaryKey, keysecret.Primary) // a's view: other's keys missing
	v.clock.Advance(2 * time.Second)
	other := b.get(t, "other") // b creates them
	for _, k := range []string{other.PrimaryKey, other.SecondaryKey} {
		if _, err := a.ring.Validate(ctx, "other", k); err != nil {
			t.Errorf("a key created on another instance, at once: %v; want it to validate", err)
		}
	}
	if n := len(v.versions("svc-other-primary")); n != 1 {
		t.Fatalf("%d versions of other's Primary; want 1", n)
	}
}

// TestProvisionIsAskedOncePerInterval: keys that cannot be created make
// their service's keys unavailable, and Provision is asked at most once
// per RefreshMinInterval for the service, however many requests.
func TestProvisionIsAskedOncePerInterval(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris", "other")
	a.get(t, "other")
	v.failWrites.Store(true)
	n0 := a.provisions.Load()
	for range 100 {
		if _, err := a.ring.Validate(ctx, "iris", "k"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("keys that cannot be created: %v; want ErrUnavailable", err)
		}
		v.clock.Advance(10 * time.Millisecond)
	}
	if n := a.provisions.Load() - n0; n != 1 {
		t.Fatalf("%d provisions in 1 s; want 1", n)
	}
	if _, err := a.ring.Get(ctx, "iris"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get, keys cannot be created: %v; want ErrUnavailable", err)
	}
	v.failWrites.Store(false)
	v.clock.Advance(time.Second)
	keys := a.get(t, "iris")
	a.want(t, "iris", keys.SecondaryKey, keysecret.Secondary)
}

// TestWrongKeysAreRefused: a key that is not one of the service's is
// refused with ErrNoMatch: another service's, the administrator key, a key
// one character off; and a service key is not the administrator key.
func TestWrongKeysAreRefused(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris", "other")
	iris, other := a.get(t, "iris"), a.get(t, "other")
	// A service key presented as the administrator key, before there is
	// one: the key is created, and the service key is not it.
	if err := a.ring.ValidateAdmin(ctx, iris.PrimaryKey); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("a service key as the admin key: %v; want ErrNoMatch", err)
	}
	admin := v.newest(keysecret.AdminKeySecret)
	if admin == "" || admin == iris.PrimaryKey || admin == iris.SecondaryKey {
		t.Fatal("no distinct admin key was created")
	}
	if err := a.ring.ValidateAdmin(ctx, admin); err != nil {
		t.Fatalf("ValidateAdmin: %v", err)
	}
	for _, k := range []string{iris.PrimaryKey, iris.SecondaryKey, other.PrimaryKey, admin + "x", admin[:len(admin)-1], ""} {
		if err := a.ring.ValidateAdmin(ctx, k); !errors.Is(err, ErrNoMatch) {
			t.Errorf("ValidateAdmin(wrong key): %v; want ErrNoMatch", err)
		}
	}
	for _, k := range []string{other.PrimaryKey, other.SecondaryKey, admin, iris.PrimaryKey + "x", iris.PrimaryKey[1:], strings.ToUpper(iris.PrimaryKey), ""} {
		_, err := a.ring.Validate(ctx, "iris", k)
		if !errors.Is(err, ErrNoMatch) {
			t.Errorf("Validate(iris, wrong key): %v; want ErrNoMatch", err)
		}
		if k != "" && err != nil && strings.Contains(err.Error(), k) {
			t.Errorf("the error contains the key: %v", err)
		}
	}
	a.refused(t, "other", iris.PrimaryKey)
	a.refused(t, "other", iris.SecondaryKey)
	a.want(t, "other", other.SecondaryKey, keysecret.Secondary)
	for _, s := range []string{"nosuch", "\x00admin", "IRIS"} {
		if _, err := a.ring.Validate(ctx, s, iris.PrimaryKey); !errors.Is(err, ErrUnknownService) {
			t.Errorf("Validate(%q): %v; want ErrUnknownService", s, err)
		}
		if _, err := a.ring.Get(ctx, s); !errors.Is(err, ErrUnknownService) {
			t.Errorf("Get(%q): %v; want ErrUnknownService", s, err)
		}
		if _, ok := a.ring.Service(s); ok {
			t.Errorf("Service(%q) found", s)
		}
	}
	// InUse knows every key, and no other value.
	for _, k := range []string{iris.PrimaryKey, iris.SecondaryKey, other.PrimaryKey, admin} {
		if !a.ring.InUse(ctx, k) {
			t.Error("a key is not InUse")
		}
	}
	if a.ring.InUse(ctx, iris.PrimaryKey+"x") {
		t.Error("a value that is no key is InUse")
	}
	// The admin key on a second instance.
	b := v.instance("iris", "other")
	if err := b.ring.ValidateAdmin(ctx, admin); err != nil {
		t.Fatalf("ValidateAdmin on another instance: %v", err)
	}
	if err := b.ring.ValidateAdmin(ctx, iris.SecondaryKey); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("a service key as the admin key on another instance: %v; want ErrNoMatch", err)
	}
}

func TestEnsureAdminKey(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris")
	if err := a.ring.EnsureAdminKey(ctx); err != nil {
		t.Fatal(err)
	}
	admin := v.newest(keysecret.AdminKeySecret)
	if err := a.ring.EnsureAdminKey(ctx); err != nil || v.newest(keysecret.AdminKeySecret) != admin {
		t.Fatalf("EnsureAdminKey replaced the key: %v", err)
	}
	b := v.instance("iris")
	if err := b.ring.EnsureAdminKey(ctx); err != nil || len(v.versions(keysecret.AdminKeySecret)) != 1 {
		t.Fatalf("a second instance's EnsureAdminKey wrote again: %v", err)
	}
	if tags := v.versions(keysecret.AdminKeySecret)[0].Tags; tags["kind"] != keysecret.KindAdminKey || tags["managed-by"] != "modelauth" {
		t.Errorf("tags = %v", tags)
	}
	if err := a.ring.ValidateAdmin(ctx, admin); err != nil {
		t.Fatal(err)
	}
	// The store down and the journal never read: unavailable.
	v.down.Store(true)
	c := v.instance("iris")
	if err := c.ring.EnsureAdminKey(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("EnsureAdminKey, store down: %v; want ErrUnavailable", err)
	}
}

// TestRegeneratedKeyOnTheWritingInstance: a key replaced through the
// instance's store (a rotator's Regenerate, or a direct write) works there
// at once, without a read, and the old one is refused at once, also
// through the active copy.
func TestRegeneratedKeyOnTheWritingInstance(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris")
	old := a.get(t, "iris")
	v.clock.Advance(2 * time.Second)

	// Regenerate the Secondary (not the active key).
	if err := a.rot.Regenerate(ctx, "iris", keysecret.Secondary, ""); err != nil {
		t.Fatal(err)
	}
	sec := v.newest("svc-iris-secondary")
	v.reset()
	a.want(t, "iris", sec, keysecret.Secondary)
	a.want(t, "iris", old.PrimaryKey, keysecret.Primary)
	if n := v.reads(); n != 0 {
		t.Fatalf("the regenerated key cost %d reads on the writing instance", n)
	}
	a.refused(t, "iris", old.SecondaryKey)

	// Regenerate the Primary, the active key: its copy moves with it.
	v.clock.Advance(2 * time.Second)
	if err := a.rot.Regenerate(ctx, "iris", keysecret.Primary, ""); err != nil {
		t.Fatal(err)
	}
	prim := v.newest("svc-iris-primary")
	if v.newest("svc-iris-active") != prim {
		t.Fatal("the active copy did not follow")
	}
	a.want(t, "iris", prim, keysecret.Primary)
	a.refused(t, "iris", old.PrimaryKey)
	// A value in use cannot be the new key (InUse is the ring's).
	if err := a.rot.Regenerate(ctx, "iris", keysecret.Secondary, prim); !errors.Is(err, rotation.ErrKeyInUse) {
		t.Fatalf("Regenerate with a key in use: %v; want ErrKeyInUse", err)
	}

	// A direct write of the Secondary through the hooked store.
	v.clock.Advance(2 * time.Second)
	next := "direct-secondary-key-value-0123456789"
	if _, err := a.store.SetSecret(ctx, "svc-iris-secondary", secretstore.SetParams{Value: next, Enabled: true, Tags: keysecret.ServiceTags("iris")}); err != nil {
		t.Fatal(err)
	}
	v.reset()
	a.want(t, "iris", next, keysecret.Secondary)
	if n := v.reads(); n != 0 {
		t.Fatalf("a directly written key cost %d reads on the writing instance", n)
	}
	a.refused(t, "iris", sec)

	// A direct write of the Primary: the copy, never moved by a rotation,
	// would keep the old value; the ring has it converged at once.
	v.clock.Advance(2 * time.Second)
	n0 := a.provisions.Load()
	direct := "direct-primary-key-value-0123456789ab"
	if _, err := a.store.SetSecret(ctx, "svc-iris-primary", secretstore.SetParams{Value: direct, Enabled: true, Tags: keysecret.ServiceTags("iris")}); err != nil {
		t.Fatal(err)
	}
	a.want(t, "iris", direct, keysecret.Primary)
	a.refused(t, "iris", prim)
	if a.provisions.Load() == n0 || v.newest("svc-iris-active") != direct {
		t.Fatal("the lagging active copy was not converged")
	}
}

// TestRegeneratedKeyOnAnotherInstance: another instance refuses the old key
// within the journal's bound, and takes the new one at once (a miss).
func TestRegeneratedKeyOnAnotherInstance(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris")
	b := v.instanceWith(instanceOpts{bounds: bounds, journal: true}, "iris")
	old := a.get(t, "iris")
	b.want(t, "iris", old.SecondaryKey, keysecret.Secondary)
	v.clock.Advance(2 * time.Second)

	// The old Secondary, presented alone, stops within the bound.
	if err := a.rot.Regenerate(ctx, "iris", keysecret.Secondary, ""); err != nil {
		t.Fatal(err)
	}
	written := v.clock.Now()
	bound := b.ring.Journal().Bound()
	if bound != 2*bounds.TTL {
		t.Fatalf("bound = %v; want two slots", bound)
	}
	for {
		_, err := b.ring.Validate(ctx, "iris", old.SecondaryKey)
		if errors.Is(err, ErrNoMatch) {
			break
		}
		if err != nil {
			t.Fatalf("the old key: %v", err)
		}
		// Meanwhile the other keys keep working.
		b.want(t, "iris", old.PrimaryKey, keysecret.Primary)
		if v.clock.Now().Sub(written) > bound {
			t.Fatalf("the old key still works %v after the write; bound %v", v.clock.Now().Sub(written), bound)
		}
		v.clock.Advance(time.Second)
	}
	t.Logf("the old key was refused %v after the write", v.clock.Now().Sub(written))
	b.want(t, "iris", v.newest("svc-iris-secondary"), keysecret.Secondary)

	// The new Primary works at once, through one read; the old one is
	// refused at once then.
	v.clock.Advance(2 * time.Second)
	if err := a.rot.Regenerate(ctx, "iris", keysecret.Primary, ""); err != nil {
		t.Fatal(err)
	}
	prim := v.newest("svc-iris-primary")
	v.reset()
	b.want(t, "iris", prim, keysecret.Primary)
	if n := v.reads(); n < 1 || n > 2 {
		t.Fatalf("the new key cost %d reads on another instance; want 1 or 2 (the slots not yet listed)", n)
	}
	b.refused(t, "iris", old.PrimaryKey)

	// A direct write (a second store client, hooked by its own journal).
	v.clock.Advance(2 * time.Second)
	c := v.instance("iris")
	next := "direct-secondary-key-value-0123456789"
	if _, err := c.store.SetSecret(ctx, "svc-iris-secondary", secretstore.SetParams{Value: next, Enabled: true, Tags: keysecret.ServiceTags("iris")}); err != nil {
		t.Fatal(err)
	}
	b.want(t, "iris", next, keysecret.Secondary)
	a.want(t, "iris", next, keysecret.Secondary)
}

// TestMissesCostOneReadPerIntervalForTheInstance: unknown keys, for any
// number of services at any rate, cost at most one read per
// RefreshMinInterval for the whole instance, and no write.
func TestMissesCostOneReadPerIntervalForTheInstance(t *testing.T) {
	v := newVault(t)
	services := make([]string, 100)
	for i := range services {
		services[i] = fmt.Sprintf("s%d", i)
	}
	a := v.instance(services...)
	keys := map[string]Keys{}
	for _, s := range services {
		keys[s] = a.get(t, s)
	}
	if err := a.ring.EnsureAdminKey(ctx); err != nil {
		t.Fatal(err)
	}
	b := v.instance(services...)
	for _, s := range services {
		b.want(t, s, keys[s].PrimaryKey, keysecret.Primary)
	}
	v.clock.Advance(2 * time.Second)

	// A burst at one moment: one read.
	v.reset()
	for _, s := range services {
		for i := range 10 {
			b.refused(t, s, fmt.Sprintf("guess-%d", i))
		}
		b.want(t, s, keys[s].SecondaryKey, keysecret.Secondary)
	}
	if err := b.ring.ValidateAdmin(ctx, "guess"); !errors.Is(err, ErrNoMatch) {
		t.Fatal(err)
	}
	if n := v.reads(); n != 1 {
		t.Fatalf("1001 unknown keys at one moment made %d reads; want 1", n)
	}

	// A flood for two minutes, polls included.
	v.reset()
	const d, step = 2 * time.Minute, 100 * time.Millisecond
	for i := 0; time.Duration(i)*step < d; i++ {
		for j := range 10 {
			s := services[(i*10+j)%len(services)]
			b.refused(t, s, fmt.Sprintf("guess-%d", i))
		}
		v.clock.Advance(step)
	}
	max := int(d/bounds.RefreshMinInterval) + int(d/minFresh) + 2
	if n := v.reads(); n > max {
		t.Fatalf("a flood of unknown keys over 100 services made %d reads in %v; want at most %d", n, d, max)
	} else {
		t.Logf("flood: %d reads in %v", n, d)
	}
	if n := v.writes(); n != 0 || b.provisions.Load() != 0 {
		t.Fatalf("unknown keys caused %d writes, %d provisions", n, b.provisions.Load())
	}
}

// TestSteadyStateCostsOneListPerSlot: valid keys of 100 services, all the
// time, cost one listing per slot (a TTL), however many services.
func TestSteadyStateCostsOneListPerSlot(t *testing.T) {
	v := newVault(t)
	services := make([]string, 100)
	for i := range services {
		services[i] = fmt.Sprintf("s%d", i)
	}
	a := v.instance(services...)
	keys := map[string]Keys{}
	for _, s := range services {
		keys[s] = a.get(t, s)
	}
	b := v.instance(services...)
	for _, s := range services {
		b.want(t, s, keys[s].PrimaryKey, keysecret.Primary)
	}
	v.reset()
	const d = 10 * time.Minute
	for begin := v.clock.Now(); v.clock.Now().Sub(begin) < d; v.clock.Advance(time.Second) {
		for _, s := range services {
			b.want(t, s, keys[s].PrimaryKey, keysecret.Primary)
			a.want(t, s, keys[s].SecondaryKey, keysecret.Secondary)
		}
	}
	low, high := 2*(int(d/bounds.TTL)-1), 2*(int(d/minFresh)+1)
	if n, lists := v.reads(), v.count(memstore.OpList+" "+journal.Prefix); n != lists || lists < low || lists > high {
		t.Fatalf("two instances over 100 services made %d reads (%d slot listings) in %v; want one listing per slot each, %d to %d", n, lists, d, low, high)
	}
	t.Logf("steady state: %d reads in %v for two instances", v.reads(), d)
	if n := v.writes(); n != 0 {
		t.Fatalf("%d writes", n)
	}
}

// TestStoreOutageServesStaleThenUnavailable: while the store is down, what
// is known is served for the poll period plus MaxStale after the last
// successful poll, right keys and wrong; after that, ErrUnavailable for
// every key, never a wrong yes or no.
func TestStoreOutageServesStaleThenUnavailable(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris")
	keys := a.get(t, "iris")
	b := v.instance("iris")
	b.want(t, "iris", keys.PrimaryKey, keysecret.Primary) // b's last poll: now
	polled := v.clock.Now()
	v.down.Store(true)
	// Served for the poll period (at least minFresh) and MaxStale after
	// the last poll; not past the journal's bound and MaxStale.
	window := minFresh + bounds.MaxStale
	for _, at := range []time.Duration{time.Second, minFresh, bounds.TTL, window - time.Second} {
		v.clock.Advance(polled.Add(at).Sub(v.clock.Now()))
		b.want(t, "iris", keys.PrimaryKey, keysecret.Primary)
		b.want(t, "iris", keys.SecondaryKey, keysecret.Secondary)
		b.refused(t, "iris", "wrong")
		b.refused(t, "iris", keys.PrimaryKey+"x")
	}
	v.clock.Advance(polled.Add(b.ring.Journal().Bound() + bounds.MaxStale).Sub(v.clock.Now())) // the window has passed
	for _, k := range []string{keys.PrimaryKey, "wrong"} {
		_, err := b.ring.Validate(ctx, "iris", k)
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNoMatch) {
			t.Fatalf("past the staleness bound: %v; want ErrUnavailable", err)
		}
		if strings.Contains(err.Error(), k) {
			t.Fatal("the error contains the key")
		}
	}
	if _, err := b.ring.Get(ctx, "iris"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get, store down: %v; want ErrUnavailable", err)
	}
	// A ring that never read the journal has nothing to serve.
	if _, err := v.instance("iris").ring.Validate(ctx, "iris", keys.PrimaryKey); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a cold ring during an outage: %v; want ErrUnavailable", err)
	}
	v.down.Store(false)
	v.clock.Advance(time.Second)
	b.want(t, "iris", keys.PrimaryKey, keysecret.Primary)
	b.refused(t, "iris", "wrong")

	// With no staleness allowed, the view is served until its poll only.
	z := v.instanceWith(instanceOpts{bounds: cache.Bounds{TTL: 30 * time.Second, RefreshMinInterval: time.Second}}, "iris")
	z.want(t, "iris", keys.PrimaryKey, keysecret.Primary)
	v.down.Store(true)
	z.want(t, "iris", keys.PrimaryKey, keysecret.Primary)
	v.clock.Advance(bounds.TTL)
	if _, err := z.ring.Validate(ctx, "iris", keys.PrimaryKey); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("MaxStale 0, store down, poll period passed: %v; want ErrUnavailable", err)
	}
}

// TestThrottledStoreIsLeftAloneForRetryAfter: a 429 closes the instance's
// gate: no read at all (polls, misses, get_keys) for its Retry-After,
// while known keys are served and unknown ones refused.
func TestThrottledStoreIsLeftAloneForRetryAfter(t *testing.T) {
	for _, via := range []string{"miss", "get_keys"} {
		t.Run(via, func(t *testing.T) {
			v := newVault(t)
			gate := cache.NewGate(bounds, secretstore.IsThrottled)
			a := v.instance("iris", "other")
			keys := a.get(t, "iris")
			a.get(t, "other")
			if err := a.ring.EnsureAdminKey(ctx); err != nil {
				t.Fatal(err)
			}
			b := v.instanceWith(instanceOpts{bounds: bounds, gate: gate}, "iris", "other")
			b.want(t, "iris", keys.PrimaryKey, keysecret.Primary)
			v.clock.Advance(20 * time.Second) // the next poll is due in 5 s, within the hold
			v.throttle.Store(true)            // Retry-After: 20 s
			switch via {
			case "miss":
				b.refused(t, "iris", "wrong")
			case "get_keys":
				_, err := b.ring.Get(ctx, "iris")
				if _, ok := secretstore.IsThrottled(err); !ok || !errors.Is(err, ErrUnavailable) {
					t.Fatalf("Get, throttled: %v; want ErrUnavailable showing the 429", err)
				}
			}
			if d, _ := gate.Closed(v.clock.Now()); d != 20*time.Second {
				t.Fatalf("the gate is closed for %v; want 20s", d)
			}
			v.throttle.Store(false) // recovered: the instance still leaves it alone
			v.reset()
			for range 19 {
				v.clock.Advance(time.Second)
				b.want(t, "iris", keys.PrimaryKey, keysecret.Primary)
				b.refused(t, "iris", "wrong")
				b.refused(t, "other", keys.PrimaryKey)
				if err := b.ring.ValidateAdmin(ctx, "wrong"); err == nil {
					t.Fatal("a wrong admin key validates")
				}
				_, err := b.ring.Get(ctx, "iris")
				var held *cache.HeldError
				if !errors.As(err, &held) || held.RetryAfter <= 0 {
					t.Fatalf("Get within the hold: %v; want a HeldError", err)
				}
			}
			if n := v.reads(); n != 0 {
				t.Fatalf("%d reads within Retry-After; want 0", n)
			}
			// The hold is over: the instance reads again (within the
			// interval a slot's miss costs).
			for i := 0; v.reads() == 0; i++ {
				if i == 3 {
					t.Fatal("no read after Retry-After")
				}
				v.clock.Advance(time.Second)
				b.refused(t, "iris", "wrong")
			}
			if k := b.get(t, "iris"); k != keys {
				t.Fatalf("Get after the hold = %+v", k)
			}
		})
	}
}

// TestDisabledNewestVersionRefusesThatKey: a key whose newest version is
// disabled through the app's store is refused at once there, within the
// bound elsewhere, and on an instance that starts later; its active copy
// goes with it.
func TestDisabledNewestVersionRefusesThatKey(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris")
	keys := a.get(t, "iris")
	b := v.instance("iris")
	b.want(t, "iris", keys.SecondaryKey, keysecret.Secondary)
	v.clock.Advance(2 * time.Second)
	off := false
	if _, err := a.store.UpdateProperties(ctx, "svc-iris-secondary", "", secretstore.Update{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	written := v.clock.Now()
	a.refused(t, "iris", keys.SecondaryKey)
	a.want(t, "iris", keys.PrimaryKey, keysecret.Primary)
	if _, err := a.ring.Get(ctx, "iris"); !errors.Is(err, ErrDisabled) {
		t.Fatalf("Get with a disabled newest version: %v; want ErrDisabled", err)
	}
	_ = written
	c := v.instance("iris")
	c.refused(t, "iris", keys.SecondaryKey)
	c.want(t, "iris", keys.PrimaryKey, keysecret.Primary)

	// The active key: its copy holds the same value, and is refused too.
	v.clock.Advance(2 * time.Second)
	if _, err := a.store.UpdateProperties(ctx, "svc-iris-primary", "", secretstore.Update{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	a.refused(t, "iris", keys.PrimaryKey)
	v.instance("iris").refused(t, "iris", keys.PrimaryKey)

	// A new version works again.
	v.clock.Advance(2 * time.Second)
	if err := a.rot.Regenerate(ctx, "iris", keysecret.Secondary, ""); err != nil {
		t.Fatal(err)
	}
	a.want(t, "iris", v.newest("svc-iris-secondary"), keysecret.Secondary)
}

// TestDisabledKeyIsRefusedOnAnotherInstance: a version disabled through
// one instance's store is refused on another within the journal's bound.
func TestDisabledKeyIsRefusedOnAnotherInstance(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris")
	keys := a.get(t, "iris")
	b := v.instance("iris")
	b.want(t, "iris", keys.SecondaryKey, keysecret.Secondary)
	v.clock.Advance(2 * time.Second)
	off := false
	for _, tc := range []struct {
		kt  keysecret.KeyType
		key string
	}{{keysecret.Secondary, keys.SecondaryKey}, {keysecret.Primary, keys.PrimaryKey}} {
		if _, err := a.store.UpdateProperties(ctx, keysecret.KeySecret("iris", tc.kt), "", secretstore.Update{Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		written := v.clock.Now()
		for {
			_, err := b.ring.Validate(ctx, "iris", tc.key)
			if errors.Is(err, ErrNoMatch) {
				break
			}
			if v.clock.Now().Sub(written) > b.ring.Journal().Bound() {
				t.Fatalf("the disabled %s still validates on another instance %v after: %v", tc.kt, v.clock.Now().Sub(written), err)
			}
			v.clock.Advance(time.Second)
		}
	}
}

// TestSlowStoreIsWaitedForAtMostReadTimeout: a validation waits for a
// read (a poll due, or a miss) at most ReadTimeout, then answers from what
// is known, within the staleness bound; the read goes on in the background.
func TestSlowStoreIsWaitedForAtMostReadTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	v := newVault(t)
	b := bounds
	b.ReadTimeout = timeout
	a := v.instanceWith(instanceOpts{bounds: b}, "iris")
	keys := a.get(t, "iris")
	release := make(chan struct{})
	v.block.Store(&release)
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	timed := func(what string, f func()) {
		t.Helper()
		begin := time.Now()
		f()
		if d := time.Since(begin); d > 10*timeout {
			t.Fatalf("%s took %v; ReadTimeout is %v", what, d, timeout)
		}
	}
	timed("an unknown key", func() { a.refused(t, "iris", "wrong") })
	v.clock.Advance(bounds.TTL) // a poll is due
	timed("a known key, poll due", func() { a.want(t, "iris", keys.PrimaryKey, keysecret.Primary) })
	v.clock.Advance(time.Second)
	timed("an unknown key, poll due", func() { a.refused(t, "iris", "wrong") })
	v.clock.Advance(bounds.MaxStale)
	timed("past the staleness bound", func() {
		if _, err := a.ring.Validate(ctx, "iris", keys.PrimaryKey); !errors.Is(err, ErrUnavailable) || !errors.Is(err, cache.ErrReadTimeout) {
			t.Fatalf("past the staleness bound, slow store: %v; want ErrUnavailable (ErrReadTimeout)", err)
		}
	})
	v.block.Store(nil)
	close(release)
	released = true
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := a.ring.Validate(ctx, "iris", keys.PrimaryKey); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after the store recovered: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSlowStoreDoesNotHoldAProvision: the keys' provisioning, when the
// ring asks for it on a validation, is bounded by ReadTimeout too.
func TestSlowStoreDoesNotHoldAProvision(t *testing.T) {
	const timeout = 50 * time.Millisecond
	v := newVault(t)
	b := bounds
	b.ReadTimeout = timeout
	a := v.instanceWith(instanceOpts{bounds: b}, "iris")
	a.get(t, "iris")
	v.clock.Advance(2 * time.Second)
	// The Primary written directly: the active copy lags, and the next
	// validation asks for it to be converged.
	next := "direct-primary-key-value-0123456789ab"
	if _, err := a.store.SetSecret(ctx, "svc-iris-primary", secretstore.SetParams{Value: next, Enabled: true, Tags: keysecret.ServiceTags("iris")}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	v.block.Store(&release)
	defer close(release)
	rctx, cancel := context.WithTimeout(ctx, 20*timeout) // a request's own deadline, far off
	defer cancel()
	begin := time.Now()
	_, err := a.ring.Validate(rctx, "iris", next)
	if d := time.Since(begin); d > 10*timeout {
		t.Fatalf("a validation asking for a provision waited %v for a slow store (%v); ReadTimeout is %v", d, err, timeout)
	}
}

// TestProvisioningHonoursTheGate: while a 429 holds the instance's reads
// back, a validation that finds keys missing does not have them read and
// created (Provision reads the store): the answer is ErrUnavailable.
func TestProvisioningHonoursTheGate(t *testing.T) {
	v := newVault(t)
	gate := cache.NewGate(bounds, secretstore.IsThrottled)
	b := v.instanceWith(instanceOpts{bounds: bounds, gate: gate}, "iris", "other")
	keys := b.get(t, "iris")
	v.throttle.Store(true)
	b.refused(t, "iris", "wrong") // the miss's read is throttled: the gate closes
	v.throttle.Store(false)
	v.reset()
	v.clock.Advance(time.Second)
	if _, err := b.ring.Validate(ctx, "other", keys.PrimaryKey); !errors.Is(err, ErrUnavailable) {
		t.Errorf("missing keys within the hold: %v; want ErrUnavailable", err)
	}
	if n := v.reads(); n != 0 {
		t.Fatalf("%d reads (%v) within Retry-After, for keys found missing; want 0", n, v.calls)
	}
}

// TestAdminKeyCreatedElsewhereIsNotReplaced: an instance that has not yet
// heard of the administrator key another instance created does not create
// one of its own (which would replace it everywhere).
func TestAdminKeyCreatedElsewhereIsNotReplaced(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris")
	b := v.instance("iris")
	b.get(t, "iris") // b's view: no admin key
	v.clock.Advance(2 * time.Second)
	if err := a.ring.EnsureAdminKey(ctx); err != nil {
		t.Fatal(err)
	}
	admin := v.newest(keysecret.AdminKeySecret)
	err := b.ring.ValidateAdmin(ctx, admin)
	if n := len(v.versions(keysecret.AdminKeySecret)); n != 1 || v.newest(keysecret.AdminKeySecret) != admin {
		t.Fatalf("the admin key has %d versions: another instance replaced it", n)
	}
	if err != nil {
		t.Fatalf("the admin key created on another instance: %v", err)
	}
}

// TestKeyVersionsExpireAtTheirDueTimePlusMargin: the key versions created
// on the ring's first need expire at their due time plus the margin, and
// the active copy never.
func TestKeyVersionsExpireAtTheirDueTimePlusMargin(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris")
	a.refused(t, "iris", "first need")
	want := keysecret.Expiry(v.clock.Now().Add(policy.Period))
	for _, name := range []string{"svc-iris-primary", "svc-iris-secondary"} {
		if e := v.versions(name)[0].Expires; e == nil || !e.Equal(want) {
			t.Errorf("%s exp = %v; want %v", name, e, want)
		}
	}
	if e := v.versions(keysecret.ActiveSecret("iris"))[0].Expires; e != nil {
		t.Errorf("the active copy expires: %v", e)
	}
}

// TestConcurrentUse: validations on many goroutines, on a cold ring and
// while keys are regenerated: one set of keys is created, and no answer is
// a wrong yes.
func TestConcurrentUse(t *testing.T) {
	v := newVault(t)
	a := v.instance("iris")
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := a.ring.Validate(ctx, "iris", "wrong"); err == nil {
				t.Error("a wrong key validates")
			}
		})
	}
	wg.Wait()
	for _, name := range []string{"svc-iris-primary", "svc-iris-secondary", "svc-iris-active"} {
		if n := len(v.versions(name)); n != 1 {
			t.Fatalf("%s has %d versions; want 1", name, n)
		}
	}
	keys := a.get(t, "iris")
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := a.ring.Validate(ctx, "iris", keys.PrimaryKey); err != nil {
					t.Errorf("the Primary while the Secondary is regenerated: %v", err)
					return
				}
				if _, err := a.ring.Validate(ctx, "iris", "wrong"); err == nil {
					t.Error("a wrong key validates")
					return
				}
			}
		})
	}
	var olds []string
	for range 5 {
		v.clock.Advance(time.Second)
		olds = append(olds, v.newest("svc-iris-secondary"))
		if err := a.rot.Regenerate(ctx, "iris", keysecret.Secondary, ""); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	for _, k := range olds {
		a.refused(t, "iris", k)
	}
	a.want(t, "iris", v.newest("svc-iris-secondary"), keysecret.Secondary)
	if slices.Contains(olds, v.newest("svc-iris-secondary")) {
		t.Fatal("a regeneration reused a key")
	}
}

func BenchmarkValidate(b *testing.B) {
	v := &vault{clock: fakeclock.New(start)}
	v.base = memstore.Open(&memstore.Options{Now: v.clock.Now})
	in := v.instanceWith(instanceOpts{bounds: bounds}, "iris")
	keys, err := in.ring.Get(ctx, "iris")
	if err != nil {
		b.Fatal(err)
	}
	sk, _ := in.ring.Service("iris")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := sk.Validate(ctx, keys.SecondaryKey); err != nil {
				b.Fatal(err)
			}
		}
	})
}
