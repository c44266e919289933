package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/fakeclock"
)

var errThrottled = errors.New("throttled")

// throttled treats errThrottled as a 429 asking for 10 s.
func throttled(err error) (time.Duration, bool) {
	if errors.Is(err, errThrottled) {
		return 10 * time.Second, true
	}
	return 0, false
}

func TestGateHold(t *testing.T) {
	b := cache.Bounds{TTL: 5 * time.Second, RefreshMinInterval: 2 * time.Second, MaxStale: 30 * time.Second}
	for _, tt := range []struct {
		name string
		ra   time.Duration
		b    cache.Bounds
		want time.Duration
	}{
		{"as asked", 10 * time.Second, b, 10 * time.Second},
		{"none named: RefreshMinInterval", 0, b, 2 * time.Second},
		{"capped at MaxStale", time.Hour, b, 30 * time.Second},
		{"MaxStale 0: capped at the TTL", time.Hour, cache.Bounds{TTL: 5 * time.Second}, 5 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := cache.NewGate(tt.b, func(error) (time.Duration, bool) { return tt.ra, true })
			if got := g.Hold(errThrottled); got != tt.want {
				t.Fatalf("Hold = %v; want %v", got, tt.want)
			}
		})
	}
	g := cache.NewGate(b, throttled)
	if got := g.Hold(errDown); got != 0 {
		t.Fatalf("Hold of another failure = %v; want 0", got)
	}
}

// TestGateStopsEveryValue: a throttled read of one Value closes the gate
// for every Value sharing it; they serve what they hold, and past their
// staleness bound fail with the time left.
func TestGateStopsEveryValue(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	b := cache.Bounds{TTL: time.Second, MaxStale: 5 * time.Second}
	g := cache.NewGate(b, throttled)
	a, other := &source{}, &source{}
	va := cache.New(a.load, cache.Options[int32]{Bounds: b, Now: clk.Now, Gate: g})
	vo := cache.New(other.load, cache.Options[int32]{Bounds: b, Now: clk.Now, Gate: g})
	ctx := context.Background()
	va.Get(ctx)
	vo.Get(ctx)
	clk.Advance(2 * time.Second)
	a.err.Store(&errThrottled)
	va.Get(ctx) // throttled: the gate closes for 10 s, capped at 5 s
	a.err.Store(nil)
	ra, ro := a.reads.Load(), other.reads.Load()
	for i := 0; i < 4; i++ {
		if _, err := vo.Get(ctx); err != nil {
			t.Fatalf("%ds into the hold: %v", i, err)
		}
		va.Get(ctx)
		clk.Advance(time.Second)
	}
	if a.reads.Load() != ra || other.reads.Load() != ro {
		t.Fatal("a read while the gate was closed")
	}
	clk.Advance(500 * time.Millisecond) // the values are 6.5 s old: past TTL + MaxStale
	_, err := vo.Get(ctx)
	var held *cache.HeldError
	if !errors.As(err, &held) || !errors.Is(err, errThrottled) || held.RetryAfter != 500*time.Millisecond || held.RetryAfterHint() != 500*time.Millisecond {
		t.Fatalf("past the staleness bound: %v; want a HeldError of 500ms wrapping the 429", err)
	}
	if _, err := va.Reload(ctx); !errors.As(err, &held) {
		t.Fatalf("Reload while the gate is closed: %v; want a HeldError", err)
	}
	clk.Advance(500 * time.Millisecond)
	if _, err := vo.Get(ctx); err != nil || other.reads.Load() != ro+1 {
		t.Fatalf("after the hold: %v, %d reads", err, other.reads.Load()-ro)
	}
}

// blocking is a source whose reads wait until release is closed.
type blocking struct {
	release chan struct{}
	reads   chan struct{}
}

func (s *blocking) load(ctx context.Context) (int32, error) {
	s.reads <- struct{}{}
	select {
	case <-s.release:
		return 2, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// TestReadTimeout: a Get or Miss waits at most ReadTimeout, then answers
// from the cache (or ErrReadTimeout), while the read lands later.
func TestReadTimeout(t *testing.T) {
	clk := fakeclock.New(time.Unix(1e9, 0))
	first := true
	src := &blocking{release: make(chan struct{}), reads: make(chan struct{}, 10)}
	load := func(ctx context.Context) (int32, error) {
		if first {
			first = false
			return 1, nil
		}
		return src.load(ctx)
	}
	v := cache.New(load, cache.Options[int32]{Bounds: cache.Bounds{TTL: time.Second, MaxStale: time.Second, ReadTimeout: 20 * time.Millisecond}, Now: clk.Now})
	ctx := context.Background()
	seen, err := v.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := v.Miss(ctx, seen); err != nil || s != seen {
		t.Fatalf("Miss, slow source: %v, %v; want the cached value", s, err)
	}
	<-src.reads
	clk.Advance(1500 * time.Millisecond) // past the TTL, within MaxStale
	if s, err := v.Get(ctx); err != nil || s.Value != 1 {
		t.Fatalf("Get, slow source: %v, %v; want the cached value", s, err)
	}
	clk.Advance(time.Second) // past TTL + MaxStale
	if _, err := v.Get(ctx); !errors.Is(err, cache.ErrReadTimeout) {
		t.Fatalf("Get past the staleness bound, slow source: %v; want ErrReadTimeout", err)
	}
	if len(src.reads) != 0 {
		t.Fatal("a second read while one was in flight")
	}
	close(src.release)
	deadline := time.Now().Add(10 * time.Second)
	for v.Peek().Value != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the background read never landed")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestZeroReadTimeoutWaits: ReadTimeout 0 means a Get waits for the read
// however long it takes.
func TestZeroReadTimeoutWaits(t *testing.T) {
	src := &blocking{release: make(chan struct{}), reads: make(chan struct{}, 10)}
	v := cache.New(src.load, cache.Options[int32]{Bounds: cache.Bounds{TTL: time.Second, MaxStale: time.Second}})
	got := make(chan int32)
	go func() {
		s, err := v.Get(context.Background())
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- s.Value
	}()
	<-src.reads
	select {
	case <-got:
		t.Fatal("Get returned before the read")
	case <-time.After(50 * time.Millisecond):
	}
	close(src.release)
	if n := <-got; n != 2 {
		t.Fatalf("Get = %d; want 2", n)
	}
}
