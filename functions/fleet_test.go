package functions

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/journal"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
	"github.com/modelauth/modelauth/shared/secretstore/memstore"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// f0RefreshMinInterval is the fleet's KEY_REFRESH_MIN_INTERVAL (the default).
const f0RefreshMinInterval = time.Second

var (
	fleetSize   = flag.Int("fleet", 1000, "instances of TestFleet")
	fleetSeries = flag.Bool("fleet-series", false, "TestFleet logs the reads of every 10 s")
	fleetTTL    = flag.Duration("fleet-ttl", 30*time.Second, "KEY_CACHE_TTL of TestFleet")
)

// This file is the fleet test of docs/design.md section 14: many validator
// instances, each wired as the app wires one (its own store client, change
// journal, key ring, signing keys and token authority), over one in-memory
// vault that counts its calls, on a fake clock. The oracle is the vault's
// write history, kept by the test from what the vault holds.

// vaultCounter counts the vault's calls per 10 s of the fake clock.
type vaultCounter struct {
	mu    sync.Mutex
	start time.Time
	now   func() time.Time
	on    bool
	reads map[int64]int // get and list
	// secretReads are the reads of secrets other than the journal's.
	secretReads map[int64]int
	calls       map[int64]int // every transaction
	dirty       map[string]bool
	byKind      map[string]int
}

func (c *vaultCounter) before(ctx context.Context, op, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if op == memstore.OpSet || op == memstore.OpUpdate {
		if s, ok := keysecret.ServiceOf(name); ok {
			c.dirty[s] = true
		}
	}
	if !c.on || ctx.Value(peekKey{}) != nil {
		return nil
	}
	w := int64(c.now().Sub(c.start) / (10 * time.Second))
	c.calls[w]++
	if op == memstore.OpGet || op == memstore.OpList {
		c.reads[w]++
		if !strings.HasPrefix(name, journal.Prefix) {
			c.secretReads[w]++
		}
		kind := "secret"
		if strings.HasPrefix(name, journal.Prefix) {
			kind = "journal"
		}
		c.byKind[op+" "+kind]++
	}
	return nil
}

type peekKey struct{}

var peekCtx = context.WithValue(context.Background(), peekKey{}, true)

// stats are the per-window figures: max and mean.
func stats(m map[int64]int, windows int64) (maxN int, mean float64) {
	total := 0
	for w := int64(0); w < windows; w++ {
		maxN = max(maxN, m[w])
		total += m[w]
	}
	return maxN, float64(total) / float64(windows)
}

// sim runs the writers' goroutines (rotations, which wait between staging
// and activation) in step with the fake clock: the main loop moves the
// clock, wakes the sleepers that are due, and waits until each runs to its
// next sleep or its end.
type sim struct {
	clock    *fakeclock.Clock
	mu       sync.Mutex
	sleepers []sleeper
	active   sync.WaitGroup
}

type sleeper struct {
	at   time.Time
	wake chan struct{}
}

func (s *sim) sleep(ctx context.Context, d time.Duration) error {
	ch := make(chan struct{})
	s.mu.Lock()
	s.sleepers = append(s.sleepers, sleeper{at: s.clock.Now().Add(d), wake: ch})
	s.mu.Unlock()
	s.active.Done()
	<-ch
	return nil
}

func (s *sim) spawn(f func()) {
	s.active.Add(1)
	go func() {
		defer s.active.Done()
		f()
	}()
	s.active.Wait()
}

// wakeDue runs the sleepers due now until they sleep again or end.
func (s *sim) wakeDue() {
	now := s.clock.Now()
	s.mu.Lock()
	var due []sleeper
	s.sleepers = slices.DeleteFunc(s.sleepers, func(sl sleeper) bool {
		if !sl.at.After(now) {
			due = append(due, sl)
			return true
		}
		return false
	})
	s.mu.Unlock()
	for _, sl := range due {
		s.active.Add(1)
		close(sl.wake)
		s.active.Wait()
	}
}

