package rotation

import (
	"context"
	"errors"
	"fmt"

	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// ErrDisabled: the newest version of one of a service's key secrets is
// disabled (an operator's doing); that key is left as it is.
var ErrDisabled = errors.New("rotation: the newest version of a key is disabled")

// Provision makes sure a service's keys exist: it creates a missing
// Primary or Secondary with a new key, and a missing active copy as a copy
// of the Primary, then converges the copy if instances creating the keys at
// once left it behind (see [keysecret.CopyLags]). The validators call it
// (through package keyring) when they find the keys missing or the copy
// behind; rotations call it first. A disabled key is left alone, and so is
// its copy; the error then wraps [ErrDisabled], after the rest was done.
func (r *Rotator) Provision(ctx context.Context, service string) error {
	policy := r.Policy(service)
	var keys [2]secretstore.Secret
	disabled := [2]bool{}
	adopt := r.adopter(service)
	for i, kt := range keysecret.KeyTypes {
		sec, err := r.readOrCreate(ctx, service, r.family().Key(service, kt), func() (string, error) { return adopt(ctx, i) }, policy)
		switch {
		case errors.Is(err, ErrDisabled):
			disabled[i] = true
		case err != nil:
			return err
		}
		keys[i] = sec
	}
	if disabled[0] {
		// The copy would be created from the Primary.
		return fmt.Errorf("%w: %s", ErrDisabled, r.family().Key(service, keysecret.Primary))
	}
	copySec, err := r.readOrCreate(ctx, service, r.family().Active(service), func() (string, error) { return keys[0].Value, nil }, Policy{})
	if err != nil {
		return err
	}
	if kt := keysecret.KeyTypeOfSlot(copySec.Tags); disabled[slotIndex(kt)] {
		return fmt.Errorf("%w: %s", ErrDisabled, r.family().Key(service, kt))
	}
	if err := r.converge(ctx, service, copySec, keys); err != nil {
		return err
	}
	if disabled[1] {
		return fmt.Errorf("%w: %s", ErrDisabled, r.family().Key(service, keysecret.Secondary))
	}
	return nil
}

// adopter returns what a missing key of service is created with: a new
// key, or, with a [Remote] target, the key the remote holds in that slot
// (read once per Provision), so that the keys clients already use keep
// working and get_keys tells them from the start.
func (r *Rotator) adopter(service string) func(ctx context.Context, slot int) (string, error) {
	rem, ok := r.remote()
	if !ok {
		return func(context.Context, int) (string, error) { return r.newKey() }
	}
	var have *[2]string
	return func(ctx context.Context, slot int) (string, error) {
		if have == nil {
			keys, err := rem.Keys(ctx, service)
			if err != nil {
				return "", fmt.Errorf("adopting the keys of %s: %w", service, err)
			}
			have = &keys
			r.log().Info("endpoint_keys_adopted", "service", service)
		}
		return have[slot], nil
	}
}

// readOrCreate reads a secret's newest version, creating the secret with
// the value from value when it does not exist: a key version of service
// when policy has a period, its active copy (a copy of the Primary, with
// no exp) otherwise. Another instance may create it at the same moment:
// the newest version is read back, the one every instance converges on.
func (r *Rotator) readOrCreate(ctx context.Context, service, name string, value func() (string, error), policy Policy) (secretstore.Secret, error) {
	sec, err := r.Store.GetSecret(ctx, name, "")
	switch secretstore.Code(err) {
	case secretstore.Unknown:
		if err == nil {
			return sec, nil
		}
	case secretstore.Disabled:
		return sec, fmt.Errorf("%w: %s", ErrDisabled, name)
	case secretstore.NotFound:
		v, err := value()
		if err != nil {
			return sec, err
		}
		p := secretstore.SetParams{Value: v, Enabled: true, Tags: r.family().ActiveTags(service, keysecret.Primary)}
		if policy.Period > 0 {
			p.Tags, p.Expires = r.keyTags(service, v), policy.expiry(r.now())
		}
		if _, err := r.Store.SetSecret(ctx, name, p); err != nil {
			return sec, fmt.Errorf("creating %s: %w", name, err)
		}
		r.log().Info("key_created", "secret", name)
		return r.Store.GetSecret(ctx, name, "")
	}
	return sec, err
}
