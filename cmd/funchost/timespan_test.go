package main

import (
	"testing"
	"time"
)

func TestParseTimeSpan(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"00:00:30", 30 * time.Second, false},
		{"00:05:00", 5 * time.Minute, false},
		{"01:02", time.Hour + 2*time.Minute, false},
		{"1.02:00:00", 26 * time.Hour, false},
		{"00:00:00.5", 500 * time.Millisecond, false},
		{"00:00:01.0000001", time.Second + 100*time.Nanosecond, false},
		{"2", 48 * time.Hour, false},
		{"-00:00:01", -time.Second, false},
		{"24:00:00", 0, true},
		{"00:60:00", 0, true},
		{"5m", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := parseTimeSpan(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseTimeSpan(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseFunctionTimeout(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", 30 * time.Minute, false},
		{"-1", 0, false},
		{"00:05:00", 5 * time.Minute, false},
		{"00:00:00.5", 0, true},
		{"nope", 0, true},
	}
	for _, tt := range tests {
		got, err := parseFunctionTimeout(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseFunctionTimeout(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
