// Package functions assembles the modelauth function app: one folder per
// function (function.json beside that function's Go package) and, here, the
// custom handler that serves them all, as the Azure Functions host (or the
// repository's local host) calls it.
package functions

import (
	"context"

	"fmt"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"log/slog"
	"sync"
	"time"

	"github.com/modelauth/modelauth/shared/authn"
	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/journal"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/oidc"
	"github.com/modelauth/modelauth/shared/prefetch"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/azurekeyvault"
	"github.com/modelauth/modelauth/shared/secretstore/filestore"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// RoutePrefix is host.json's extensions.http.routePrefix.
const RoutePrefix = "/api"

// App is the wired function app.
type App struct {
	Settings config.Settings
	Config   *config.Config
	Store    *secretstore.Store
	// StoreGate is the back-off every cache over Store shares (the
	// service keys' and the signing keys'): a throttled store is left
	// alone by the whole instance for its Retry-After.
	StoreGate *cache.Gate
	// Journal is the change journal over Store (its write hook): how
	// validators on every instance learn of the keys' changes.
	Journal *journal.Journal
	Keys    *keyring.Ring
	// Rotator rotates the services' keys (rotatekeys, keyvaultevents and
	// the rotate action).
	Rotator *rotation.Rotator
	// Endpoints rotates the Azure ML endpoints' keys; nil when the
	// configuration lists none.
	Endpoints *rotation.Rotator
	// SigningKeys sign the app's tokens; Tokens issues and verifies them.
	SigningKeys *signingkey.Set
	Tokens      *jwtauth.Authority
	// OIDC verifies tokens of the external issuers (OIDC_ISSUERS); nil
	// when none is configured.
	OIDC *oidc.Verifier
	// Prefetcher keeps the configured consumers' tokens fresh.
	Prefetcher *prefetch.Prefetcher
	Log        *slog.Logger

	// azureCred is the Azure credential of the app's calls to Azure
	// Resource Manager (Azure ML endpoints); nil until first needed, then
	// the environment's (DefaultAzureCredential).
	azureCred azcore.TokenCredential

	servicesOnce sync.Once
	services     *authn.Services
	init         *storeInit
}

// NewApp loads the configuration, opens the secret store and starts making
// sure the administrator key (and, with token-mode services, the first
// signing key) exists. A configuration problem (modelauth.json, the
// settings) refuses the start. A store that cannot be reached, or refuses
// the credential, does not: those writes are retried in the background
// (bounded backoff, store_init_failed events) while the app serves, and the
// functions that need the store answer 503 with Retry-After until it
// answers. NewApp waits for their first attempt at most a few seconds;
// [App.StoreReady] tells when they have succeeded.
func NewApp(ctx context.Context, s config.Settings, log *slog.Logger) (*App, error) {
	cfg, err := loadConfig(s)
	if err != nil {
		return nil, err
	}
	store, err := OpenStore(s)
	if err != nil {
		return nil, err
	}
	return newApp(ctx, s, cfg, store, nil, log)
}

// NewAppWithStore is [NewApp] with a store the caller opened (the Lambda
// bootstrap opens Key Vault with its own credential) instead of
// [OpenStore]'s. The App owns store: [App.Close] closes it, and so does
// NewAppWithStore when it fails.
func NewAppWithStore(ctx context.Context, s config.Settings, store *secretstore.Store, log *slog.Logger) (*App, error) {
	return NewAppWithStoreCredential(ctx, s, store, nil, log)
}

// NewAppWithStoreCredential is [NewAppWithStore] with the Azure credential
// of the app's calls to Azure Resource Manager (Azure ML endpoints and
// their tokens), where the environment has none of its own: the Lambda
// bootstrap passes the credential it opened Key Vault with. A nil cred
// takes the environment's, as [NewApp] does.
func NewAppWithStoreCredential(ctx context.Context, s config.Settings, store *secretstore.Store, cred azcore.TokenCredential, log *slog.Logger) (*App, error) {
	cfg, err := loadConfig(s)
	if err != nil {
		store.Close()
		return nil, err
	}
	return newApp(ctx, s, cfg, store, cred, log)
}

// loadConfig reads the service configuration and checks it against the
// settings.
func loadConfig(s config.Settings) (*config.Config, error) {
	cfg, err := config.Load(s.ConfigPath)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckCallerAudiences(s.OIDCAudiences); err != nil {
		return nil, err
	}
	return cfg, nil
}

func newApp(ctx context.Context, s config.Settings, cfg *config.Config, store *secretstore.Store, cred azcore.TokenCredential, log *slog.Logger) (*App, error) {
	var keyServices []string
	for _, svc := range cfg.Services {
		if svc.AuthMode == config.AuthKey {
			keyServices = append(keyServices, svc.Name)
		}
	}
	gate := newStoreGate(s)
	jrnl := newJournal(s, cfg, store, gate, keyServices, log, nil, nil)
	ring, rot := newKeys(s, cfg, store, gate, jrnl, keyServices, log, nil)
	app := &App{Settings: s, Config: cfg, Store: store, StoreGate: gate, Journal: jrnl, Keys: ring, Rotator: rot, Log: log, azureCred: cred}
	if err := app.initTokens(); err != nil {
		store.Close()
		return nil, err
	}
	if err := app.initPrefetch(); err != nil {
		store.Close()
		return nil, err
	}
	if err := app.initEndpoints(); err != nil {
		store.Close()
		return nil, err
	}
	// Everything above is configuration; what follows needs the store.
	steps := []initStep{{name: "admin_key", run: func(ctx context.Context) error {
		if err := ring.EnsureAdminKey(ctx); err != nil {
			return fmt.Errorf("creating the administrator key: %w", err)
		}
		return nil
	}}}
	if cfg.Has(config.AuthToken) {
		steps = append(steps, app.signingKeyStep())
	}
	app.init = startStoreInit(log, steps)
	select {
	case <-ctx.Done():
	case <-app.init.first:
	case <-time.After(startWait):
	}
	return app, nil
}

// azureCredential returns the credential of the app's calls to Azure
// Resource Manager: the one the app was given, else the environment's.
func (a *App) azureCredential() (azcore.TokenCredential, error) {
	if a.azureCred == nil {
		cred, err := azurekeyvault.NewCredential(a.Settings.AuthorityHost)
		if err != nil {
			return nil, fmt.Errorf("the Azure credential: %w", err)
		}
		a.azureCred = cred
	}
	return a.azureCred, nil
}

// OpenStore opens Key Vault when KEYVAULT_URL is set, else the embedded
// file store.
func OpenStore(s config.Settings) (*secretstore.Store, error) {
	if s.KeyVaultURL == "" {
		store, err := filestore.Open(s.DataDir, nil)
		if err != nil {
			return nil, fmt.Errorf("opening the file store in %s: %w", s.DataDir, err)
		}
		return store, nil
	}
	cred, err := azurekeyvault.NewCredential(s.AuthorityHost)
	if err != nil {
		return nil, err
	}
	return azurekeyvault.Open(s.KeyVaultURL, cred, nil)
}

// Close ends the start's background retries, if any still run, and
// releases the store.
func (a *App) Close() error {
	a.init.stop()
	return a.Store.Close()
}
