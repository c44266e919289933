package main

import "time"

// Restart limits of the Functions host (HttpFunctionInvocationDispatcher:
// ErrorEventsThreshold, WorkerRestartErrorIntervalThresholdInMinutes).
const (
	errorEventsThreshold = 3
	errorEventsWindow    = 30 * time.Minute
)

// restartPolicy decides after each handler error whether the handler is
// restarted or the host stops, as the Functions host does: errors are
// kept while each comes less than window after the previous one (a longer
// gap forgets the earlier ones), and the host stops when threshold are
// kept. It is not safe for concurrent use.
type restartPolicy struct {
	threshold int
	window    time.Duration
	errors    []time.Time
}

func newRestartPolicy() *restartPolicy {
	return &restartPolicy{threshold: errorEventsThreshold, window: errorEventsWindow}
}

// recordError records an error at now and reports whether the handler may
// be restarted.
func (p *restartPolicy) recordError(now time.Time) (restart bool) {
	if n := len(p.errors); n > 0 && now.Sub(p.errors[n-1]) > p.window {
		p.errors = p.errors[:0]
	}
	p.errors = append(p.errors, now)
	return len(p.errors) < p.threshold
}

// count is the number of errors currently kept.
func (p *restartPolicy) count() int { return len(p.errors) }
