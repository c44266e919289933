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

// Defaults of a service's rotation policy.
const (
	DefaultPeriod          = 30 * 24 * time.Hour
	DefaultRefreshInterval = 24 * time.Hour
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

// expiry is the exp of a key version whose period counts from since.
func (p Policy) expiry(since time.Time) *time.Time {
	e := keysecret.Expiry(since.Add(p.Period))
	return &e
}

// Version is one version of a key secret, without its value.
type Version struct {
	ID      string
	Created time.Time
	Enabled bool
	Tags    map[string]string
}

func (v Version) staged() bool  { return v.Tags[keysecret.TagState] == keysecret.StateStaged }
func (v Version) current() bool { return v.Tags[keysecret.TagState] != keysecret.StateStaged }

// Activated is when a rotation made the version current, from its
// activated tag; the zero time for keys as first created (or a tag that
// does not parse).
func (v Version) Activated() time.Time { return activatedTag(v.Tags) }

func activatedTag(tags map[string]string) time.Time {
	if s, err := strconv.ParseInt(tags[keysecret.TagActivated], 10, 64); err == nil {
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

// Slot is one key secret's versions and which of them is the newest.
//
// Key Vault lists versions in no promised order, and their Created times
// have whole seconds, so no decision here depends on a list position: the
// newest is the version that reading the secret without a version returns
// (NewestID), and the rest comes from the tags and Created (see
// [Slot.Current]).
type Slot struct {
	Versions []Version // in no particular order
	// NewestID is the newest version's id: the one a read without a
	// version returned. When that read was refused because the newest is
	// disabled (Key Vault then answers 403 without an id), it is the
	// disabled version created last, of same-second ones the one with the
	// later activation, then the greater id: a guess, which only matters
	// for a key an operator disabled, which rotation leaves alone.
	NewestID string
}

// Newest is the newest version, if any.
func (s Slot) Newest() (Version, bool) {
	for _, v := range s.Versions {
		if v.ID == s.NewestID {
			return v, true
		}
	}
	return Version{}, false
}

// Current is the key's current version, the newest not staged, if any: the
// newest version itself unless it is staged; under a staged version, the
// version not staged with the latest activation (activations only grow
// within a key, and a regen_key copies the activation it replaces), of
// those the one created last, and of same-second ones the greater id.
// Versions tied that far share their activation and their creation second,
// so every decision made from the tags alone (which key is active, when
// the next rotation is due) comes out the same whichever is taken.
func (s Slot) Current() (Version, bool) {
	if v, ok := s.Newest(); ok && v.current() {
		return v, true
	}
	var best Version
	found := false
	for _, v := range s.Versions {
		if v.current() && (!found || laterCurrent(v, best)) {
			best, found = v, true
		}
	}
	return best, found
}

// laterCurrent orders versions that are not staged, under a staged one.
func laterCurrent(a, b Version) bool {
	if c := a.Activated().Compare(b.Activated()); c != 0 {
		return c > 0
	}
	if c := a.Created.Compare(b.Created); c != 0 {
		return c > 0
	}
	return a.ID > b.ID
}

// newestDisabled guesses the newest of versions when the newest is
// disabled: see [Slot.NewestID].
func newestDisabled(versions []Version) string {
	var best Version
	found := false
	for _, v := range versions {
		if v.Enabled {
			continue
		}
		if !found || v.Created.After(best.Created) || v.Created.Equal(best.Created) && laterCurrent(v, best) {
			best, found = v, true
		}
	}
	return best.ID
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
	if !ok || !v.staged() || v.Tags[keysecret.TagRotation] == "" {
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

// ReadState reads every version's tags of both key secrets: per secret, a
// listing and a read of its newest version.
func (r *Rotator) ReadState(ctx context.Context, service string) (State, error) {
	var s State
	for i, kt := range keysecret.KeyTypes {
		slot, err := r.readSlot(ctx, r.family().Key(service, kt))
		if err != nil {
			return State{}, err
		}
		s.Slots[i] = slot
	}
	return s, nil
}

// readSlot lists a key secret's versions, then reads its newest: the
// listing says nothing of which is newest. A version written between the
// two calls is added from the read. An unknown secret is an error whose
// code is NotFound.
func (r *Rotator) readSlot(ctx context.Context, name string) (Slot, error) {
	props, err := r.Store.ListVersions(ctx, name)
	if err != nil {
		return Slot{}, err
	}
	var slot Slot
	for _, p := range props {
		slot.Versions = append(slot.Versions, versionOf(p))
	}
	newest, err := r.Store.GetSecret(ctx, name, "")
	switch {
	case err == nil:
		slot.NewestID = newest.Version
		if _, ok := slot.Newest(); !ok {
			slot.Versions = append(slot.Versions, versionOf(newest.Properties))
		}
	case secretstore.Code(err) == secretstore.Disabled:
		slot.NewestID = newestDisabled(slot.Versions)
	default:
		return Slot{}, err
	}
	return slot, nil
}

func versionOf(p secretstore.Properties) Version {
	return Version{ID: p.Version, Created: p.Created, Enabled: p.Enabled, Tags: p.Tags}
}
