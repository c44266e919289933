//go:build unix

package main

import (
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
)

// TestSupervisorRestartWindow runs the fixture handler made to exit at
// start, with a fake clock between errors: errors further apart than the
// window never stop the host, errors closer do after three, and exit code
// 200 is an intentional restart that never counts.
func TestSupervisorRestartWindow(t *testing.T) {
	_, handler := binaries(t)
	tests := []struct {
		name     string
		exitCode string
		step     time.Duration
		wantStop bool
	}{
		{"errors 31 minutes apart keep restarting", "3", 31 * time.Minute, false},
		{"errors 1 minute apart stop after three", "3", time.Minute, true},
		{"exit code 200 restarts without counting", "200", time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var starts atomic.Int32
			clock := fakeclock.New(time.Date(2026, 9, 24, 0, 0, 0, 0, time.UTC))
			clock.SetStep(tt.step) // every reading is tt.step after the last
			s := &supervisor{
				exe: handler, dir: t.TempDir(), appRoot: t.TempDir(),
				baseEnv:     append(os.Environ(), "FIXTURE_EXIT_AT_START="+tt.exitCode, "FIXTURE_RECORD="),
				env:         newAppEnv(nil, func(string) string { return "" }),
				initTimeout: 5 * time.Second, poll: 25 * time.Millisecond, stopGrace: time.Second,
				now: clock.Now,
				newID: func() string {
					if starts.Add(1) == 6 {
						cancel() // enough: the sixth start is the last
					}
					return newUUID()
				},
				freePort: freeLoopbackPort, log: discardLog, stdout: io.Discard, policy: newRestartPolicy(),
			}
			s.init()
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return")
			}
			if tt.wantStop {
				if !errors.Is(err, errHandlerFailed) || starts.Load() != 3 {
					t.Errorf("Run = %v after %d starts; want errHandlerFailed after 3", err, starts.Load())
				}
				return
			}
			if err != nil || starts.Load() < 6 {
				t.Errorf("Run = %v after %d starts; want nil after 6 (stopped by the test)", err, starts.Load())
			}
			if _, err := s.Endpoint(context.Background()); !errors.Is(err, errHandlerStopped) {
				t.Errorf("Endpoint after Run = %v; want errHandlerStopped", err)
			}
		})
	}
}
