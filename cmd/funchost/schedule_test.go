package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	settings := map[string]string{"EVERY_SECOND": "*/1 * * * * *", "EMPTY": "", "SIX_HOURS": "0 0 */6 * * *"}
	lookup := func(k string) (string, bool) { v, ok := settings[k]; return v, ok }
	from := time.Date(2026, 9, 24, 13, 8, 0, 500_000_000, time.UTC)
	tests := []struct {
		name, raw string
		wantNext  time.Time
		wantErr   error
	}{
		{"six fields", "0 */5 * * * *", time.Date(2026, 9, 24, 13, 10, 0, 0, time.UTC), nil},
		{"seconds field", "*/10 * * * * *", time.Date(2026, 9, 24, 13, 8, 10, 0, time.UTC), nil},
		{"five fields mean seconds 0", "*/5 * * * *", time.Date(2026, 9, 24, 13, 10, 0, 0, time.UTC), nil},
		{"setting", "%SIX_HOURS%", time.Date(2026, 9, 24, 18, 0, 0, 0, time.UTC), nil},
		{"setting every second", "%EVERY_SECOND%", time.Date(2026, 9, 24, 13, 8, 1, 0, time.UTC), nil},
		{"day of week", "0 30 9 * * 1-5", time.Date(2026, 9, 25, 9, 30, 0, 0, time.UTC), nil},
		{"timespan", "00:00:30", time.Date(2026, 9, 24, 13, 8, 30, 0, time.UTC), nil},
		{"missing setting", "%NOPE%", time.Time{}, errSetting},
		{"empty setting", "%EMPTY%", time.Time{}, errSetting},
		{"four fields", "* * * *", time.Time{}, errSchedule},
		{"seven fields", "0 0 0 * * * 2026", time.Time{}, errSchedule},
		{"bad field", "0 0 25 * * *", time.Time{}, errSchedule},
		{"garbage", "every day", time.Time{}, errSchedule},
		{"descriptor", "@daily", time.Time{}, errSchedule},
		{"time zone prefix", "TZ=UTC 0 0 0 * * *", time.Time{}, errSchedule},
		{"empty", "", time.Time{}, errSchedule},
		{"never", "0 0 0 30 2 *", time.Time{}, errSchedule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseSchedule(tt.raw, lookup, time.UTC)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("parseSchedule(%q) error = %v; want %v", tt.raw, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSchedule(%q): %v", tt.raw, err)
			}
			if got := s.sched.Next(from); !got.Equal(tt.wantNext) {
				t.Errorf("parseSchedule(%q).Next(%v) = %v; want %v", tt.raw, from, got, tt.wantNext)
			}
		})
	}
}

func TestBadScheduleNamesFunction(t *testing.T) {
	fns := []*function{{Name: "rotatekeys", Trigger: triggerTimer, Schedule: "%ROTATION_SCHEDULE%"}}
	_, err := newTimers(fns, func(string) (string, bool) { return "", false }, time.UTC, time.Now())
	if err == nil || !strings.Contains(err.Error(), `"rotatekeys"`) || !strings.Contains(err.Error(), "%ROTATION_SCHEDULE%") {
		t.Fatalf("newTimers error = %v; want it to name the function and the setting", err)
	}
}

func TestSubMinuteDisablesMonitor(t *testing.T) {
	now := time.Date(2026, 9, 24, 13, 8, 0, 0, time.UTC)
	tests := []struct {
		schedule    string
		useMonitor  bool
		wantMonitor bool
	}{
		{"*/1 * * * * *", true, false},
		{"0,30 * * * * *", true, false},
		{"00:00:30", true, false},
		{"0 * * * * *", true, true},
		{"0 0 */6 * * *", true, true},
		{"0 0 */6 * * *", false, false},
	}
	for _, tt := range tests {
		s, err := parseSchedule(tt.schedule, nil, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		st := newTimerState(&function{Name: "f", UseMonitor: tt.useMonitor}, s, now)
		if st.monitor != tt.wantMonitor {
			t.Errorf("schedule %q useMonitor %v: monitor = %v; want %v", tt.schedule, tt.useMonitor, st.monitor, tt.wantMonitor)
		}
		if got := st.info(false).ScheduleStatus != nil; got != tt.wantMonitor {
			t.Errorf("schedule %q: ScheduleStatus present = %v; want %v", tt.schedule, got, tt.wantMonitor)
		}
	}
}

func TestTimerInfoStatus(t *testing.T) {
	loc := time.FixedZone("X", 2*3600)
	s, err := parseSchedule("0 */5 * * * *", nil, loc)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 9, 24, 13, 8, 0, 0, loc)
	st := newTimerState(&function{Name: "f", UseMonitor: true}, s, start)

	raw, _ := json.Marshal(st.info(false))
	want := `{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"0001-01-01T00:00:00+00:00","Next":"2026-09-24T13:10:00+02:00","LastUpdated":"0001-01-01T00:00:00+00:00"},"IsPastDue":false}`
	if string(raw) != want {
		t.Fatalf("first TimerInfo =\n%s\nwant\n%s", raw, want)
	}

	// Fired 9.6 ms late: Last is the invocation time, Next the following one.
	fired := time.Date(2026, 9, 24, 13, 10, 0, 9_603_500, loc)
	st.completed(fired, false)
	raw, _ = json.Marshal(st.info(true))
	want = `{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2026-09-24T13:10:00.0096035+02:00","Next":"2026-09-24T13:15:00+02:00","LastUpdated":"2026-09-24T13:10:00.0096035+02:00"},"IsPastDue":true}`
	if string(raw) != want {
		t.Fatalf("second TimerInfo =\n%s\nwant\n%s", raw, want)
	}

	// Fired early (clock skew): counted at the scheduled time.
	st.completed(time.Date(2026, 9, 24, 13, 14, 59, 900_000_000, loc), false)
	if got := st.snapshot(); !got.Last.Equal(time.Date(2026, 9, 24, 13, 15, 0, 0, loc)) || !got.Next.Equal(time.Date(2026, 9, 24, 13, 20, 0, 0, loc)) {
		t.Errorf("after an early run status = %+v; want Last 13:15, Next 13:20", got)
	}

	// runOnStartup: Last is the actual time.
	st.completed(time.Date(2026, 9, 24, 13, 16, 0, 0, loc), true)
	if got := st.snapshot(); !got.Last.Equal(time.Date(2026, 9, 24, 13, 16, 0, 0, loc)) {
		t.Errorf("after a startup run Last = %v; want 13:16", got.Last)
	}
}

func TestNewtonsoftUTC(t *testing.T) {
	tm := time.Date(2026, 9, 24, 15, 9, 0, 12_345_600, time.FixedZone("X", 2*3600))
	if got, want := newtonsoftUTC(tm), "2026-09-24T13:09:00.0123456Z"; got != want {
		t.Errorf("newtonsoftUTC = %q; want %q", got, want)
	}
}
