package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
)

// TestRegenWhoseCopyWriteFailedIsRepaired: after a rotation, regen_key of
// the active key writes the key but fails to update the active copy; the
// next rotation run moves the copy to the new value, so the revoked one
// stops being accepted and told.
func TestRegenWhoseCopyWriteFailedIsRepaired(t *testing.T) {
	forEachOrder(t, func(t *testing.T, order driver.ListOrder) {
		clock := fakeclock.New(time.Unix(1_800_000_000, 0))
		mem := newMemStore(clock.Now, order)
		failCopy := false
		mem.before = func(_ context.Context, op string) error {
			clock.Advance(time.Second)
			if failCopy && op == "set "+keysecret.ActiveSecret(service) {
				failCopy = false
				return errCrashed
			}
			return nil
		}
		store := mem.store
		w := &world{mem: mem, store: store, clock: clock, told: map[string]bool{}}
		ctx := context.Background()
		ring, rot := wiring{ringTTL: time.Nanosecond, now: clock.Now}.wire(store)
		if _, err := ring.Get(ctx, service); err != nil {
			t.Fatal(err)
		}
		clock.Advance(31 * 24 * time.Hour)
		if res, err := newRotator(w).RotateIfDue(ctx, service); err != nil || res.Outcome != rotation.Completed {
			t.Fatalf("rotation: %+v %v", res, err)
		}
		revoked := mem.newest(keysecret.ActiveSecret(service))
		failCopy = true
		err := rot.Regenerate(ctx, service, keysecret.Secondary, "")
		if !errors.Is(err, rotation.ErrWritten) {
			t.Fatalf("regen with the copy write failing: %v; want ErrWritten", err)
		}
		fresh := mem.newest(keysecret.KeySecret(service, keysecret.Secondary))
		if mem.newest(keysecret.ActiveSecret(service)) != revoked {
			t.Fatal("the copy changed despite the failure")
		}
		clock.Advance(time.Hour)
		if _, err := newRotator(w).RotateIfDue(ctx, service); err != nil {
			t.Fatal(err)
		}
		if got := mem.newest(keysecret.ActiveSecret(service)); got != fresh {
			t.Fatal("the next run did not move the copy to the regenerated key")
		}
		v := keyring.New(store, []string{service}, &keyring.Options{Bounds: cache.Bounds{TTL: time.Nanosecond}, Now: clock.Now})
		if _, err := v.Validate(ctx, service, revoked); !errors.Is(err, keyring.ErrNoMatch) {
			t.Fatalf("the revoked key: %v; want ErrNoMatch", err)
		}
	})
}

// The tests below are regen_key over the app's wiring, several instances
// (each a keyring.Ring, the rotator's KeyCache, and a rotator) sharing one
// store: services svc and other, keys cached for 30 s, an unknown key
// re-reading the store at most once a second, stale keys served for 5 min.
func regenWiring(clock *fakeclock.Clock) wiring {
	return wiring{ringTTL: 30 * time.Second, refreshMinInterval: time.Second, maxStale: 5 * time.Minute,
		now: clock.Now, services: []string{service, "other"}}
}

// regenerate is regen_key as the keys function runs it: the instance's
// rotator writes, then its ring reads the keys back.
func regenerate(ctx context.Context, ring *keyring.Ring, rot *rotation.Rotator, kt keysecret.KeyType, value string) (keyring.Keys, error) {
	if err := rot.Regenerate(ctx, service, kt, value); err != nil {
		return keyring.Keys{}, err
	}
	return ring.Get(ctx, service)
}

