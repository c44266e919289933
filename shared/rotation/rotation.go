// Package rotation rotates a service's keys as design.md section 5 says:
// alternating dual keys, staged, crash-safe and safe without locks.
//
// A run for a service:
//
//  1. reads the state: every version's tags of both key secrets, and the
//     active copy (svc-<service>-active); repairs the copy if a crash left
//     it behind the active key;
//  2. resumes first: a staged version that is the newest of the inactive
//     key's secret is finished (same rotation id, same value);
//  3. otherwise, if the rotation is due (see [Due]) or forced, stages a new
//     value as the newest version of the inactive secret (state=staged,
//     rotation=<id>); a failed write is not retried: the state is read
//     again and the run starts over;
//  4. waits until one key-cache TTL has passed since the staging, so that
//     every validator knows the value;
//  5. tests it: reads it back and checks it with the validators' own code;
//  6. finishes only if the newest version of that secret still carries
//     this rotation's id and that secret is still the inactive one: tags it
//     state=current, activated=<unix>, exp=due+30 days, then writes it to
//     the active copy.
//
// The active key is the one whose current version (the newest with
// state=current) has the larger activated time; keys never rotated have
// none, and a tie goes to the Primary. The period of keys never rotated
// counts from their creation.
// Validators accept the newest version of each key secret and the active
// copy, so a key told to clients keeps working until the next rotation is
// due.
//
// Every step logs one event (rotation_started, rotation_staged,
// rotation_tested, rotation_completed, rotation_superseded, rotation_failed
// with a reason), never a key.
package rotation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"github.com/modelauth/modelauth/shared/apikey"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// Defaults of a service's rotation policy.
const (
	DefaultPeriod          = 30 * 24 * time.Hour
	DefaultRefreshInterval = 24 * time.Hour
	// ExpiryMargin is how long after the due time a current version's exp
	// is set: Key Vault sends SecretNearExpiry 30 days before exp, that is
	// when the rotation is due.
	ExpiryMargin = 30 * 24 * time.Hour
)

// Policy is a service's rotation policy.
type Policy struct {
	Period          time.Duration // how often the keys rotate
	RefreshInterval time.Duration // how often clients re-read the active key
}

// Check refuses a period shorter than twice the refresh interval: a client
// re-reading once per refresh interval could otherwise miss a rotation.
func (p Policy) Check() error {
	if p.Period <= 0 || p.RefreshInterval <= 0 {
		return errors.New("rotation period and refresh interval must be positive")
	}
	if p.Period < 2*p.RefreshInterval {
		return fmt.Errorf("rotation period %v is shorter than twice the refresh interval %v", p.Period, p.RefreshInterval)
	}
	return nil
}

// Version is one version of a key secret, without its value.
type Version struct {
	ID      string
	Created time.Time
	Tags    map[string]string
}

func (v Version) staged() bool  { return v.Tags[keyring.TagState] == keyring.StateStaged }
func (v Version) current() bool { return v.Tags[keyring.TagState] != keyring.StateStaged }

// Activated is when a rotation made the version current, from its
// activated tag; the zero time for keys as first created (or a tag that
// does not parse).
func (v Version) Activated() time.Time {
	if s, err := strconv.ParseInt(v.Tags[keyring.TagActivated], 10, 64); err == nil {
		return time.Unix(s, 0)
	}
	return time.Time{}
}

// since is when the version started counting towards the next rotation:
// its activation, or its creation for keys never rotated.
func (v Version) since() time.Time {
	if a := v.Activated(); !a.IsZero() {
		return a
	}
	return v.Created
}

// Slot is one key secret's versions, newest first.
type Slot struct {
	Versions []Version
}

// Newest is the newest version, if any.
func (s Slot) Newest() (Version, bool) {
	if len(s.Versions) == 0 {
		return Version{}, false
	}
	return s.Versions[0], true
}

// Current is the newest version with state=current, if any.
func (s Slot) Current() (Version, bool) {
	for _, v := range s.Versions {
		if v.current() {
			return v, true
		}
	}
	return Version{}, false
}

// State is what a run knows of a service: index 0 is the Primary, 1 the
// Secondary.
type State struct {
	Slots [2]Slot
}

// Active returns the index of the active key.
func (s State) Active() int {
	p, okP := s.Slots[0].Current()
	q, okQ := s.Slots[1].Current()
	if okQ && (!okP || q.Activated().After(p.Activated())) {
		return 1
	}
	return 0
}

