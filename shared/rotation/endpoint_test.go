package rotation_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/logtest"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/memstore"
)

// This file checks the rotation of a remote target's keys (an Azure ML
// endpoint, [rotation.Remote]): the endpoint holds keys of its own, which
// clients present to it, and which the rotator sets with a long-running
// operation that has no If-Match. What clients are told (the active copy,
// aml-<name>-active) must be one of the endpoint's two keys, except while
// a superseded rotation's operation that landed late overwrote a newer key
// (which the next due-check repairs, with an endpoint_key_drift alert).
//
// Mutations these tests catch (each checked by editing the code, running
// go test -run Endpoint, and restoring it; seeds of the default 2000, on
// the code with reconcile skipping only the inactive key's resumable
// staging, see TestEndpointRotationInterleavings' seed 161):
//
//   - rotation.go, resume: the reconcile call removed. A regen_key or a
//     stale landing that no run repaired stays at the endpoint: the
//     interleavings fail from seed 18 (92 seeds: clients told a refused
//     key, or the endpoint's key not the store's current one after the
//     next due-check), and TestEndpointDriftRepair in all four subtests.
//   - remote.go, reconcile: the restore branch skipped (continue before
//     rem.Apply). The interleavings fail from seed 19 (76 seeds, the same
//     ways, and one with no endpoint_key_drift logged);
//     TestEndpointDriftRepair/late_operation fails.
//   - regen.go, Regenerate: followRegen moved before rem.Apply. Clients
//     are told the new value before the endpoint holds it: the
//     interleavings' invariant after every call fails from seed 1 (469
//     seeds).
//
// -endpoint-keep-going runs every seed and reports the failures by kind.

var keepGoing = flag.Bool("endpoint-keep-going", false, "run every seed, and report the failures by kind")

var endpointInterleavings = flag.Int("endpoint-interleavings", 2000, "seeded interleavings of two endpoint rotations, a regen_key and a crash")

const epName = "ep"

var epActive = keysecret.Endpoints.Active(epName)

func epSecret(kt keysecret.KeyType) string { return keysecret.Endpoints.Key(epName, kt) }

func slotOf(kt keysecret.KeyType) int {
	if kt == keysecret.Secondary {
		return 1
	}
	return 0
}

// landing is one operation of the endpoint that succeeded: only then did
// its key change.
type landing struct {
	actor       int // the actor whose operation it was; -1 outside a schedule
	kt          keysecret.KeyType
	value, prev string
	// stale: at landing time the value was not the newest version's value
	// of that key's secret in the store (a superseded operation, landing
	// late).
	stale bool
}

// fakeEndpoint is an in-memory Azure ML endpoint holding two keys, for
// the name epName. Its calls pass through gate (the store's gate, so that
// a scheduler interleaves them with the store's calls): Apply is two
// steps, "endpoint start <kt>" (regenerateKeys' POST is accepted) and
// "endpoint land <kt>" (the operation succeeds: only now does the key
// change); Keys ("endpoint keys") and Test ("endpoint list", List Keys)
// one each.
type fakeEndpoint struct {
	gate func(ctx context.Context, op string) error // nil: every call passes
	mem  *memStore                                  // to tell a stale landing
	// landOnCrash: an operation whose caller crashes while it runs (at its
	// land step) still lands, at that moment; otherwise it never does.
	landOnCrash bool

	mu       sync.Mutex
	keys     [2]string
	starts   []landing // every accepted operation, at its start
	landings []landing
	keysErr  error // Keys fails with it (the endpoint is down)
}

var _ rotation.Remote = (*fakeEndpoint)(nil)

func (e *fakeEndpoint) pass(ctx context.Context, op string) error {
	if e.gate == nil {
		return nil
	}
	return e.gate(ctx, op)
}

func actorOf(ctx context.Context) int {
	if a, _ := ctx.Value(actorKey{}).(*actor); a != nil {
		return a.id
	}
	return -1
}

func (e *fakeEndpoint) Apply(ctx context.Context, name string, kt keysecret.KeyType, s rotation.Staged) error {
	if name != epName {
		return fmt.Errorf("no endpoint %q", name)
	}
	if err := e.pass(ctx, "endpoint start "+string(kt)); err != nil {
		return fmt.Errorf("regenerateKeys: %w", err)
	}
	e.mu.Lock()
	e.starts = append(e.starts, landing{actor: actorOf(ctx), kt: kt, value: s.Value})
	e.mu.Unlock()
	err := e.pass(ctx, "endpoint land "+string(kt))
	if err != nil && !(e.landOnCrash && errors.Is(err, errCrashed)) {
		return fmt.Errorf("regenerateKeys: following the operation: %w", err)
	}
	e.set(actorOf(ctx), kt, s.Value)
	if err != nil {
		return fmt.Errorf("regenerateKeys: following the operation: %w", err)
	}
	return nil
}

