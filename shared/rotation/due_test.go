package rotation_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
)

func version(created time.Time, state string, activated time.Time) rotation.Version {
	tags := map[string]string{keysecret.TagState: state}
	if !activated.IsZero() {
		tags[keysecret.TagActivated] = strconv.FormatInt(activated.Unix(), 10)
	}
	return rotation.Version{ID: strconv.FormatInt(created.Unix(), 10) + state, Created: created, Tags: tags}
}

func TestDue(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	day := 24 * time.Hour
	p := rotation.Policy{Period: 30 * day, RefreshInterval: day}
	slot := func(newest rotation.Version, older ...rotation.Version) rotation.Slot {
		// Listed oldest first: the listing's order says nothing.
		return rotation.Slot{Versions: append(older, newest), NewestID: newest.ID}
	}
	fresh := rotation.State{Slots: [2]rotation.Slot{
		slot(version(t0, "current", time.Time{})),
		slot(version(t0.Add(time.Second), "current", time.Time{})),
	}}
	rotated := rotation.State{Slots: [2]rotation.Slot{
		slot(version(t0, "current", time.Time{})),
		slot(version(t0.Add(40*day), "staged", time.Time{}), // a later staging does not count
			version(t0.Add(day), "current", t0.Add(day)),
			version(t0.Add(31*day), "current", t0.Add(31*day))),
	}}
	tests := []struct {
		name       string
		s          rotation.State
		now        time.Time
		due        bool
		wantActive int
	}{
		{"new keys, before the period", fresh, t0.Add(30*day - time.Second), false, 0},
		{"new keys, at the period", fresh, t0.Add(30 * day), true, 0},
		{"rotated, within the period", rotated, t0.Add(60*day - time.Second), false, 1},
		{"rotated, at the period", rotated, t0.Add(61 * day), true, 1},
		{"no keys", rotation.State{}, t0, true, 0},
	}
	for _, tt := range tests {
		if got := rotation.Due(p, tt.s, tt.now); got != tt.due {
			t.Errorf("%s: Due = %v; want %v", tt.name, got, tt.due)
		}
		if got := tt.s.Active(); got != tt.wantActive {
			t.Errorf("%s: Active = %d; want %d", tt.name, got, tt.wantActive)
		}
	}
}

func TestPolicyCheck(t *testing.T) {
	day := 24 * time.Hour
	for _, tt := range []struct {
		p  rotation.Policy
		ok bool
	}{
		{rotation.Policy{Period: 30 * day, RefreshInterval: day}, true},
		{rotation.Policy{Period: 2 * day, RefreshInterval: day}, true},
		{rotation.Policy{Period: 2*day - time.Second, RefreshInterval: day}, false},
		{rotation.Policy{Period: 0, RefreshInterval: day}, false},
		{rotation.Policy{Period: day, RefreshInterval: 0}, false},
	} {
		if err := tt.p.Check(); (err == nil) != tt.ok {
			t.Errorf("%+v.Check() = %v; want ok=%v", tt.p, err, tt.ok)
		}
	}
}