// resumable returns the staged version to resume in slot i: its newest
// version, if staged by a rotation after the active key was activated. An
// older staging is a leftover of a superseded rotation from before, written
// into what was then the active key's secret: never resumed.
func (s State) resumable(i int) (Version, bool) {
	v, ok := s.Slots[i].Newest()
	if !ok || !v.staged() || v.Tags[keyring.TagRotation] == "" {
		return Version{}, false
	}
	if cur, ok := s.Slots[s.Active()].Current(); ok && !cur.Activated().IsZero() && v.Created.Before(cur.Activated().Add(-time.Second)) {
		return Version{}, false
	}
	return v, true
}

// DueAt is when the next rotation is due: the active key's activation plus
// the period.
func (s State) DueAt(p Policy) time.Time {
	cur, ok := s.Slots[s.Active()].Current()
	if !ok {
		return time.Time{}
	}
	return cur.since().Add(p.Period)
}

// Due reports whether a rotation is due at now: a pure function of the
// policy, the tags and the time.
func Due(p Policy, s State, now time.Time) bool {
	return !now.Before(s.DueAt(p))
}

var keyTypes = [2]keyring.KeyType{keyring.Primary, keyring.Secondary}

// Outcome is what a run did.
type Outcome string

// Outcomes.
const (
	NotDue     Outcome = "not_due"
	Completed  Outcome = "completed"
	Superseded Outcome = "superseded"
)

// Result describes a run.
type Result struct {
	Outcome  Outcome
	Rotation string          // the rotation's id, if one was staged or resumed
	KeyType  keyring.KeyType // the key it replaced
}

// Validator is the validators' own check, which a staged key must pass.
type Validator interface {
	Validate(ctx context.Context, service, key string) (keyring.KeyType, error)
}

// Rotator runs rotations. Its fields must be set before the first run; it
// is safe for concurrent use (correctness never relies on one run at a
// time).
type Rotator struct {
	Store     *secretstore.Store
	Validator Validator
	// TTL is the validators' key-cache TTL: the least time between staging
	// and finishing.
	TTL    time.Duration
	Policy func(service string) Policy
	Now    func() time.Time                                 // nil: time.Now
	Sleep  func(ctx context.Context, d time.Duration) error // nil: a timer
	Log    *slog.Logger                                     // nil: discard
	// OnStep, if set, is called after each step with its name: tests use it
	// to stop or crash a run between steps.
	OnStep func(service, step string)
}

// ErrFailed wraps every failure of a run; the keys that worked before it
// keep working.
var ErrFailed = errors.New("rotation failed")

func (r *Rotator) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Rotator) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (r *Rotator) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if r.Sleep != nil {
		return r.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Rotator) step(service, name string) {
	if r.OnStep != nil {
		r.OnStep(service, name)
	}
}

// fail logs rotation_failed and returns the wrapped error.
func (r *Rotator) fail(service, id, reason string, err error) (Result, error) {
	r.log().Error("rotation_failed", "service", service, "rotation", id, "reason", reason, "error", err.Error())
	return Result{Rotation: id}, fmt.Errorf("%w: %s: %s: %w", ErrFailed, service, reason, err)
}

// ReadState reads every version's tags of both key secrets.
func (r *Rotator) ReadState(ctx context.Context, service string) (State, error) {
	var s State
	for i, kt := range keyTypes {
		props, err := r.Store.ListVersions(ctx, keyring.KeySecret(service, kt))
		if err != nil {
			return State{}, err
		}
		for _, p := range props {
			s.Slots[i].Versions = append(s.Slots[i].Versions, Version{ID: p.Version, Created: p.Created, Tags: p.Tags})
		}
	}
	return s, nil
}

// Run rotates service's keys if a rotation is due, or at once when force
// is set, after first finishing any rotation a crash left half done.
func (r *Rotator) Run(ctx context.Context, service string, force bool) (Result, error) {
	const maxStarts = 3 // a failed staging write is followed by a re-read
	for attempt := 1; ; attempt++ {
		res, restart, err := r.run(ctx, service, force)
		if !restart || attempt == maxStarts {
			return res, err
		}
	}
}

