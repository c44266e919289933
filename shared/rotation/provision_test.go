package rotation_test

import (
	"context"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
)

// TestConcurrentProvisionConverges: instances that find a service's keys
// missing at once all create them (what their rings' Provision hook does;
// the keyring's TestCreatesKeysOnFirstNeed is the ring's side). Whatever
// raced, the next Provision converges the active copy on the newest
// Primary, and a read gives every instance the newest keys.
func TestConcurrentProvisionConverges(t *testing.T) {
	forEachOrder(t, func(t *testing.T, order driver.ListOrder) {
		clock := fakeclock.New(time.Unix(1e9, 0))
		mem, ctx := newMemStore(clock.Now, order), context.Background()
		w := wiring{ringTTL: 30 * time.Second, refreshMinInterval: time.Second, maxStale: 5 * time.Minute, now: clock.Now}
		rings := make([]*keyring.Ring, 8)
		rots := make([]*rotation.Rotator, len(rings))
		for i := range rings {
			rings[i], rots[i] = w.wire(mem.store)
		}
		var wg sync.WaitGroup
		for _, rot := range rots {
			wg.Go(func() {
				if err := rot.Provision(ctx, service); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if err := rots[0].Provision(ctx, service); err != nil {
			t.Fatal(err)
		}
		primary := mem.newest(keysecret.KeySecret(service, keysecret.Primary))
		if got := mem.newest(keysecret.ActiveSecret(service)); got != primary {
			t.Errorf("after the race and one more Provision, the active copy does not hold the newest Primary")
		}
		want := keyring.Keys{PrimaryKey: primary, SecondaryKey: mem.newest(keysecret.KeySecret(service, keysecret.Secondary)), ActiveKeyType: keysecret.Primary}
		for i, r := range rings {
			got, err := r.Get(ctx, service)
			if err != nil || got != want {
				t.Errorf("ring %d: %+v, %v", i, got, err)
			}
		}
	})
}
