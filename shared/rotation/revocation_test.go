package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// This file checks the revocation bound of docs/design.md section 14 over
// seeded interleavings of writers on separate instances (a rotation, two
// regen_keys, with a crash of any of them at any store call) while
// validators on other instances answer: after a regen_key or a rotation
// returns, a key value it replaced is refused everywhere within the
// journal's bound, and a key a regen_key returned works everywhere at once.
// The oracle is the store's own write history (every version of the three
// secrets, with its creation time), not the journal's records.

const revocationTTL = 30 * time.Second

// history is the store's write history of a service's key secrets.
type history struct {
	mem *memStore
}

// reign is one version's time as the newest of its secret: from its
// creation to the next version's (zero: still the newest). Versions of one
// second reign together for that second (the store's times cannot order
// them).
type reign struct {
	value      string
	start, end time.Time
}

func (h history) reigns() []reign {
	var out []reign
	for _, name := range []string{keysecret.KeySecret(service, keysecret.Primary), keysecret.KeySecret(service, keysecret.Secondary), keysecret.ActiveSecret(service)} {
		versions := h.mem.all(name)
		slices.SortFunc(versions, func(a, b secretstore.Properties) int { return a.Created.Compare(b.Created) })
		for i, p := range versions {
			sec, err := h.mem.store.GetSecret(peekCtx, name, p.Version)
			if err != nil {
				continue // a disabled version reigns over nothing
			}
			r := reign{value: sec.Value, start: p.Created}
			for _, q := range versions[i+1:] {
				if q.Created.After(p.Created) {
					r.end = q.Created.Add(time.Second) // the whole second of the tie
					break
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// acceptedWithin reports whether the store held value as a key at some
// time in [from, to].
func acceptedWithin(rs []reign, value string, from, to time.Time) bool {
	for _, r := range rs {
		if r.value == value && !r.start.After(to) && (r.end.IsZero() || !r.end.Before(from)) {
			return true
		}
	}
	return false
}

// ack is a writer's success: at when, the values it replaced, and the one
// it wrote (regen_key's, "" for a rotation).
type ack struct {
	when     time.Time
	replaced []string
	wrote    string
}

func revocationInterleave(seed uint64) (stats string, err error) {
	order, _ := variant(seed)
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	var s *scheduler
	defer func() {
		if err != nil && *seedFlag != 0 {
			err = fmt.Errorf("%w\ntrace:\n%s", err, strings.Join(s.trace, "\n"))
		}
	}()
	s = &scheduler{rng: rand.New(rand.NewPCG(seed, seed^0xa0761d6478bd642f)), events: make(chan int), clock: clock, step: time.Second}
	mem := newSeededMemStore(clock.Now, order, seed)
	mem.before = s.before
	h := history{mem: mem}
	ctx := context.Background()
	sleep := func(_ context.Context, d time.Duration) error { clock.Advance(d); return nil }
	w := wiring{ringTTL: revocationTTL, ttl: 2 * revocationTTL, now: clock.Now, sleep: sleep}

	setup, _ := w.wire(mem.store)
	if _, err := setup.Get(ctx, service); err != nil {
		return "", err
	}
	if err := setup.EnsureAdminKey(ctx); err != nil {
		return "", err
	}
	// Validators 0 and 1 read the vault only when a poll is due (their
	// misses are spaced an hour apart): they test the bound. Validator 2
	// reads at every miss: it tests that a new key works at once.
	validators := make([]*keyring.Ring, 3)
	for i := range validators {
		vw := w
		if i < 2 {
			vw.refreshMinInterval = time.Hour
		}
		validators[i], _ = vw.wire(mem.store)
		validators[i].Validate(ctx, service, "warm-up-not-a-key-warm-up-not-a-key")
	}
	// The documented bound, not the code's own idea of it.
	const bound = 2 * revocationTTL
	if b := validators[0].Journal().Bound(); b > bound {
		return "", fmt.Errorf("the journal's bound is %v, more than 2 x KEY_CACHE_TTL", b)
	}
	adminKey := mem.newest(keysecret.AdminKeySecret)
	clock.Advance(31 * 24 * time.Hour)

	var acks []ack
	values := map[string]bool{} // every key value ever held
	regenValues := [2]string{strings.Repeat("p", 40), strings.Repeat("s", 40)}
	type op func(ctx context.Context, rot *rotation.Rotator) (ack, error)
	before := func(kt keysecret.KeyType) []string {
		var out []string
		for _, p := range mem.all(keysecret.KeySecret(service, kt)) {
			if sec, err := mem.store.GetSecret(peekCtx, keysecret.KeySecret(service, kt), p.Version); err == nil {
				out = append(out, sec.Value)
			}
		}
		return out
	}
	ops := []op{
		func(ctx context.Context, rot *rotation.Rotator) (ack, error) {
			res, err := rot.RotateNow(ctx, service)
			if err != nil || res.Outcome != rotation.Completed {
				return ack{}, fmt.Errorf("rotation: %+v %w", res, err)
			}
			return ack{}, nil // a rotation replaces no key a client holds before the next one
		},
		func(ctx context.Context, rot *rotation.Rotator) (ack, error) {
			old := before(keysecret.Primary)
			err := rot.Regenerate(ctx, service, keysecret.Primary, regenValues[0])
			return ack{replaced: old, wrote: regenValues[0]}, err
		},
		func(ctx context.Context, rot *rotation.Rotator) (ack, error) {
			old := before(keysecret.Secondary)
			err := rot.Regenerate(ctx, service, keysecret.Secondary, regenValues[1])
			return ack{replaced: old, wrote: regenValues[1]}, err
		},
	}
	actors := make([]*actor, len(ops))
	done := make([]chan ack, len(ops))
	for i := range ops {
		actors[i] = &actor{id: i, permit: make(chan bool)}
		done[i] = make(chan ack, 1)
		_, rot := w.wire(mem.store)
		go func() {
			a, err := ops[i](context.WithValue(ctx, actorKey{}, actors[i]), rot)
			if err == nil {
				a.when = clock.Now()
				done[i] <- a
			}
			close(done[i])
			s.events <- -1 - i
		}()
	}

	// check is the invariant, after every store call of the schedule.
	checks := 0
	check := func() error {
		for i := range done {
			select {
			case a, ok := <-done[i]:
				if ok {
					acks = append(acks, a)
				}
				done[i] = nil
			default:
			}
		}
		rs := h.reigns()
		for _, r := range rs {
			values[r.value] = true
		}
		now := clock.Now()
		// Traffic: every validator answers a request now and then (the
		// administrator key, which no writer changes), which polls the
		// journal when a poll is due.
		for i, val := range validators {
			if err := val.ValidateAdmin(ctx, adminKey); err != nil {
				return fmt.Errorf("validator %d refuses the administrator key: %v", i, err)
			}
		}
		for _, a := range acks {
			for _, v := range a.replaced {
				if now.Before(a.when.Add(bound)) || acceptedWithin(rs, v, now.Add(-bound), now) {
					continue
				}
				for i, val := range validators {
					checks++
					if _, err := val.Validate(ctx, service, v); !errors.Is(err, keyring.ErrNoMatch) {
						return fmt.Errorf("validator %d accepts a key replaced at %v, %v later (bound %v): %v", i, a.when.Format(time.TimeOnly), now.Sub(a.when), bound, err)
					}
				}
			}
			if a.wrote != "" && acceptedWithin(rs, a.wrote, now, now) {
				for i, val := range validators[2:] {
					checks++
					if _, err := val.Validate(ctx, service, a.wrote); err != nil {
						if *seedFlag != 0 {
							v := val.Journal().Peek()
							for _, n := range []string{keysecret.KeySecret(service, keysecret.Primary), keysecret.KeySecret(service, keysecret.Secondary), keysecret.ActiveSecret(service)} {
								e, st := v.Newest(n)
								fmt.Printf("%s: newest %s %v status %v listed %v\n", n, e.Version, e.Created, st, v.Listed())
								for _, x := range v.Versions(n) {
									fmt.Printf("   %s %v %v\n", x.Version, x.Created, x.Enabled)
								}
								for _, p := range mem.all(n) {
									fmt.Printf("   store %s %v\n", p.Version, p.Created)
								}
							}
						}
						return fmt.Errorf("validator %d refuses the key a regen_key returned %v ago: %v", i+2, now.Sub(a.when), err)
					}
				}
			}
		}
		return nil
	}

	calls, _, err := s.run(actors, 16, check)
	if err != nil {
		return "", err
	}
	// Time passes: every bound comes due, and still holds.
	for range 2 * int(bound/time.Second) {
		clock.Advance(time.Second)
		if err := check(); err != nil {
			return "", fmt.Errorf("after the writers: %w", err)
		}
	}
	return fmt.Sprintf("%d store calls, %d acks, %d checks", calls, len(acks), checks), nil
}

// TestRevocationBoundUnderInterleavings: see the top of this file. Run one
// seed with -seed.
func TestRevocationBoundUnderInterleavings(t *testing.T) {
	n := min(*interleavings/4, 1000)
	seeds := make([]uint64, 0, n)
	if *seedFlag != 0 {
		seeds = append(seeds, *seedFlag)
	} else {
		for i := 1; i <= n; i++ {
			seeds = append(seeds, uint64(i))
		}
	}
	acked := 0
	for _, seed := range seeds {
		stats, err := revocationInterleave(seed)
		if err != nil {
			t.Fatalf("seed %d (replay with go test ./shared/rotation -run TestRevocationBoundUnderInterleavings -seed %d): %v", seed, seed, err)
		}
		if !strings.Contains(stats, " 0 acks") {
			acked++
		}
	}
	t.Logf("%d interleavings, %d with acknowledged writes, passed", len(seeds), acked)
	if len(seeds) >= 50 && acked < len(seeds)/2 {
		t.Errorf("only %d of %d interleavings acknowledged a write: the check saw too little", acked, len(seeds))
	}
}
