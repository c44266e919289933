package cache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/fakeclock"
)

var errDown = errors.New("source down")

// source counts reads and fails while down is set.
type source struct {
	reads atomic.Int32
	down  atomic.Bool
	n     atomic.Int32          // the value each read returns
	err   atomic.Pointer[error] // if set, the failure of each read
}

func (s *source) load(context.Context) (int32, error) {
	s.reads.Add(1)
	if s.down.Load() {
		return 0, errDown
	}
	if e := s.err.Load(); e != nil {
		return 0, *e
	}
	return s.n.Load(), nil
}

func newValue(clk *fakeclock.Clock, src *source, stale *atomic.Int32) *cache.Value[int32] {
	return cache.New(src.load, cache.Options[int32]{
		Bounds: cache.Bounds{TTL: 30 * time.Second, RefreshMinInterval: time.Second, MaxStale: time.Minute}, Now: clk.Now,
		OnStale: func(time.Duration, error) { stale.Add(1) },
	})
}

func TestGetReadsOncePerTTL(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	src := &source{}
	var stale atomic.Int32
	v := newValue(clk, src, &stale)
	ctx := context.Background()
	src.n.Store(1)
	for range 5 {
		s, err := v.Get(ctx)
		if err != nil || s.Value != 1 {
			t.Fatalf("Get = %v, %v; want 1", s, err)
		}
	}
	if got := src.reads.Load(); got != 1 {
		t.Fatalf("reads = %d; want 1", got)
	}
	src.n.Store(2)
	clk.Advance(29 * time.Second)
	if s, _ := v.Get(ctx); s.Value != 1 {
		t.Fatalf("within the TTL Get = %d; want the cached 1", s.Value)
	}
	clk.Advance(time.Second)
	if s, _ := v.Get(ctx); s.Value != 2 {
		t.Fatalf("at the TTL Get = %d; want a fresh 2", s.Value)
	}
	if got := src.reads.Load(); got != 2 {
		t.Fatalf("reads = %d; want 2", got)
	}
}

func TestMissIsRateLimited(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	src := &source{}
	var stale atomic.Int32
	v := newValue(clk, src, &stale)
	ctx := context.Background()
	seen, _ := v.Get(ctx)
	s1, err := v.Miss(ctx, seen)
	if err != nil || src.reads.Load() != 2 {
		t.Fatalf("first miss: err %v, reads %d; want a read", err, src.reads.Load())
	}
	// Concurrent misses on the new snapshot within the interval: no read.
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { _, _ = v.Miss(ctx, s1) })
	}
	wg.Wait()
	if got := src.reads.Load(); got != 2 {
		t.Fatalf("reads after 50 misses within the interval = %d; want 2", got)
	}
	// A miss on a snapshot older than the cache gets the newer one free.
	if s, _ := v.Miss(ctx, seen); s != s1 || src.reads.Load() != 2 {
		t.Fatalf("miss on an old snapshot read the source or returned another snapshot")
	}
	clk.Advance(time.Second)
	if _, err := v.Miss(ctx, s1); err != nil || src.reads.Load() != 3 {
		t.Fatalf("miss after the interval: reads %d; want 3", src.reads.Load())
	}
}

func TestServesStaleThenFails(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	src := &source{}
	var stale atomic.Int32
	v := newValue(clk, src, &stale)
	ctx := context.Background()
	src.n.Store(7)
	if _, err := v.Get(ctx); err != nil {
		t.Fatal(err)
	}
	src.down.Store(true)
	clk.Advance(31 * time.Second)
	s, err := v.Get(ctx)
	if err != nil || s.Value != 7 || stale.Load() != 1 {
		t.Fatalf("Get with the source down = %v, %v (stale %d); want the stale 7", s, err, stale.Load())
	}
	reads := src.reads.Load()
	// Within the back-off the source is left alone.
	for range 10 {
		_, _ = v.Get(ctx)
	}
	if got := src.reads.Load(); got != reads {
		t.Fatalf("reads during the back-off = %d; want %d", got, reads)
	}
	clk.Advance(60 * time.Second) // 91s old: past TTL+MaxStale
	if _, err := v.Get(ctx); !errors.Is(err, errDown) {
		t.Fatalf("Get past the staleness bound err = %v; want %v", err, errDown)
	}
	src.down.Store(false)
	clk.Advance(time.Second)
	if s, err := v.Get(ctx); err != nil || s.Value != 7 {
		t.Fatalf("Get after recovery = %v, %v", s, err)
	}
}

func TestNoStaleWithoutValueOrMaxStale(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	src := &source{}
	src.down.Store(true)
	v := cache.New(src.load, cache.Options[int32]{Bounds: cache.Bounds{TTL: time.Second}, Now: clk.Now})
	if _, err := v.Get(context.Background()); !errors.Is(err, errDown) {
		t.Fatalf("first Get err = %v; want %v", err, errDown)
	}
	src.down.Store(false)
	if _, err := v.Get(context.Background()); err != nil {
		t.Fatalf("Get with no back-off interval after recovery: %v", err)
	}
	src.down.Store(true)
	clk.Advance(time.Second)
	if _, err := v.Get(context.Background()); !errors.Is(err, errDown) {
		t.Fatalf("MaxStale 0 served a stale value: err = %v", err)
	}
}

func TestBackoffOption(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	src := &source{}
	v := cache.New(src.load, cache.Options[int32]{Bounds: cache.Bounds{TTL: time.Second, MaxStale: time.Hour}, Now: clk.Now,
		Backoff: func(error) time.Duration { return 10 * time.Second }})
	ctx := context.Background()
	_, _ = v.Get(ctx)
	src.down.Store(true)
	clk.Advance(time.Second)
	_, _ = v.Get(ctx) // fails, serves stale
	n := src.reads.Load()
	clk.Advance(9 * time.Second)
	_, _ = v.Get(ctx)
	if src.reads.Load() != n {
		t.Fatal("read within the Backoff window")
	}
	clk.Advance(time.Second)
	_, _ = v.Get(ctx)
	if src.reads.Load() != n+1 {
		t.Fatal("no read after the Backoff window")
	}
}

func TestUpdateKeepsAge(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	src := &source{}
	var stale atomic.Int32
	v := newValue(clk, src, &stale)
	v.Update(func(n int32) int32 { return n + 1 }) // nothing cached: no effect
	if v.Peek() != nil {
		t.Fatal("Update cached a value")
	}
	ctx := context.Background()
	src.n.Store(1)
	first, _ := v.Get(ctx)
	clk.Advance(10 * time.Second)
	v.Update(func(n int32) int32 { return n + 41 })
	s, _ := v.Get(ctx)
	if s.Value != 42 || !s.Loaded.Equal(first.Loaded) || src.reads.Load() != 1 {
		t.Fatalf("after Update: %d loaded %v (reads %d); want 42 loaded %v, no read", s.Value, s.Loaded, src.reads.Load(), first.Loaded)
	}
	clk.Advance(20 * time.Second) // the TTL counts from the read, not the Update
	if s, _ := v.Get(ctx); s.Value != 1 {
		t.Fatalf("after the TTL Get = %d; want a fresh read", s.Value)
	}
}