// set lands an operation: kt's key becomes value.
func (e *fakeEndpoint) set(actor int, kt keysecret.KeyType, value string) {
	newest := ""
	if e.mem != nil {
		newest = e.mem.newest(epSecret(kt))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	i := slotOf(kt)
	e.landings = append(e.landings, landing{actor: actor, kt: kt, value: value, prev: e.keys[i], stale: e.mem != nil && value != newest})
	e.keys[i] = value
}

func (e *fakeEndpoint) Test(ctx context.Context, name string, kt keysecret.KeyType, value string) error {
	if name != epName {
		return fmt.Errorf("no endpoint %q", name)
	}
	if err := e.pass(ctx, "endpoint list"); err != nil {
		return fmt.Errorf("listKeys: %w", err)
	}
	if e.snapshot()[slotOf(kt)] != value {
		return fmt.Errorf("the endpoint's %s key is not the staged value", kt)
	}
	return nil
}

func (e *fakeEndpoint) Keys(ctx context.Context, name string) ([2]string, error) {
	if name != epName {
		return [2]string{}, fmt.Errorf("no endpoint %q", name)
	}
	if err := e.pass(ctx, "endpoint keys"); err != nil {
		return [2]string{}, fmt.Errorf("listKeys: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.keysErr != nil {
		return [2]string{}, e.keysErr
	}
	return e.keys, nil
}

func (e *fakeEndpoint) snapshot() [2]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.keys
}

// accepts reports whether a client presenting value is let in.
func (e *fakeEndpoint) accepts(value string) bool {
	k := e.snapshot()
	return value != "" && (value == k[0] || value == k[1])
}

func (e *fakeEndpoint) staleLandings() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, l := range e.landings {
		if l.stale {
			n++
		}
	}
	return n
}

func (e *fakeEndpoint) landed() []landing {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.landings)
}

func (e *fakeEndpoint) started() []landing {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.starts)
}

// keyGen generates random key values and remembers every one, so that a
// test can check that none reached the logs.
type keyGen struct {
	mu     sync.Mutex
	values []string
}

func (g *keyGen) newKey() (string, error) {
	v := "k" + rand.Text()
	g.mu.Lock()
	g.values = append(g.values, v)
	g.mu.Unlock()
	return v, nil
}

func (g *keyGen) all() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.values)
}

