package rotation_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/journal"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/azurekeyvault"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
	"github.com/modelauth/modelauth/shared/secretstore/memstore"
)

// orderedStore is a store that lists versions in one order, with versions
// stamped by a clock.
type orderedStore struct {
	name string
	open func(t *testing.T, now func() time.Time) *secretstore.Store
}

// orderedStores are the Key Vault test server under each of its listing
// orders (through the production driver) and the in-memory store under
// each of its orders.
func orderedStores() []orderedStore {
	var out []orderedStore
	for _, o := range []struct {
		name  string
		order keyvaulttest.ListOrder
	}{{"oldest-first", keyvaulttest.OldestFirst}, {"version-id", keyvaulttest.VersionIDOrder}, {"random", keyvaulttest.RandomOrder}} {
		out = append(out, orderedStore{"keyvault/" + o.name, func(t *testing.T, now func() time.Time) *secretstore.Store {
			kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{ListOrder: o.order, ListSeed: 7, Now: now})
			store, err := azurekeyvault.Open(kv.VaultURL, kv.Credential(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			return store
		}})
	}
	for _, order := range driver.ListOrders {
		out = append(out, orderedStore{"memstore/" + order.String(), func(t *testing.T, now func() time.Time) *secretstore.Store {
			return memstore.Open(&memstore.Options{Now: now, ListOrder: order, ListSeed: 7})
		}})
	}
	return out
}

// TestRotateRightAfterRegenUnderEveryListingOrder is issue 14's report: a
// manual rotation right after a regen_key of the inactive key, in the same
// second, came back superseded against a vault that lists versions in
// version-id order, and the staged key never became active. Rotation must
// take the newest version from a read of the secret, never from a listing.
func TestRotateRightAfterRegenUnderEveryListingOrder(t *testing.T) {
	const services = 8 // each a coin toss when the listing decides
	for _, st := range orderedStores() {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := fakeclock.New(time.Unix(1_800_000_000, 0)) // still: every write lands in one second
			store := st.open(t, clock.Now)
			var names []string
			for i := range services {
				names = append(names, fmt.Sprintf("svc%d", i))
			}
			ring, rot := wiring{services: names, ttl: 30 * time.Second, now: clock.Now,
				sleep: func(_ context.Context, d time.Duration) error { clock.Advance(d); return nil }}.wire(store)
			for _, svc := range names {
				if _, err := ring.Get(ctx, svc); err != nil {
					t.Fatal(err)
				}
				if err := rot.Regenerate(ctx, svc, keysecret.Secondary, ""); err != nil {
					t.Fatalf("%s: Regenerate = %v", svc, err)
				}
				res, err := rot.RotateNow(ctx, svc)
				if err != nil || res.Outcome != rotation.Completed || res.KeyType != keysecret.Secondary {
					t.Fatalf("%s: RotateNow after a regen = %+v, %v; want the Secondary's rotation completed", svc, res, err)
				}
				staged, err := store.GetSecret(ctx, keysecret.KeySecret(svc, keysecret.Secondary), "")
				if err != nil {
					t.Fatal(err)
				}
				active, err := store.GetSecret(ctx, keysecret.ActiveSecret(svc), "")
				if err != nil {
					t.Fatal(err)
				}
				if staged.Tags[keysecret.TagRotation] != res.Rotation || staged.Tags[keysecret.TagState] != keysecret.StateCurrent || active.Value != staged.Value {
					t.Fatalf("%s: the staged key did not become active (newest Secondary tags %v)", svc, staged.Tags)
				}
			}
		})
	}
}

// TestStoreCallsPerRotation counts the store calls of a due rotation and of
// a regen_key, once the keys exist: reading a key secret's state costs a
// listing and a read of its newest version (the listing does not say which
// it is), and the check after activation reads the one secret.
func TestStoreCallsPerRotation(t *testing.T) {
	ctx := context.Background()
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	mem := newMemStore(clock.Now, driver.RandomOrder)
	calls := map[string]int{}
	mem.before = func(_ context.Context, op string) error {
		op, name, _ := strings.Cut(op, " ")
		if strings.HasPrefix(name, journal.Prefix) {
			op = "journal " + op // the change journal's, counted apart
		}
		calls[op]++
		return nil
	}
	ring, rot := wiring{ringTTL: 30 * time.Second, ttl: 30 * time.Second, now: clock.Now,
		sleep: func(_ context.Context, d time.Duration) error { clock.Advance(d); return nil }}.wire(mem.store)
	if _, err := ring.Get(ctx, service); err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * 24 * time.Hour)
	ring.Validate(ctx, service, "not-a-key") // the journal's cold start
	clear(calls)
	if res, err := rot.RotateIfDue(ctx, service); err != nil || res.Outcome != rotation.Completed {
		t.Fatalf("RotateIfDue = %+v, %v", res, err)
	}
	// The rotation's own calls (its test of the staged key reads
	// nothing: validators know it from the journal), and the journal's: a
	// record per write (two sets and an update) and a listing of the slot
	// that closed during the wait between staging and activation.
	want := map[string]int{memstore.OpList: 4, memstore.OpGet: 11, memstore.OpSet: 2, memstore.OpUpdate: 1, "journal set": 3, "journal list": 1}
	if !maps.Equal(calls, want) {
		t.Errorf("a due rotation made store calls %v; want %v", calls, want)
	}
	clear(calls)
	if err := rot.Regenerate(ctx, service, keysecret.Primary, ""); err != nil {
		t.Fatal(err)
	}
	want = map[string]int{memstore.OpList: 1, memstore.OpGet: 2, memstore.OpSet: 1, "journal set": 1}
	if !maps.Equal(calls, want) {
		t.Errorf("a regen_key of the inactive key made store calls %v; want %v", calls, want)
	}
}
