package main

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
)

// errSchedule is wrapped by every schedule refusal.
var errSchedule = errors.New("invalid timer schedule")

var (
	// cronSeconds parses 6-field NCRONTAB: {second} {minute} {hour} {day} {month} {day-of-week}.
	cronSeconds = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)
	// cronMinutes parses the 5-field form, seconds = 0.
	cronMinutes = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)
)

// timerSchedule is a parsed timer trigger schedule.
type timerSchedule struct {
	expr     string // after %Setting% resolution
	sched    cron.Schedule
	constant bool // a TimeSpan interval rather than NCRONTAB
}

// parseSchedule resolves %Setting% references in raw and parses the result
// as NCRONTAB (6 fields, or 5 meaning seconds = 0) in loc, or as a TimeSpan
// interval ("00:00:30"). Errors wrap errSchedule (and errSetting for an
// unresolved reference).
func parseSchedule(raw string, lookup func(string) (string, bool), loc *time.Location) (*timerSchedule, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("%w: schedule is empty", errSchedule)
	}
	expr, err := resolveSettingRefs(raw, lookup)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", errSchedule, raw, err)
	}
	expr = strings.TrimSpace(expr)
	desc := fmt.Sprintf("%q", expr)
	if expr != raw {
		desc = fmt.Sprintf("%q (from %q)", expr, raw)
	}
	fields := strings.Fields(expr)
	if len(fields) == 1 && strings.Contains(expr, ":") {
		d, err := parseTimeSpan(expr)
		if err != nil || d < time.Second {
			return nil, fmt.Errorf("%w %s: a TimeSpan schedule must be at least 00:00:01", errSchedule, desc)
		}
		return &timerSchedule{expr: expr, sched: cron.Every(d), constant: true}, nil
	}
	if strings.HasPrefix(expr, "@") || strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, fmt.Errorf("%w %s: NCRONTAB has no descriptors or time zone prefixes", errSchedule, desc)
	}
	var p cron.Parser
	switch len(fields) {
	case 6:
		p = cronSeconds
	case 5:
		p = cronMinutes
	default:
		return nil, fmt.Errorf("%w %s: NCRONTAB needs 6 fields {second} {minute} {hour} {day} {month} {day-of-week} (or 5 without seconds), got %d", errSchedule, desc, len(fields))
	}
	s, err := p.Parse(strings.Join(fields, " "))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errSchedule, desc, err)
	}
	if spec, ok := s.(*cron.SpecSchedule); ok && loc != nil {
		spec.Location = loc
	}
	if s.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("%w %s: it never fires", errSchedule, desc)
	}
	return &timerSchedule{expr: expr, sched: s}, nil
}

// subMinute reports whether the schedule fires more often than once a
// minute, which turns the schedule monitor off (ScheduleStatus null).
func (s *timerSchedule) subMinute(now time.Time) bool {
	t := s.sched.Next(now)
	for range 5 {
		n := s.sched.Next(t)
		if t.IsZero() || n.IsZero() {
			return false
		}
		if n.Sub(t) < time.Minute {
			return true
		}
		t = n
	}
	return false
}

// scheduleStatus is the schedule monitor's record, kept in memory.
type scheduleStatus struct {
	Last, Next, LastUpdated time.Time
}

// timerInfo is the JSON of the host's TimerInfo (EXT TimerInfo.cs).
type timerInfo struct {
	Schedule       scheduleJSON        `json:"Schedule"`
	ScheduleStatus *scheduleStatusJSON `json:"ScheduleStatus"`
	IsPastDue      bool                `json:"IsPastDue"`
}

type scheduleJSON struct {
	AdjustForDST bool `json:"AdjustForDST"`
}

type scheduleStatusJSON struct {
	Last        string `json:"Last"`
	Next        string `json:"Next"`
	LastUpdated string `json:"LastUpdated"`
}

// netMinValue is DateTime.MinValue as the host writes it for "never".
const netMinValue = "0001-01-01T00:00:00+00:00"

// newtonsoftTime formats t as Newtonsoft writes a local DateTime: up to
// seven fractional digits, trailing zeros dropped, and the offset.
func newtonsoftTime(t time.Time) string {
	if t.IsZero() {
		return netMinValue
	}
	return t.Format("2006-01-02T15:04:05.9999999-07:00")
}

// newtonsoftUTC formats t as Newtonsoft writes a UTC DateTime (sys.UtcNow).
func newtonsoftUTC(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.9999999Z")
}

// timerState is one timer function's schedule and in-memory monitor
// status. It is safe for concurrent use.
type timerState struct {
	fn      *function
	sched   *timerSchedule
	monitor bool // ScheduleStatus is sent (useMonitor and not sub-minute)
	running atomic.Bool

	mu     sync.Mutex
	status scheduleStatus
}

// newTimerState initializes the status as the host's TimerListener does
// when no status was stored: Last never, Next the next occurrence.
func newTimerState(fn *function, s *timerSchedule, now time.Time) *timerState {
	return &timerState{
		fn:      fn,
		sched:   s,
		monitor: fn.UseMonitor && !s.subMinute(now),
		status:  scheduleStatus{Next: s.sched.Next(now)},
	}
}

// info returns the TimerInfo for an invocation now: the current status
// (before the run, as the host passes it) or null without a monitor.
func (ts *timerState) info(pastDue bool) timerInfo {
	ti := timerInfo{Schedule: scheduleJSON{AdjustForDST: !ts.sched.constant}, IsPastDue: pastDue}
	if ts.monitor {
		ts.mu.Lock()
		st := ts.status
		ts.mu.Unlock()
		ti.ScheduleStatus = &scheduleStatusJSON{
			Last:        newtonsoftTime(st.Last),
			Next:        newtonsoftTime(st.Next),
			LastUpdated: newtonsoftTime(st.LastUpdated),
		}
	}
	return ti
}

// completed records a scheduled (or startup) run that started at
// invoked, as TimerListener.InvokeJobFunction does: a run that fired
// slightly before its scheduled time counts as at that time.
func (ts *timerState) completed(invoked time.Time, runOnStartup bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	at := invoked
	if !runOnStartup && ts.status.Next.After(invoked) {
		at = ts.status.Next
	}
	ts.status = scheduleStatus{Last: at, Next: ts.sched.sched.Next(at), LastUpdated: at}
}

// snapshot returns the current status (for tests and logs).
func (ts *timerState) snapshot() scheduleStatus {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.status
}
