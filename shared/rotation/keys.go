package rotation

import (
	"context"
	"errors"

	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// Keys are one name's keys as get_keys tells them.
type Keys struct {
	Primary, Secondary string
	Active             keysecret.KeyType
}

// ReadKeys reads name's keys from the store for get_keys: the newest
// version of each key secret, and for the active key the active copy's
// value, the one clients are told. Keys that do not exist yet are created
// first ([Rotator.Provision]: for a remote target, adopted). The app's own
// services read theirs through package keyring, which caches; this
// serves the other families (Azure ML endpoints).
func (r *Rotator) ReadKeys(ctx context.Context, name string) (Keys, error) {
	k, err := r.readKeys(ctx, name)
	if secretstore.Code(err) == secretstore.NotFound {
		if err := r.Provision(ctx, name); err != nil {
			return Keys{}, err
		}
		k, err = r.readKeys(ctx, name)
	}
	return k, err
}

func (r *Rotator) readKeys(ctx context.Context, name string) (Keys, error) {
	var vals [3]string
	var copyTags map[string]string
	for i, secret := range []string{r.family().Key(name, keysecret.Primary), r.family().Key(name, keysecret.Secondary), r.family().Active(name)} {
		sec, err := r.Store.GetSecret(ctx, secret, "")
		if secretstore.Code(err) == secretstore.Disabled {
			return Keys{}, errors.Join(ErrDisabled, err)
		}
		if err != nil {
			return Keys{}, err
		}
		vals[i], copyTags = sec.Value, sec.Tags
	}
	k := Keys{Primary: vals[0], Secondary: vals[1], Active: keysecret.KeyTypeOfSlot(copyTags)}
	if k.Active == keysecret.Secondary {
		k.Secondary = vals[2]
	} else {
		k.Primary = vals[2]
	}
	return k, nil
}
