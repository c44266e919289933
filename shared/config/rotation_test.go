package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/rotation"
)

func TestRotationPolicy(t *testing.T) {
	c, err := Parse([]byte(`{"services":[
		{"name":"dflt"},
		{"name":"weekly","rotationPeriod":"168h","refreshInterval":"1h"},
		{"name":"tight","rotationPeriod":"48h"},
		{"name":"fast-clients","refreshInterval":"30m"}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]rotation.Policy{
		"dflt":         {Period: rotation.DefaultPeriod, RefreshInterval: rotation.DefaultRefreshInterval},
		"weekly":       {Period: 168 * time.Hour, RefreshInterval: time.Hour},
		"tight":        {Period: 48 * time.Hour, RefreshInterval: 24 * time.Hour}, // exactly twice: allowed
		"fast-clients": {Period: 30 * 24 * time.Hour, RefreshInterval: 30 * time.Minute},
		"not-listed":   {Period: 30 * 24 * time.Hour, RefreshInterval: 24 * time.Hour},
	}
	for name, p := range want {
		if got := c.Policy(name); got != p {
			t.Errorf("Policy(%q) = %+v; want %+v", name, got, p)
		}
	}
}

func TestRotationPolicyRefused(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"period under twice the default refresh", `{"services":[{"name":"a","rotationPeriod":"47h"}]}`,
			[]string{`service "a"`, "shorter than twice the refresh interval"}},
		{"refresh over half the default period", `{"services":[{"name":"b","refreshInterval":"361h"}]}`,
			[]string{`service "b"`, "shorter than twice the refresh interval"}},
		{"both given, too close", `{"services":[{"name":"c","rotationPeriod":"2h","refreshInterval":"90m"}]}`,
			[]string{`service "c"`, "2h0m0s", "1h30m0s"}},
		{"days are not a Go duration", `{"services":[{"name":"d","rotationPeriod":"30d"}]}`,
			[]string{`service "d"`, `rotationPeriod "30d"`, "720h"}},
		{"zero", `{"services":[{"name":"e","refreshInterval":"0s"}]}`,
			[]string{`service "e"`, "refreshInterval", "positive"}},
		{"negative", `{"services":[{"name":"f","rotationPeriod":"-720h"}]}`,
			[]string{`service "f"`, "rotationPeriod", "positive"}},
		{"not a string", `{"services":[{"name":"g","rotationPeriod":720}]}`,
			[]string{"invalid configuration"}},
		{"one good one bad", `{"services":[{"name":"ok","rotationPeriod":"720h"},{"name":"bad","rotationPeriod":"1h"}]}`,
			[]string{`service "bad"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted %s: %+v", tt.doc, c)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			for _, frag := range tt.want {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error %q does not mention %q", err, frag)
				}
			}
		})
	}
}

func TestRotationSchedule(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "ROTATION_SCHEDULE" {
				return v
			}
			return ""
		}
	}
	s, err := LoadSettings(env(""))
	if err != nil || s.RotationSchedule != DefaultRotationSchedule || DefaultRotationSchedule != "0 0 */6 * * *" {
		t.Fatalf("default schedule = %q, %v", s.RotationSchedule, err)
	}
	for _, good := range []string{"0 */5 * * * *", "0 30 9 * * 1-5", " 0 0 0 * * SUN ", "*/10 * * * * *"} {
		if s, err := LoadSettings(env(good)); err != nil || s.RotationSchedule != strings.TrimSpace(good) {
			t.Errorf("ROTATION_SCHEDULE=%q: %q, %v", good, s.RotationSchedule, err)
		}
	}
	for _, tt := range []struct{ value, want string }{
		{"0 */6 * * *", "6 fields"},         // 5 fields: Unix cron
		{"0 0 0 */6 * * *", "got 7 fields"}, // 7 fields
		{"@daily", "6 fields"},
		{"00:05:00", "6 fields"}, // a TimeSpan: the host takes it, modelauth does not
		{"0 0 25 * * *", "not a valid NCRONTAB"},
		{"0 0 */6 * * FUNDAY", "not a valid NCRONTAB"},
		{"a b c d e f", "not a valid NCRONTAB"},
	} {
		_, err := LoadSettings(env(tt.value))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "ROTATION_SCHEDULE") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ROTATION_SCHEDULE=%q: %v; want an ErrInvalid naming the setting and %q", tt.value, err, tt.want)
		}
	}
}
