package rotation

import (
	"context"
	"errors"
	"fmt"

	"github.com/modelauth/modelauth/shared/apikey"
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
	for i, kt := range keysecret.KeyTypes {
		sec, err := r.readOrCreate(ctx, keysecret.KeySecret(service, kt), keysecret.ServiceTags(service), "", policy)
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
		return fmt.Errorf("%w: %s", ErrDisabled, keysecret.KeySecret(service, keysecret.Primary))
	}
	copySec, err := r.readOrCreate(ctx, keysecret.ActiveSecret(service), keysecret.ActiveTags(service, keysecret.Primary), keys[0].Value, Policy{})
	if err != nil {
		return err
	}
	if kt := keysecret.KeyTypeOfSlot(copySec.Tags); disabled[slotIndex(kt)] {
		return fmt.Errorf("%w: %s", ErrDisabled, keysecret.KeySecret(service, kt))
	}
	if err := r.converge(ctx, service, copySec, keys); err != nil {
		return err
	}
	if disabled[1] {
		return fmt.Errorf("%w: %s", ErrDisabled, keysecret.KeySecret(service, keysecret.Secondary))
	}
	return nil
}

// readOrCreate reads a secret's newest version, creating the secret with
// value (a new key if "") when it does not exist. Another instance may
// create it at the same moment: the newest version is read back, the one
// every instance converges on. A key version's exp follows policy; the
// active copy (a zero policy) has none.
func (r *Rotator) readOrCreate(ctx context.Context, name string, tags map[string]string, value string, policy Policy) (secretstore.Secret, error) {
	sec, err := r.Store.GetSecret(ctx, name, "")
	switch secretstore.Code(err) {
	case secretstore.Unknown:
		if err == nil {
			return sec, nil
		}
	case secretstore.Disabled:
		return sec, fmt.Errorf("%w: %s", ErrDisabled, name)
	case secretstore.NotFound:
		if value == "" {
			if value, err = apikey.Generate(); err != nil {
				return sec, err
			}
		}
		p := secretstore.SetParams{Value: value, Enabled: true, Tags: tags}
		if policy.Period > 0 {
			p.Expires = policy.expiry(r.now())
		}
		if _, err := r.Store.SetSecret(ctx, name, p); err != nil {
			return sec, fmt.Errorf("creating %s: %w", name, err)
		}
		r.log().Info("key_created", "secret", name)
		return r.Store.GetSecret(ctx, name, "")
	}
	return sec, err
}
