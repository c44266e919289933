package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Invocation reasons, as the host words them.
const (
	reasonManual = "This function was programmatically called via the host APIs."
	reasonEvent  = "EventGrid trigger fired"
)

// timers runs the timer functions. It is safe for concurrent use.
type timers struct {
	iv     *invoker
	log    *slog.Logger
	now    func() time.Time
	loc    *time.Location
	states []*timerState
	cron   *cron.Cron
	async  func(func()) // runs a background invocation
}

// newTimers parses every timer function's schedule, refusing a bad one
// with an error naming the function.
func newTimers(fns []*function, lookup func(string) (string, bool), loc *time.Location, now time.Time) ([]*timerState, error) {
	var states []*timerState
	for _, fn := range fns {
		if fn.Trigger != triggerTimer {
			continue
		}
		s, err := parseSchedule(fn.Schedule, lookup, loc)
		if err != nil {
			return nil, fmt.Errorf("%w: function %q: %w", errConfig, fn.Name, err)
		}
		states = append(states, newTimerState(fn, s, now.In(loc)))
	}
	return states, nil
}

// cronLogger adapts cron's logger to slog: its chatter at debug level.
type cronLogger struct{ log *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.log.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.log.Error("cron: "+msg, append(kv, "error", err)...)
}

// start schedules every timer and runs those with runOnStartup once.
func (t *timers) start(ctx context.Context) {
	t.cron = cron.New(cron.WithLocation(t.loc), cron.WithLogger(cronLogger{t.log}))
	for _, st := range t.states {
		st := st
		t.cron.Schedule(st.sched.sched, cron.FuncJob(func() { t.fire(ctx, st, false) }))
		next := st.sched.sched.Next(t.now().In(t.loc))
		var occ []string
		for range 3 {
			occ = append(occ, next.Format(time.RFC3339))
			next = st.sched.sched.Next(next)
		}
		t.log.Info(fmt.Sprintf("The next 3 occurrences of the '%s' schedule (%s) will be: %s", st.fn.Name, st.sched.expr, strings.Join(occ, ", ")),
			"function", st.fn.Name, "scheduleStatus", st.monitor)
		if st.fn.RunOnStartup {
			t.async(func() { t.fire(ctx, st, true) })
		}
	}
	t.cron.Start()
}

// stop stops scheduling. The returned context is done when the running
// occurrences have finished.
func (t *timers) stop() context.Context {
	if t.cron == nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}
	return t.cron.Stop()
}

// fire runs a scheduled (or startup) occurrence, skipping it if the
// previous one still runs, and then updates the schedule status.
func (t *timers) fire(ctx context.Context, st *timerState, runOnStartup bool) {
	if ctx.Err() != nil {
		return
	}
	if !st.running.CompareAndSwap(false, true) {
		t.log.Warn("timer occurrence skipped: the previous one still runs", "function", st.fn.Name)
		return
	}
	defer st.running.Store(false)
	invoked := t.now().In(t.loc)
	reason := "Timer fired at " + invoked.Format("2006-01-02T15:04:05.0000000-07:00")
	if runOnStartup {
		reason = "Timer fired at startup (runOnStartup)"
	}
	_ = t.iv.invoke(ctx, st.fn, reason, map[string]any{st.fn.Binding: st.info(false)}, nil)
	st.completed(invoked, runOnStartup)
}

// runNow runs the timer function once for the admin endpoint: a fresh
// TimerInfo, IsPastDue false, and no status update (as the host's
// TimerTriggerBinding does).
func (t *timers) runNow(ctx context.Context, st *timerState) {
	_ = t.iv.invoke(ctx, st.fn, reasonManual, map[string]any{st.fn.Binding: st.info(false)}, nil)
}

// state returns the timer state of fn.
func (t *timers) state(fn *function) *timerState {
	for _, st := range t.states {
		if st.fn == fn {
			return st
		}
	}
	return nil
}
