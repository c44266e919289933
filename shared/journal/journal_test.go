package journal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
	"github.com/modelauth/modelauth/shared/secretstore/memstore"
)

// counter counts store calls by operation and secret name.
type counter struct {
	mu     sync.Mutex
	calls  map[string]int // "op name"
	fail   error
	onCall func(op, name string) error
}

func (c *counter) before(ctx context.Context, op, name string) error {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[op+" "+name]++
	fail, on := c.fail, c.onCall
	c.mu.Unlock()
	if on != nil {
		if err := on(op, name); err != nil {
			return err
		}
	}
	return fail
}

func (c *counter) setOnCall(f func(op, name string) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onCall = f
}

// count counts the calls whose "op name" starts with prefix.
func (c *counter) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.calls {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// reads counts the get and list calls.
func (c *counter) reads() int { return c.count("get ") + c.count("list ") }

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = nil
}

func (c *counter) setFail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = err
}

// vault is one store shared by several instances.
type vault struct {
	t     *testing.T
	clock *fakeclock.Clock
	base  *secretstore.Store
	calls *counter
	names []string
}

func newVault(t *testing.T, order driver.ListOrder) *vault {
	t.Helper()
	v := &vault{t: t, clock: fakeclock.New(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)), calls: &counter{}}
	v.base = memstore.Open(&memstore.Options{Now: v.clock.Now, BeforeFn: v.calls.before, ListOrder: order, ListSeed: 7})
	return v
}

func tracked(name string) bool { return strings.HasPrefix(name, "svc-") || name == "admin-key" }

// instance is one instance's journal and store client.
func (v *vault) instance() (*Journal, *secretstore.Store) {
	st := v.base.Share()
	o := DefaultOptions()
	o.TTL, o.RefreshMinInterval, o.MaxStale, o.ReadTimeout = 30*time.Second, time.Second, 5*time.Minute, 0
	o.Now = v.clock.Now
	o.Tracked = tracked
	o.Names = func() []string { return v.names }
	j := New(st, &o)
	st.OnWrite(j.Hook)
	return j, st
}

