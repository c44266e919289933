package rotation_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
)

var (
	interleavings = flag.Int("interleavings", 4000, "seeded interleavings of two rotations and a crash")
	seedFlag      = flag.Uint64("seed", 0, "replay one interleaving (the seed a failure printed)")
)

var errCrashed = errors.New("process crashed")

type actorKey struct{}

// actor is one process running a rotation: every store call it makes waits
// for the scheduler's permission, which may instead kill it.
type actor struct {
	id     int
	permit chan bool
	dead   bool
}

// scheduler runs actors one store call at a time, in an order drawn from a
// seeded generator, and may crash one of them at any store call.
type scheduler struct {
	rng    *rand.Rand
	events chan int // an actor id at a gate, or -1-id when it finished
	clock  *fakeclock.Clock
	step   time.Duration // how far the clock moves at every store call
	trace  []string      // what each permitted call was, for a failure report
}

func (s *scheduler) before(ctx context.Context, op string) error {
	a, _ := ctx.Value(actorKey{}).(*actor)
	if a == nil {
		s.clock.Advance(s.step)
		return nil // set-up and checks run outside the schedule
	}
	if a.dead {
		return errCrashed
	}
	s.events <- a.id
	if !<-a.permit {
		a.dead = true
		s.trace = append(s.trace, fmt.Sprintf("actor %d crashes at %s", a.id, op))
		return errCrashed
	}
	s.trace = append(s.trace, fmt.Sprintf("actor %d: %s", a.id, op))
	s.clock.Advance(s.step)
	return nil
}

// run lets the actors' store calls through one at a time, in an order the
// seed alone decides, crashing at most one of them (at a call, with odds
// 1 in crashOneIn), and calls check whenever every live actor waits at a
// call or has ended. It returns the calls let through and whether an
// actor crashed.
func (s *scheduler) run(actors []*actor, crashOneIn int, check func() error) (calls int, crashed bool, err error) {
	return runSlowed(s, actors, crashOneIn, check, func(int) bool { return false }, 0)
}

const service = "svc"

// world is the store of one interleaving and what clients were told.
type world struct {
	mem   *memStore
	store *secretstore.Store
	clock *fakeclock.Clock
	told  map[string]bool // every value the active copy ever held
}

// accepted is what every validator accepts once its cache is fresh: the
// newest version of each key secret and the active copy. It reads them with
// peekCtx: observing makes no store call of the schedule, and moves no
// clock.
func (w *world) accepted() map[string]bool {
	return map[string]bool{
		w.mem.newest(keysecret.KeySecret(service, keysecret.Primary)):   true,
		w.mem.newest(keysecret.KeySecret(service, keysecret.Secondary)): true,
		w.mem.newest(keysecret.ActiveSecret(service)):                   true,
	}
}

// observe records what a client reading the active key now is told, and
// checks that no key told so far stopped working: every rotation here is
// due at the start, so the next one is a period away.
func (w *world) observe() error {
	w.told[w.mem.newest(keysecret.ActiveSecret(service))] = true
	acc := w.accepted()
	for k := range w.told {
		if !acc[k] {
			return errors.New("a key told to clients stopped working before the next rotation was due")
		}
	}
	return nil
}

func newRotator(w *world) *rotation.Rotator {
	// Each process has its own validators.
	_, rot := wiring{ringTTL: time.Nanosecond, ttl: 30 * time.Second, now: w.clock.Now,
		sleep: func(_ context.Context, d time.Duration) error { w.clock.Advance(d); return nil }}.wire(w.store)
	return rot
}

// variant is the store a seed runs against: its listing order (Key Vault
// promises none) and the clock's step per store call, 0 for every write of
// the rotations in one second (the TTL wait alone moves the clock then),
// so that Created cannot order versions.
func variant(seed uint64) (driver.ListOrder, time.Duration) {
	n := uint64(len(driver.ListOrders))
	step := time.Second
	if seed/n%2 == 1 {
		step = 0
	}
	return driver.ListOrders[seed%n], step
}

