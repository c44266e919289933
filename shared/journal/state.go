package journal

import (
	"maps"
	"slices"
	"time"
)

// View is what an instance knows of the vault's secrets at one moment: an
// immutable value, replaced whole (copy on write) at each change.
type View struct {
	secrets map[string]*secretState // by lower-case name
	keys    map[string][]byte       // journal key versions' values
	key     journalKey              // the version writers digest with
	slot    time.Duration           // the journal's slot length
	// listed is the last slot listed after it closed: every record of a
	// slot up to it has been applied.
	listed int64
	// reads counts the reads of the vault that made the view (polls and
	// misses); a change applied locally keeps it.
	reads int64
}

// secretState is what is known of one secret's versions.
type secretState struct {
	versions map[string]Entry
	// newest is the newest version's id; "" while a conflict is
	// unresolved or when the newest is disabled and unreadable (then no
	// version counts, and floor is the newest Created seen).
	newest   string
	conflict bool
	floor    time.Time
}

func (s *View) clone() *View {
	c := *s
	c.secrets = maps.Clone(s.secrets)
	if c.secrets == nil {
		c.secrets = map[string]*secretState{}
	}
	c.keys = maps.Clone(s.keys)
	if c.keys == nil {
		c.keys = map[string][]byte{}
	}
	return &c
}

// version returns what is known of one version (ss may be nil).
func (ss *secretState) version(v string) (Entry, bool) {
	if ss == nil {
		return Entry{}, false
	}
	e, ok := ss.versions[v]
	return e, ok
}

func (ss *secretState) clone() *secretState {
	if ss == nil {
		return &secretState{versions: map[string]Entry{}}
	}
	c := *ss
	c.versions = maps.Clone(ss.versions)
	return &c
}

// apply adds what e says of its version to s, which must be a clone. It
// reports whether s changed. allVersions keeps every version of the
// secret; otherwise versions older than the newest are dropped.
func (s *View) apply(e Entry, allVersions bool) bool {
	old := s.secrets[e.Name]
	if old != nil {
		if prev, ok := old.versions[e.Version]; ok && (e.Updated.Before(prev.Updated) || prev.same(e)) {
			return false // what we know of that version is as new
		}
		if old.newest == "" && !old.conflict && e.Created.Before(old.floor) {
			return false // older than the unreadable newest
		}
	}
	ss := old.clone()
	prev, had := ss.versions[e.Version]
	if had && prev.Updated.Equal(e.Updated) {
		// Two different updates of one version in the same second.
		if allVersions {
			// The app only ever disables such versions (a revoked signing
			// key): disabled is the later state.
			if !prev.Enabled {
				return false
			}
		} else {
			ss.conflict = true // only a read tells which is last
		}
	}
	ss.versions[e.Version] = e
	if allVersions {
		s.secrets[e.Name] = ss
		return true // the newest does not matter
	}
	switch cur, ok := ss.versions[ss.newest]; {
	case ss.newest == e.Version:
	case !ok && !ss.conflict && (ss.floor.IsZero() || e.Created.After(ss.floor)):
		ss.newest, ss.floor = e.Version, time.Time{}
	case !ok && !ss.conflict && e.Created.Equal(ss.floor):
		ss.conflict = true // perhaps the unreadable newest itself
	case ok && e.Created.After(cur.Created):
		ss.newest, ss.conflict = e.Version, false
	case ok && e.Created.Equal(cur.Created):
		// Same-second versions: Key Vault's listing gives no order, so
		// only a read of the newest tells.
		ss.conflict = true
	}
	if ss.newest != "" && !ss.conflict {
		newest := ss.versions[ss.newest]
		maps.DeleteFunc(ss.versions, func(_ string, v Entry) bool { return v.Created.Before(newest.Created) })
	}
	s.secrets[e.Name] = ss
	return true
}

// resolved records that a read of the secret found e as the newest, or,
// for an unreadable disabled newest (e nil), none: then no version counts
// until one created after floor (the latest Created of any version).
func (s *View) resolved(name string, e *Entry, allVersions bool, floor time.Time) {
	ss := s.secrets[name].clone()
	ss.conflict = false
	if e == nil {
		for _, v := range ss.versions {
			floor = maxTime(floor, v.Created)
		}
		ss.newest, ss.floor = "", floor
		s.secrets[name] = ss
		return
	}
	ss.versions[e.Version] = *e
	ss.newest, ss.floor = e.Version, time.Time{}
	if !allVersions {
		maps.DeleteFunc(ss.versions, func(v string, _ Entry) bool { return v != e.Version })
	}
	s.secrets[name] = ss
}

// conflicts returns the names whose newest version a read must tell.
func (s *View) conflicts() []string {
	var out []string
	for name, ss := range s.secrets {
		if ss.conflict {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// sortedNames returns the names of s's secrets, sorted.
func sortedNames(s *View) []string {
	out := make([]string, 0, len(s.secrets))
	for name := range s.secrets {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
