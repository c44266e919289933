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
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// Outcome is what a rotation did.
type Outcome string

// Outcomes.
const (
	NotDue     Outcome = "not_due"
	Completed  Outcome = "completed"
	Superseded Outcome = "superseded"
)

// Result describes a rotation.
type Result struct {
	Outcome  Outcome
	Rotation string            // the rotation's id, if one was staged or resumed
	KeyType  keysecret.KeyType // the key it replaced
}

// ErrFailed wraps every failure of a rotation; the keys that worked before
// it keep working.
var ErrFailed = errors.New("rotation failed")

// Rotator writes services' keys: it rotates them, regenerates one on
// request and creates them on first need. Its fields must be set before
// the first call; it is safe for concurrent use (correctness never relies
// on one run at a time).
type Rotator struct {
	Store *secretstore.Store
	// Target is where a staged key takes effect and is tested.
	Target Target
	// Keys is what this instance's validators know of the keys
	// (Regenerate checks a supplied value against it); required by
	// Regenerate only.
	Keys KeyCache
	// Record, if set, writes the change journal's record of a version
	// unless the journal holds it ([journal.Journal.Record]): a resumed
	// rotation records its staging again, in case the run that wrote it
	// died before its record.
	Record func(ctx context.Context, name, version string) (string, error)
	Policy func(service string) Policy
	// Family names the secrets: keysecret.Services (the zero value) or
	// keysecret.Endpoints.
	Family keysecret.Family
	// NewKey generates a key value; nil: apikey.Generate. CheckKey checks
	// a user-supplied one; nil: apikey.Check. A remote endpoint may accept
	// another alphabet or length than the app's own services.
	NewKey   func() (string, error)
	CheckKey func(string) error
	Now      func() time.Time // nil: time.Now
	Log      *slog.Logger     // nil: discard
}

func (r *Rotator) family() keysecret.Family {
	if r.Family.Prefix == "" {
		return keysecret.Services
	}
	return r.Family
}

func (r *Rotator) newKey() (string, error) {
	if r.NewKey != nil {
		return r.NewKey()
	}
	return apikey.Generate()
}

func (r *Rotator) checkKey(v string) error {
	if r.CheckKey != nil {
		return r.CheckKey(v)
	}
	return apikey.Check(v)
}

// remote returns the target as a [Remote], if it is one.
func (r *Rotator) remote() (Remote, bool) {
	rem, ok := r.Target.(Remote)
	return rem, ok
}

// keyTags returns the tags of a new current version of one of name's keys
// holding value: with a remote target, they carry the value's fingerprint
// (see [Rotator.reconcile]).
func (r *Rotator) keyTags(name, value string) map[string]string {
	t := r.family().KeyTags(name)
	if _, ok := r.remote(); ok {
		t[keysecret.TagFingerprint] = keysecret.Fingerprint(value)
	}
	return t
}

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

// fail logs rotation_failed and returns the wrapped error.
func (r *Rotator) fail(service, id, reason string, err error) (Result, error) {
	attrs := []any{"service", service, "rotation", id, "reason", reason}
	var c interface{ Reason() string }
	if errors.As(err, &c) {
		attrs = append(attrs, "cause", c.Reason()) // a remote's: forbidden, throttled, ...
	}
	r.log().Error("rotation_failed", append(attrs, "error", err.Error())...)
	return Result{Rotation: id}, fmt.Errorf("%w: %s: %s: %w", ErrFailed, service, reason, err)
}

// RotateIfDue rotates service's keys if a rotation is due, after making
// sure they exist and finishing any rotation a crash left half done: what
// the timer and Key Vault's events run.
func (r *Rotator) RotateIfDue(ctx context.Context, service string) (Result, error) {
	return r.rotate(ctx, service, false)
}

// RotateNow is [Rotator.RotateIfDue] that rotates whether due or not: the
// rotate action. A half-done rotation is finished instead.
func (r *Rotator) RotateNow(ctx context.Context, service string) (Result, error) {
	return r.rotate(ctx, service, true)
}

func (r *Rotator) rotate(ctx context.Context, service string, now bool) (Result, error) {
	// A service whose keys were never read has none yet; its first keys
	// count towards the period from their creation.
	if err := r.Provision(ctx, service); err != nil {
		return r.fail(service, "", "read_keys", err)
	}
	const maxStarts = 3 // a failed staging write is followed by a re-read
	for attempt := 1; ; attempt++ {
		res, restart, err := r.run(ctx, service, now)
		if !restart || attempt == maxStarts {
			return res, err
		}
	}
}

