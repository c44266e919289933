package rotation_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
	"github.com/modelauth/modelauth/shared/secretstore/memstore"
)

// memStore is a memstore whose calls pass through a gate the tests set:
// before, which may pause, reorder or fail the caller (the interleaving
// scheduler, a fault). The tests' own reads of what it holds use peekCtx,
// which the gate never sees.
type memStore struct {
	store *secretstore.Store
	// before is called before every call but the tests' own reads, with
	// the call's context and "<op> <name>" ("set svc-svc-active"); an
	// errCrashed it returns fails the call as Unavailable. Nil lets every
	// call through. Set it before the first call.
	before func(ctx context.Context, op string) error
}

// peek marks the tests' own reads of the store's contents.
type peek struct{}

var peekCtx = context.WithValue(context.Background(), peek{}, true)

// newMemStore returns an empty memStore whose versions are stamped by now
// and listed in order (the random one seeded with 1).
func newMemStore(now func() time.Time, order driver.ListOrder) *memStore {
	return newSeededMemStore(now, order, 1)
}

// newSeededMemStore is newMemStore with a random order seeded by seed.
func newSeededMemStore(now func() time.Time, order driver.ListOrder, seed uint64) *memStore {
	m := &memStore{}
	m.store = memstore.Open(&memstore.Options{Now: now, ListOrder: order, ListSeed: seed, BeforeFn: func(ctx context.Context, op, name string) error {
		if ctx.Value(peek{}) != nil || m.before == nil {
			return nil
		}
		err := m.before(ctx, op+" "+name)
		if errors.Is(err, errCrashed) {
			return &memstore.Error{Code: secretstore.Unavailable, Err: err}
		}
		return err
	}})
	return m
}

// newest returns a secret's newest value, or "" if it has none readable.
func (m *memStore) newest(name string) string {
	s, err := m.store.GetSecret(peekCtx, name, "")
	if err != nil {
		return ""
	}
	return s.Value
}

// all returns the properties of every version of a secret, in the store's
// listing order.
func (m *memStore) all(name string) []secretstore.Properties {
	list, _ := m.store.ListVersions(peekCtx, name)
	return list
}

// forEachOrder runs test once per listing order of the in-memory store,
// which newMemStore takes: no rotation decision may depend on a listing's
// order, which Key Vault does not promise.
func forEachOrder(t *testing.T, test func(t *testing.T, order driver.ListOrder)) {
	for _, order := range driver.ListOrders {
		t.Run(order.String(), func(t *testing.T) { test(t, order) })
	}
}

// setTags replaces the tags of one version of a secret.
func (m *memStore) setTags(name, version string, tags map[string]string) {
	if _, err := m.store.UpdateProperties(peekCtx, name, version, secretstore.Update{Tags: tags}); err != nil {
		panic(err)
	}
}

// faults are switchable store failures, for a memStore's before.
type faults struct {
	down          atomic.Bool // every call fails
	getsDown      atomic.Bool // reads fail
	setBreaksGets atomic.Bool // the next write succeeds, then reads fail
}

var errDown = errors.New("store down")

func (f *faults) before(_ context.Context, op string) error {
	unavailable := &memstore.Error{Code: secretstore.Unavailable, Err: errDown}
	switch {
	case f.down.Load():
		return unavailable
	case strings.HasPrefix(op, memstore.OpGet+" ") && f.getsDown.Load():
		return unavailable
	case strings.HasPrefix(op, memstore.OpSet+" ") && f.setBreaksGets.Swap(false):
		f.getsDown.Store(true)
	}
	return nil
}