// slogTo returns a JSON logger at debug level writing to buf.
func slogTo(buf *logtest.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logEvents parses a JSON log.
func logEvents(buf *logtest.Buffer) []map[string]any {
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// drifts returns the endpoint_key_drift events' causes, in order.
func drifts(buf *logtest.Buffer) []string {
	var out []string
	for _, m := range logEvents(buf) {
		if m["msg"] == "endpoint_key_drift" {
			if m["level"] != "ERROR" {
				out = append(out, "not-an-error")
			}
			c, _ := m["cause"].(string)
			out = append(out, c)
		}
	}
	return out
}

// leaked returns the generated values that appear in the log.
func leaked(buf *logtest.Buffer, values []string) []string {
	s := buf.String()
	var out []string
	for _, v := range values {
		if strings.Contains(s, v) {
			out = append(out, v)
		}
	}
	return out
}

func endpointRotator(store *secretstore.Store, ep *fakeEndpoint, policy rotation.Policy, now func() time.Time, newKey func() (string, error), log *logtest.Buffer) *rotation.Rotator {
	r := &rotation.Rotator{
		Store:  store.Share(),
		Target: ep,
		Policy: func(string) rotation.Policy { return policy },
		Family: keysecret.Endpoints,
		NewKey: newKey,
		Now:    now,
	}
	if log != nil {
		r.Log = slogTo(log)
	}
	return r
}

// currentValues reads each key's current value from the store, and which
// key is active, with the test's own reads.
func currentValues(r *rotation.Rotator, mem *memStore) (vals [2]string, active int, err error) {
	st, err := r.ReadState(peekCtx, epName)
	if err != nil {
		return vals, 0, err
	}
	for i, kt := range keysecret.KeyTypes {
		cur, ok := st.Slots[i].Current()
		if !ok {
			return vals, 0, fmt.Errorf("%s has no current version", kt)
		}
		sec, err := mem.store.GetSecret(peekCtx, epSecret(kt), cur.ID)
		if err != nil {
			return vals, 0, err
		}
		vals[i] = sec.Value
	}
	return vals, st.Active(), nil
}

// copyOf returns the active copy's value and slot.
func copyOf(mem *memStore) (string, keysecret.KeyType) {
	s, err := mem.store.GetSecret(peekCtx, epActive, "")
	if err != nil {
		return "", ""
	}
	return s.Value, keysecret.KeyTypeOfSlot(s.Tags)
}

// checkSettled checks what must hold after a due-check that found nothing
// half done: the endpoint holds each key's current value, and the active
// copy the active key's.
func checkSettled(r *rotation.Rotator, mem *memStore, ep *fakeEndpoint) error {
	vals, active, err := currentValues(r, mem)
	if err != nil {
		return err
	}
	have := ep.snapshot()
	for i, kt := range keysecret.KeyTypes {
		if have[i] != vals[i] {
			return fmt.Errorf("the endpoint's %s key is not the store's current value of that key", kt)
		}
	}
	v, slot := copyOf(mem)
	if !ep.accepts(v) {
		return errors.New("the active copy is a key the endpoint refuses")
	}
	if v != vals[active] || slot != keysecret.KeyTypes[active] {
		return fmt.Errorf("the active copy (slot %s) does not hold the active key (%s)", slot, keysecret.KeyTypes[active])
	}
	return nil
}

const regenActor = 2

// slowStep is an actor slow at the calls starting with op: up to budget
// times, another actor's call is let through first.
type slowStep struct {
	actor  int
	op     string
	budget int
}

// runSlowed is [scheduler.run] with the choice of the next call biased:
// while budget lasts, an actor for which slow is true waits if another
// can go.
func runSlowed(s *scheduler, actors []*actor, crashOneIn int, check func() error, slow func(actor int) bool, budget int) (calls int, crashed bool, err error) {
	running, alive := len(actors), len(actors)
	var gated []int
	for alive > 0 {
		for running > 0 {
			ev := <-s.events
			running--
			if ev >= 0 {
				gated = append(gated, ev)
			} else {
				alive--
			}
		}
		if err := check(); err != nil {
			return calls, crashed, fmt.Errorf("after %d store calls: %w", calls, err)
		}
		if len(gated) == 0 {
			break
		}
		slices.Sort(gated)
		choice := gated
		if budget > 0 {
			if fast := slices.DeleteFunc(slices.Clone(gated), slow); len(fast) > 0 && len(fast) < len(gated) {
				choice = fast
				budget--
			}
		}
		a := choice[s.rng.IntN(len(choice))]
		gated = slices.DeleteFunc(gated, func(g int) bool { return g == a })
		crash := !crashed && s.rng.IntN(crashOneIn) == 0
		crashed = crashed || crash
		calls++
		running++
		actors[a].permit <- !crash
	}
	return calls, crashed, nil
}

// endpointInterleave runs two RotateNow of the endpoint and, for half the
// seeds, a regen_key of a random key, under a seeded schedule of their
// store and endpoint calls with at most one crash; it checks the
// invariant after every call, then runs the next due-check and checks
// strictly.
func endpointInterleave(seed uint64) (stats string, err error) {
	order, step := variant(seed)
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	rng := mrand.New(mrand.NewPCG(seed, seed^0x2545f4914f6cdd1d))
	s := &scheduler{rng: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), events: make(chan int), clock: clock, step: step}
	mem := newSeededMemStore(clock.Now, order, seed)
	ep := &fakeEndpoint{mem: mem, landOnCrash: rng.IntN(2) == 0}
	withRegen := rng.IntN(2) == 0
	regenKT := keysecret.KeyTypes[rng.IntN(2)]
	// The odds of a crash at each call: from early crashes to none.
	crashOneIn := []int{10, 40, 120, 1 << 30}[rng.IntN(4)]
	var (
		regenWrote, regenOK bool
		regenValue          string
		toldInvalid         bool
	)
	defer func() {
		if err != nil && *seedFlag != 0 {
			var ls []string
			for _, l := range ep.landed() {
				ls = append(ls, fmt.Sprintf("%+v", l))
			}
			err = fmt.Errorf("%w\ntrace:\n%s\nlandings:\n%s", err, strings.Join(s.trace, "\n"), strings.Join(ls, "\n"))
		}
	}()
	// For half the seeds, one actor is slow at one step of the endpoint's
	// operations: the other actors' calls go first while it waits there,
	// up to a budget, so that operations start or land late.
	slow := slowStep{actor: rng.IntN(3), op: []string{"endpoint start", "endpoint land"}[rng.IntN(2)], budget: []int{0, 0, 10, 40}[rng.IntN(4)]}
	waiting := make([]string, 3) // the call each actor waits at
	gate := func(ctx context.Context, op string) error {
		if a := actorOf(ctx); a >= 0 {
			waiting[a] = op
		}
		err := s.before(ctx, op)
		if err == nil && actorOf(ctx) == regenActor && op == memstore.OpSet+" "+epSecret(regenKT) {
			regenWrote = true // Regenerate's first write: the key's
		}
		return err
	}
	mem.before = gate
	ep.gate = gate
	gen := &keyGen{}
	buf := &logtest.Buffer{}
	policy := rotation.Policy{Period: 30 * 24 * time.Hour, RefreshInterval: 24 * time.Hour}
	ctx := context.Background()

	// The endpoint's keys before the app knew it; Provision adopts them.
	for i := range ep.keys {
		ep.keys[i], _ = gen.newKey()
	}
	initial := ep.snapshot()
	setup := endpointRotator(mem.store, ep, policy, clock.Now, gen.newKey, buf)
	if err := setup.Provision(ctx, epName); err != nil {
		return "", err
	}
	if v, _ := copyOf(mem); v != initial[0] || mem.newest(epSecret(keysecret.Secondary)) != initial[1] {
		return "", errors.New("provision did not adopt the endpoint's keys")
	}

	n := 2
	if withRegen {
		n = 3
	}
	actors := make([]*actor, n)
	results := make([]rotation.Result, 2)
	var regenErr error
	for i := range actors {
		actors[i] = &actor{id: i, permit: make(chan bool)}
		actx := context.WithValue(ctx, actorKey{}, actors[i])
		if i == regenActor {
			r := endpointRotator(mem.store, ep, policy, clock.Now, func() (string, error) {
				v, err := gen.newKey()
				regenValue = v
				return v, err
			}, buf)
			go func() {
				regenErr = r.Regenerate(actx, epName, regenKT, "")
				regenOK = regenErr == nil
				s.events <- -1 - i
			}()
			continue
		}
		r := endpointRotator(mem.store, ep, policy, clock.Now, gen.newKey, buf)
		go func() {
			results[i], _ = r.RotateNow(actx, epName)
			s.events <- -1 - i
		}()
	}
	check := func() error {
		v := mem.newest(epActive)
		if ep.accepts(v) {
			return nil
		}
		if regenWrote && !regenOK && v != regenValue {
			// A regen_key revokes the value it replaces: clients told it
			// are refused until the copy follows (its last step, or the
			// next due-check's repair if it crashed).
			return nil
		}
		if ep.staleLandings() > 0 {
			toldInvalid = true
			return nil
		}
		return errors.New("clients are told a key the endpoint refuses, and no stale landing explains it")
	}
	calls, crashed, err := runSlowed(s, actors, crashOneIn, check, func(a int) bool {
		return a == slow.actor && strings.HasPrefix(waiting[a], slow.op)
	}, slow.budget)
	if err != nil {
		return "", err
	}
	stale := ep.staleLandings()

	// The next due-check repairs what the actors left.
	r := endpointRotator(mem.store, ep, policy, clock.Now, gen.newKey, buf)
	next, err := r.RotateIfDue(ctx, epName)
	if err != nil {
		return "", fmt.Errorf("the next due-check: %w", err)
	}
	if err := checkSettled(r, mem, ep); err != nil {
		return "", fmt.Errorf("after the next due-check (%s): %w", next.Outcome, err)
	}
	ds := drifts(buf)
	if toldInvalid && len(ds) == 0 {
		return "", errors.New("clients were told a key the endpoint refused, and no endpoint_key_drift was logged")
	}
	for _, c := range ds {
		if c != "late_operation" {
			return "", fmt.Errorf("endpoint_key_drift causes %v: only the app's own values reached the endpoint", ds)
		}
	}
	// Settled: the one after finds nothing to do, nor to repair.
	again, err := r.RotateIfDue(ctx, epName)
	if err != nil || again.Outcome != rotation.NotDue {
		return "", fmt.Errorf("the due-check after: %+v %v", again, err)
	}
	if err := checkSettled(r, mem, ep); err != nil {
		return "", fmt.Errorf("after the due-check after: %w", err)
	}
	if d := drifts(buf); len(d) != len(ds) {
		return "", fmt.Errorf("the due-check after logged drift again: %v", d)
	}
	if l := leaked(buf, gen.all()); len(l) > 0 {
		return "", fmt.Errorf("%d key values in the log", len(l))
	}

	crash := "no crash"
	if crashed {
		crash = "a crash"
	}
	regen := "no regen"
	if withRegen {
		regen = "regen " + string(regenKT)
		if regenErr != nil {
			regen += " failed"
		}
	}
	return fmt.Sprintf("%d scheduled calls (listed %s, clock step %v); %s, %s, outcomes %s/%s, next %s, stale landings %d, drift %d, told-invalid %v",
		calls, order, step, crash, regen, results[0].Outcome, results[1].Outcome, next.Outcome, stale, len(ds), toldInvalid), nil
}

// TestEndpointRotationInterleavings checks, over seeded interleavings of
// two rotations of an endpoint's keys, a regen_key and a crash at any
// store or endpoint call (an endpoint operation landing late included),
// that clients are only told keys the endpoint accepts (but after a stale
// landing), and that the next due-check leaves the endpoint holding the
// store's current keys, alerting on any drift.
func TestEndpointRotationInterleavings(t *testing.T) {
	seeds := make([]uint64, 0, *endpointInterleavings)
	if *seedFlag != 0 {
		seeds = append(seeds, *seedFlag)
	} else {
		for i := 1; i <= *endpointInterleavings; i++ {
			seeds = append(seeds, uint64(i))
		}
	}
	var staleSeeds, driftSeeds, invalidSeeds, crashSeeds int
	failures := map[string][]uint64{}
	defer func() {
		for msg, seeds := range failures {
			t.Errorf("%d seeds (first %v): %s", len(seeds), seeds[:min(len(seeds), 20)], msg)
		}
	}()
	for _, seed := range seeds {
		stats, err := endpointInterleave(seed)
		if err != nil && *keepGoing {
			msg := err.Error()
			if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "after ") {
				msg = msg[i+2:]
			}
			failures[msg] = append(failures[msg], seed)
			continue
		}
		if err != nil {
			t.Fatalf("seed %d (replay with go test ./shared/rotation -run TestEndpointRotationInterleavings -seed %d): %v", seed, seed, err)
		}
		if *seedFlag != 0 {
			t.Log(stats)
		}
		if !strings.Contains(stats, "stale landings 0,") {
			staleSeeds++
		}
		if !strings.Contains(stats, "drift 0,") {
			driftSeeds++
		}
		if strings.HasSuffix(stats, "told-invalid true") {
			invalidSeeds++
		}
		if strings.Contains(stats, "a crash") {
			crashSeeds++
		}
	}
	t.Logf("%d interleavings passed: %d with a crash, %d with a stale landing, %d with clients told a refused key, %d with drift repaired",
		len(seeds), crashSeeds, staleSeeds, invalidSeeds, driftSeeds)
	if len(seeds) >= 500 && (staleSeeds == 0 || driftSeeds == 0 || invalidSeeds == 0) {
		t.Errorf("the schedules explored too little: no late landing, or none repaired")
	}
}

