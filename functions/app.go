// Package functions assembles the modelauth function app: one folder per
// function (function.json beside that function's Go package) and, here, the
// custom handler that serves them all, as the Azure Functions host (or the
// repository's local host) calls it.
package functions

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/modelauth/modelauth/functions/jwks"
	"github.com/modelauth/modelauth/functions/keys"
	"github.com/modelauth/modelauth/functions/keyvaultevents"
	"github.com/modelauth/modelauth/functions/prefetchtokens"
	"github.com/modelauth/modelauth/functions/rotatekeys"
	"github.com/modelauth/modelauth/functions/score"
	"github.com/modelauth/modelauth/functions/signingkeys"
	"github.com/modelauth/modelauth/functions/token"
	"github.com/modelauth/modelauth/functions/validate"
	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/authn"
	"github.com/modelauth/modelauth/shared/azfunc"
	"github.com/modelauth/modelauth/shared/azureml"
	"github.com/modelauth/modelauth/shared/client"
	"github.com/modelauth/modelauth/shared/config"
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
	Keys     *keyring.Ring
	// Rotator rotates the services' keys (rotatekeys, keyvaultevents and
	// the rotate action).
	Rotator *rotation.Rotator
	// SigningKeys sign the app's tokens; Tokens issues and verifies them.
	SigningKeys *signingkey.Set
	Tokens      *jwtauth.Authority
	// OIDC verifies tokens of the external issuers (OIDC_ISSUERS); nil
	// when none is configured.
	OIDC *oidc.Verifier
	// Prefetcher keeps the configured consumers' tokens fresh.
	Prefetcher *prefetch.Prefetcher
	Log        *slog.Logger

	servicesOnce sync.Once
	services     *authn.Services
}

// NewApp loads the configuration, opens the secret store and makes sure the
// administrator key exists. Any problem refuses the start.
func NewApp(ctx context.Context, s config.Settings, log *slog.Logger) (*App, error) {
	cfg, err := loadConfig(s)
	if err != nil {
		return nil, err
	}
	store, err := OpenStore(s)
	if err != nil {
		return nil, err
	}
	return newApp(ctx, s, cfg, store, log)
}

