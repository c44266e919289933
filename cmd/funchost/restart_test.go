package main

import (
	"testing"
	"time"
)

func TestRestartPolicy(t *testing.T) {
	t0 := time.Date(2026, 9, 24, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		errors []time.Duration // offsets from t0
		want   []bool          // restart after each error
	}{
		{"three quick errors stop", []time.Duration{0, time.Second, 2 * time.Second}, []bool{true, true, false}},
		{"just under 30 minutes apart stop", []time.Duration{0, 29 * time.Minute, 58 * time.Minute}, []bool{true, true, false}},
		{"exactly 30 minutes apart stop", []time.Duration{0, 30 * time.Minute, 60 * time.Minute}, []bool{true, true, false}},
		{"a long gap forgets", []time.Duration{0, time.Minute, 32 * time.Minute, 33 * time.Minute, 34 * time.Minute}, []bool{true, true, true, true, false}},
		{"errors far apart never stop", []time.Duration{0, 31 * time.Minute, 62 * time.Minute, 93 * time.Minute}, []bool{true, true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newRestartPolicy()
			for i, d := range tt.errors {
				if got := p.recordError(t0.Add(d)); got != tt.want[i] {
					t.Fatalf("error %d at +%v: restart = %v; want %v", i+1, d, got, tt.want[i])
				}
			}
		})
	}
}
