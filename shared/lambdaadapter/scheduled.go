package lambdaadapter

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/modelauth/modelauth/shared/timer"
)

// ErrUnknownFunction is wrapped by the error [Scheduled] returns for an
// event naming no timer function.
var ErrUnknownFunction = errors.New("lambdaadapter: unknown scheduled function")

// ScheduledEvent is the input of an EventBridge Scheduler target, which
// Scheduler delivers to the function as it is: {"function":"rotatekeys"},
// {"function":"prefetchtokens"} or {"function":"snapshot"}.
type ScheduledEvent struct {
	Function string `json:"function"`
}

// Scheduled returns the handler of EventBridge Scheduler invocations: it
// runs the timer function that the event names (functions.App.Timers) with
// a zero [timer.Info] (Scheduler keeps no schedule status) and
// returns a short outcome text. A name not in timers is an error wrapping
// [ErrUnknownFunction]; a failed run returns the function's error, so that
// Lambda counts the invocation as failed and Scheduler retries it by its
// retry policy.
func Scheduled(timers map[string]timer.Func) func(ctx context.Context, ev ScheduledEvent) (string, error) {
	known := strings.Join(slices.Sorted(maps.Keys(timers)), ", ")
	return func(ctx context.Context, ev ScheduledEvent) (string, error) {
		run, ok := timers[ev.Function]
		if !ok {
			return "", fmt.Errorf("%w %q (known: %s)", ErrUnknownFunction, ev.Function, known)
		}
		if err := run(ctx, timer.Info{}); err != nil {
			return "", fmt.Errorf("%s: %w", ev.Function, err)
		}
		return ev.Function + ": done", nil
	}
}
