// Package rotatekeys is the rotatekeys timer function (docs/design.md sections 2
// and 5): on ROTATION_SCHEDULE it runs the due-check for every key-mode
// service and rotates the keys that are due, first finishing any rotation
// a crash left half done, and runs the signing keys' due-check. The host invokes it with the invocation envelope
// at /rotatekeys.
package rotatekeys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/modelauth/modelauth/shared/azfunc"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/signingkey"
	"github.com/modelauth/modelauth/shared/timer"
)

// Binding is the timer trigger binding's name in function.json.
const Binding = "timer"

// Rotator rotates a service's keys when due: [rotation.Rotator].
type Rotator interface {
	RotateIfDue(ctx context.Context, service string) (rotation.Result, error)
}

// SigningKeys rotates the token signing keys when due: [signingkey.Set].
type SigningKeys interface {
	RotateIfDue(ctx context.Context) (signingkey.Result, error)
}

// Function serves the rotatekeys function.
type Function struct {
	Config  *config.Config
	Rotator Rotator
	// SigningKeys, if set, has its due-check run too.
	SigningKeys SigningKeys
	// Endpoints, if set, runs the due-check of every Azure ML endpoint in
	// Config.Endpoints (docs/design.md section 15), Spread apart like the
	// services.
	Endpoints Rotator
	// Spread is the time between the starts of two services' runs (0:
	// all at once), so that the vault sees their reads, and validators
	// their change records, a few at a time (docs/design.md section 14).
	Spread time.Duration
	// Sleep waits between starts; nil: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	Log   *slog.Logger
}

// Handler returns the function's invocation handler.
func (f *Function) Handler() http.Handler {
	return azfunc.TimerHandler(Binding, f.Run, f.Log)
}

// Run rotates every key-mode service that is due, concurrently, their
// starts Spread apart: each rotation waits two key-cache TTLs, and run one
// after another they could outlast the function timeout. One service's failure does not stop the
// others; the failures are returned together, so that the invocation's Logs
// name them (the Rotator has logged rotation_failed for each already).
func (f *Function) Run(ctx context.Context, t azfunc.TimerInfo) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		n    int
	)
	failed := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	type due struct {
		name string
		rot  Rotator
	}
	var all []due
	for _, svc := range f.Config.Services {
		if svc.AuthMode == config.AuthKey {
			all = append(all, due{svc.Name, f.Rotator})
		}
	}
	if f.Endpoints != nil {
		for _, e := range f.Config.Endpoints {
			all = append(all, due{e.Name, f.Endpoints})
		}
	}
	for _, d := range all {
		if n > 0 && f.Spread > 0 {
			if err := f.sleep(ctx, f.Spread); err != nil {
				failed(fmt.Errorf("%s: not started: %w", d.name, err))
				break
			}
		}
		n++
		wg.Go(func() {
			res, err := d.rot.RotateIfDue(ctx, d.name)
			if err != nil {
				failed(err)
				azfunc.Logf(ctx, "rotatekeys: %s: failed: %v", d.name, err)
				return
			}
			azfunc.Logf(ctx, "rotatekeys: %s: %s", d.name, res.Outcome)
		})
	}
	if f.SigningKeys != nil {
		n++
		wg.Go(func() {
			res, err := f.SigningKeys.RotateIfDue(ctx)
			if err != nil {
				failed(fmt.Errorf("signing keys: %w", err))
				azfunc.Logf(ctx, "rotatekeys: signing keys: failed: %v", err)
				return
			}
			azfunc.Logf(ctx, "rotatekeys: signing keys: %s", res.Outcome)
		})
	}
	wg.Wait()
	f.Log.Info("rotatekeys_run", "services", n, "failed", len(errs), "pastDue", t.IsPastDue)
	return errors.Join(errs...)
}

func (f *Function) sleep(ctx context.Context, d time.Duration) error {
	if f.Sleep != nil {
		return f.Sleep(ctx, d)
	}
	return timer.Sleep(ctx, d)
}
