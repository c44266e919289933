package functions

// This file wires token mode: the signing keys, the token authority, the
// external issuers and the validation of service callers.

import (
	"context"
	"fmt"

	"github.com/modelauth/modelauth/shared/authn"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/journal"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/oidc"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// initTokens sets up the signing keys, the token authority and the
// external issuers. With token-mode services, the first signing key is
// written at start (signingKeyStep), so that the JWKS served holds it.
func (a *App) initTokens() error {
	s, cfg := a.Settings, a.Config
	a.SigningKeys = signingkey.New(a.Store, signingKeyPolicy(s, cfg, a.Journal), &signingkey.Options{Bounds: s.KeyCache(), Gate: a.StoreGate, Journal: a.Journal, Logger: a.Log})
	tokens, err := jwtauth.New(a.SigningKeys, a.Settings.Issuer, a.Settings.TokenSigningAlg, a.tokenOptions())
	if err != nil {
		return err
	}
	a.Tokens = tokens
	if len(s.OIDCIssuers) > 0 {
		o := oidc.DefaultOptions()
		o.Leeway, o.MaxTokenBytes, o.Logger = s.TokenLeeway, s.TokenMaxBytes, a.Log
		a.OIDC, err = oidc.New(s.OIDCIssuers, &o)
		if err != nil {
			return fmt.Errorf("OIDC_ISSUERS: %w", err)
		}
	} else if cfg.Has(config.AuthEntra) {
		return fmt.Errorf("config: %w: entra-mode services need OIDC_ISSUERS (the Microsoft Entra issuers whose tokens they accept)", config.ErrInvalid)
	}
	return nil
}

// signingKeyStep is the start's write of the first signing key, for apps
// with token-mode services: retried in the background until the store
// answers (startup.go); until then jwks.json answers 503, so that no
// gateway caches an empty key set for an hour.
func (a *App) signingKeyStep() initStep {
	return initStep{name: "signing_key", run: func(ctx context.Context) error {
		if _, err := a.SigningKeys.Signer(ctx); err != nil {
			return fmt.Errorf("creating the first signing key: %w", err)
		}
		return nil
	}}
}

// signingKeyPolicy is the signing keys' schedule from the settings: the
// next key is published a JWKS max-age plus the journal's bound (every
// instance knows it by then) before it signs, and a replaced key stays
// published for the longest token lifetime plus the leeway.
func signingKeyPolicy(s config.Settings, cfg *config.Config, j *journal.Journal) signingkey.Policy {
	retention := cfg.MaxTokenLifetime()
	if retention == 0 {
		retention = config.DefaultTokenLifetime
	}
	return signingkey.Policy{
		Alg: s.TokenSigningAlg,
		// Plus the leeway: instances' clocks may differ by as much.
		PublishAhead: signingkey.JWKSMaxAge + j.Bound() + s.TokenLeeway,
		Period:       s.SigningKeyPeriod,
		Retention:    retention + s.TokenLeeway,
	}
}

func (a *App) tokenOptions() *jwtauth.Options {
	s := a.Settings
	return &jwtauth.Options{Leeway: s.TokenLeeway, MaxTokenBytes: s.TokenMaxBytes, MaxLifetime: a.Config.MaxTokenLifetime()}
}

// Services returns the validation of service callers that validate and
// score use (and the Lambda authorizers): one per App, with its
// verified-token cache.
func (a *App) Services() *authn.Services {
	a.servicesOnce.Do(func() {
		a.services = &authn.Services{Config: a.Config, Keys: a.Keys, Tokens: a.Tokens, TokenCacheSize: a.Settings.TokenCacheSize}
		if a.OIDC != nil {
			a.services.Entra = a.OIDC
		}
		if a.SigningKeys != nil {
			a.SigningKeys.OnRemove(a.services.DropTokens)
		}
	})
	return a.services
}
