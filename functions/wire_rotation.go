package functions

// This file wires the rotation of the services' keys and the timer functions.

import (
	"log/slog"

	"github.com/modelauth/modelauth/functions/prefetchtokens"
	"github.com/modelauth/modelauth/functions/rotatekeys"
	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/timer"
)

// newStoreGate returns the one back-off of the instance's caches over the
// store: after a 429, no cache reads the store for its Retry-After (within
// the bounds cache.Gate.Hold documents).
func newStoreGate(s config.Settings) *cache.Gate {
	return cache.NewGate(s.KeyCache(), secretstore.IsThrottled)
}

// newKeys returns the validators' keys of the key-mode services and the
// rotator that writes them: the ring asks the rotator to create missing
// keys, the rotator tests a staged key with the ring, and waits one
// KEY_CACHE_TTL between staging and activation.
func newKeys(s config.Settings, cfg *config.Config, store *secretstore.Store, gate *cache.Gate, services []string, log *slog.Logger) (*keyring.Ring, *rotation.Rotator) {
	rot := &rotation.Rotator{Store: store, Policy: cfg.Policy, Log: log}
	ring := keyring.New(store, services, &keyring.Options{
		Bounds:    s.KeyCache(),
		Gate:      gate,
		Logger:    log,
		Provision: rot.Provision,
	})
	rot.Keys = ring
	rot.Target = &rotation.ValidatorTarget{Validator: ring, TTL: s.KeyCacheTTL}
	return ring, rot
}

func (a *App) rotateKeys() *rotatekeys.Function {
	f := &rotatekeys.Function{Config: a.Config, Rotator: a.Rotator, Log: a.Log}
	if a.Config.Has(config.AuthToken) {
		f.SigningKeys = a.SigningKeys
	}
	return f
}

// Timers returns the timer functions by name (rotatekeys, prefetchtokens),
// for hosts that schedule them by other means (EventBridge Scheduler on
// Lambda).
func (a *App) Timers() map[string]timer.Func {
	return map[string]timer.Func{
		"rotatekeys":     azureTimer(a.rotateKeys().Run),
		"prefetchtokens": azureTimer((&prefetchtokens.Function{Prefetcher: a.Prefetcher, Log: a.Log}).Run),
	}
}