// interleave runs two rotations of one service, due, under a seeded
// schedule with at most one crash, then a recovery run, and checks the
// invariant of design.md section 5 after every store call and at the end.
func interleave(seed uint64) (stats string, err error) {
	order, step := variant(seed)
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	var s *scheduler
	defer func() {
		if err != nil && *seedFlag != 0 {
			err = fmt.Errorf("%w\ntrace:\n%s", err, strings.Join(s.trace, "\n"))
		}
	}()
	s = &scheduler{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), events: make(chan int), clock: clock, step: step}
	mem := newSeededMemStore(clock.Now, order, seed)
	mem.before = s.before
	w := &world{mem: mem, store: mem.store, clock: clock, told: map[string]bool{}}
	ctx := context.Background()

	// The keys exist and were told; then a period passes.
	ring, _ := wiring{now: clock.Now}.wire(w.store)
	if _, err := ring.Get(ctx, service); err != nil {
		return "", err
	}
	if err := w.observe(); err != nil {
		return "", err
	}
	clock.Advance(31 * 24 * time.Hour)

	const n = 2
	actors := make([]*actor, n)
	results := make([]rotation.Result, n)
	for i := range actors {
		actors[i] = &actor{id: i, permit: make(chan bool)}
		r := newRotator(w)
		go func() {
			results[i], _ = r.RotateIfDue(context.WithValue(ctx, actorKey{}, actors[i]), service)
			s.events <- -1 - i
		}()
	}
	calls, crashed, err := s.run(actors, 12, w.observe)
	if err != nil {
		return "", err
	}

	// A later run (the next timer tick) finishes whatever a crash left.
	recovery, err := newRotator(w).RotateIfDue(ctx, service)
	if err != nil {
		return "", fmt.Errorf("recovery run: %w", err)
	}
	if err := w.observe(); err != nil {
		return "", err
	}

	// A period later the next rotation is due and completes; a timer run
	// six hours after that finds nothing to do (no leftover is resumed).
	defer func() {
		if err != nil {
			return
		}
		clock.Advance(31 * 24 * time.Hour)
		if nx, e := newRotator(w).RotateIfDue(ctx, service); e != nil || nx.Outcome != rotation.Completed {
			err = fmt.Errorf("the next due run: %+v %v", nx, e)
			return
		}
		clock.Advance(6 * time.Hour)
		if again, e := newRotator(w).RotateIfDue(ctx, service); e != nil || again.Outcome != rotation.NotDue {
			err = fmt.Errorf("the timer run 6h later: %+v %v", again, e)
		}
	}()

	// Exactly one new key took effect: one rotation id completed, and it is
	// the only id on a current version.
	completed := map[string]bool{}
	for _, r := range append(results, recovery) {
		if r.Outcome == rotation.Completed {
			completed[r.Rotation] = true
		}
	}
	current := map[string]bool{}
	for _, kt := range []keysecret.KeyType{keysecret.Primary, keysecret.Secondary} {
		for _, v := range mem.all(keysecret.KeySecret(service, kt)) {
			if id := v.Tags[keysecret.TagRotation]; id != "" && v.Tags[keysecret.TagState] == keysecret.StateCurrent {
				current[id] = true
			}
		}
	}
	if len(completed) == 0 && crashed && len(current) == 1 {
		// The crash came after the last write (the active copy's) and
		// before its writer could say so: the store shows the rotation
		// complete (checked below), and no run is left to report it.
		for id := range current {
			completed[id] = true
		}
	}
	if len(completed) != 1 || len(current) != 1 {
		return "", fmt.Errorf("completed rotations %v, current rotation versions %v (outcomes %+v, recovery %+v): want exactly one", completed, current, results, recovery)
	}
	for id := range completed {
		if !current[id] {
			return "", fmt.Errorf("completed rotation %s has no current version", id)
		}
	}
	if len(w.told) != 2 {
		return "", fmt.Errorf("clients were told %d active keys; want the old one and one new one", len(w.told))
	}
	// The active copy holds the active key, as the tags say.
	st, err := newRotator(w).ReadState(ctx, service)
	if err != nil {
		return "", err
	}
	kt := []keysecret.KeyType{keysecret.Primary, keysecret.Secondary}[st.Active()]
	cur, _ := st.Slots[st.Active()].Current()
	want, err := w.store.GetSecret(ctx, keysecret.KeySecret(service, kt), cur.ID)
	if err != nil {
		return "", err
	}
	if mem.newest(keysecret.ActiveSecret(service)) != want.Value {
		return "", errors.New("the active copy does not hold the active key")
	}
	keys, err := keyring.New(w.store, []string{service}, nil).Get(ctx, service)
	if err != nil || keys.ActiveKeyType != kt {
		return "", fmt.Errorf("get_keys says %q active (%v); the tags say %q", keys.ActiveKeyType, err, kt)
	}
	crash := "no crash"
	if crashed {
		crash = "a crash"
	}
	return fmt.Sprintf("%d scheduled store calls (listed %s, clock step %v), %s, outcomes %s/%s/%s", calls, order, step, crash,
		results[0].Outcome, results[1].Outcome, recovery.Outcome), nil
}

// TestInterleavings checks the invariant of design.md section 5 over
// seeded interleavings of two rotations of one service and a crash at any
// store call: exactly one new key takes effect, and no key told to a client
// stops working before the next rotation is due. The seeds take turns at
// the store's listing orders and at a clock that stands still between
// store calls, so that versions share their creation second (see variant).
func TestInterleavings(t *testing.T) {
	seeds := make([]uint64, 0, *interleavings)
	if *seedFlag != 0 {
		seeds = append(seeds, *seedFlag)
	} else {
		for i := 1; i <= *interleavings; i++ {
			seeds = append(seeds, uint64(i))
		}
	}
	outcomes := map[string]int{}
	for _, seed := range seeds {
		stats, err := interleave(seed)
		if err != nil {
			t.Fatalf("seed %d (replay with go test ./shared/rotation -run TestInterleavings -seed %d): %v", seed, seed, err)
		}
		outcomes[stats[strings.Index(stats, ", ")+2:]]++ // crash and outcomes
	}
	t.Logf("%d interleavings passed", len(seeds))
	if len(seeds) >= 100 && len(outcomes) < 3 {
		t.Errorf("the schedules explored too little: outcome kinds %v", outcomes)
	}
}
