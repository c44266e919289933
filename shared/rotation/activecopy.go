package rotation

import (
	"context"
	"crypto/subtle"

	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// This file holds every write of a service's active copy,
// svc-<service>-active: what clients read to learn the key to use. Its
// tags (slot, and the rotation id and activation of the version it
// copies) order copies without compare-and-swap.

// writeActiveCopy writes value as the active copy of kt's key, with the
// rotation and activation tags of versionTags, the tags of the key version
// it copies.
func (r *Rotator) writeActiveCopy(ctx context.Context, service string, kt keysecret.KeyType, value string, versionTags map[string]string) error {
	tags := r.family().ActiveTags(service, kt)
	for _, k := range []string{keysecret.TagRotation, keysecret.TagActivated} {
		if v := versionTags[k]; v != "" {
			tags[k] = v
		}
	}
	_, err := r.Store.SetSecret(ctx, r.family().Active(service), secretstore.SetParams{Value: value, Enabled: true, Tags: tags})
	return err
}

// advanceActiveCopy tells clients a newly activated version of kt's key,
// unless the copy already carries that activation or a later one; told
// reports whether it wrote.
func (r *Rotator) advanceActiveCopy(ctx context.Context, service string, kt keysecret.KeyType, value string, versionTags map[string]string) (told bool, err error) {
	have, err := r.Store.GetSecret(ctx, r.family().Active(service), "")
	if err != nil && secretstore.Code(err) != secretstore.NotFound {
		return false, err
	}
	if err == nil && !activatedTag(versionTags).After(activatedTag(have.Tags)) {
		return false, nil
	}
	return true, r.writeActiveCopy(ctx, service, kt, value, versionTags)
}

// repairActiveCopy writes the active key's current value to the active copy
// when a crash left the copy behind (or it does not exist).
func (r *Rotator) repairActiveCopy(ctx context.Context, service string, st State) (repaired bool, err error) {
	active := st.Active()
	cur, ok := st.Slots[active].Current()
	if !ok {
		return false, nil // no keys yet: Provision creates them
	}
	kt := keysecret.KeyTypes[active]
	have, err := r.Store.GetSecret(ctx, r.family().Active(service), "")
	switch {
	case err != nil && secretstore.Code(err) != secretstore.NotFound:
		return false, err
	case err == nil && cur.Activated().Before(activatedTag(have.Tags)):
		return false, nil // the state this run read is stale: never move the copy back
	case err == nil && cur.Activated().Equal(activatedTag(have.Tags)) && !cur.Created.After(have.Created):
		// Same activation, and the copy was written after that version:
		// it is up to date (or the state is stale).
		return false, nil
	}
	// The copy is behind: a newer activation, or a version of the same
	// activation written after it (a regen_key whose copy write failed).
	want, err := r.Store.GetSecret(ctx, r.family().Key(service, kt), cur.ID)
	if err != nil {
		return false, err
	}
	if have.Value == want.Value && keysecret.KeyTypeOfSlot(have.Tags) == kt {
		return false, nil
	}
	if err := r.writeActiveCopy(ctx, service, kt, want.Value, cur.Tags); err != nil {
		return false, err
	}
	r.log().Info("rotation_active_copy_repaired", "service", service, "keyType", string(kt))
	return true, nil
}

// followRegen moves the active copy to a regenerated key's new value when
// the key replaced is the one the copy holds: validators would otherwise
// keep accepting the old value through it. It reads the copy after the
// key's write: a rotation activating this key at the same moment has then
// either written the copy already (and it is fixed here) or will see the
// write above its value and stand down.
func (r *Rotator) followRegen(ctx context.Context, service string, kt keysecret.KeyType, value, activated string) error {
	have, err := r.Store.GetSecret(ctx, r.family().Active(service), "")
	switch {
	case err != nil && secretstore.Code(err) == secretstore.NotFound:
		return nil
	case err != nil:
		return err
	case keysecret.KeyTypeOfSlot(have.Tags) != kt, have.Value == value:
		return nil
	}
	return r.writeActiveCopy(ctx, service, kt, value, map[string]string{keysecret.TagActivated: activated})
}

// converge settles a race between instances creating a service's first
// keys: until the first rotation, the active copy must hold its key's
// newest version, the one every instance converges on
// ([keysecret.CopyLags]). keys holds the newest versions of the Primary and
// the Secondary (a zero Secret for one disabled).
//
// keys were read before the copy, and a regen_key may have replaced the
// key and moved the copy in between: writing the copy from that read would
// tell clients the revoked value. So the key is read again before the
// copy is written, and once more after: a regen_key whose own copy write
// this one overwrote shows as a newer key, and the copy is written again.
func (r *Rotator) converge(ctx context.Context, service string, copySec secretstore.Secret, keys [2]secretstore.Secret) error {
	kt := keysecret.KeyTypeOfSlot(copySec.Tags)
	name := r.family().Key(service, kt)
	key := keys[slotIndex(kt)]
	copyTags, copyValue := copySec.Tags, copySec.Value
	const maxWrites = 3
	for writes := 0; writes < maxWrites; {
		if !keysecret.CopyLags(copyTags, copyValue, key.Tags, key.Value) {
			return nil
		}
		fresh, err := r.Store.GetSecret(ctx, name, "")
		if secretstore.Code(err) == secretstore.Disabled {
			return nil // an operator's doing: left alone
		} else if err != nil {
			return err
		}
		if fresh.Version != key.Version {
			key = fresh // decide again from the newer key
			continue
		}
		if rem, ok := r.remote(); ok {
			// A regen_key writes the store before the remote: the copy
			// moves only to a value the remote holds (the regen moves it
			// itself once the remote took it).
			have, err := rem.Keys(ctx, service)
			if err != nil {
				return err
			}
			if subtle.ConstantTimeCompare([]byte(have[slotIndex(kt)]), []byte(key.Value)) != 1 {
				return nil
			}
		}
		if err := r.writeActiveCopy(ctx, service, kt, key.Value, nil); err != nil {
			return err
		}
		writes++
		copyTags, copyValue = r.family().ActiveTags(service, kt), key.Value
		after, err := r.Store.GetSecret(ctx, name, "")
		if err != nil || after.Version == key.Version {
			return nil // still the newest (or unreadable: the next reader converges)
		}
		key = after
	}
	return nil
}

func slotIndex(kt keysecret.KeyType) int {
	if kt == keysecret.Secondary {
		return 1
	}
	return 0
}