// procKey marks the context of a process that may crash: a *proc.
type procKey struct{}

// proc is one run of the rotator that crashes at the call crashAt picks
// (given the calls it made before): that call and every later one fail.
type proc struct {
	crashAt func(op string, before []string) bool
	ops     []string
	dead    bool
}

func procGate(ctx context.Context, op string) error {
	p, _ := ctx.Value(procKey{}).(*proc)
	if p == nil {
		return nil
	}
	if p.dead || p.crashAt(op, p.ops) {
		p.dead = true
		return errCrashed
	}
	p.ops = append(p.ops, op)
	return nil
}

func passed(ops []string, prefix string) bool {
	return slices.ContainsFunc(ops, func(op string) bool { return strings.HasPrefix(op, prefix) })
}

// TestEndpointZeroDowntimeTimeline rotates an endpoint's keys on a fake
// clock, one due-check an hour over four periods, with a crash in three
// of the rotations (after the staging; while the endpoint's operation
// runs, which then never lands; after it landed, before the finish):
// a client that re-reads the active copy once per refresh interval and
// calls the endpoint every minute is never refused, each crashed
// rotation is resumed with the value it staged, and a key told two
// rotations ago is refused.
func TestEndpointZeroDowntimeTimeline(t *testing.T) {
	clock := fakeclock.New(time.Unix(1_800_000_000, 0))
	mem := newMemStore(clock.Now, 0)
	mem.before = procGate
	ep := &fakeEndpoint{gate: procGate}
	gen := &keyGen{}
	log := &logtest.Buffer{}
	policy := rotation.Policy{Period: 48 * time.Hour, RefreshInterval: 12 * time.Hour}
	rot := endpointRotator(mem.store, ep, policy, clock.Now, gen.newKey, log)
	ctx := context.Background()
	for i := range ep.keys {
		ep.keys[i], _ = gen.newKey()
	}
	if err := rot.Provision(ctx, epName); err != nil {
		t.Fatal(err)
	}

	isKeySet := func(op string) bool {
		return op == memstore.OpSet+" "+epSecret(keysecret.Primary) || op == memstore.OpSet+" "+epSecret(keysecret.Secondary)
	}
	crashes := []struct {
		name string
		at   func(op string, before []string) bool
	}{
		{"after the staging", func(_ string, before []string) bool { return slices.ContainsFunc(before, isKeySet) }},
		{"while the operation runs", func(op string, _ []string) bool { return strings.HasPrefix(op, "endpoint land") }},
		{"after the operation landed, before the finish", func(_ string, before []string) bool { return passed(before, "endpoint land") }},
	}

	told := func() string { v, _ := copyOf(mem); return v }
	client, lastRead := told(), clock.Now()
	history := []string{client} // the active copy after each completion
	var refused int
	var resuming string // the value a crashed rotation staged
	crashed := 0
	const total = 4*48*time.Hour + 6*time.Hour
	for m := time.Duration(0); m < total; m += time.Minute {
		clock.Advance(time.Minute)
		if m%time.Hour == 0 {
			st, err := rot.ReadState(peekCtx, epName)
			if err != nil {
				t.Fatal(err)
			}
			runCtx := ctx
			var p *proc
			if resuming == "" && crashed < len(crashes) && rotation.Due(policy, st, clock.Now()) && len(history) == crashed+1 {
				// The first due-check of rotation crashed+1 crashes.
				p = &proc{crashAt: crashes[crashed].at}
				runCtx = context.WithValue(ctx, procKey{}, p)
			}
			startsBefore, landsBefore := len(ep.started()), len(ep.landed())
			res, err := rot.RotateIfDue(runCtx, epName)
			switch {
			case p != nil:
				if err == nil || !p.dead {
					t.Fatalf("%v: the run meant to crash %s did not: %+v %v", m, crashes[crashed].name, res, err)
				}
				// What the crashed run staged: the inactive key's newest.
				st, err := rot.ReadState(peekCtx, epName)
				if err != nil {
					t.Fatal(err)
				}
				inactive := keysecret.KeyTypes[1-st.Active()]
				resuming = mem.newest(epSecret(inactive))
				if v, _ := st.Slots[1-st.Active()].Newest(); v.Tags[keysecret.TagState] != keysecret.StateStaged {
					t.Fatalf("%v: the run that crashed %s left nothing staged", m, crashes[crashed].name)
				}
				for _, s := range ep.started()[startsBefore:] {
					if s.value != resuming {
						t.Fatalf("%v: the crashed run set another value than it staged", m)
					}
				}
				if crashes[crashed].name == "while the operation runs" && len(ep.landed()) != landsBefore {
					t.Fatalf("%v: an operation landed in the run that crashed while it ran", m)
				}
				t.Logf("%v: rotation %d crashed %s", m, len(history), crashes[crashed].name)
				crashed++
			case err != nil:
				t.Fatalf("%v: %v", m, err)
			case resuming != "":
				if res.Outcome != rotation.Completed {
					t.Fatalf("%v: the run after a crash did not finish the rotation: %+v", m, res)
				}
				for _, s := range ep.started()[startsBefore:] {
					if s.value != resuming {
						t.Fatalf("%v: the resumed rotation set another value than the crashed run staged", m)
					}
				}
				if told() != resuming {
					t.Fatalf("%v: the resumed rotation told clients another value than the crashed run staged", m)
				}
				resuming = ""
			}
			if err == nil && res.Outcome == rotation.Completed {
				history = append(history, told())
				k := len(history) - 1
				if !ep.accepts(history[k]) || !ep.accepts(history[k-1]) {
					t.Fatalf("%v: rotation %d: the endpoint refuses the key told now or the one told before", m, k)
				}
				if k >= 2 && ep.accepts(history[k-2]) {
					t.Fatalf("%v: rotation %d: the key told two rotations ago still works", m, k)
				}
			} else if err == nil && res.Outcome != rotation.NotDue {
				t.Fatalf("%v: %+v", m, res)
			}
		}
		if clock.Now().Sub(lastRead) >= policy.RefreshInterval {
			client, lastRead = told(), clock.Now()
		}
		if !ep.accepts(client) {
			refused++
		}
	}
	if refused != 0 {
		t.Errorf("the client got %d 401s", refused)
	}
	if got := len(history) - 1; got != 4 {
		t.Errorf("%d rotations completed in %v; want 4 with a %v period", got, total, policy.Period)
	}
	if crashed != len(crashes) {
		t.Errorf("%d crashes injected; want %d", crashed, len(crashes))
	}
	if d := drifts(log); len(d) != 0 {
		t.Errorf("endpoint_key_drift logged without drift: %v", d)
	}
	if l := leaked(log, gen.all()); len(l) > 0 {
		t.Errorf("%d key values in the log", len(l))
	}
	if err := checkSettled(rot, mem, ep); err != nil {
		t.Error(err)
	}
}

