package signingkey

import (
	"slices"
	"strings"
	"time"
)

// Policy is the signing-key schedule.
type Policy struct {
	// Alg is the algorithm tokens are signed with, RS256 or ES256. Keys of
	// the other algorithm are ignored: verifiers pin the algorithm.
	Alg string
	// PublishAhead is how long a new key is published before it signs:
	// the JWKS max-age plus the journal's bound (two key-cache TTL slots;
	// plus the clock skew allowed between instances), so that every
	// gateway and every instance knows it first.
	PublishAhead time.Duration
	// Period is how long a key signs before its successor takes over.
	Period time.Duration
	// Retention is how long a key stays published after its successor took
	// over: the longest token lifetime plus the verifiers' leeway, so that
	// every token it signed expires first.
	Retention time.Duration
}

// State is where a key stands in its life.
type State string

// Key states.
const (
	// Next: published, signs from its activation on.
	Next State = "next"
	// Current: the key that signs.
	Current State = "current"
	// Retired: a successor signs; published until its tokens expired.
	Retired State = "retired"
	// Expired: retired and past its retention; no longer published.
	Expired State = "expired"
	// Revoked: disabled by revoke; never published again.
	Revoked State = "revoked"
)

// Version is one signing key as the store lists it: a version of the
// signing-key secret.
type Version struct {
	ID  string // the store's version
	Kid string
	Alg string
	// Created is when the version was written.
	Created time.Time
	// Activated is when the key signs from (the activated tag); a new key
	// written by a rotation activates PublishAhead after it was written.
	Activated time.Time
	// Enabled is false for a revoked (disabled) version.
	Enabled bool
}

// Entry is a version's standing at one time.
type Entry struct {
	Version
	State State
	// SupersededAt is when its successor took over; zero while none has.
	SupersededAt time.Time
	// PublishedUntil is when it leaves the JWKS; zero while that is not
	// known (next and current keys).
	PublishedUntil time.Time
}

// Published reports whether the entry belongs in the JWKS.
func (e Entry) Published() bool {
	return e.State == Next || e.State == Current || e.State == Retired
}

// Timeline is the standing of every key of the policy's algorithm at one
// time.
type Timeline struct {
	// Entries, oldest activation first.
	Entries []Entry
	// Signer indexes Entries: the current key, or -1 when none signs (no
	// key yet, or the signer was revoked).
	Signer int
	// Pending reports whether a next key waits to sign.
	Pending bool
	// DueAt is when the next key should be written: PublishAhead before
	// the signer's period ends. Zero when no key signs (due at once).
	DueAt time.Time
}

// Due reports whether a rotation should write a new key at now.
func (t Timeline) Due(now time.Time) bool {
	if t.Signer < 0 {
		return true
	}
	return !t.Pending && !now.Before(t.DueAt)
}

// Plan places versions on the timeline at now. It is pure: the same
// versions and time give the same answer on every instance.
//
// The signer is the version with the latest activation not after now
// (on a tie: written later, then the greater kid); if it was revoked, none signs. A version is
// superseded by the activation of the version after it, and stays
// published for Retention after that. Revoked versions count for
// supersession (so a revoke never brings an older key back) but are never
// published.
func Plan(versions []Version, now time.Time, p Policy) Timeline {
	vs := make([]Version, 0, len(versions))
	for _, v := range versions {
		if v.Alg == p.Alg && v.Kid != "" {
			vs = append(vs, v)
		}
	}
	slices.SortStableFunc(vs, func(a, b Version) int {
		if c := a.Activated.Compare(b.Activated); c != 0 {
			return c
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		// Stores keep seconds: on a tie the kid decides, the same on
		// every instance. (Never the enabled flag: a revoke must not
		// reorder keys, or an older key could come back.)
		return strings.Compare(a.Kid, b.Kid)
	})
	t := Timeline{Entries: make([]Entry, len(vs)), Signer: -1}
	for i, v := range vs {
		e := Entry{Version: v}
		switch {
		case v.Activated.After(now):
			e.State = Next
		case i+1 < len(vs) && !vs[i+1].Activated.After(now):
			e.SupersededAt = vs[i+1].Activated
			e.PublishedUntil = e.SupersededAt.Add(p.Retention)
			e.State = Retired
			if !now.Before(e.PublishedUntil) {
				e.State = Expired
			}
		default:
			e.State = Current
		}
		if !v.Enabled {
			if e.State == Current {
				// Its successor is whatever revoke writes next.
				t.Signer = -1
			}
			e.State = Revoked
		}
		if e.State == Current {
			t.Signer = i
			t.DueAt = v.Activated.Add(p.Period - p.PublishAhead)
		}
		if e.State == Next {
			t.Pending = true
		}
		t.Entries[i] = e
	}
	if t.Signer < 0 {
		// A key written to sign at once activates on the next whole
		// second when the one it replaces activated in this one (see
		// [ImmediateActivation]); it signs from now.
		for i, e := range t.Entries {
			if e.State == Next && !e.Activated.After(now.Add(Grace)) {
				t.Signer = i
				t.Entries[i].State = Current
				t.DueAt = e.Activated.Add(p.Period - p.PublishAhead)
				break
			}
		}
		t.Pending = false
		for _, e := range t.Entries {
			t.Pending = t.Pending || e.State == Next
		}
	}
	return t
}

// Grace is how far ahead of its activation a key may sign when no other
// key does: the one second by which [ImmediateActivation] may place it
// ahead.
const Grace = time.Second

// ImmediateActivation returns the activation of a key that must sign at
// once (the first key, or the successor of a revoked one): now, or one
// second after the latest activation that has come if that is not before
// now (stores keep whole seconds, and the new key must come strictly after
// every key it replaces, so that the order never depends on the kid).
func ImmediateActivation(versions []Version, now time.Time) time.Time {
	at := now.Truncate(time.Second)
	for _, v := range versions {
		if !v.Activated.After(now) && !v.Activated.Before(at) {
			at = v.Activated.Add(time.Second)
		}
	}
	return at
}