func (r *Rotator) run(ctx context.Context, service string, force bool) (res Result, restart bool, err error) {
	log := r.log()
	st, err := r.ReadState(ctx, service)
	if err != nil {
		res, err = r.fail(service, "", "read_state", err)
		return res, false, err
	}
	repaired, err := r.repairActiveCopy(ctx, service, st)
	if err != nil {
		res, err = r.fail(service, "", "repair_active_copy", err)
		return res, false, err
	}
	active := st.Active()
	if cur, _ := st.Slots[active].Current(); repaired && cur.Tags[keyring.TagRotation] != "" {
		// A crash cut a rotation short after it activated the key: writing
		// the copy was its last step, so it is complete now.
		id := cur.Tags[keyring.TagRotation]
		log.Info("rotation_completed", "service", service, "rotation", id, "keyType", string(keyTypes[active]), "resumed", true)
		return Result{Outcome: Completed, Rotation: id, KeyType: keyTypes[active]}, false, nil
	}
	inactive := 1 - active
	kt := keyTypes[inactive]
	secret := keyring.KeySecret(service, kt)
	policy := r.Policy(service)

	var staged Version
	if v, ok := st.resumable(inactive); ok {
		staged = v // resume first
		log.Info("rotation_started", "service", service, "rotation", v.Tags[keyring.TagRotation], "keyType", string(kt), "resumed", true)
	} else {
		if !force && !Due(policy, st, r.now()) {
			return Result{Outcome: NotDue}, false, nil
		}
		id := newID()
		log.Info("rotation_started", "service", service, "rotation", id, "keyType", string(kt), "resumed", false)
		value, err := apikey.Generate()
		if err != nil {
			res, err = r.fail(service, id, "generate", err)
			return res, false, err
		}
		tags := keyring.ServiceTags(service)
		tags[keyring.TagState], tags[keyring.TagRotation] = keyring.StateStaged, id
		props, err := r.Store.SetSecret(ctx, secret, secretstore.SetParams{Value: value, Enabled: true, Tags: tags})
		if err != nil {
			// Not retried blindly: the write may have landed. Start over
			// from the state, which resumes it if it did.
			res, err = r.fail(service, id, "stage_write", err)
			return res, true, err
		}
		staged = Version{ID: props.Version, Created: props.Created, Tags: props.Tags}
	}
	id := staged.Tags[keyring.TagRotation]
	res = Result{Rotation: id, KeyType: kt}
	log.Info("rotation_staged", "service", service, "rotation", id, "keyType", string(kt))
	r.step(service, "staged")

	// Wait one key-cache TTL after the staging, so every validator has
	// had the chance to read the staged value. Stores keep whole seconds
	// (Key Vault does): the staging may have happened up to a second after
	// its recorded time.
	if err := r.sleep(ctx, staged.Created.Add(r.TTL+time.Second).Sub(r.now())); err != nil {
		res, err = r.fail(service, id, "wait", err)
		return res, false, err
	}
	r.step(service, "waited")

	sec, err := r.Store.GetSecret(ctx, secret, staged.ID)
	if err != nil {
		res, err = r.fail(service, id, "test_read", err)
		return res, false, err
	}
	got, err := r.Validator.Validate(ctx, service, sec.Value)
	if err != nil || got != kt {
		if err == nil {
			err = fmt.Errorf("validated as %s, want %s", got, kt)
		}
		// A value staged over this one makes the test fail: that is
		// another rotation's turn, not a failure.
		if st, rerr := r.ReadState(ctx, service); rerr == nil {
			if v, ok := st.Slots[inactive].Newest(); ok && v.ID != staged.ID {
				log.Info("rotation_superseded", "service", service, "rotation", id, "keyType", string(kt))
				res.Outcome = Superseded
				return res, false, nil
			}
		}
		res, err = r.fail(service, id, "test_validate", err)
		return res, false, err
	}
	log.Info("rotation_tested", "service", service, "rotation", id, "keyType", string(kt))
	r.step(service, "tested")

	// Finish only if still newest and still inactive.
	now, err := r.ReadState(ctx, service)
	if err != nil {
		res, err = r.fail(service, id, "finish_read_state", err)
		return res, false, err
	}
	newest, ok := now.Slots[inactive].Newest()
	if !ok || newest.ID != staged.ID || now.Active() != active {
		log.Info("rotation_superseded", "service", service, "rotation", id, "keyType", string(kt))
		res.Outcome = Superseded
		return res, false, nil
	}
	activated := r.now().Truncate(time.Second)
	if other, ok := now.Slots[active].Current(); ok && !activated.After(other.Activated()) && !other.Activated().IsZero() {
		activated = other.Activated().Add(time.Second) // strictly later: the tie must not matter
	}
	exp := activated.Add(policy.Period + ExpiryMargin)
	tags := maps.Clone(staged.Tags)
	tags[keyring.TagState] = keyring.StateCurrent
	tags[keyring.TagActivated] = strconv.FormatInt(activated.Unix(), 10)
	if _, err := r.Store.UpdateProperties(ctx, secret, staged.ID, secretstore.Update{Tags: tags, Expires: &exp}); err != nil {
		res, err = r.fail(service, id, "finish_tags", err)
		return res, false, err
	}
	r.step(service, "activated")
	// A write landed above the staged value before its activation (a
	// regen_key of that key): telling clients the staged value would have it
	// die at the next rotation, which the tags still count as due.
	if after, err := r.ReadState(ctx, service); err != nil {
		res, err = r.fail(service, id, "finish_read_state", err)
		return res, false, err
	} else if v, ok := after.Slots[inactive].Newest(); !ok || v.ID != staged.ID {
		log.Info("rotation_superseded", "service", service, "rotation", id, "keyType", string(kt), "after", "activation")
		res.Outcome = Superseded
		return res, false, nil
	}
	// Tell clients, unless a newer activation reached the copy meanwhile.
	mine := Version{ID: staged.ID, Tags: tags}
	if have, err := r.Store.GetSecret(ctx, keyring.ActiveSecret(service), ""); err != nil && secretstore.Code(err) != secretstore.NotFound {
		res, err = r.fail(service, id, "finish_active_copy", err)
		return res, false, err
	} else if err == nil && !mine.Activated().After(copyActivated(have.Tags)) {
		log.Info("rotation_superseded", "service", service, "rotation", id, "keyType", string(kt), "after", "activation")
		res.Outcome = Superseded
		return res, false, nil
	}
	if _, err := r.Store.SetSecret(ctx, keyring.ActiveSecret(service), secretstore.SetParams{
		Value: sec.Value, Enabled: true, Tags: copyTags(service, kt, mine),
	}); err != nil {
		res, err = r.fail(service, id, "finish_active_copy", err)
		return res, false, err
	}
	log.Info("rotation_completed", "service", service, "rotation", id, "keyType", string(kt),
		"next_due", activated.Add(policy.Period).UTC().Format(time.RFC3339))
	res.Outcome = Completed
	return res, false, nil
}

