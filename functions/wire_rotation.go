package functions

// This file wires the rotation of the services' keys and the timer functions.

import (
	"log/slog"
	"strings"
	"time"

	"github.com/modelauth/modelauth/functions/prefetchtokens"
	"github.com/modelauth/modelauth/functions/rotatekeys"
	"github.com/modelauth/modelauth/functions/snapshot"
	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/journal"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/signingkey"
	"github.com/modelauth/modelauth/shared/timer"
)

// newStoreGate returns the one back-off of the instance's caches over the
// store: after a 429, no cache reads the store for its Retry-After (within
// the bounds cache.Gate.Hold documents).
func newStoreGate(s config.Settings) *cache.Gate {
	return cache.NewGate(s.KeyCache(), secretstore.IsThrottled)
}

// newJournal returns the instance's change journal over store, and makes
// it the store's write hook: every write of a secret that validators need
// (docs/design.md section 14) is recorded before it returns.
// now is the clock (nil: time.Now), as for newKeys; phase draws the
// instance's poll phase (nil: at random).
func newJournal(s config.Settings, cfg *config.Config, store *secretstore.Store, gate *cache.Gate, keyServices []string, log *slog.Logger, now func() time.Time, phase func(time.Duration) time.Duration) *journal.Journal {
	names := keyring.Secrets(keyServices)
	if cfg.Has(config.AuthToken) {
		names = append(names, keysecret.SigningKeySecret)
	}
	o := journal.DefaultOptions()
	o.Bounds, o.Gate, o.Logger, o.Now, o.Phase = s.KeyCache(), gate, log, now, phase
	o.Tracked, o.AllVersions = keysecret.Tracked, keysecret.AllVersions
	o.Private = func(name string) bool { return strings.EqualFold(name, keysecret.SigningKeySecret) }
	o.Public = signingkey.PublicOf
	o.Names = func() []string { return names }
	j := journal.New(store, &o)
	store.OnWrite(j.Hook)
	return j
}

// newKeys returns the validators' keys of the key-mode services and the
// rotator that writes them: the ring asks the rotator to create missing
// keys, the rotator tests a staged key with the ring, and waits the
// journal's bound (two KEY_CACHE_TTL slots) between staging and
// activation, so that every instance knows the staged key before clients
// are told it.
func newKeys(s config.Settings, cfg *config.Config, store *secretstore.Store, gate *cache.Gate, j *journal.Journal, services []string, log *slog.Logger, now func() time.Time) (*keyring.Ring, *rotation.Rotator) {
	rot := &rotation.Rotator{Store: store, Policy: cfg.Policy, Log: log, Now: now}
	ring := keyring.New(store, services, &keyring.Options{
		Bounds:    s.KeyCache(),
		Journal:   j,
		Gate:      gate,
		Now:       now,
		Logger:    log,
		Provision: rot.Provision,
	})
	rot.Keys, rot.Record = ring, j.Record
	rot.Target = &rotation.ValidatorTarget{Validator: ring, TTL: j.Bound(), Now: now}
	return ring, rot
}

func (a *App) rotateKeys() *rotatekeys.Function {
	f := &rotatekeys.Function{Config: a.Config, Rotator: a.Rotator, Spread: rotationSpread(a.Journal, len(a.Config.Services)+len(a.Config.Endpoints)), Log: a.Log}
	if a.Endpoints != nil {
		f.Endpoints = a.Endpoints
	}
	if a.Config.Has(config.AuthToken) {
		f.SigningKeys = a.SigningKeys
	}
	return f
}

// rotationSpread is the time between two services' starts in a rotatekeys
// run: an eighth of a journal slot, so that a slot holds about eight
// stagings and sixteen finishes, one page of records (25) for every
// reader; at most 20 minutes for the whole run, within the Functions
// timeout.
func rotationSpread(j *journal.Journal, services int) time.Duration {
	spread := j.Bound() / 16
	if services > 1 {
		spread = min(spread, 20*time.Minute/time.Duration(services))
	}
	return spread
}

// Timers returns the timer functions by name (rotatekeys, prefetchtokens,
// snapshot), for hosts that schedule them by other means (EventBridge
// Scheduler on Lambda).
func (a *App) Timers() map[string]timer.Func {
	return map[string]timer.Func{
		"rotatekeys":     azureTimer(a.rotateKeys().Run),
		"prefetchtokens": azureTimer((&prefetchtokens.Function{Prefetcher: a.Prefetcher, Log: a.Log}).Run),
		"snapshot":       azureTimer((&snapshot.Function{Journal: a.Journal, Log: a.Log}).Run),
	}
}