func TestRegenerateRevokes(t *testing.T) {
	forEachOrder(t, func(t *testing.T, order driver.ListOrder) {
		clock := fakeclock.New(time.Unix(1e9, 0))
		mem, ctx := newMemStore(clock.Now, order), context.Background()
		w := regenWiring(clock)
		a, rotA := w.wire(mem.store) // two instances
		b, _ := w.wire(mem.store)
		before, _ := a.Get(ctx, service)
		if _, err := b.Validate(ctx, service, before.PrimaryKey); err != nil {
			t.Fatal(err)
		}
		after, err := regenerate(ctx, a, rotA, keysecret.Primary, "")
		if err != nil {
			t.Fatal(err)
		}
		if after.PrimaryKey == before.PrimaryKey || after.SecondaryKey != before.SecondaryKey {
			t.Fatalf("Regenerate = %+v; before %+v", after, before)
		}
		// At once on the instance that did it.
		if _, err := a.Validate(ctx, service, before.PrimaryKey); !errors.Is(err, keyring.ErrNoMatch) {
			t.Errorf("old Primary on the regenerating instance: %v; want ErrNoMatch", err)
		}
		// The new key works at once everywhere (refresh on an unknown key).
		if kt, err := b.Validate(ctx, service, after.PrimaryKey); err != nil || kt != keysecret.Primary {
			t.Errorf("new Primary on the other instance: %q, %v", kt, err)
		}
		// And since b just re-read, the old one is refused there too.
		if _, err := b.Validate(ctx, service, before.PrimaryKey); !errors.Is(err, keyring.ErrNoMatch) {
			t.Errorf("old Primary on the other instance: %v", err)
		}

		// A third instance that cached the old key keeps it at most one TTL.
		c3, _ := w.wire(mem.store)
		c3.Validate(ctx, service, after.PrimaryKey)
		again, _ := regenerate(ctx, a, rotA, keysecret.Primary, strings.Repeat("k", 40))
		if again.PrimaryKey != strings.Repeat("k", 40) {
			t.Fatalf("user-supplied value not used: %+v", again)
		}
		if _, err := c3.Validate(ctx, service, after.PrimaryKey); err != nil {
			t.Errorf("within the TTL the cached key still works on another instance: %v", err)
		}
		clock.Advance(30 * time.Second)
		if _, err := c3.Validate(ctx, service, after.PrimaryKey); !errors.Is(err, keyring.ErrNoMatch) {
			t.Errorf("after the TTL the replaced key is refused: %v", err)
		}
		if _, err := regenerate(ctx, a, rotA, keysecret.Primary, "short"); err == nil {
			t.Error("a malformed user-supplied key was accepted")
		}
	})
}

func TestRegenerateRevokesEvenIfReadBackFails(t *testing.T) {
	forEachOrder(t, func(t *testing.T, order driver.ListOrder) {
		clock := fakeclock.New(time.Unix(1e9, 0))
		mem, ctx := newMemStore(clock.Now, order), context.Background()
		var f faults
		mem.before = f.before
		r, rot := regenWiring(clock).wire(mem.store)
		before, _ := r.Get(ctx, service)
		f.setBreaksGets.Store(true)
		_, err := regenerate(ctx, r, rot, keysecret.Primary, "")
		if !errors.Is(err, rotation.ErrWritten) {
			t.Fatalf("Regenerate with reads failing: %v; want ErrWritten", err)
		}
		if _, err := r.Validate(ctx, service, before.PrimaryKey); !errors.Is(err, keyring.ErrNoMatch) {
			t.Fatalf("the replaced key still validates on this instance: %v", err)
		}
		if kt, err := r.Validate(ctx, service, before.SecondaryKey); err != nil || kt != keysecret.Secondary {
			t.Fatalf("the other key stopped working: %q, %v", kt, err)
		}
		f.getsDown.Store(false)
		// The clock stood still: the new version shares its second with
		// the first, and only a read tells the journal which is newest.
		// That read waits for the instance's next miss read.
		clock.Advance(time.Second)
		if kt, err := r.Validate(ctx, service, mem.newest(keysecret.KeySecret(service, keysecret.Primary))); err != nil || kt != keysecret.Primary {
			t.Fatalf("the written key: %q, %v", kt, err)
		}
	})
}

