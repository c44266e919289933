package rotation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/modelauth/modelauth/shared/apikey"
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
func (r *Rotator) Regenerate(ctx context.Context, service string, kt keysecret.KeyType, value string) error {
	if value == "" {
		var err error
		if value, err = apikey.Generate(); err != nil {
			return err
		}
	} else if err := apikey.Check(value); err != nil {
		return err
	} else if r.Keys.InUse(ctx, value) {
		return ErrKeyInUse
	}
	secret := keysecret.KeySecret(service, kt)
	tags := keysecret.ServiceTags(service)
	slot, err := r.readSlot(ctx, secret)
	if err != nil && secretstore.Code(err) != secretstore.NotFound {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
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
		return fmt.Errorf("%w: %w", ErrNotPublished, err)
	} else if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// The old value stopped working here when the write returned (its
	// record is written: the journal's hook), and stops on every
	// instance within the journal's bound, even if the copy's update below
	// fails (the active copy of it too: same key type).
	if err := r.followRegen(ctx, service, kt, value, tags[keysecret.TagActivated]); err != nil {
		return fmt.Errorf("%w: %w", ErrWritten, err)
	}
	return nil
}
