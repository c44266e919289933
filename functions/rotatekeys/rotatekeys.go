// Package rotatekeys is the rotatekeys timer function (design.md sections 2
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

	"github.com/modelauth/modelauth/shared/azfunc"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// Binding is the timer trigger binding's name in function.json.
const Binding = "timer"

// Rotator runs one service's rotation: [rotation.Rotator].
type Rotator interface {
	Run(ctx context.Context, service string, force bool) (rotation.Result, error)
}

// SigningKeys rotates the token signing keys: [signingkey.Set].
type SigningKeys interface {
	Rotate(ctx context.Context, force bool) (signingkey.Result, error)
}

// Function serves the rotatekeys function.
type Function struct {
	Config  *config.Config
	Keys    *keyring.Ring // creates a service's keys before its first rotation
	Rotator Rotator
	// SigningKeys, if set, has its due-check run too.
	SigningKeys SigningKeys
	Log         *slog.Logger
}

// Handler returns the function's invocation handler.
func (f *Function) Handler() http.Handler {
	return azfunc.TimerHandler(Binding, f.Run, f.Log)
}

// Run rotates every key-mode service that is due, all at once: each
// rotation waits one key-cache TTL, and run one after another they could
// outlast the function timeout. One service's failure does not stop the
// others; the failures are returned together, so that the invocation's Logs
// name them (the Rotator has logged rotation_failed for each already).
func (f *Function) Run(ctx context.Context, t azfunc.TimerInfo) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		n    int
	)
	for _, svc := range f.Config.Services {
		if svc.AuthMode != config.AuthKey {
			continue
		}
		n++
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Rotate(ctx, f.Keys, f.Rotator, f.Log, svc.Name, false)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				azfunc.Logf(ctx, "rotatekeys: %s: failed: %v", svc.Name, err)
				return
			}
			azfunc.Logf(ctx, "rotatekeys: %s: %s", svc.Name, res.Outcome)
		}()
	}
	if f.SigningKeys != nil {
		n++
		wg.Go(func() {
			if err := RotateSigningKeys(ctx, f.SigningKeys, f.Log); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	f.Log.Info("rotatekeys_run", "services", n, "failed", len(errs), "pastDue", t.IsPastDue)
	return errors.Join(errs...)
}

// RotateSigningKeys runs the signing keys' due-check, and writes the next
// key if it is due. The outcome goes to the invocation's Logs and the log.
func RotateSigningKeys(ctx context.Context, keys SigningKeys, log *slog.Logger) error {
	res, err := keys.Rotate(ctx, false)
	if err != nil {
		log.Error("signing_key_rotation_failed", "error", err.Error())
		azfunc.Logf(ctx, "rotatekeys: signing keys: failed: %v", err)
		return fmt.Errorf("signing keys: %w", err)
	}
	log.Info("signing_key_rotation", "outcome", string(res.Outcome), "kid", res.Kid)
	azfunc.Logf(ctx, "rotatekeys: signing keys: %s", res.Outcome)
	return nil
}

// Rotate runs the rotation of service, after making sure its keys exist (a
// service whose keys were never read has none yet; its first keys count
// towards the period from their creation). A failure to read the keys is
// logged as rotation_failed with reason read_keys, as the Rotator logs its
// own failures.
func Rotate(ctx context.Context, keys *keyring.Ring, r Rotator, log *slog.Logger, service string, force bool) (rotation.Result, error) {
	if keys != nil {
		if _, err := keys.Get(ctx, service); err != nil {
			log.Error("rotation_failed", "service", service, "rotation", "", "reason", "read_keys", "error", err.Error())
			return rotation.Result{}, fmt.Errorf("%w: %s: reading the keys: %w", rotation.ErrFailed, service, err)
		}
	}
	return r.Run(ctx, service, force)
}
