package rotation_test

import (
	"context"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// wiring is how a test wires validators and a rotator over one store, as
// the app does (functions/wire_rotation.go): the ring asks the rotator to
// create missing keys, the rotator's target is the ring.
type wiring struct {
	services                              []string // nil: just service
	ringTTL, refreshMinInterval, maxStale time.Duration
	ttl                                   time.Duration // the target's: staging to finishing
	policy                                rotation.Policy
	now                                   func() time.Time
	sleep                                 func(context.Context, time.Duration) error
}

var defaultPolicy = rotation.Policy{Period: 30 * 24 * time.Hour, RefreshInterval: 24 * time.Hour}

func (w wiring) wire(store *secretstore.Store) (*keyring.Ring, *rotation.Rotator) {
	// Each process has its own client of the store, whose writes its own
	// change journal records (the ring's, set as the client's write hook).
	store = store.Share()
	policy := w.policy
	if policy == (rotation.Policy{}) {
		policy = defaultPolicy
	}
	rot := &rotation.Rotator{Store: store, Policy: func(string) rotation.Policy { return policy }, Now: w.now}
	// Validators learn of changes from the journal, one slot at a time:
	// a TTL below a second (tests that once read the store at every
	// validation) is the least the journal keeps up with on a clock that
	// moves a second per store call.
	if w.ringTTL < time.Second {
		w.ringTTL = 30 * time.Second
	}
	services := w.services
	if services == nil {
		services = []string{service}
	}
	ring := keyring.New(store, services, &keyring.Options{
		Bounds: cache.Bounds{TTL: w.ringTTL, RefreshMinInterval: w.refreshMinInterval, MaxStale: w.maxStale}, Now: w.now,
		Provision: rot.Provision,
	})
	rot.Keys, rot.Record = ring, ring.Journal().Record
	rot.Target = &rotation.ValidatorTarget{Validator: ring, TTL: w.ttl, Now: w.now, Sleep: w.sleep}
	return ring, rot
}
