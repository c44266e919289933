// Package cache keeps one value read from a slow and fallible source, such
// as a secret store: it trusts the value for a TTL, re-reads it when a
// lookup in it fails (at most once per interval), leaves a failing source
// alone for a while, and serves the last value for a bounded time while the
// source is down.
//
// Validators of service keys and of signing keys share it, so both honour
// the same settings the same way: KEY_CACHE_TTL, KEY_REFRESH_MIN_INTERVAL,
// KEY_CACHE_MAX_STALENESS and KEY_READ_TIMEOUT. A [Gate] shared by every
// Value over one source makes a throttled source back off all of them.
package cache

import (
	"context"
	"errors"
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
	// ReadTimeout (KEY_READ_TIMEOUT) is how long [Value.Get] and
	// [Value.Miss] wait for a read of the source. When it passes, the read
	// goes on in the background (for at most [MaxBackgroundRead]) and
	// caches what it reads, and the caller gets the cached value as if the
	// read had failed (within MaxStale), else [ErrReadTimeout]. 0: no
	// bound, the caller waits for the read however long it takes.
	// [Value.Reload] always waits.
	ReadTimeout time.Duration
}

// The default bounds.
const (
	DefaultTTL                = 30 * time.Second
	DefaultRefreshMinInterval = time.Second
	DefaultMaxStale           = 5 * time.Minute
	DefaultReadTimeout        = 2 * time.Second
)

// MaxBackgroundRead bounds a read that no caller waits for any more (see
// Bounds.ReadTimeout): it is cancelled after this long, and counts as a
// failed read.
const MaxBackgroundRead = time.Minute

// ErrReadTimeout: the source did not answer within Bounds.ReadTimeout, and
// no cached value was recent enough to serve.
var ErrReadTimeout = errors.New("cache: the source did not answer in time")

// DefaultBounds returns the default bounds: TTL 30s, RefreshMinInterval
// 1s, MaxStale 5m, ReadTimeout 2s.
func DefaultBounds() Bounds {
	return Bounds{TTL: DefaultTTL, RefreshMinInterval: DefaultRefreshMinInterval, MaxStale: DefaultMaxStale, ReadTimeout: DefaultReadTimeout}
}

// Gate is a back-off shared by every [Value] over one source (every cache
// of one secret store on an instance): after a read fails in a way that
// concerns the whole source (a throttled store), no Value using the Gate
// reads the source until the hold ends. Values keep serving their cached
// values meanwhile, as after any failure (within MaxStale); past that their
// failures are a [HeldError] that says how long the hold still lasts. It is
// safe for concurrent use.
type Gate struct {
	bounds    Bounds
	throttled func(err error) (retryAfter time.Duration, ok bool)

	mu    sync.Mutex
	until time.Time
	err   error
}

// NewGate returns a Gate. throttled reports whether a failure concerns the
// whole source, and how long the source asked callers to wait (0: it did
// not say). A failure closes the Gate for that long, but at least
// b.RefreshMinInterval and at most the larger of b.TTL and b.MaxStale, so
// that a long Retry-After cannot keep a recovered source unread past the
// callers' staleness bound (see [Gate.Hold]).
func NewGate(b Bounds, throttled func(err error) (retryAfter time.Duration, ok bool)) *Gate {
	return &Gate{bounds: b, throttled: throttled}
}

// Hold returns how long err closes the Gate: 0 if it does not concern the
// whole source, else min(max(Retry-After, RefreshMinInterval),
// max(TTL, MaxStale)).
func (g *Gate) Hold(err error) time.Duration {
	ra, ok := g.throttled(err)
	if !ok {
		return 0
	}
	b := g.bounds
	return min(max(ra, b.RefreshMinInterval), max(b.TTL, b.MaxStale))
}

// Failed closes g after err, a read of the source that began at start
// failed, unless it is already closed for longer: what a [Value] does
// after its own failed reads, for reads made outside a Value.
func (g *Gate) Failed(start time.Time, err error) {
	d := g.Hold(err)
	if d <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if until := start.Add(d); until.After(g.until) {
		g.until, g.err = until, err
	}
}