// repairActiveCopy writes the active key's current value to the active copy
// when a crash left the copy behind (or it does not exist).
func (r *Rotator) repairActiveCopy(ctx context.Context, service string, st State) (repaired bool, err error) {
	active := st.Active()
	cur, ok := st.Slots[active].Current()
	if !ok {
		return false, nil // no keys yet: the validators create them
	}
	kt := keyTypes[active]
	have, err := r.Store.GetSecret(ctx, keyring.ActiveSecret(service), "")
	switch {
	case err != nil && secretstore.Code(err) != secretstore.NotFound:
		return false, err
	case err == nil && cur.Activated().Before(copyActivated(have.Tags)):
		return false, nil // the state this run read is stale: never move the copy back
	case err == nil && cur.Activated().Equal(copyActivated(have.Tags)) && !cur.Created.After(have.Created):
		// Same activation, and the copy was written after that version:
		// it is up to date (or the state is stale).
		return false, nil
	}
	// The copy is behind: a newer activation, or a version of the same
	// activation written after it (a regen_key whose copy write failed).
	want, err := r.Store.GetSecret(ctx, keyring.KeySecret(service, kt), cur.ID)
	if err != nil {
		return false, err
	}
	if err == nil && have.Value == want.Value && keyring.KeyTypeOfSlot(have.Tags) == kt {
		return false, nil
	}
	if _, err := r.Store.SetSecret(ctx, keyring.ActiveSecret(service), secretstore.SetParams{
		Value: want.Value, Enabled: true, Tags: copyTags(service, kt, cur),
	}); err != nil {
		return false, err
	}
	r.log().Info("rotation_active_copy_repaired", "service", service, "keyType", string(kt))
	return true, nil
}

// copyTags are the active copy's tags for version v of kt's key: its slot,
// rotation id and activation, which order copies without compare-and-swap.
func copyTags(service string, kt keyring.KeyType, v Version) map[string]string {
	tags := keyring.ActiveTags(service, kt)
	for _, k := range []string{keyring.TagRotation, keyring.TagActivated} {
		if x := v.Tags[k]; x != "" {
			tags[k] = x
		}
	}
	return tags
}

// copyActivated is the activation the active copy carries: zero if none.
func copyActivated(tags map[string]string) time.Time {
	return Version{Tags: tags}.Activated()
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
