package rotation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/modelauth/modelauth/shared/keysecret"
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

// Slot is one key secret's versions, newest first.
type Slot struct {
	Versions []Version
}

// Newest is the newest version, if any.
func (s Slot) Newest() (Version, bool) {
	if len(s.Versions) == 0 {
		return Version{}, false
	}
	return s.Versions[0], true
}

// Current is the newest version with state=current, if any.
func (s Slot) Current() (Version, bool) {
	for _, v := range s.Versions {
		if v.current() {
			return v, true
		}
	}
	return Version{}, false
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

// ReadState reads every version's tags of both key secrets.
func (r *Rotator) ReadState(ctx context.Context, service string) (State, error) {
	var s State
	for i, kt := range keysecret.KeyTypes {
		props, err := r.Store.ListVersions(ctx, keysecret.KeySecret(service, kt))
		if err != nil {
			return State{}, err
		}
		for _, p := range props {
			s.Slots[i].Versions = append(s.Slots[i].Versions, Version{ID: p.Version, Created: p.Created, Tags: p.Tags})
		}
	}
	return s, nil
}
