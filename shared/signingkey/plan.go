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
	// the JWKS max-age plus the key-cache TTL, so that every gateway and
	// every instance knows it first.
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
// (on a tie: written later, then enabled, then the greater kid); if it was revoked, none signs. A version is
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
		// Stores keep seconds: on a tie a revoked key comes first, so
		// that the key revoke wrote in the same second signs, and then
		// the kid decides, the same on every instance.
		if a.Enabled != b.Enabled {
			if a.Enabled {
				return 1
			}
			return -1
		}
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
	return t
}
