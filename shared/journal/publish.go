package journal

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/modelauth/modelauth/shared/secretstore"
)

// ErrLate: a record could not be written within its slot's grace, several
// times over (a clock far off, or a store far too slow).
var ErrLate = errors.New("journal: the record was written too late for its slot, again and again")

// publishAttempts is how many slots a record is tried in.
const publishAttempts = 3

// Hook is the store's write hook (secretstore.Store.OnWrite): it records a
// write of a tracked secret and returns after the record is written, or
// with the reason it is not.
func (j *Journal) Hook(ctx context.Context, w secretstore.Write) error {
	name := strings.ToLower(w.Props.Name)
	if strings.HasPrefix(name, Prefix) || !j.opts.Tracked(name) {
		return nil
	}
	st, err := j.View(ctx)
	if err != nil {
		return fmt.Errorf("journal: reading the journal key: %w", err)
	}
	var e Entry
	switch known, ok := st.secrets[name].version(w.Props.Version); {
	case w.Set:
		e = j.entryOf(w.Props, w.Value, st.key)
	case !w.Props.Enabled:
		e = entryOfProps(w.Props)
	case ok && (known.Digest != "" || known.Public != ""):
		e = entryOfProps(w.Props)
		e.Digest, e.KeyVersion, e.Public = known.Digest, known.KeyVersion, known.Public
	default:
		// An update of a version this instance has no digest of: the
		// writer reads it (its cost, not the readers').
		sec, err := j.store.GetSecret(ctx, name, w.Props.Version)
		if err != nil {
			return err
		}
		e = j.entryOf(w.Props, sec.Value, st.key)
	}
	return j.publish(ctx, e)
}

// publish writes e's record in the current slot, again in the next if it
// finished after the slot's grace, and applies it to this instance's view.
func (j *Journal) publish(ctx context.Context, e Entry) error {
	tags, err := recordTags(e)
	if err != nil {
		return err
	}
	slot := j.slot()
	for range publishAttempts {
		k := slotOf(j.opts.Now(), slot)
		if _, err := j.store.SetSecret(ctx, slotName(k, slot), secretstore.SetParams{Value: recordValue, Enabled: true, Tags: tags}); err != nil {
			return err
		}
		if !j.opts.Now().After(slotEnd(k, slot).Add(Grace(slot) / 2)) {
			j.applyLocal(ctx, e)
			return nil
		}
		j.opts.Logger.Warn("journal_record_late", "slot", slotName(k, slot), "secret", e.Name)
	}
	return ErrLate
}

// applyLocal puts e in this instance's view at once, and reads the
// secret if e leaves its newest in doubt.
func (j *Journal) applyLocal(ctx context.Context, e Entry) {
	all := j.opts.AllVersions(e.Name)
	conflict := false
	j.cache.Update(func(cur *View) *View {
		out := cur.clone()
		if out.apply(e, all) {
			conflict = out.secrets[e.Name].conflict
			return out
		}
		return cur
	})
	if !conflict {
		return
	}
	st := j.Peek()
	if st == nil {
		return
	}
	st = st.clone()
	if err := j.resolve(ctx, st, e.Name); err != nil {
		// The next poll resolves it.
		j.opts.Logger.Warn("journal_resolve_failed", "secret", e.Name, "error", err.Error())
		return
	}
	j.merge(st.listed, st, map[string]bool{e.Name: true})
}

// What [Journal.Record] did.
const (
	Recorded      = "recorded"        // a record was written
	AlreadyKnown  = "already_known"   // the journal held the version (the app's own writes)
	NoSuchVersion = "no_such_version" // the vault has no such version (nothing to record)
	NotTracked    = "not_tracked"     // validators do not need the secret
)

// Record records a version written from outside the app (Key Vault's
// SecretNewVersionCreated event), unless the journal already holds it,
// and says which it did.
func (j *Journal) Record(ctx context.Context, name, version string) (string, error) {
	name = strings.ToLower(name)
	if strings.HasPrefix(name, Prefix) || !j.opts.Tracked(name) {
		return NotTracked, nil
	}
	st, err := j.View(ctx)
	if err != nil {
		return "", err
	}
	if _, ok := st.secrets[name].version(version); !ok {
		// The app's own writes are recorded by their writers: look at
		// the slots not yet listed before recording it again.
		now := j.opts.Now()
		if err := j.listOpen(ctx, st, st.listed+1, slotOf(now, st.slot), now); err != nil {
			return "", err
		}
		st = j.Peek()
	}
	if _, ok := st.secrets[name].version(version); ok {
		return AlreadyKnown, nil
	}
	sec, err := j.store.GetSecret(ctx, name, version)
	switch secretstore.Code(err) {
	case secretstore.NotFound:
		return NoSuchVersion, nil
	case secretstore.Disabled:
		// Disabled before the event came: record it so.
		props, err := j.store.ListVersions(ctx, name)
		if err != nil {
			return "", err
		}
		for _, p := range props {
			if p.Version == version {
				return Recorded, j.publish(ctx, entryOfProps(p))
			}
		}
		return NoSuchVersion, nil
	}
	if err != nil {
		return "", err
	}
	return Recorded, j.publish(ctx, j.entryOf(sec.Properties, sec.Value, st.key))
}