// run is one pass of the staged protocol; restart asks for another pass
// after a staging write that may or may not have landed.
func (r *Rotator) run(ctx context.Context, service string, now bool) (res Result, restart bool, err error) {
	x, done, err := r.resume(ctx, service)
	if err != nil || done != nil {
		return *done, false, err
	}
	if x.staged.ID == "" {
		if !now && !Due(x.policy, x.st, r.now()) {
			return Result{Outcome: NotDue}, false, nil
		}
		if err := x.stage(ctx); err != nil {
			if !errors.Is(err, errStageWrite) {
				res, err = r.fail(service, x.res.Rotation, "generate", err)
				return res, false, err
			}
			// Not retried blindly: the write may have landed. Start over
			// from the state, which resumes it if it did.
			res, err = r.fail(service, x.res.Rotation, "stage_write", err)
			return res, true, err
		}
	}
	r.log().Info("rotation_staged", "service", service, "rotation", x.res.Rotation, "keyType", string(x.kt))
	for _, step := range []func(context.Context) (*Result, error){x.apply, x.test, x.finish} {
		if res, err := step(ctx); err != nil || res != nil {
			if err != nil {
				return Result{Rotation: x.res.Rotation}, false, err
			}
			return *res, false, nil
		}
	}
	return x.res, false, nil
}

// pass is what one run knows of a service between the protocol's steps.
type pass struct {
	r       *Rotator
	service string
	policy  Policy
	st      State
	active  int // index of the active key, 1-active the one rotated
	kt      keysecret.KeyType
	secret  string  // the rotated key's secret
	staged  Version // the staged version, once staged or resumed
	value   string  // its value, once read
	res     Result
}

// resume reads the state, repairs the active copy if a crash left it
// behind, and takes up a half-done rotation. done is set when the repair
// completed a rotation.
func (r *Rotator) resume(ctx context.Context, service string) (x *pass, done *Result, err error) {
	st, err := r.ReadState(ctx, service)
	if err != nil {
		res, err := r.fail(service, "", "read_state", err)
		return nil, &res, err
	}
	// A remote's keys come first: the active copy must not be moved to a
	// value the remote does not hold.
	if st, err = r.reconcile(ctx, service, st); err != nil {
		res, err := r.fail(service, "", "reconcile", err)
		return nil, &res, err
	}
	repaired, err := r.repairActiveCopy(ctx, service, st)
	if err != nil {
		res, err := r.fail(service, "", "repair_active_copy", err)
		return nil, &res, err
	}
	active := st.Active()
	if cur, _ := st.Slots[active].Current(); repaired && cur.Tags[keysecret.TagRotation] != "" {
		// A crash cut a rotation short after it activated the key: writing
		// the copy was its last step, so it is complete now.
		id := cur.Tags[keysecret.TagRotation]
		r.log().Info("rotation_completed", "service", service, "rotation", id, "keyType", string(keysecret.KeyTypes[active]), "resumed", true)
		return nil, &Result{Outcome: Completed, Rotation: id, KeyType: keysecret.KeyTypes[active]}, nil
	}
	kt := keysecret.KeyTypes[1-active]
	x = &pass{r: r, service: service, policy: r.Policy(service), st: st, active: active, kt: kt, secret: r.family().Key(service, kt)}
	if v, ok := st.resumable(1 - active); ok {
		x.staged = v
		x.res = Result{Rotation: v.Tags[keysecret.TagRotation], KeyType: kt}
		r.log().Info("rotation_started", "service", service, "rotation", x.res.Rotation, "keyType", string(kt), "resumed", true)
		if r.Record != nil {
			// The staging's record may be lost with the run that wrote it
			// (a crash, or a record that failed): validators learn of the
			// staged key from it, so it is written again unless it exists.
			if _, err := r.Record(ctx, x.secret, v.ID); err != nil {
				res, err := r.fail(service, x.res.Rotation, "record", err)
				return nil, &res, err
			}
		}
	}
	return x, nil, nil
}

var errStageWrite = errors.New("the staging write failed")

// stage writes a new value as the newest version of the inactive key's
// secret, tagged staged with a new rotation id.
func (x *pass) stage(ctx context.Context) error {
	id := newID()
	x.res = Result{Rotation: id, KeyType: x.kt}
	x.r.log().Info("rotation_started", "service", x.service, "rotation", id, "keyType", string(x.kt), "resumed", false)
	value, err := x.r.newKey()
	if err != nil {
		return err
	}
	tags := x.r.keyTags(x.service, value)
	tags[keysecret.TagState], tags[keysecret.TagRotation] = keysecret.StateStaged, id
	props, err := x.r.Store.SetSecret(ctx, x.secret, secretstore.SetParams{Value: value, Enabled: true, Tags: tags})
	if err != nil {
		return fmt.Errorf("%w: %w", errStageWrite, err)
	}
	x.staged = versionOf(props)
	x.value = value
	return nil
}

