package rotation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// Errors of [Rotator.Regenerate].
var (
	// ErrKeyInUse: a user-supplied key is already some key (of any
	// service, or the administrator key).
	ErrKeyInUse = errors.New("rotation: that key value is already in use")
	// ErrWritten: the new key was written, and took effect on this
	// instance, but the active copy could not be moved to it; the next
	// rotation run repairs the copy.
	ErrWritten = errors.New("rotation: key written, but its active copy could not be updated")
	// ErrUnavailable: the store could not be read or written; nothing
	// changed.
	ErrUnavailable = errors.New("rotation: the key store is unavailable")
	// ErrNotPublished: the new key was written, but its change journal
	// record was not (secretstore.Unpublished): it is in effect nowhere,
	// and the old key still works; call again.
	ErrNotPublished = errors.New("rotation: the key was written but not published")
	// ErrNotApplied: the new key was written to the store, but the
	// remote target (an Azure ML endpoint) did not take it: its old value
	// still works there, and clients are still told it. The next
	// due-check sets the new value at the remote (drift repair), or call
	// again.
	ErrNotApplied = errors.New("rotation: the key was written to the store, but the endpoint did not take it")
)

// KeyCache is what this instance's validators know of the keys:
// [keyring.Ring]. A regenerated key replaces the old one there at once,
// through the store's write hook (the change journal, package journal).
type KeyCache interface {
	// InUse reports whether value is already a key, of any service or the
	// administrator's, as far as the instance knows.
	InUse(ctx context.Context, value string) bool
}

// Regenerate replaces service's kt key with value, or with a new random key
// when value is "" (regen_key). The old value stops working on this
// instance at once and on others within the journal's bound (two
// key-cache TTL slots), through the
// active copy too when kt is the active key. The new version keeps the
// key's place in rotation: current, with the same activation time.
//
// With a [Remote] target the value is written to the store, then applied
// at the remote (whose old value stops working when Apply returns), and
// only then to the active copy; a failed Apply is [ErrNotApplied], which
// the next due-check's reconcile finishes.
func (r *Rotator) Regenerate(ctx context.Context, service string, kt keysecret.KeyType, value string) error {
	if value == "" {
		var err error
		if value, err = r.newKey(); err != nil {
			return err
		}
	} else if err := r.checkKey(value); err != nil {
		return err
	} else if r.Keys != nil && r.Keys.InUse(ctx, value) {
		return ErrKeyInUse
	}
	rem, isRemote := r.remote()
	activated, err := r.writeKey(ctx, service, kt, value)
	if err != nil {
		return err
	}
	if isRemote {
		// The value is in the store first: it is never only at the remote.
		// The remote's old value stops working when Apply returns; clients
		// are told the new one (the active copy) only then.
		if err := rem.Apply(ctx, service, kt, Staged{Value: value}); err != nil {
			return fmt.Errorf("%w: %w", ErrNotApplied, err)
		}
	}
	// The old value stopped working here when the write returned (its
	// record is written: the journal's hook), and stops on every
	// instance within the journal's bound, even if the copy's update below
	// fails (the active copy of it too: same key type).
	if err := r.followRegen(ctx, service, kt, value, activated); err != nil {
		return fmt.Errorf("%w: %w", ErrWritten, err)
	}
	return nil
}

// writeKey writes value as a new current version of service's kt key,
// keeping the key's place in rotation (the activation of the version it
// replaces), and returns that activation tag ("" for keys never rotated).
func (r *Rotator) writeKey(ctx context.Context, service string, kt keysecret.KeyType, value string) (activated string, err error) {
	secret := r.family().Key(service, kt)
	tags := r.keyTags(service, value)
	slot, err := r.readSlot(ctx, secret)
	if err != nil && secretstore.Code(err) != secretstore.NotFound {
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if cur, ok := slot.Current(); ok { // the key's current version
		if a := cur.Tags[keysecret.TagActivated]; a != "" {
			tags[keysecret.TagActivated] = a
		}
	}
	since := r.now()
	if a, err := strconv.ParseInt(tags[keysecret.TagActivated], 10, 64); err == nil {
		since = time.Unix(a, 0)
	}
	if _, err := r.Store.SetSecret(ctx, secret, secretstore.SetParams{
		Value: value, Enabled: true, Tags: tags, Expires: r.Policy(service).expiry(since),
	}); secretstore.Code(err) == secretstore.Unpublished {
		return "", fmt.Errorf("%w: %w", ErrNotPublished, err)
	} else if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return tags[keysecret.TagActivated], nil
}
