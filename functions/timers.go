package functions

// This file adapts the timer functions to hosts other than Azure's.

import (
	"context"

	"github.com/modelauth/modelauth/shared/azfunc"
	"github.com/modelauth/modelauth/shared/timer"
)

// azureTimer is run, a timer function written for the Azure host's
// TimerInfo, as a [timer.Func] for the hosts of [App.Timers]: the run's
// [timer.Info] becomes the TimerInfo, without a schedule status.
func azureTimer(run func(context.Context, azfunc.TimerInfo) error) timer.Func {
	return func(ctx context.Context, t timer.Info) error {
		return run(ctx, azfunc.TimerInfo{IsPastDue: t.IsPastDue})
	}
}