func TestRegenerateRefusesAKeyInUse(t *testing.T) {
	forEachOrder(t, func(t *testing.T, order driver.ListOrder) {
		clock := fakeclock.New(time.Unix(1e9, 0))
		mem, ctx := newMemStore(clock.Now, order), context.Background()
		r, rot := regenWiring(clock).wire(mem.store)
		r.EnsureAdminKey(ctx)
		svc, _ := r.Get(ctx, service)
		other, _ := r.Get(ctx, "other")
		for name, v := range map[string]string{
			"admin key": mem.newest(keysecret.AdminKeySecret), "other service's key": other.PrimaryKey,
			"own other slot": svc.SecondaryKey, "same value": svc.PrimaryKey,
		} {
			if _, err := regenerate(ctx, r, rot, keysecret.Primary, v); !errors.Is(err, rotation.ErrKeyInUse) {
				t.Errorf("regen to the %s: %v; want ErrKeyInUse", name, err)
			}
		}
		if got, _ := r.Get(ctx, service); got != svc {
			t.Errorf("a refused regen changed the keys")
		}
	})
}

// TestRegenerateDuringAnOutage: with the store down, regen_key on an
// instance that never read the keys fails as unavailable.
func TestRegenerateDuringAnOutage(t *testing.T) {
	forEachOrder(t, func(t *testing.T, order driver.ListOrder) {
		clock := fakeclock.New(time.Unix(1e9, 0))
		mem, ctx := newMemStore(clock.Now, order), context.Background()
		var f faults
		mem.before = f.before
		w := regenWiring(clock)
		r, _ := w.wire(mem.store)
		keys, err := r.Get(ctx, service)
		if err != nil {
			t.Fatal(err)
		}
		f.down.Store(true)
		cold, rot := w.wire(mem.store)
		if _, err := regenerate(ctx, cold, rot, keysecret.Secondary, ""); !errors.Is(err, rotation.ErrUnavailable) {
			t.Fatalf("regenerate during an outage: %v", err)
		}
		if got := mem.newest(keysecret.KeySecret(service, keysecret.Secondary)); got != keys.SecondaryKey {
			t.Errorf("a regen that failed as unavailable changed the key")
		}
	})
}

// TestRegeneratedKeyKeepsItsDueTime: a regenerated key keeps its slot's
// activation, and so its due time: its version expires at that due time
// plus the margin (see the keyring's TestKeyVersionsExpireAtTheirDueTimePlusMargin
// for created keys).
func TestRegeneratedKeyKeepsItsDueTime(t *testing.T) {
	forEachOrder(t, func(t *testing.T, order driver.ListOrder) {
		clock := fakeclock.New(time.Unix(1e9, 0))
		mem, ctx := newMemStore(clock.Now, order), context.Background()
		period := defaultPolicy.Period // and the margin is as long
		r, rot := wiring{ringTTL: time.Second, now: clock.Now}.wire(mem.store)
		if _, err := r.Get(ctx, service); err != nil {
			t.Fatal(err)
		}
		secondary := keysecret.KeySecret(service, keysecret.Secondary)
		activated := fmt.Sprint(clock.Now().Add(-time.Hour).Unix())
		mem.setTags(secondary, mem.all(secondary)[0].Version, map[string]string{ // its only version
			keysecret.TagState: keysecret.StateCurrent, keysecret.TagActivated: activated,
		})
		clock.Advance(24 * time.Hour)
		if _, err := regenerate(ctx, r, rot, keysecret.Secondary, ""); err != nil {
			t.Fatal(err)
		}
		regen, err := mem.store.GetSecret(peekCtx, secondary, "")
		if err != nil {
			t.Fatal(err)
		}
		if e := regen.Expires; e == nil || !e.Equal(clock.Now().Add(-25*time.Hour).Add(2*period)) {
			t.Errorf("regenerated exp = %v", e)
		}
		if got := regen.Tags[keysecret.TagActivated]; got != activated {
			t.Errorf("regenerated activation %q; want %q", got, activated)
		}
	})
}
