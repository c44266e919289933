package functions

// This file wires the rotation of the services' keys and the timer functions.

import (
	"context"
	"log/slog"

	"github.com/modelauth/modelauth/functions/prefetchtokens"
	"github.com/modelauth/modelauth/functions/rotatekeys"
	"github.com/modelauth/modelauth/shared/azfunc"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// NewRotator returns the rotator of the services' keys: the validators'
// own ring tests a staged key, and the run waits one KEY_CACHE_TTL between
// staging and activation.
func NewRotator(s config.Settings, cfg *config.Config, store *secretstore.Store, ring *keyring.Ring, log *slog.Logger) *rotation.Rotator {
	return &rotation.Rotator{Store: store, Validator: ring, TTL: s.KeyCacheTTL, Policy: cfg.Policy, Log: log}
}

func (a *App) rotateKeys(rot rotatekeys.Rotator) *rotatekeys.Function {
	f := &rotatekeys.Function{Config: a.Config, Keys: a.Keys, Rotator: rot, Log: a.Log}
	if a.Config.Has(config.AuthToken) {
		f.SigningKeys = a.SigningKeys
	}
	return f
}

// Timers returns the timer functions by name (rotatekeys, prefetchtokens),
// for hosts that schedule them by other means (EventBridge Scheduler on
// Lambda).
func (a *App) Timers() map[string]func(context.Context, azfunc.TimerInfo) error {
	rot := a.Rotator
	if rot == nil {
		rot = NewRotator(a.Settings, a.Config, a.Store, a.Keys, a.Log)
	}
	return map[string]func(context.Context, azfunc.TimerInfo) error{
		"rotatekeys":     a.rotateKeys(rot).Run,
		"prefetchtokens": (&prefetchtokens.Function{Prefetcher: a.Prefetcher, Log: a.Log}).Run,
	}
}
