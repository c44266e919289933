package rotation

import (
	"context"
	"fmt"

	"github.com/modelauth/modelauth/shared/keysecret"
)

// This file holds what a [Remote] target adds to the protocol: the
// comparison of the remote's keys with the store's, and its repair
// (docs/design.md section 15).

// reconcile compares the remote's keys with the current version of each
// key in st and repairs a difference, logging endpoint_key_drift (an
// error: the alert's event) for each:
//
//   - a value the app wrote to that secret before (its fingerprint tag is
//     on some version: a superseded rotation's operation that landed
//     late, or a regen_key whose set failed) is replaced at the remote by
//     the key's current value, and the active copy follows if it holds
//     that key;
//   - a value the app never wrote (a regeneration in the portal or with
//     the CLI: an operator's revocation) is adopted: written to the store
//     as the key's new current version, and to the active copy if it
//     holds that key, so clients learn it within one refresh interval.
//
// The inactive key with a rotation to resume is left to it: resuming sets the staged
// value. reconcile returns the state read again if it wrote to the store.
func (r *Rotator) reconcile(ctx context.Context, service string, st State) (State, error) {
	rem, ok := r.remote()
	if !ok {
		return st, nil
	}
	have, err := rem.Keys(ctx, service)
	if err != nil {
		return st, fmt.Errorf("reading the endpoint's keys: %w", err)
	}
	if !inStep(st, have) {
		// st was read before the remote's keys: a regen_key may have
		// written the store and then the remote in between. Every value
		// the app sets at the remote is in the store first, so a state
		// read now knows each of them.
		if st, err = r.ReadState(ctx, service); err != nil {
			return st, err
		}
	}
	wrote := false
	for i, kt := range keysecret.KeyTypes {
		if _, ok := st.resumable(i); ok && i != st.Active() {
			continue
		}
		cur, ok := st.Slots[i].Current()
		if !ok {
			continue // not created yet: Provision adopts it
		}
		var value string // cur's value, read only when needed
		readValue := func() error {
			if value != "" {
				return nil
			}
			sec, err := r.Store.GetSecret(ctx, r.family().Key(service, kt), cur.ID)
			value = sec.Value
			return err
		}
		want := cur.Tags[keysecret.TagFingerprint]
		if want == "" {
			// A version written without the tag (from outside the app):
			// compare the value itself.
			if err := readValue(); err != nil {
				return st, err
			}
			want = keysecret.Fingerprint(value)
		}
		got := keysecret.Fingerprint(have[i])
		if got == want {
			continue
		}
		if st.holds(got) {
			if err := readValue(); err != nil {
				return st, err
			}
			if err := rem.Apply(ctx, service, kt, Staged{Value: value, Created: cur.Created}); err != nil {
				return st, fmt.Errorf("restoring the %s key at the endpoint: %w", kt, err)
			}
			// A regen_key whose set failed left the copy on the old value,
			// which the remote no longer holds.
			if err := r.followRegen(ctx, service, kt, value, cur.Tags[keysecret.TagActivated]); err != nil {
				return st, fmt.Errorf("restoring the %s key: the active copy: %w", kt, err)
			}
			r.log().Error("endpoint_key_drift", "service", service, "keyType", string(kt), "cause", "late_operation", "action", "restored")
			continue
		}
		activated, err := r.writeKey(ctx, service, kt, have[i])
		if err != nil {
			return st, fmt.Errorf("adopting the endpoint's %s key: %w", kt, err)
		}
		wrote = true
		if err := r.followRegen(ctx, service, kt, have[i], activated); err != nil {
			return st, fmt.Errorf("adopting the endpoint's %s key: the active copy: %w", kt, err)
		}
		r.log().Error("endpoint_key_drift", "service", service, "keyType", string(kt), "cause", "external", "action", "adopted")
	}
	if wrote {
		return r.ReadState(ctx, service)
	}
	return st, nil
}

// inStep reports whether the remote holds each key's current version by
// its fingerprint tag (or has a rotation to resume in that key), with no
// read: the common case, which needs nothing more.
func inStep(st State, have [2]string) bool {
	for i := range st.Slots {
		if _, ok := st.resumable(i); ok && i != st.Active() {
			continue
		}
		if cur, ok := st.Slots[i].Current(); ok && cur.Tags[keysecret.TagFingerprint] != keysecret.Fingerprint(have[i]) {
			return false
		}
	}
	return true
}

// holds reports whether a version of either key carries fingerprint fp: a
// value the app wrote.
func (s State) holds(fp string) bool {
	for _, slot := range s.Slots {
		for _, v := range slot.Versions {
			if v.Tags[keysecret.TagFingerprint] == fp {
				return true
			}
		}
	}
	return false
}

// stillStaged re-reads the state before a remote is told x's staged value:
// it must still be the newest of the inactive key's secret, and that
// secret still the inactive one. A remote has no compare-and-swap
// (regenerateKeys has no If-Match), so this narrows the window in which a
// superseded rotation overwrites a newer key; reconcile closes it.
func (x *pass) stillStaged(ctx context.Context) (bool, State, error) {
	st, err := x.r.ReadState(ctx, x.service)
	if err != nil {
		return false, st, err
	}
	newest, ok := st.Slots[1-x.active].Newest()
	return ok && newest.ID == x.staged.ID && st.Active() == x.active, st, nil
}