// TestEndpointDriftRepair checks the due-check's repair of an endpoint
// whose keys differ from the store's: a key regenerated in the portal is
// adopted, an old value a late operation set is replaced, and an endpoint
// that cannot be read fails the run and changes nothing.
func TestEndpointDriftRepair(t *testing.T) {
	policy := rotation.Policy{Period: 30 * 24 * time.Hour, RefreshInterval: 24 * time.Hour}
	// setup provisions the endpoint's keys and rotates once: the Secondary
	// is active.
	setup := func(t *testing.T) (*rotation.Rotator, *memStore, *fakeEndpoint, *logtest.Buffer, *keyGen, *fakeclock.Clock) {
		clock := fakeclock.New(time.Unix(1_800_000_000, 0))
		mem := newMemStore(clock.Now, 0)
		ep := &fakeEndpoint{}
		gen := &keyGen{}
		log := &logtest.Buffer{}
		for i := range ep.keys {
			ep.keys[i], _ = gen.newKey()
		}
		rot := endpointRotator(mem.store, ep, policy, clock.Now, gen.newKey, log)
		ctx := context.Background()
		if err := rot.Provision(ctx, epName); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Hour)
		if res, err := rot.RotateNow(ctx, epName); err != nil || res.Outcome != rotation.Completed || res.KeyType != keysecret.Secondary {
			t.Fatalf("rotation: %+v %v", res, err)
		}
		clock.Advance(time.Hour)
		if err := checkSettled(rot, mem, ep); err != nil {
			t.Fatal(err)
		}
		return rot, mem, ep, log, gen, clock
	}
	ctx := context.Background()
	driftEvents := func(log *logtest.Buffer) []map[string]any {
		var out []map[string]any
		for _, m := range logEvents(log) {
			if m["msg"] == "endpoint_key_drift" {
				out = append(out, m)
			}
		}
		return out
	}

	for _, kt := range keysecret.KeyTypes {
		t.Run("external_"+string(kt), func(t *testing.T) {
			rot, mem, ep, log, gen, _ := setup(t)
			copyBefore, _ := copyOf(mem)
			other := ep.snapshot()[1-slotOf(kt)]
			portal, _ := gen.newKey()
			ep.set(-1, kt, portal) // az ml online-endpoint regenerate-keys
			res, err := rot.RotateIfDue(ctx, epName)
			if err != nil || res.Outcome != rotation.NotDue {
				t.Fatalf("due-check: %+v %v", res, err)
			}
			vals, active, err := currentValues(rot, mem)
			if err != nil {
				t.Fatal(err)
			}
			if vals[slotOf(kt)] != portal || mem.newest(epSecret(kt)) != portal {
				t.Fatalf("the store's current %s is not the portal's value", kt)
			}
			if vals[1-slotOf(kt)] != other || ep.snapshot() != [2]string{vals[0], vals[1]} {
				t.Fatal("the other key or the endpoint changed")
			}
			if keysecret.KeyTypes[active] != keysecret.Secondary {
				t.Fatal("the adoption changed the active key")
			}
			copyNow, slot := copyOf(mem)
			if kt == keysecret.Secondary && (copyNow != portal || slot != kt) {
				t.Fatal("the active copy did not follow the portal's regen of the active key")
			}
			if kt == keysecret.Primary && copyNow != copyBefore {
				t.Fatal("the active copy moved for the inactive key's regen")
			}
			ev := driftEvents(log)
			if len(ev) != 1 || ev[0]["cause"] != "external" || ev[0]["action"] != "adopted" || ev[0]["keyType"] != string(kt) || ev[0]["level"] != "ERROR" {
				t.Fatalf("drift events %v; want one external error for %s", ev, kt)
			}
			if err := checkSettled(rot, mem, ep); err != nil {
				t.Fatal(err)
			}
			if res, err := rot.RotateIfDue(ctx, epName); err != nil || res.Outcome != rotation.NotDue || len(driftEvents(log)) != 1 {
				t.Fatalf("the due-check after: %+v %v, drift events %v", res, err, driftEvents(log))
			}
			if l := leaked(log, gen.all()); len(l) > 0 {
				t.Fatalf("%d key values in the log", len(l))
			}
		})
	}

	t.Run("late_operation", func(t *testing.T) {
		rot, mem, ep, log, gen, _ := setup(t)
		// The operation of a superseded rotation lands late: the
		// Secondary's value before the rotation, which the app wrote (it
		// adopted it), comes back.
		old := ep.landed()[0].prev
		versions := len(mem.all(epSecret(keysecret.Secondary)))
		want := ep.snapshot()
		ep.set(-1, keysecret.Secondary, old)
		res, err := rot.RotateIfDue(ctx, epName)
		if err != nil || res.Outcome != rotation.NotDue {
			t.Fatalf("due-check: %+v %v", res, err)
		}
		if ep.snapshot() != want {
			t.Fatal("the endpoint's Secondary was not restored to the store's current value")
		}
		if got := len(mem.all(epSecret(keysecret.Secondary))); got != versions {
			t.Fatalf("the restore wrote the store: %d versions, had %d", got, versions)
		}
		ev := driftEvents(log)
		if len(ev) != 1 || ev[0]["cause"] != "late_operation" || ev[0]["action"] != "restored" || ev[0]["keyType"] != "Secondary" || ev[0]["level"] != "ERROR" {
			t.Fatalf("drift events %v; want one late_operation error", ev)
		}
		if err := checkSettled(rot, mem, ep); err != nil {
			t.Fatal(err)
		}
		if l := leaked(log, gen.all()); len(l) > 0 {
			t.Fatalf("%d key values in the log", len(l))
		}
	})

	t.Run("endpoint_down", func(t *testing.T) {
		rot, mem, ep, log, _, clock := setup(t)
		// Drift and a due rotation, neither of which may be acted on
		// without the endpoint's keys.
		ep.set(-1, keysecret.Primary, "kUNKNOWN")
		clock.Advance(31 * 24 * time.Hour)
		snapshot := func() string {
			var b strings.Builder
			for _, name := range []string{epSecret(keysecret.Primary), epSecret(keysecret.Secondary), epActive} {
				for _, p := range mem.all(name) {
					fmt.Fprintf(&b, "%s %s %v %v\n", name, p.Version, p.Enabled, p.Tags)
				}
			}
			return b.String()
		}
		before, keysBefore, landsBefore, startsBefore := snapshot(), ep.snapshot(), len(ep.landed()), len(ep.started())
		ep.keysErr = errors.New("503 Service Unavailable")
		res, err := rot.RotateIfDue(ctx, epName)
		if !errors.Is(err, rotation.ErrFailed) || !strings.Contains(err.Error(), ": reconcile: ") || res.Outcome != "" {
			t.Fatalf("due-check with the endpoint down: %+v %v; want a failure with reason reconcile", res, err)
		}
		if snapshot() != before || ep.snapshot() != keysBefore || len(ep.landed()) != landsBefore || len(ep.started()) != startsBefore {
			t.Fatal("a failed due-check changed the store or the endpoint")
		}
		failed := false
		for _, m := range logEvents(log) {
			if m["msg"] == "rotation_failed" && m["reason"] == "reconcile" {
				failed = true
			}
		}
		if !failed || len(driftEvents(log)) != 0 {
			t.Fatalf("want rotation_failed reason=reconcile and no drift event; log:\n%s", log)
		}
		// Back up: the drift is adopted, then the due rotation runs.
		ep.keysErr = nil
		if res, err := rot.RotateIfDue(ctx, epName); err != nil || res.Outcome != rotation.Completed {
			t.Fatalf("due-check with the endpoint back: %+v %v", res, err)
		}
		if err := checkSettled(rot, mem, ep); err != nil {
			t.Fatal(err)
		}
	})
}
