package rotation_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore/filestore"
)

// TestTimeline runs the real file store, validators and rotator on an
// injected clock over many rotation periods: a client that re-reads the
// active key once per refresh interval never gets a 401; a client that never
// re-reads keeps working until the second rotation after its read, and
// fails from then on.
func TestTimeline(t *testing.T) {
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	store, err := filestore.Open(t.TempDir(), &filestore.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	policy := rotation.Policy{Period: 30 * 24 * time.Hour, RefreshInterval: 24 * time.Hour}
	w := wiring{ringTTL: 30 * time.Second, refreshMinInterval: time.Second, maxStale: 5 * time.Minute, ttl: 30 * time.Second,
		policy: policy, now: clock.Now, sleep: func(_ context.Context, d time.Duration) error { clock.Advance(d); return nil }}
	v0, _ := w.wire(store)
	v1, _ := w.wire(store)
	validators := []*keyring.Ring{v0, v1}
	_, rot := w.wire(store)
	readActive := func() string {
		k, err := validators[0].Get(ctx, service)
		if err != nil {
			t.Fatal(err)
		}
		if k.ActiveKeyType == keysecret.Secondary {
			return k.SecondaryKey
		}
		return k.PrimaryKey
	}
	diligent := readActive() // re-reads once per refresh interval
	lazy := readActive()     // reads once, never again
	lastRead := clock.Now()
	var completions []time.Time
	lazyFailedAt := time.Time{}

	const tick, days = time.Hour, 150
	for h := 0; h < days*24; h++ {
		clock.Advance(tick)
		if h%6 == 0 { // the timer
			res, err := rot.RotateIfDue(ctx, service)
			if err != nil {
				t.Fatalf("hour %d: %v", h, err)
			}
			if res.Outcome == rotation.Completed {
				completions = append(completions, clock.Now())
			}
		}
		if clock.Now().Sub(lastRead) >= policy.RefreshInterval {
			diligent, lastRead = readActive(), clock.Now()
		}
		v := validators[h%2]
		if _, err := v.Validate(ctx, service, diligent); err != nil {
			t.Fatalf("hour %d: the client that re-reads daily got %v", h, err)
		}
		if _, err := v.Validate(ctx, service, lazy); err != nil {
			if !errors.Is(err, keyring.ErrNoMatch) {
				t.Fatal(err)
			}
			if lazyFailedAt.IsZero() {
				lazyFailedAt = clock.Now()
			}
		} else if !lazyFailedAt.IsZero() {
			t.Fatalf("hour %d: a key that failed works again", h)
		}
	}
	if len(completions) < 4 {
		t.Fatalf("%d rotations in %d days; want at least 4 with a 30-day period", len(completions), days)
	}
	for i := 1; i < len(completions); i++ {
		if gap := completions[i].Sub(completions[i-1]); gap < policy.Period || gap > policy.Period+7*time.Hour {
			t.Errorf("rotation %d came %v after the previous one; want the period (30 days) plus at most a timer tick", i, gap)
		}
	}
	// The lazy client's key fails once the second rotation after its read
	// has staged over it: after the first completion, at or before the
	// second.
	if lazyFailedAt.IsZero() || !lazyFailedAt.After(completions[0]) || lazyFailedAt.After(completions[1]) {
		t.Fatalf("the never-re-reading client failed at %v; rotations completed at %v", lazyFailedAt, completions[:2])
	}
	t.Logf("%d rotations in %d days; the never-re-reading client failed %v after the first", len(completions), days, lazyFailedAt.Sub(completions[0]))
}
