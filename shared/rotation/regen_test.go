package rotation_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// TestRegenWhoseCopyWriteFailedIsRepaired: after a rotation, regen_key of
// the active key writes the key but fails to update the active copy; the
// next rotation run moves the copy to the new value, so the revoked one
// stops being accepted and told.
func TestRegenWhoseCopyWriteFailedIsRepaired(t *testing.T) {
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	drv := newMemDriver(clock.Now)
	failCopy := false
	drv.before = func(_ context.Context, op string) error {
		clock.Advance(time.Second)
		if failCopy && op == "set "+keysecret.ActiveSecret(service) {
			failCopy = false
			return errCrashed
		}
		return nil
	}
	store := secretstore.New(drv)
	w := &world{drv: drv, store: store, clock: clock, told: map[string]bool{}}
	ctx := context.Background()
	ring, rot := wiring{ringTTL: time.Nanosecond, now: clock.Now}.wire(store)
	if _, err := ring.Get(ctx, service); err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * 24 * time.Hour)
	if res, err := newRotator(w).RotateIfDue(ctx, service); err != nil || res.Outcome != rotation.Completed {
		t.Fatalf("rotation: %+v %v", res, err)
	}
	revoked := drv.newest(keysecret.ActiveSecret(service))
	failCopy = true
	err := rot.Regenerate(ctx, service, keysecret.Secondary, "")
	if !errors.Is(err, rotation.ErrWritten) {
		t.Fatalf("regen with the copy write failing: %v; want ErrWritten", err)
	}
	fresh := drv.newest(keysecret.KeySecret(service, keysecret.Secondary))
	if drv.newest(keysecret.ActiveSecret(service)) != revoked {
		t.Fatal("the copy changed despite the failure")
	}
	clock.Advance(time.Hour)
	if _, err := newRotator(w).RotateIfDue(ctx, service); err != nil {
		t.Fatal(err)
	}
	if got := drv.newest(keysecret.ActiveSecret(service)); got != fresh {
		t.Fatal("the next run did not move the copy to the regenerated key")
	}
	v := keyring.New(store, []string{service}, &keyring.Options{Bounds: cache.Bounds{TTL: time.Nanosecond}, Now: clock.Now})
	if _, err := v.Validate(ctx, service, revoked); !errors.Is(err, keyring.ErrNoMatch) {
		t.Fatalf("the revoked key: %v; want ErrNoMatch", err)
	}
}