// Closed returns how long g stays closed after now (0: it is open), and
// the failure that closed it.
func (g *Gate) Closed(now time.Time) (time.Duration, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := g.until.Sub(now); d > 0 {
		return d, g.err
	}
	return 0, nil
}

// HeldError is a failure while a [Gate] is closed: Err is the failure (the
// one that closed the Gate, if the source was not read), RetryAfter how
// long the Gate stays closed from when the error was made.
type HeldError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *HeldError) Error() string {
	return "cache: the source is left alone for " + e.RetryAfter.Round(time.Millisecond).String() + ": " + e.Err.Error()
}

func (e *HeldError) Unwrap() error { return e.Err }

// RetryAfterHint is RetryAfter: what a 503 caused by e tells callers
// (package apierror looks for this method).
func (e *HeldError) RetryAfterHint() time.Duration { return e.RetryAfter }

// Options bound a [Value] of T. They are used as given: 0 means none.
type Options[T any] struct {
	Bounds
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Gate, if set, is shared with the other Values over the same source:
	// while it is closed this Value does not read the source, and a failed
	// read of this Value may close it. nil: failures back off this Value
	// alone.
	Gate *Gate
	// Backoff, if set, is how long to leave the source alone after err,
	// instead of RefreshMinInterval (for example a throttled store's
	// Retry-After).
	Backoff func(err error) time.Duration
	// OnStale, if set, is told each time a stale value is served because
	// the source failed: the value's age and the failure.
	OnStale func(age time.Duration, err error)
	// Fresh, if set, decides whether a value read at loaded is still
	// fresh at now, instead of the TTL (which still bounds how long a
	// stale value is served: TTL + MaxStale): for values read on a
	// schedule rather than a fixed time after the last read.
	Fresh func(loaded, now time.Time) bool
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
// serialised: at most one is in flight, and callers that need a read
// while one is in flight wait for that one.
type Value[T any] struct {
	load func(context.Context) (T, error)
	opts Options[T]

	snap atomic.Pointer[Snapshot[T]]

	mu       sync.Mutex // guards the fields below
	inflight *call[T]   // the read in flight, or nil
	lastMiss time.Time  // of the last read caused by a miss
	lastFail time.Time  // of the last failed read
	lastErr  error      // of the last read
}

// call is one read of the source; snap and err are set before done is
// closed.
type call[T any] struct {
	done chan struct{}
	snap *Snapshot[T]
	err  error
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
// fresh read (or, while the source fails or is slower than ReadTimeout,
// the cached one within MaxStale).
func (v *Value[T]) Get(ctx context.Context) (*Snapshot[T], error) {
	snap := v.snap.Load()
	if snap != nil && v.fresh(snap.Loaded, v.opts.Now()) {
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
// value read; it waits for the read however long it takes (after any read
// already in flight). A failure leaves the cache as it was; while the Gate
// is closed it fails at once with a [HeldError].
func (v *Value[T]) Reload(ctx context.Context) (*Snapshot[T], error) {
	for {
		v.mu.Lock()
		if c := v.inflight; c != nil {
			v.mu.Unlock()
			select {
			case <-c.done:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if err := v.gateErr(v.opts.Now()); err != nil {
			v.mu.Unlock()
			return nil, err
		}
		c := v.start(ctx, nil)
		v.mu.Unlock()
		<-c.done
		return c.snap, c.err
	}
}

// Update replaces the cached value with fn of it, keeping its age (for a
// change this process made and knows of before the source shows it),
// after any read in flight has been cached. It does nothing while nothing
// is cached.
func (v *Value[T]) Update(fn func(T) T) {
	for {
		v.mu.Lock()
		if c := v.inflight; c != nil {
			v.mu.Unlock()
			<-c.done
			continue
		}
		if cur := v.snap.Load(); cur != nil {
			v.snap.Store(&Snapshot[T]{Value: fn(cur.Value), Loaded: cur.Loaded})
		}
		v.mu.Unlock()
		return
	}
}

func (v *Value[T]) fresh(loaded, now time.Time) bool {
	if v.opts.Fresh != nil {
		return v.opts.Fresh(loaded, now)
	}
	return now.Sub(loaded) < v.opts.TTL
}

// Peek returns the cached snapshot without reading, or nil.
func (v *Value[T]) Peek() *Snapshot[T] { return v.snap.Load() }

func (v *Value[T]) refresh(ctx context.Context, seen *Snapshot[T], miss bool) (*Snapshot[T], error) {
	v.mu.Lock()
	now := v.opts.Now()
	if cur := v.snap.Load(); cur != seen && cur != nil {
		v.mu.Unlock()
		return cur, nil // read meanwhile by someone else
	}
	if miss {
		if seen != nil && now.Sub(v.lastMiss) < v.opts.RefreshMinInterval {
			v.mu.Unlock()
			return seen, nil
		}
		v.lastMiss = now
	}
	if c := v.inflight; c != nil {
		v.mu.Unlock()
		return v.wait(ctx, c, seen)
	}
	if err := v.gateErr(now); err != nil {
		v.mu.Unlock()
		return v.serveStale(seen, now, err)
	}
	if v.lastErr != nil && now.Sub(v.lastFail) < v.backoff(v.lastErr) {
		err := v.lastErr
		v.mu.Unlock()
		return v.serveStale(seen, now, err)
	}
	var c *call[T]
	if v.opts.ReadTimeout > 0 {
		// The read may outlive this caller: it goes on in the background.
		c = v.start(context.WithTimeout(context.WithoutCancel(ctx), MaxBackgroundRead))
	} else {
		c = v.start(ctx, nil)
	}
	v.mu.Unlock()
	return v.wait(ctx, c, seen)
}

// wait waits for c, at most ReadTimeout, and answers as refresh does.
func (v *Value[T]) wait(ctx context.Context, c *call[T], seen *Snapshot[T]) (*Snapshot[T], error) {
	var timeout <-chan time.Time
	if d := v.opts.ReadTimeout; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-c.done:
		if c.err != nil {
			return v.serveStale(seen, v.opts.Now(), c.err)
		}
		return c.snap, nil
	case <-timeout:
		now := v.opts.Now()
		return v.serveStale(seen, now, v.held(now, ErrReadTimeout))
	case <-ctx.Done():
		return v.serveStale(seen, v.opts.Now(), ctx.Err())
	}
}

// start begins a read with ctx, and calls cancel (if not nil) after it;
// v.mu must be held.
func (v *Value[T]) start(ctx context.Context, cancel context.CancelFunc) *call[T] {
	c := &call[T]{done: make(chan struct{})}
	v.inflight = c
	go v.read(ctx, cancel, c)
	return c
}

// read loads the value, caches it and ends c.
func (v *Value[T]) read(ctx context.Context, cancel context.CancelFunc, c *call[T]) {
	// The TTL counts from before the read, so a slow source does not
	// lengthen it.
	start := v.opts.Now()
	val, err := v.load(ctx)
	if cancel != nil {
		cancel()
	}
	v.mu.Lock()
	defer func() {
		v.inflight = nil
		v.mu.Unlock()
		close(c.done)
	}()
	if err != nil {
		v.lastErr, v.lastFail = err, start
		if g := v.opts.Gate; g != nil {
			g.Failed(start, err)
		}
		c.err = v.held(v.opts.Now(), err)
		return
	}
	v.lastErr = nil
	c.snap = &Snapshot[T]{Value: val, Loaded: start}
	old := v.snap.Swap(c.snap)
	if v.opts.OnStore != nil {
		var prev T
		if old != nil {
			prev = old.Value
		}
		v.opts.OnStore(prev, val)
	}
}

// gateErr is the failure to answer with while the Gate is closed, or nil.
func (v *Value[T]) gateErr(now time.Time) error {
	if g := v.opts.Gate; g != nil {
		if d, err := g.Closed(now); d > 0 {
			return &HeldError{Err: err, RetryAfter: d}
		}
	}
	return nil
}

// held is err as a [HeldError] while the Gate is closed, else err.
func (v *Value[T]) held(now time.Time, err error) error {
	if g := v.opts.Gate; g != nil {
		if d, _ := g.Closed(now); d > 0 {
			return &HeldError{Err: err, RetryAfter: d}
		}
	}
	return err
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