// apply makes the staged value take effect at the target.
func (x *pass) apply(ctx context.Context) (*Result, error) {
	if x.value == "" {
		sec, err := x.r.Store.GetSecret(ctx, x.secret, x.staged.ID)
		if err != nil {
			_, err = x.r.fail(x.service, x.res.Rotation, "read_staged", err)
			return nil, err
		}
		x.value = sec.Value
	}
	_, isRemote := x.r.remote()
	if isRemote {
		ok, _, err := x.stillStaged(ctx)
		if err != nil {
			_, err = x.r.fail(x.service, x.res.Rotation, "apply_read_state", err)
			return nil, err
		}
		if !ok {
			return x.superseded(), nil
		}
	}
	if err := x.r.Target.Apply(ctx, x.service, x.kt, Staged{Value: x.value, Created: x.staged.Created}); err != nil {
		_, err = x.r.fail(x.service, x.res.Rotation, "apply", err)
		return nil, err
	}
	if isRemote {
		// Another rotation may have staged (or finished) in the meantime,
		// and this value have overwritten its own at the remote.
		ok, st, err := x.stillStaged(ctx)
		if err == nil && !ok {
			if _, err := x.r.reconcile(ctx, x.service, st); err != nil {
				_, err = x.r.fail(x.service, x.res.Rotation, "reconcile", err)
				return nil, err
			}
			return x.superseded(), nil
		}
	}
	return nil, nil
}

// test checks the staged value at the target, as it reads back from the
// store. A value staged over this one makes the test fail: that is another
// rotation's turn, not a failure.
func (x *pass) test(ctx context.Context) (*Result, error) {
	sec, err := x.r.Store.GetSecret(ctx, x.secret, x.staged.ID)
	if err != nil {
		_, err = x.r.fail(x.service, x.res.Rotation, "test_read", err)
		return nil, err
	}
	if err := x.r.Target.Test(ctx, x.service, x.kt, sec.Value); err != nil {
		if st, rerr := x.r.ReadState(ctx, x.service); rerr == nil {
			if v, ok := st.Slots[1-x.active].Newest(); ok && v.ID != x.staged.ID {
				return x.superseded(), nil
			}
		}
		_, err = x.r.fail(x.service, x.res.Rotation, "test_validate", err)
		return nil, err
	}
	x.value = sec.Value
	x.r.log().Info("rotation_tested", "service", x.service, "rotation", x.res.Rotation, "keyType", string(x.kt))
	return nil, nil
}

func (x *pass) superseded(attrs ...any) *Result {
	x.r.log().Info("rotation_superseded", append([]any{"service", x.service, "rotation", x.res.Rotation, "keyType", string(x.kt)}, attrs...)...)
	res := x.res
	res.Outcome = Superseded
	return &res
}

// finish activates the staged version, only if it is still the newest of
// its secret and that secret still the inactive one, then tells clients
// through the active copy.
func (x *pass) finish(ctx context.Context) (*Result, error) {
	r, inactive := x.r, 1-x.active
	now, err := r.ReadState(ctx, x.service)
	if err != nil {
		_, err = r.fail(x.service, x.res.Rotation, "finish_read_state", err)
		return nil, err
	}
	newest, ok := now.Slots[inactive].Newest()
	if !ok || newest.ID != x.staged.ID || now.Active() != x.active {
		return x.superseded(), nil
	}
	activated := r.now().Truncate(time.Second)
	if other, ok := now.Slots[x.active].Current(); ok && !activated.After(other.Activated()) && !other.Activated().IsZero() {
		activated = other.Activated().Add(time.Second) // strictly later: the tie must not matter
	}
	tags := maps.Clone(x.staged.Tags)
	tags[keysecret.TagState] = keysecret.StateCurrent
	tags[keysecret.TagActivated] = strconv.FormatInt(activated.Unix(), 10)
	if _, err := r.Store.UpdateProperties(ctx, x.secret, x.staged.ID, secretstore.Update{Tags: tags, Expires: x.policy.expiry(activated)}); err != nil {
		_, err = r.fail(x.service, x.res.Rotation, "finish_tags", err)
		return nil, err
	}
	// A write landed above the staged value before its activation (a
	// regen_key of that key): telling clients the staged value would have it
	// die at the next rotation, which the tags still count as due.
	// Only the newest matters: one read of the secret. A disabled newest
	// (which answers without its id) is not a value to tell clients
	// either: superseded.
	if after, err := r.Store.GetSecret(ctx, x.secret, ""); err != nil && secretstore.Code(err) != secretstore.Disabled {
		_, err = r.fail(x.service, x.res.Rotation, "finish_read_state", err)
		return nil, err
	} else if err != nil || after.Version != x.staged.ID {
		return x.superseded("after", "activation"), nil
	}
	told, err := r.advanceActiveCopy(ctx, x.service, x.kt, x.value, tags)
	if err != nil {
		_, err = r.fail(x.service, x.res.Rotation, "finish_active_copy", err)
		return nil, err
	}
	if !told {
		// A newer activation reached the copy meanwhile.
		return x.superseded("after", "activation"), nil
	}
	r.log().Info("rotation_completed", "service", x.service, "rotation", x.res.Rotation, "keyType", string(x.kt),
		"next_due", activated.Add(x.policy.Period).UTC().Format(time.RFC3339))
	x.res.Outcome = Completed
	return nil, nil
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
