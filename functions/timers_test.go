package functions

import (
	"context"
	"testing"

	"github.com/modelauth/modelauth/shared/azfunc"
	"github.com/modelauth/modelauth/shared/timer"
)

// TestAzureTimer: a run's timer.Info reaches the Azure timer function as
// its TimerInfo, without a schedule status; the run's error is returned.
func TestAzureTimer(t *testing.T) {
	for _, info := range []timer.Info{{}, {IsPastDue: true}} {
		var got azfunc.TimerInfo
		run := azureTimer(func(_ context.Context, ti azfunc.TimerInfo) error { got = ti; return context.Canceled })
		if err := run(context.Background(), info); err != context.Canceled {
			t.Errorf("azureTimer(...)(%+v) = %v; want the function's error", info, err)
		}
		if want := (azfunc.TimerInfo{IsPastDue: info.IsPastDue}); got != want {
			t.Errorf("azureTimer(...)(%+v) ran with %+v; want %+v", info, got, want)
		}
	}
}
