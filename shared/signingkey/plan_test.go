package signingkey_test

import (
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/signingkey"
)

var policy = signingkey.Policy{
	Alg:          signingkey.RS256,
	PublishAhead: time.Hour + 30*time.Second,
	Period:       30 * 24 * time.Hour,
	Retention:    time.Hour + time.Minute,
}

func at(h float64) time.Time {
	return time.Unix(1_800_000_000, 0).Add(time.Duration(h * float64(time.Hour)))
}

func ver(kid string, activatedH float64, enabled bool) signingkey.Version {
	return signingkey.Version{ID: "v-" + kid, Kid: kid, Alg: signingkey.RS256, Created: at(activatedH - 1), Activated: at(activatedH), Enabled: enabled}
}

func states(t signingkey.Timeline) map[string]signingkey.State {
	m := map[string]signingkey.State{}
	for _, e := range t.Entries {
		m[e.Kid] = e.State
	}
	return m
}

func TestPlan(t *testing.T) {
	type want struct {
		states  map[string]signingkey.State
		signer  string // "" for none
		due     bool
		pending bool
	}
	tests := []struct {
		name     string
		versions []signingkey.Version
		now      float64
		want     want
	}{
		{"no keys", nil, 0, want{states: map[string]signingkey.State{}, due: true}},
		{"one key signs", []signingkey.Version{ver("a", 0, true)}, 1,
			want{states: map[string]signingkey.State{"a": signingkey.Current}, signer: "a"}},
		{"due before the period ends, by PublishAhead", []signingkey.Version{ver("a", 0, true)}, 30*24 - 1.005,
			want{states: map[string]signingkey.State{"a": signingkey.Current}, signer: "a", due: true}},
		{"next key waits", []signingkey.Version{ver("a", 0, true), ver("b", 720, true)}, 719.5,
			want{states: map[string]signingkey.State{"a": signingkey.Current, "b": signingkey.Next}, signer: "a", pending: true}},
		{"next key took over; old one retired", []signingkey.Version{ver("a", 0, true), ver("b", 720, true)}, 720.5,
			want{states: map[string]signingkey.State{"a": signingkey.Retired, "b": signingkey.Current}, signer: "b"}},
		{"retired past retention", []signingkey.Version{ver("a", 0, true), ver("b", 720, true)}, 721.1,
			want{states: map[string]signingkey.State{"a": signingkey.Expired, "b": signingkey.Current}, signer: "b"}},
		{"revoked signer: none signs, due", []signingkey.Version{ver("a", 0, false)}, 1,
			want{states: map[string]signingkey.State{"a": signingkey.Revoked}, due: true}},
		{"revoked signer does not bring the older key back",
			[]signingkey.Version{ver("a", 0, true), ver("b", 10, false)}, 10.5,
			want{states: map[string]signingkey.State{"a": signingkey.Retired, "b": signingkey.Revoked}, due: true}},
		{"revoke's successor signs at once",
			[]signingkey.Version{ver("a", 0, true), ver("b", 10, false), ver("c", 10.5, true)}, 10.5,
			want{states: map[string]signingkey.State{"a": signingkey.Retired, "b": signingkey.Revoked, "c": signingkey.Current}, signer: "c"}},
		{"keys of the other algorithm are ignored",
			[]signingkey.Version{ver("a", 0, true), {ID: "x", Kid: "x", Alg: signingkey.ES256, Activated: at(5), Enabled: true}}, 6,
			want{states: map[string]signingkey.State{"a": signingkey.Current}, signer: "a"}},
		{"two keys activated at once: the later write signs",
			[]signingkey.Version{ver("a", 0, true), {ID: "v-b", Kid: "b", Alg: signingkey.RS256, Created: at(0.5), Activated: at(0), Enabled: true}}, 1,
			want{states: map[string]signingkey.State{"a": signingkey.Retired, "b": signingkey.Current}, signer: "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := at(tt.now)
			got := signingkey.Plan(tt.versions, now, policy)
			gotStates := states(got)
			if len(gotStates) != len(tt.want.states) {
				t.Fatalf("states = %v; want %v", gotStates, tt.want.states)
			}
			for kid, s := range tt.want.states {
				if gotStates[kid] != s {
					t.Errorf("state of %s = %q; want %q", kid, gotStates[kid], s)
				}
			}
			signer := ""
			if got.Signer >= 0 {
				signer = got.Entries[got.Signer].Kid
			}
			if signer != tt.want.signer {
				t.Errorf("signer = %q; want %q", signer, tt.want.signer)
			}
			if got.Due(now) != tt.want.due || got.Pending != tt.want.pending {
				t.Errorf("Due = %v, Pending = %v; want %v, %v", got.Due(now), got.Pending, tt.want.due, tt.want.pending)
			}
		})
	}
}

func TestPlanRetiredUntilSupersededPlusRetention(t *testing.T) {
	vs := []signingkey.Version{ver("a", 0, true), ver("b", 720, true)}
	tl := signingkey.Plan(vs, at(720.5), policy)
	a := tl.Entries[0]
	if !a.SupersededAt.Equal(at(720)) || !a.PublishedUntil.Equal(at(720).Add(policy.Retention)) {
		t.Fatalf("a superseded %v until %v; want %v until %v", a.SupersededAt, a.PublishedUntil, at(720), at(720).Add(policy.Retention))
	}
	if !a.Published() {
		t.Fatal("a retired key within its retention is not published")
	}
}

// TestRevokeNeverBringsAnOlderKeyBack: two keys written in the same second
// (instances starting at once) are ordered by kid; revoking the later one
// leaves the earlier retired, and its successor, written in that second
// too, activates one second on and signs at once.
func TestRevokeNeverBringsAnOlderKeyBack(t *testing.T) {
	a := signingkey.Version{ID: "1", Kid: "a", Alg: signingkey.RS256, Created: at(0), Activated: at(0), Enabled: true}
	b := signingkey.Version{ID: "2", Kid: "b", Alg: signingkey.RS256, Created: at(0), Activated: at(0), Enabled: true}
	tl := signingkey.Plan([]signingkey.Version{b, a}, at(0), policy)
	if got := states(tl); got["a"] != signingkey.Retired || got["b"] != signingkey.Current {
		t.Fatalf("before the revoke: %v; want a retired, b current", got)
	}
	b.Enabled = false
	for _, now := range []time.Time{at(0), at(48)} {
		tl = signingkey.Plan([]signingkey.Version{a, b}, now, policy)
		if got := states(tl); got["a"] == signingkey.Current || tl.Signer >= 0 {
			t.Fatalf("after revoking b, at %v: %v, signer %d; a must not sign again", now, got, tl.Signer)
		}
	}
	act := signingkey.ImmediateActivation([]signingkey.Version{a, b}, at(0))
	if !act.Equal(at(0).Add(time.Second)) {
		t.Fatalf("ImmediateActivation in the revoked key's second = %v; want one second on", act)
	}
	c := signingkey.Version{ID: "3", Kid: "0", Alg: signingkey.RS256, Created: at(0), Activated: act, Enabled: true}
	tl = signingkey.Plan([]signingkey.Version{a, b, c}, at(0), policy)
	if tl.Signer < 0 || tl.Entries[tl.Signer].Kid != "0" {
		t.Fatalf("the successor does not sign within its grace second: signer %d, %v", tl.Signer, states(tl))
	}
	if tl.Due(at(0)) {
		t.Fatal("due while the successor waits its grace second")
	}
	if got := signingkey.ImmediateActivation([]signingkey.Version{a}, at(5)); !got.Equal(at(5)) {
		t.Fatalf("ImmediateActivation later = %v; want now", got)
	}
}