// NewAppWithStore is [NewApp] with a store the caller opened (the Lambda
// bootstrap opens Key Vault with its own credential) instead of
// [OpenStore]'s. The App owns store: [App.Close] closes it, and so does
// NewAppWithStore when it fails.
func NewAppWithStore(ctx context.Context, s config.Settings, store *secretstore.Store, log *slog.Logger) (*App, error) {
	cfg, err := loadConfig(s)
	if err != nil {
		store.Close()
		return nil, err
	}
	return newApp(ctx, s, cfg, store, log)
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

func newApp(ctx context.Context, s config.Settings, cfg *config.Config, store *secretstore.Store, log *slog.Logger) (*App, error) {
	var keyServices []string
	for _, svc := range cfg.Services {
		if svc.AuthMode == config.AuthKey {
			keyServices = append(keyServices, svc.Name)
		}
	}
	ring := keyring.New(store, keyServices, &keyring.Options{
		TTL:                s.KeyCacheTTL,
		RefreshMinInterval: s.KeyRefreshMinInterval,
		MaxStale:           s.KeyCacheMaxStale,
		Logger:             log,
		Expiry: func(service string, since time.Time) time.Time {
			return since.Add(cfg.Policy(service).Period + rotation.ExpiryMargin)
		},
	})
	if err := ring.EnsureAdminKey(ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("creating the administrator key: %w", err)
	}
	app := &App{Settings: s, Config: cfg, Store: store, Keys: ring, Rotator: NewRotator(s, cfg, store, ring, log), Log: log}
	if err := app.initTokens(ctx); err != nil {
		store.Close()
		return nil, err
	}
	if err := app.initPrefetch(); err != nil {
		store.Close()
		return nil, err
	}
	return app, nil
}

// initPrefetch builds each consumer's token source: this app's issuer,
// another modelauth app (with the credential from the consumer's
// credentialSetting), or an Azure ML online endpoint (with the app's Azure
// credential).
func (a *App) initPrefetch() error {
	s := a.Settings
	getenv := s.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var consumers []prefetch.Consumer
	var azureCred azcore.TokenCredential
	for _, c := range a.Config.Consumers {
		pc := prefetch.Consumer{Name: c.Name, Service: c.Service}
		switch c.Source {
		case config.SourceSelf:
			pc.Source = a.selfTokens(c)
		case config.SourceModelauth:
			cred := strings.TrimSpace(getenv(c.CredentialSetting))
			if cred == "" {
				return fmt.Errorf("config: %w: consumer %q: the app setting %s (its credentialSetting) is empty", config.ErrInvalid, c.Name, c.CredentialSetting)
			}
			pc.Source = (&client.Client{BaseURL: c.URL, Credential: client.Static(cred)}).TokenSource(c.Service)
		case config.SourceAzureML:
			ep, err := azureml.ParseEndpointID(c.Endpoint)
			if err != nil {
				return fmt.Errorf("config: %w: consumer %q: %w", config.ErrInvalid, c.Name, err)
			}
			if azureCred == nil {
				if azureCred, err = azurekeyvault.NewCredential(s.AuthorityHost); err != nil {
					return fmt.Errorf("consumer %q: the Azure credential: %w", c.Name, err)
				}
			}
			if pc.Source, err = azureml.NewTokenSource(ep, azureCred, nil); err != nil {
				return fmt.Errorf("consumer %q: %w", c.Name, err)
			}
		}
		consumers = append(consumers, pc)
	}
	a.Prefetcher = prefetch.New(a.Store, consumers, &prefetch.Options{
		Lead: s.PrefetchLead, Period: s.PrefetchPeriod, Logger: a.Log,
	})
	return nil
}

// selfTokens issues a consumer's tokens in-process, as get_token would to
// a caller named consumer:<name>.
func (a *App) selfTokens(c config.Consumer) client.TokenSource {
	svc, _ := a.Config.Service(c.Service)
	return client.TokenSourceFunc(func(ctx context.Context) (*client.Token, error) {
		tok, issued, err := a.Tokens.Issue(ctx, svc.Name, "consumer:"+c.Name, svc.TokenLifetime, svc.TokenRefreshAfter)
		if err != nil {
			return nil, err
		}
		a.Log.Info("audit", "event", "get_token", "subject", "consumer:"+c.Name, "service", svc.Name,
			"jti", issued.JTI, "kid", issued.Kid, "expiryOn", tok.ExpiryOn)
		return &client.Token{AccessToken: tok.AccessToken, TokenType: tok.TokenType,
			ExpiresOn: time.Unix(tok.ExpiryOn, 0), RefreshAfter: time.Unix(tok.RefreshAfter, 0)}, nil
	})
}

// initTokens sets up the signing keys, the token authority and the
// external issuers. With token-mode services, the first signing key is
// written now, so that the JWKS served from the start holds it.
func (a *App) initTokens(ctx context.Context) error {
	s, cfg := a.Settings, a.Config
	a.SigningKeys = signingkey.New(a.Store, a.signingKeyOptions())
	tokens, err := jwtauth.New(a.SigningKeys, a.tokenOptions())
	if err != nil {
		return err
	}
	a.Tokens = tokens
	if len(s.OIDCIssuers) > 0 {
		// oidc reads a zero leeway as its default; -1 is none.
		a.OIDC, err = oidc.New(oidc.Options{Issuers: s.OIDCIssuers, Leeway: cmp.Or(s.TokenLeeway, -1), MaxTokenBytes: s.TokenMaxBytes, Logger: a.Log})
		if err != nil {
			return fmt.Errorf("OIDC_ISSUERS: %w", err)
		}
	} else if cfg.Has(config.AuthEntra) {
		return fmt.Errorf("config: %w: entra-mode services need OIDC_ISSUERS (the Microsoft Entra issuers whose tokens they accept)", config.ErrInvalid)
	}
	if cfg.Has(config.AuthToken) {
		if _, err := a.SigningKeys.Signer(ctx); err != nil {
			return fmt.Errorf("creating the first signing key: %w", err)
		}
	}
	return nil
}

// signingKeyOptions are the signing keys' schedule and cache bounds from
// the settings: the next key is published a JWKS max-age plus a key-cache
// TTL before it signs, and a replaced key stays published for the longest
// token lifetime plus the leeway.
func (a *App) signingKeyOptions() signingkey.Options {
	s := a.Settings
	retention := a.Config.MaxTokenLifetime()
	if retention == 0 {
		retention = config.DefaultTokenLifetime
	}
	return signingkey.Options{
		Policy: signingkey.Policy{
			Alg: s.TokenSigningAlg,
			// Plus the leeway: instances' clocks may differ by as much.
			PublishAhead: signingkey.JWKSMaxAge + s.KeyCacheTTL + s.TokenLeeway,
			Period:       s.SigningKeyPeriod,
			Retention:    retention + s.TokenLeeway,
		},
		TTL: s.KeyCacheTTL, RefreshMinInterval: s.KeyRefreshMinInterval, MaxStale: s.KeyCacheMaxStale,
		ExpiryMargin: rotation.ExpiryMargin, Logger: a.Log,
	}
}

func (a *App) tokenOptions() jwtauth.Options {
	s := a.Settings
	return jwtauth.Options{Issuer: s.Issuer, Alg: s.TokenSigningAlg, Leeway: s.TokenLeeway, MaxTokenBytes: s.TokenMaxBytes,
		MaxLifetime: a.Config.MaxTokenLifetime()}
}

// NewRotator returns the rotator of the services' keys: the validators'
// own ring tests a staged key, and the run waits one KEY_CACHE_TTL between
// staging and activation.
func NewRotator(s config.Settings, cfg *config.Config, store *secretstore.Store, ring *keyring.Ring, log *slog.Logger) *rotation.Rotator {
	return &rotation.Rotator{Store: store, Validator: ring, TTL: s.KeyCacheTTL, Policy: cfg.Policy, Log: log}
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

// Handler returns the custom handler's routes: the readiness probe, every
// HTTP function at its forwarded /api path, and the timer and Event Grid
// functions at /<name>, where the host posts their invocation envelope.
func (a *App) Handler() http.Handler {
	services := a.Services()
	callers := &authn.Callers{Keys: a.Keys, AdminKeyDisabled: !a.Settings.AdminKeyEnabled, Audiences: a.Settings.OIDCAudiences}
	if a.OIDC != nil {
		callers.OIDC = a.OIDC
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", azfunc.Ready())

	v := &validate.Function{Services: services, Log: a.Log}
	mux.Handle(RoutePrefix+"/services/{service}/validate", v)
	mux.Handle(RoutePrefix+"/services/{service}/validate/{rest...}", v)

	sc := score.New(services, a.Log, &score.Options{
		Timeout:      a.Settings.ScoreTimeout,
		MaxBodyBytes: a.Settings.ScoreMaxBodyBytes,
	})
	mux.Handle(RoutePrefix+"/services/{service}/score", sc)
	mux.Handle(RoutePrefix+"/services/{service}/score/{rest...}", sc)

	rot := a.Rotator
	if rot == nil {
		rot = NewRotator(a.Settings, a.Config, a.Store, a.Keys, a.Log)
	}
	k := &keys.Function{Config: a.Config, Keys: a.Keys, Callers: callers, Log: a.Log, Rotator: rot}
	mux.Handle(RoutePrefix+"/services/{service}/keys", k)
	mux.Handle(RoutePrefix+"/services/{service}/keys/{$}", k) // {action?} empty
	mux.Handle(RoutePrefix+"/services/{service}/keys/{action}", k)

	mux.Handle(RoutePrefix+"/services/{service}/token", &token.Function{Config: a.Config, Callers: callers, Tokens: a.Tokens, Log: a.Log})
	mux.Handle(RoutePrefix+"/.well-known/{document}", &jwks.Function{Issuer: a.Settings.Issuer, Alg: a.Settings.TokenSigningAlg, Keys: a.SigningKeys, Log: a.Log})
	mux.Handle(RoutePrefix+"/signing-keys/{action}", &signingkeys.Function{Callers: callers, Keys: a.SigningKeys, Log: a.Log})

	// Non-HTTP functions: the handlers answer other methods with 405.
	rk := a.rotateKeys(rot)
	mux.Handle("/rotatekeys", rk.Handler())
	pf := &prefetchtokens.Function{Prefetcher: a.Prefetcher, Log: a.Log}
	mux.Handle("/prefetchtokens", pf.Handler())
	kv := &keyvaultevents.Function{Config: a.Config, Keys: a.Keys, Rotator: rot, SigningKeys: rk.SigningKeys, Log: a.Log}
	mux.Handle("/keyvaultevents", kv.Handler())
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apierror.Write(w, nil, apierror.New(apierror.NotFound, "no function answers this path"))
	}))
	return &router{mux: mux, validate: v, score: sc}
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

// router sends the validate route, the hot path that every gateway call
// takes, straight to its function, and every other request through the mux.
// It takes only paths that the mux would route to validate as they are, so
// both give the same answer; the mux's pattern matching costs about as much
// as checking the key.
//
// It also sends to score the score requests whose path holds dot segments,
// which the mux would redirect to the cleaned path: score refuses them
// (score.Tail), as it refuses their encoded spellings.
type router struct {
	mux      *http.ServeMux
	validate *validate.Function
	score    *score.Function
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if service, ok := validateRoute(r); ok {
		rt.validate.Serve(w, r, service)
		return
	}
	if service, ok := uncleanScoreRoute(r); ok {
		rt.score.Serve(w, r, service)
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// uncleanScoreRoute returns the service of a request for
// /api/services/{service}/score/{*rest} whose path the mux would redirect
// to its cleaned form.
func uncleanScoreRoute(r *http.Request) (string, bool) {
	const prefix = RoutePrefix + "/services/"
	p := r.URL.EscapedPath()
	if r.Method == http.MethodConnect || !strings.HasPrefix(p, prefix) || path.Clean(r.URL.Path) == r.URL.Path {
		return "", false
	}
	escService, tail, _ := strings.Cut(p[len(prefix):], "/")
	service, err := url.PathUnescape(escService)
	if err != nil || service == "" || (tail != "score" && !strings.HasPrefix(tail, "score/")) {
		return "", false
	}
	return service, true
}

// validateRoute returns the service of a request for
// /api/services/{service}/validate/{*rest} whose path the mux would not
// clean, unescape or redirect.
func validateRoute(r *http.Request) (string, bool) {
	const prefix = RoutePrefix + "/services/"
	p := r.URL.Path
	if r.Method == http.MethodConnect || r.URL.RawPath != "" || !strings.HasPrefix(p, prefix) {
		return "", false
	}
	service, tail, found := strings.Cut(p[len(prefix):], "/")
	if !found || service == "" || (tail != "validate" && !strings.HasPrefix(tail, "validate/")) {
		return "", false
	}
	if c := path.Clean(p); c != p && c+"/" != p {
		return "", false
	}
	return service, true
}

// Close releases the store.
func (a *App) Close() error { return a.Store.Close() }

// NewServer returns the HTTP server the custom handler runs h in.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Run is the custom handler: it reads the app settings through getenv,
// logs JSON to stdout, and serves on 127.0.0.1:FUNCTIONS_CUSTOMHANDLER_PORT
// until ctx is done. ready, if not nil, receives the listening address.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer, ready chan<- string) error {
	s, err := config.LoadSettings(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: s.LogLevel}))
	addr, err := azfunc.ListenAddr(getenv)
	if err != nil {
		return err
	}
	app, err := NewApp(ctx, s, log)
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := NewServer(app.Handler(), log)
	log.Info("handler_started", "address", ln.Addr().String(), "pid", os.Getpid(), "services", len(app.Config.Services),
		"store", cmp.Or(s.KeyVaultURL, s.DataDir), "admin_key_secret", keyring.AdminKeySecret)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	log.Info("handler_stopped")
	return nil
}