// fleetInstance is one instance of the app, as newApp wires it.
type fleetInstance struct {
	journal *journal.Journal
	ring    *keyring.Ring
	rot     *rotation.Rotator
	signing *signingkey.Set
	tokens  *jwtauth.Authority
	flooded bool
}

type fleet struct {
	t       *testing.T
	s       config.Settings
	cfg     *config.Config
	keySvcs []string
	tokSvcs []string
	base    *secretstore.Store
	clock   *fakeclock.Clock
	sim     *sim
	count   *vaultCounter
	rng     *rand.Rand
	log     *slog.Logger
}

func (f *fleet) instance() *fleetInstance {
	st := f.base.Share()
	gate := newStoreGate(f.s)
	j := newJournal(f.s, f.cfg, st, gate, f.keySvcs, f.log, f.clock.Now, func(n time.Duration) time.Duration { return time.Duration(f.rng.Int64N(int64(n))) })
	ring, rot := newKeys(f.s, f.cfg, st, gate, j, f.keySvcs, f.log, f.clock.Now)
	rot.Now = f.clock.Now
	target := rot.Target.(*rotation.ValidatorTarget)
	target.Now, target.Sleep = f.clock.Now, f.sim.sleep
	set := signingkey.New(st, signingKeyPolicy(f.s, f.cfg, j), &signingkey.Options{Bounds: f.s.KeyCache(), Gate: gate, Journal: j, Now: f.clock.Now, Logger: f.log})
	o := jwtauth.DefaultOptions()
	o.Now = f.clock.Now
	tokens, err := jwtauth.New(set, f.s.Issuer, f.s.TokenSigningAlg, &o)
	if err != nil {
		f.t.Fatal(err)
	}
	return &fleetInstance{journal: j, ring: ring, rot: rot, signing: set, tokens: tokens}
}

// truth is what the vault holds for a service: the values it accepts.
func (f *fleet) truth(service string) map[string]bool {
	out := map[string]bool{}
	for _, name := range []string{keysecret.KeySecret(service, keysecret.Primary), keysecret.KeySecret(service, keysecret.Secondary), keysecret.ActiveSecret(service)} {
		if sec, err := f.base.GetSecret(peekCtx, name, ""); err == nil {
			out[sec.Value] = true
		}
	}
	return out
}

type fleetReport struct {
	maxReads, maxCalls   int
	meanReads, meanCalls float64
	decisions, wrong     int
	coldStartReads       []int
	byKind               map[string]int
	firstWrong           string
}

