package rotation

import (
	"context"
	"fmt"
	"time"

	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/timer"
)

// Staged is a value staged as the next key of a service.
type Staged struct {
	Value string
	// Created is when the store wrote it (whole seconds, as Key Vault
	// keeps them).
	Created time.Time
}

// Target is where a service's keys take effect: the steps of the staged
// protocol that differ from one kind of service to another. For the app's
// own services it is the validators, which read the store
// ([ValidatorTarget]); for a remote endpoint it is the endpoint, which must
// be told the new key (AWS Secrets Manager's setSecret and testSecret
// steps). A Target is safe for concurrent use.
type Target interface {
	// Apply makes the staged value take effect as kt's key. It may be
	// called again for the same value (a resumed rotation).
	Apply(ctx context.Context, service string, kt keysecret.KeyType, s Staged) error
	// Test reports whether the value works as kt's key, with an error
	// saying why not.
	Test(ctx context.Context, service string, kt keysecret.KeyType, value string) error
}

// Validator is the validators' own check of a key: [keyring.Ring].
type Validator interface {
	Validate(ctx context.Context, service, key string) (keysecret.KeyType, error)
}

// ValidatorTarget is the [Target] of the app's own services: its
// validators read the keys from the store, and learn a staged value within
// one key-cache TTL.
type ValidatorTarget struct {
	Validator Validator
	// TTL is the validators' key-cache TTL: the least time between
	// staging and finishing.
	TTL   time.Duration
	Now   func() time.Time                                 // nil: time.Now
	Sleep func(ctx context.Context, d time.Duration) error // nil: a timer
}

var _ Target = (*ValidatorTarget)(nil)

// Apply waits until one key-cache TTL has passed since the staging, so that
// every validator has had the chance to read the staged value. Stores keep
// whole seconds: the staging may have happened up to a second after its
// recorded time.
func (v *ValidatorTarget) Apply(ctx context.Context, _ string, _ keysecret.KeyType, s Staged) error {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	d := s.Created.Add(v.TTL + time.Second).Sub(now())
	if d <= 0 {
		return nil
	}
	if v.Sleep != nil {
		return v.Sleep(ctx, d)
	}
	return timer.Sleep(ctx, d)
}

// Test checks the value with the validators' own code.
func (v *ValidatorTarget) Test(ctx context.Context, service string, kt keysecret.KeyType, value string) error {
	got, err := v.Validator.Validate(ctx, service, value)
	if err != nil {
		return err
	}
	if got != kt {
		return fmt.Errorf("validated as %s, want %s", got, kt)
	}
	return nil
}

// A Remote is a [Target] that holds keys of its own, which clients present
// to it directly: an Azure ML online endpoint. With a Remote target the
// rotator
//   - adopts the remote's keys when the store has none (Provision);
//   - re-reads the store before every Apply, and tells the remote a staged
//     value only while it is the newest of the inactive key's secret;
//   - writes a regenerated key to the store first, then to the remote,
//     and moves the active copy only once the remote took it;
//   - compares the remote's keys with the store's at every due-check and
//     repairs a difference ([Rotator.RotateIfDue]: docs/design.md section
//     15).
type Remote interface {
	Target
	// Keys returns the keys the remote holds now, the Primary first.
	Keys(ctx context.Context, name string) ([2]string, error)
}