func write(t *testing.T, st *secretstore.Store, name, value string) secretstore.Properties {
	t.Helper()
	p, err := st.SetSecret(context.Background(), name, secretstore.SetParams{Value: value, Enabled: true, Tags: map[string]string{"state": "current"}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// digestOf returns what j knows of name's newest value: its digest
// matched against value.
func knows(t *testing.T, j *Journal, name, value string) bool {
	t.Helper()
	v := j.Peek()
	if v == nil {
		return false
	}
	e, s := v.Newest(name)
	if s != Found || !e.Enabled {
		return false
	}
	k, ok := v.Key(e.KeyVersion)
	return ok && Digest(k, value) == e.Digest
}

func view(t *testing.T, j *Journal) *View {
	t.Helper()
	v, err := j.View(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAChangeReachesEveryInstanceWithinTheBound(t *testing.T) {
	for _, order := range []driver.ListOrder{driver.NewestFirst, driver.OldestFirst, driver.VersionIDOrder, driver.RandomOrder} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			v := newVault(t, order)
			a, sa := v.instance()
			b, _ := v.instance()
			view(t, a)
			view(t, b)
			write(t, sa, "svc-x-primary", "key-one")
			if !knows(t, a, "svc-x-primary", "key-one") {
				t.Fatal("the writer does not know its own write at once")
			}
			written := v.clock.Now()
			bound := b.Bound()
			if bound != 60*time.Second {
				t.Fatalf("bound = %v, want two slots", bound)
			}
			known := time.Time{}
			for v.clock.Now().Sub(written) <= bound {
				view(t, b)
				if known.IsZero() && knows(t, b, "svc-x-primary", "key-one") {
					known = v.clock.Now()
				}
				v.clock.Advance(time.Second)
			}
			if known.IsZero() {
				t.Fatalf("instance b did not learn of the write within %v", bound)
			}
			// Poll every second for 10 minutes: one listing per slot.
			v.calls.reset()
			start := v.clock.Now()
			for v.clock.Now().Sub(start) < 10*time.Minute {
				view(t, b)
				v.clock.Advance(time.Second)
			}
			// Slots of 29.75 s (a TTL of 30 s less half the grace).
			if got, want := v.calls.reads(), int(10*time.Minute/SlotFor(30*time.Second)); got < want || got > want+1 {
				t.Fatalf("%d reads in 10 minutes of 29.75 s slots, want %d", got, want)
			}
		})
	}
}

func TestAMissListsTheOpenSlotOncePerInterval(t *testing.T) {
	v := newVault(t, driver.RandomOrder)
	a, sa := v.instance()
	b, _ := v.instance()
	v.clock.Advance(10 * time.Second) // mid-slot: only the open one is unlisted
	seen := view(t, b)
	view(t, a)
	write(t, sa, "svc-x-primary", "key-one")
	v.calls.reset()
	got, err := b.Miss(context.Background(), seen)
	if err != nil || !knows(t, b, "svc-x-primary", "key-one") || got == seen {
		t.Fatalf("a miss did not find the new key: %v", err)
	}
	if n := v.calls.reads(); n != 1 {
		t.Fatalf("a miss made %d reads, want 1 (the open slot)", n)
	}
	v.calls.reset()
	v.clock.Advance(time.Second)
	for range 100 {
		b.Miss(context.Background(), b.Peek())
		v.clock.Advance(10 * time.Millisecond)
	}
	if n := v.calls.reads(); n != 1 {
		t.Fatalf("100 misses in 1 s made %d reads, want 1", n)
	}
	// A flood of misses for 10 minutes, polls included: at most one read
	// per second, and one listing per slot more.
	v.calls.reset()
	start := v.clock.Now()
	for v.clock.Now().Sub(start) < 10*time.Minute {
		seen := view(t, b)
		b.Miss(context.Background(), seen)
		v.clock.Advance(100 * time.Millisecond)
	}
	if n := v.calls.reads(); n > 600+20 {
		t.Fatalf("a flood of misses made %d reads in 600 s", n)
	} else {
		t.Logf("flood: %d reads in 600 s", n)
	}
}

func TestColdStartReadsTheSnapshotNotEverySecret(t *testing.T) {
	v := newVault(t, driver.RandomOrder)
	a, sa := v.instance()
	view(t, a)
	for i := range 100 {
		for _, kind := range []string{"primary", "secondary", "active"} {
			name := fmt.Sprintf("svc-s%d-%s", i, kind)
			v.names = append(v.names, name)
			write(t, sa, name, name+"-value-of-the-key")
		}
	}
	v.clock.Advance(2 * time.Minute)
	if err := a.WriteSnapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	v.clock.Advance(40 * time.Second)
	v.calls.reset()
	c, _ := v.instance()
	view(t, c)
	for _, name := range v.names {
		if !knows(t, c, name, name+"-value-of-the-key") {
			t.Fatalf("the cold start does not know %s", name)
		}
	}
	if n := v.calls.reads(); n > 8 {
		t.Fatalf("a cold start over 300 secrets made %d reads, want at most 8 (key, index, shards, slots since)", n)
	}
	t.Logf("cold start: %d reads for 300 secrets", v.calls.reads())

	// Without a snapshot, a cold start reads every secret once.
	w := newVault(t, driver.RandomOrder)
	w.names = v.names[:30]
	wa, wsa := w.instance()
	view(t, wa)
	for _, name := range w.names {
		write(t, wsa, name, name+"-value-of-the-key")
	}
	w.clock.Advance(time.Hour)
	w.calls.reset()
	d, _ := w.instance()
	view(t, d)
	for _, name := range w.names {
		if !knows(t, d, name, name+"-value-of-the-key") {
			t.Fatalf("the scan does not know %s", name)
		}
	}
	if n := w.calls.reads(); n < 30 || n > 36 {
		t.Fatalf("a cold start without snapshot over 30 secrets made %d reads", n)
	}
}

func TestSameSecondVersionsAreResolvedByARead(t *testing.T) {
	for _, order := range []driver.ListOrder{driver.OldestFirst, driver.VersionIDOrder, driver.RandomOrder} {
		v := newVault(t, order)
		a, sa := v.instance()
		b, sb := v.instance()
		c, _ := v.instance()
		view(t, a)
		view(t, b)
		view(t, c)
		// Two instances write the same secret in the same second.
		write(t, sa, "svc-x-primary", "from-a")
		write(t, sb, "svc-x-primary", "from-b") // the newest
		v.clock.Advance(time.Minute)
		view(t, c)
		view(t, a)
		for _, j := range []*Journal{a, b, c} {
			if !knows(t, j, "svc-x-primary", "from-b") || knows(t, j, "svc-x-primary", "from-a") {
				t.Fatalf("order %v: an instance takes the older same-second version for the newest", order)
			}
		}
	}
}

func TestALateRecordIsWrittenAgainInTheOpenSlot(t *testing.T) {
	v := newVault(t, driver.RandomOrder)
	a, sa := v.instance()
	b, _ := v.instance()
	view(t, a)
	view(t, b)
	// Just before a slot ends, a record write that takes 10 s.
	slot := SlotFor(30 * time.Second)
	now := v.clock.Now()
	v.clock.Advance(slotEnd(slotOf(now, slot), slot).Add(-time.Second).Sub(now))
	slow := 1
	v.calls.setOnCall(func(op, name string) error {
		if op == memstore.OpSet && strings.HasPrefix(name, Prefix) && slow > 0 {
			slow--
			v.clock.Advance(10 * time.Second)
		}
		return nil
	})
	write(t, sa, "svc-x-primary", "late")
	if n := v.calls.count("set " + Prefix + "2"); n != 2 {
		t.Fatalf("%d record writes, want 2 (the late one again)", n)
	}
	returned := v.clock.Now()
	for v.clock.Now().Sub(returned) <= b.Bound() {
		view(t, b)
		v.clock.Advance(time.Second)
	}
	if !knows(t, b, "svc-x-primary", "late") {
		t.Fatal("a late record was lost")
	}
}

func TestAFailedRecordFailsTheWrite(t *testing.T) {
	v := newVault(t, driver.RandomOrder)
	a, sa := v.instance()
	view(t, a)
	v.calls.setOnCall(func(op, name string) error {
		if op == memstore.OpSet && strings.HasPrefix(name, Prefix) {
			return &memstore.Error{Code: secretstore.Unavailable}
		}
		return nil
	})
	_, err := sa.SetSecret(context.Background(), "svc-x-primary", secretstore.SetParams{Value: "k", Enabled: true})
	if secretstore.Code(err) != secretstore.Unpublished {
		t.Fatalf("code %v (%v), want Unpublished", secretstore.Code(err), err)
	}
	var se *secretstore.Error
	if !errors.As(err, &se) || se.RetryAfterHint() <= 0 {
		t.Fatalf("no Retry-After on %v", err)
	}
	// The write itself happened; the writer's view does not count it.
	if _, err := sa.GetSecret(context.Background(), "svc-x-primary", ""); err != nil {
		t.Fatal(err)
	}
	if knows(t, a, "svc-x-primary", "k") {
		t.Fatal("an unpublished write is in the writer's view")
	}
}

func TestRecordsRoundTripAndMalformedOnesAreIgnored(t *testing.T) {
	e := Entry{Name: "svc-x-active", Version: "0123456789abcdef0123456789abcdef", Created: time.Unix(100, 0).UTC(), Updated: time.Unix(101, 0).UTC(),
		Enabled: true, Tags: map[string]string{"slot": "secondary", "managed-by": "modelauth", "kind": "active-key", "service": "x", "rotation": "r1", "activated": "99"},
		Digest: Digest([]byte("k"), "v"), KeyVersion: "kv1"}
	tags, err := recordTags(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseRecord(tags)
	if err != nil || !back.same(e) || back.Name != e.Name || !back.Created.Equal(e.Created) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	pub := Entry{Name: "signing-key", Version: "v", Created: e.Created, Updated: e.Updated, Enabled: true, Tags: map[string]string{}, Public: strings.Repeat("A", 400)}
	tags, err = recordTags(pub)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := parseRecord(tags); err != nil || back.Public != pub.Public {
		t.Fatalf("public key round trip: %v", err)
	}
	for name, mutate := range map[string]func(map[string]string){
		"no name":      func(m map[string]string) { delete(m, tagName) },
		"upper name":   func(m map[string]string) { m[tagName] = "SVC-X" },
		"bad created":  func(m map[string]string) { m[tagCreated] = "01" },
		"neg created":  func(m map[string]string) { m[tagCreated] = "-1" },
		"bad enabled":  func(m map[string]string) { m[tagEnabled] = "yes" },
		"short digest": func(m map[string]string) { m[tagDigest] = "abc" },
		"no key":       func(m map[string]string) { delete(m, tagKey) },
		"both":         func(m map[string]string) { m[tagPublic+"0"] = "x" },
	} {
		tags, _ := recordTags(e)
		mutate(tags)
		if _, err := parseRecord(tags); err == nil {
			t.Errorf("%s: a malformed record was accepted", name)
		}
	}
	// A tag of the version using the journal's prefix cannot be recorded.
	bad := e
	bad.Tags = map[string]string{"j-s": "x"}
	if _, err := recordTags(bad); err == nil {
		t.Error("a version tag with the journal's prefix was recorded")
	}
}

func TestDisabledNewestCountsNoVersion(t *testing.T) {
	v := newVault(t, driver.RandomOrder)
	v.names = []string{"svc-x-primary"}
	a, sa := v.instance()
	view(t, a)
	write(t, sa, "svc-x-primary", "old")
	p := write(t, sa, "svc-x-primary", "new")
	off := false
	if _, err := sa.UpdateProperties(context.Background(), "svc-x-primary", p.Version, secretstore.Update{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	v.clock.Advance(2 * time.Hour) // past the catch-up: the next instance scans
	c, _ := v.instance()
	cv := view(t, c)
	if _, s := cv.Newest("svc-x-primary"); s != Unreadable {
		t.Fatalf("status %v, want Unreadable", s)
	}
	if knows(t, c, "svc-x-primary", "old") {
		t.Fatal("the older version counts while the newest is disabled")
	}
}

func TestThrottledMissBacksOffTheInstance(t *testing.T) {
	v := newVault(t, driver.RandomOrder)
	a, _ := v.instance()
	seen := view(t, a)
	v.calls.setFail(&memstore.Error{Code: secretstore.Throttled, RetryAfter: 20 * time.Second})
	a.Miss(context.Background(), seen)
	v.calls.setFail(nil)
	v.calls.reset()
	for range 15 {
		v.clock.Advance(time.Second)
		a.Miss(context.Background(), a.Peek())
	}
	if n := v.calls.reads(); n != 0 {
		t.Fatalf("%d reads while the store asked for 20 s", n)
	}
	if d, _ := a.opts.Gate.Closed(v.clock.Now()); d <= 0 {
		t.Fatal("the gate is open")
	}
}

func TestRecordAVersionWrittenOutsideTheApp(t *testing.T) {
	v := newVault(t, driver.RandomOrder)
	a, sa := v.instance()
	b, _ := v.instance()
	view(t, a)
	view(t, b)
	ctx := context.Background()
	// The app's own write: the event finds it known.
	p := write(t, sa, "svc-x-primary", "from-the-app")
	if got, err := a.Record(ctx, "svc-x-primary", p.Version); err != nil || got != AlreadyKnown {
		t.Fatalf("Record of the app's write = %q, %v; want %s", got, err, AlreadyKnown)
	}
	// A write in the portal (no hook) reaches b through the event on a.
	q := write(t, v.base, "svc-x-primary", "from-the-portal")
	if got, err := a.Record(ctx, "svc-x-primary", q.Version); err != nil || got != Recorded {
		t.Fatalf("Record of an outside write = %q, %v; want %s", got, err, Recorded)
	}
	returned := v.clock.Now()
	for v.clock.Now().Sub(returned) <= b.Bound() {
		view(t, b)
		v.clock.Advance(time.Second)
	}
	if !knows(t, b, "svc-x-primary", "from-the-portal") || knows(t, b, "svc-x-primary", "from-the-app") {
		t.Fatal("another instance does not know the portal's version as the newest")
	}
	for name, want := range map[string]string{"svc-x-primary": NoSuchVersion, "tok-x": NotTracked, "journal-key": NotTracked} {
		if got, err := a.Record(ctx, name, "0123456789abcdef0123456789abcdef"); err != nil || got != want {
			t.Errorf("Record(%s) = %q, %v; want %s", name, got, err, want)
		}
	}
}
