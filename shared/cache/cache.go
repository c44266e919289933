// Package cache keeps one value read from a slow and fallible source, such
// as a secret store: it trusts the value for a TTL, re-reads it when a
// lookup in it fails (at most once per interval), leaves a failing source
// alone for a while, and serves the last value for a bounded time while the
// source is down.
//
// Validators of service keys and of signing keys share it, so both honour
// the same settings the same way: KEY_CACHE_TTL, KEY_REFRESH_MIN_INTERVAL
// and KEY_CACHE_MAX_STALENESS.
package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds are how long a cached value is trusted and served: the settings
// KEY_CACHE_TTL, KEY_REFRESH_MIN_INTERVAL and KEY_CACHE_MAX_STALENESS,
// shared by every cache of keys. They are used as given.
type Bounds struct {
	// TTL is how long a value read is trusted; at least 1ns (0 or less:
	// every Get reads).
	TTL time.Duration
	// RefreshMinInterval is the least time between two reads caused by
	// misses, and after a failed read; 0: no limit.
	RefreshMinInterval time.Duration
	// MaxStale is how long past its TTL a value is served while the source
	// fails; after that the failure is returned. 0: a failure shows at
	// once.
	MaxStale time.Duration
}

// The default bounds.
const (
	DefaultTTL                = 30 * time.Second
	DefaultRefreshMinInterval = time.Second
	DefaultMaxStale           = 5 * time.Minute
)

// DefaultBounds returns the default bounds: TTL 30s, RefreshMinInterval
// 1s, MaxStale 5m.
func DefaultBounds() Bounds {
	return Bounds{TTL: DefaultTTL, RefreshMinInterval: DefaultRefreshMinInterval, MaxStale: DefaultMaxStale}
}

// Options bound a [Value] of T. They are used as given: 0 means none.
type Options[T any] struct {
	Bounds
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Backoff, if set, is how long to leave the source alone after err,
	// instead of RefreshMinInterval (for example a throttled store's
	// Retry-After).
	Backoff func(err error) time.Duration
	// OnStale, if set, is told each time a stale value is served because
	// the source failed: the value's age and the failure.
	OnStale func(age time.Duration, err error)
	// OnStore, if set, is called after each read is cached, with the value
	// it replaced (the zero value at first) and the new one, before any
	// other read can start. It must not call back into the Value.
	OnStore func(old, new T)
}

// Snapshot is one value read, and when the read began.
type Snapshot[T any] struct {
	Value  T
	Loaded time.Time
}

// Value is a cached value of type T. It is safe for concurrent use; Get
// takes no lock while the value is fresh. Reads of the source are
// serialised.
type Value[T any] struct {
	load func(context.Context) (T, error)
	opts Options[T]

	snap atomic.Pointer[Snapshot[T]]

	mu       sync.Mutex // serialises reads; guards the fields below
	lastMiss time.Time  // of the last read caused by a miss
	lastFail time.Time  // of the last failed read
	lastErr  error      // of the last read
}

// New returns a Value that reads through load.
func New[T any](load func(context.Context) (T, error), opts Options[T]) *Value[T] {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TTL <= 0 {
		opts.TTL = 1
	}
	return &Value[T]{load: load, opts: opts}
}

// Get returns the value: the cached one while it is within its TTL, else a
// fresh read (or, while the source fails, the cached one within MaxStale).
func (v *Value[T]) Get(ctx context.Context) (*Snapshot[T], error) {
	snap := v.snap.Load()
	if snap != nil && v.opts.Now().Sub(snap.Loaded) < v.opts.TTL {
		return snap, nil
	}
	return v.refresh(ctx, snap, false)
}

// Miss reports that a lookup in seen found nothing: the source may have
// changed. It returns a newer snapshot, read now unless another read
// happened since seen or one caused by a miss happened less than
// RefreshMinInterval ago (then seen itself).
func (v *Value[T]) Miss(ctx context.Context, seen *Snapshot[T]) (*Snapshot[T], error) {
	return v.refresh(ctx, seen, true)
}

// Reload reads the source now, whatever the cache holds, and caches the
// value read. A failure leaves the cache as it was.
func (v *Value[T]) Reload(ctx context.Context) (*Snapshot[T], error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.read(ctx)
}

// Update replaces the cached value with fn of it, keeping its age (for a
// change this process made and knows of before the source shows it). It
// does nothing while nothing is cached.
func (v *Value[T]) Update(fn func(T) T) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if cur := v.snap.Load(); cur != nil {
		v.snap.Store(&Snapshot[T]{Value: fn(cur.Value), Loaded: cur.Loaded})
	}
}

// Peek returns the cached snapshot without reading, or nil.
func (v *Value[T]) Peek() *Snapshot[T] { return v.snap.Load() }

func (v *Value[T]) refresh(ctx context.Context, seen *Snapshot[T], miss bool) (*Snapshot[T], error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.opts.Now()
	if cur := v.snap.Load(); cur != seen && cur != nil {
		return cur, nil // read meanwhile by someone else
	}
	if miss {
		if seen != nil && now.Sub(v.lastMiss) < v.opts.RefreshMinInterval {
			return seen, nil
		}
		v.lastMiss = now
	}
	if v.lastErr != nil && now.Sub(v.lastFail) < v.backoff(v.lastErr) {
		return v.serveStale(seen, now, v.lastErr)
	}
	snap, err := v.read(ctx)
	if err != nil {
		return v.serveStale(seen, now, err)
	}
	return snap, nil
}

// read loads the value and caches it; v.mu must be held.
func (v *Value[T]) read(ctx context.Context) (*Snapshot[T], error) {
	// The TTL counts from before the read, so a slow source does not
	// lengthen it.
	start := v.opts.Now()
	val, err := v.load(ctx)
	if err != nil {
		v.lastErr, v.lastFail = err, start
		return nil, err
	}
	v.lastErr = nil
	snap := &Snapshot[T]{Value: val, Loaded: start}
	old := v.snap.Swap(snap)
	if v.opts.OnStore != nil {
		var prev T
		if old != nil {
			prev = old.Value
		}
		v.opts.OnStore(prev, val)
	}
	return snap, nil
}

func (v *Value[T]) backoff(err error) time.Duration {
	if v.opts.Backoff != nil {
		return v.opts.Backoff(err)
	}
	return v.opts.RefreshMinInterval
}

func (v *Value[T]) serveStale(seen *Snapshot[T], now time.Time, err error) (*Snapshot[T], error) {
	o := v.opts
	if seen != nil && o.MaxStale > 0 && now.Sub(seen.Loaded) < o.TTL+o.MaxStale {
		if o.OnStale != nil {
			o.OnStale(now.Sub(seen.Loaded), err)
		}
		return seen, nil
	}
	return nil, err
}
