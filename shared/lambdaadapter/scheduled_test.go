package lambdaadapter_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/modelauth/modelauth/shared/lambdaadapter"
	"github.com/modelauth/modelauth/shared/timer"
)

// TestScheduledApp runs the app's timer functions from the Scheduler
// inputs of testdata.
func TestScheduledApp(t *testing.T) {
	e := newEnv(t)
	run := lambdaadapter.Scheduled(e.app.Timers())
	for _, tt := range []struct{ sample, want string }{
		{"scheduler-rotatekeys.json", "rotatekeys: done"},
		{"scheduler-prefetchtokens.json", "prefetchtokens: done"},
	} {
		ev := load[lambdaadapter.ScheduledEvent](t, tt.sample)
		got, err := run(context.Background(), ev)
		if err != nil || got != tt.want {
			t.Errorf("%s: Scheduled(%+v) = %q, %v; want %q", tt.sample, ev, got, err, tt.want)
		}
	}
}

func TestScheduled(t *testing.T) {
	boom := errors.New("store down")
	var gotInfo timer.Info
	ran := ""
	run := lambdaadapter.Scheduled(map[string]timer.Func{
		"rotatekeys":     func(_ context.Context, ti timer.Info) error { ran, gotInfo = "rotatekeys", ti; return nil },
		"prefetchtokens": func(context.Context, timer.Info) error { ran = "prefetchtokens"; return boom },
	})
	ctx := context.Background()

	if got, err := run(ctx, lambdaadapter.ScheduledEvent{Function: "rotatekeys"}); err != nil || got != "rotatekeys: done" || ran != "rotatekeys" {
		t.Errorf("rotatekeys = %q, %v (ran %q)", got, err, ran)
	}
	if gotInfo != (timer.Info{}) {
		t.Errorf("timer.Info = %+v; want zero", gotInfo)
	}
	got, err := run(ctx, lambdaadapter.ScheduledEvent{Function: "prefetchtokens"})
	if !errors.Is(err, boom) || got != "" || !strings.Contains(err.Error(), "prefetchtokens") {
		t.Errorf("failing prefetchtokens = %q, %v; want its error", got, err)
	}
	for _, name := range []string{"nope", "", "RotateKeys", "keyvaultevents"} {
		ran = ""
		got, err := run(ctx, lambdaadapter.ScheduledEvent{Function: name})
		if !errors.Is(err, lambdaadapter.ErrUnknownFunction) || !strings.Contains(err.Error(), `"`+name+`"`) ||
			!strings.Contains(err.Error(), "prefetchtokens, rotatekeys") || got != "" || ran != "" {
			t.Errorf("Scheduled(%q) = %q, %v (ran %q); want ErrUnknownFunction naming it", name, got, err, ran)
		}
	}
}
