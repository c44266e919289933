package journal

import (
	"slices"
	"strings"
	"time"
)

// Status says what a view knows of a secret's newest version.
type Status int

// Statuses.
const (
	// Missing: the secret does not exist (as far as the journal tells).
	Missing Status = iota
	// Found: the entry is the newest version's.
	Found
	// Unreadable: the newest version is disabled and Key Vault does not
	// say which it is; no version of the secret counts.
	Unreadable
)

// Newest returns the entry of name's newest version.
func (v *View) Newest(name string) (Entry, Status) {
	ss := v.secrets[strings.ToLower(name)]
	if ss == nil {
		return Entry{}, Missing
	}
	if e, ok := ss.versions[ss.newest]; ok && !ss.conflict {
		return e, Found
	}
	return Entry{}, Unreadable
}

// Versions returns the entries of every version of name known, oldest
// first (by Created, then version id).
func (v *View) Versions(name string) []Entry {
	ss := v.secrets[strings.ToLower(name)]
	if ss == nil {
		return nil
	}
	out := make([]Entry, 0, len(ss.versions))
	for _, e := range ss.versions {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
	return out
}

// Key returns the value of a version of the journal key that entries name
// as their KeyVersion.
func (v *View) Key(version string) ([]byte, bool) {
	k, ok := v.keys[version]
	return k, ok
}

// Listed returns the end of the last slot this view listed after it
// closed: every change recorded before it is in the view.
func (v *View) Listed() time.Time { return slotEnd(v.listed, v.slot) }