func runFleet(t *testing.T, n int, flood bool) fleetReport {
	ctx := context.Background()
	dir := t.TempDir()
	var svcs []string
	f := &fleet{t: t, clock: fakeclock.New(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)), rng: rand.New(rand.NewPCG(14, 4)), log: slog.New(slog.DiscardHandler)}
	for i := range 100 {
		f.keySvcs = append(f.keySvcs, fmt.Sprintf("k%d", i))
		svcs = append(svcs, fmt.Sprintf(`{"name":"k%d"}`, i))
	}
	for i := range 10 {
		f.tokSvcs = append(f.tokSvcs, fmt.Sprintf("t%d", i))
		svcs = append(svcs, fmt.Sprintf(`{"name":"t%d","authMode":"token"}`, i))
	}
	cfgPath := filepath.Join(dir, "modelauth.json")
	os.WriteFile(cfgPath, []byte(`{"services":[`+strings.Join(svcs, ",")+`]}`), 0o600)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg, f.s = cfg, config.DefaultSettings()
	f.s.KeyCacheTTL = *fleetTTL
	f.sim = &sim{clock: f.clock}
	f.count = &vaultCounter{now: f.clock.Now, reads: map[int64]int{}, secretReads: map[int64]int{}, calls: map[int64]int{}, dirty: map[string]bool{}, byKind: map[string]int{}}
	f.base = memstore.Open(&memstore.Options{Now: f.clock.Now, BeforeFn: f.count.before, ListOrder: driver.RandomOrder, ListSeed: 14})

	// The vault as a deployment leaves it: every service's keys, a signing
	// key, a snapshot. Then the fleet starts (not counted: see the note).
	first := f.instance()
	for _, s := range f.keySvcs {
		if _, err := first.ring.Get(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.ring.EnsureAdminKey(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := first.signing.Signer(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if err := first.journal.WriteSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	instances := []*fleetInstance{first}
	for len(instances) < n {
		in := f.instance()
		in.ring.ValidateAdmin(ctx, "warm-up-not-a-key-warm-up-not-a-key")
		instances = append(instances, in)
	}
	for i := range min(10, n) {
		if flood {
			instances[n-1-i].flooded = true
		}
	}

	// What clients hold: a key per key service (the active one, re-read
	// after a change that concerns them), a token per token service.
	held := map[string]string{}
	since := map[string]time.Time{} // when the held key became the one to use
	truths := map[string]map[string]bool{}
	for _, s := range f.keySvcs {
		k, err := first.ring.Get(peekCtx, s)
		if err != nil {
			t.Fatal(err)
		}
		held[s] = k.PrimaryKey
		truths[s] = f.truth(s)
	}
	type revoked struct {
		service, value string
		at             time.Time
	}
	var revokedKeys []revoked
	type tryKey struct {
		service, value string
		at             time.Time
	}
	var tryNew []tryKey
	tokens := map[string]string{}
	issue := func(in *fleetInstance, s string) {
		tok, _, err := in.tokens.Issue(ctx, s, "client-"+s, time.Hour, 30*time.Minute)
		if err != nil {
			t.Fatalf("issuing a token of %s: %v", s, err)
		}
		tokens[s] = tok.AccessToken
	}
	for _, s := range f.tokSvcs {
		issue(first, s)
	}

	const minutes = 20
	var rep fleetReport
	rep.byKind = map[string]int{}
	wrong := func(format string, args ...any) {
		rep.wrong++
		if rep.firstWrong == "" {
			rep.firstWrong = fmt.Sprintf("%v: ", f.clock.Now().Sub(f.count.start).Round(time.Second)) + fmt.Sprintf(format, args...)
		}
	}
	bound := 2 * f.s.KeyCacheTTL
	f.count.mu.Lock()
	f.count.on, f.count.start = true, f.clock.Now()
	f.count.mu.Unlock()
	start := f.clock.Now()
	regens := 0
	for tick := 0; tick < minutes*60; tick++ {
		f.clock.Advance(time.Second)
		now := f.clock.Now()
		f.sim.wakeDue()

		// Writers.
		if tick%10 == 5 && tick/10 < len(f.keySvcs) {
			// A rotation of every service, one every 10 s, each on some
			// instance (as the timer would, spread).
			s, in := f.keySvcs[tick/10], instances[f.rng.IntN(n)]
			f.sim.spawn(func() {
				if res, err := in.rot.RotateNow(ctx, s); err != nil || res.Outcome != rotation.Completed {
					t.Errorf("rotation of %s: %+v %v", s, res, err)
				}
			})
		}
		if tick%110 == 55 && regens < 10 {
			// A regen_key of the key clients hold: it is revoked.
			regens++
			s := f.keySvcs[f.rng.IntN(len(f.keySvcs))]
			in := instances[f.rng.IntN(n)]
			k, err := in.ring.Get(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			kt, old := keysecret.Primary, k.PrimaryKey
			if held[s] == k.SecondaryKey {
				kt, old = keysecret.Secondary, k.SecondaryKey
			}
			if err := in.rot.Regenerate(ctx, s, kt, ""); err != nil {
				t.Fatalf("regen_key: %v", err)
			}
			k, err = in.ring.Get(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			// The one who regenerated it tries it at once on a few
			// instances (each of which reads the open slot: a miss);
			// the service's clients switch a minute later, as a
			// deployment of the new key would.
			newKey := k.PrimaryKey
			if kt == keysecret.Secondary {
				newKey = k.SecondaryKey
			}
			tryNew = append(tryNew, tryKey{s, newKey, f.clock.Now().Add(2 * time.Second)})
			held[s], since[s] = newKey, f.clock.Now().Add(time.Minute)
			revokedKeys = append(revokedKeys, revoked{s, old, f.clock.Now()})
		}
		if tick == 300 {
			if _, err := instances[f.rng.IntN(n)].signing.RotateNow(ctx); err != nil {
				t.Fatalf("signing-key rotation: %v", err)
			}
		}
		if tick%24 == 12 && tick/24 < 50 {
			// A cold start: an instance is replaced.
			i := 1 + f.rng.IntN(n-1)
			before := f.count.total()
			in := f.instance()
			in.flooded = instances[i].flooded
			in.ring.ValidateAdmin(ctx, "warm-up-not-a-key-warm-up-not-a-key")
			instances[i] = in
			rep.coldStartReads = append(rep.coldStartReads, f.count.total()-before)
		}
		if tick%60 == 30 {
			// The snapshot timer, on some instance.
			in := instances[f.rng.IntN(n)]
			if err := in.journal.WriteSnapshot(ctx); err != nil {
				t.Fatal(err)
			}
			if err := in.journal.Resync(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for s := range f.count.takeDirty() {
			truths[s] = f.truth(s)
		}
		if tick%10 == 0 {
			// Tokens are fetched again every 10 s, on some instance.
			issue(instances[f.rng.IntN(n)], f.tokSvcs[f.rng.IntN(len(f.tokSvcs))])
		}

		// Traffic on every instance.
		for i, in := range instances {
			if i%60 == tick%60 {
				s := f.tokSvcs[(i/10+tick)%len(f.tokSvcs)]
				rep.decisions++
				if _, err := in.tokens.Verify(ctx, s, tokens[s]); err != nil {
					wrong("instance %d refuses a valid token of %s: %v", i, s, err)
				}
				continue
			}
			s := f.keySvcs[(i+tick)%len(f.keySvcs)]
			v := held[s]
			if !truths[s][v] || now.Before(since[s]) {
				continue // the client is between keys
			}
			rep.decisions++
			if _, err := in.ring.Validate(ctx, s, v); err != nil {
				wrong("instance %d refuses the valid key of %s: %v", i, s, err)
			}
		}
		// A key regen_key returned, tried 2 s later on ten instances (each
		// reads the open slot: a miss).
		for _, k := range tryNew {
			if now.Equal(k.at) {
				for i := range 10 {
					rep.decisions++
					if _, err := instances[(i*97+tick)%n].ring.Validate(ctx, k.service, k.value); err != nil {
						wrong("an instance refuses a key regen_key returned 2 s ago: %v", err)
					}
				}
			}
		}
		// Revoked keys, tried on some instance every 10 s once their bound
		// has passed (each try is a wrong key: a miss read).
		for ri, r := range revokedKeys {
			if now.Sub(r.at) < bound || truths[r.service][r.value] || (tick+ri)%10 != 0 {
				continue
			}
			in := instances[(tick*7+ri*131)%n]
			rep.decisions++
			if _, err := in.ring.Validate(ctx, r.service, r.value); !errors.Is(err, keyring.ErrNoMatch) {
				wrong("an instance accepts a key of %s revoked %v ago: %v", r.service, now.Sub(r.at), err)
			}
		}
		// The flood: wrong keys over random services.
		for _, in := range instances {
			if !in.flooded {
				continue
			}
			for range 50 {
				s := f.keySvcs[f.rng.IntN(len(f.keySvcs))]
				rep.decisions++
				if _, err := in.ring.Validate(ctx, s, fmt.Sprintf("wrong-key-%032d", f.rng.Uint64())); !errors.Is(err, keyring.ErrNoMatch) {
					wrong("a wrong key: %v", err)
				}
			}
		}
	}
	// The rotations still waiting end.
	for range 3 * int(bound/time.Second) {
		f.clock.Advance(time.Second)
		f.sim.wakeDue()
	}
	windows := int64(f.clock.Now().Sub(start) / (10 * time.Second))
	f.count.mu.Lock()
	defer f.count.mu.Unlock()
	rep.maxReads, rep.meanReads = stats(f.count.reads, windows)
	if *fleetSeries {
		var series []string
		for w := int64(0); w < windows; w++ {
			series = append(series, fmt.Sprintf("%d(%d)", f.count.reads[w], f.count.secretReads[w]))
		}
		t.Logf("reads per 10 s: %s", strings.Join(series, " "))
	}
	rep.maxCalls, rep.meanCalls = stats(f.count.calls, windows)
	for k, v := range f.count.byKind {
		rep.byKind[k] = v
	}
	return rep
}

func (c *vaultCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.calls {
		n += v
	}
	return n
}

func (c *vaultCounter) takeDirty() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.dirty
	c.dirty = map[string]bool{}
	return d
}

// TestFleet: 1,000 instances (-fleet), 100 key-mode and 10 token-mode
// services, 20 simulated minutes with traffic on every instance, a rotation
// of every service, 10 regen_keys, a signing-key rotation, 50 cold starts,
// and (second run) a wrong-key flood on 10 instances. Vault reads per 10 s
// stay within 400 (500 with the flood) of Key Vault's 4,000, and the
// oracle finds no wrong decision.
func TestFleet(t *testing.T) {
	n := *fleetSize
	if raceEnabled && n > 50 {
		n = 50 // make test runs it again at full size without the race detector
	}
	for _, flood := range []bool{false, true} {
		t.Run(map[bool]string{false: "no flood", true: "flood"}[flood], func(t *testing.T) {
			rep := runFleet(t, n, flood)
			// Issue 14's targets for 1,000 instances: at most 400 reads in any
			// 10 s (500 with the flood). The journal's own figure: a listing
			// per slot per instance (N x 10 s / slot), random poll phases
			// spreading it (+30 % in the worst 10 s covers 3 sigma at
			// 1,000 instances), the writers' reads, the flood's one read per
			// second per flooded instance.
			target := 400
			if flood {
				target = 500
			}
			steady := float64(n) * float64(10*time.Second) / float64(journal.SlotFor(*fleetTTL))
			ceiling := int(1.3*steady) + 90 // + the writers: rotations, regen_keys, cold starts, resync
			if flood {
				ceiling += 10 * int(10*time.Second/f0RefreshMinInterval)
			}
			slices.Sort(rep.coldStartReads)
			t.Logf("%d instances: vault reads per 10 s max %d mean %.1f (all transactions max %d mean %.1f; Key Vault allows 4,000); %d decisions, %d wrong; cold starts %d, transactions each median %d max %d; reads by kind %v",
				n, rep.maxReads, rep.meanReads, rep.maxCalls, rep.meanCalls, rep.decisions, rep.wrong,
				len(rep.coldStartReads), rep.coldStartReads[len(rep.coldStartReads)/2], rep.coldStartReads[len(rep.coldStartReads)-1], rep.byKind)
			if rep.wrong != 0 {
				t.Errorf("%d wrong decisions; the first: %s", rep.wrong, rep.firstWrong)
			}
			t.Logf("issue 14's target for 1,000 instances: max %d; met: %v", target, n == 1000 && rep.maxReads <= target)
			if rep.maxReads > ceiling {
				t.Errorf("max %d vault reads in 10 s; the journal's figure for %d instances is at most %d", rep.maxReads, n, ceiling)
			}
			if n >= 1000 && rep.meanReads > float64(target) {
				t.Errorf("mean %.1f vault reads in 10 s; the target is %d", rep.meanReads, target)
			}
		})
	}
}
