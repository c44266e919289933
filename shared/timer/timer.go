// Package timer defines a timer function as every host runs it: a
// [Func] given the [Info] of one run. The Azure custom handler reads the
// run from the host's TimerInfo (package azfunc); the Lambda adapter runs
// the functions for EventBridge Scheduler, which keeps no schedule status.
// The package has no behaviour and no dependencies, so that a host's
// adapter needs no other host's package to run a timer function.
package timer

import (
	"context"
	"time"
)

// Info describes one run of a timer function.
type Info struct {
	// IsPastDue is true when this run is late, for example because the
	// host started after a missed occurrence. It is false when the host
	// keeps no schedule status (EventBridge Scheduler).
	IsPastDue bool
}

// Func is a timer function. It returns the run's failure, so that a host
// that retries failed runs can do so.
type Func func(ctx context.Context, t Info) error

// Sleep waits d, or until ctx ends (then it returns ctx's error): the wait
// of code that runs on a schedule (a rotation's wait between staging and
// activation, the spread between a timer run's starts).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
