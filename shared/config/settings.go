package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/modelauth/modelauth/shared/amlendpoint"
	"github.com/modelauth/modelauth/shared/azureml"
	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/prefetch"
	"github.com/modelauth/modelauth/shared/signingkey"
	"github.com/modelauth/modelauth/shared/tokencache"
	"github.com/robfig/cron/v3"
)

// Settings are the app settings (environment variables) the function app
// reads. local.settings.example.json and docs/settings.md list the same names.
type Settings struct {
	// AppRoot is FUNCTIONS_APP_ROOT_PATH, set by the Functions host; "."
	// when unset.
	AppRoot string
	// ConfigPath is MODELAUTH_CONFIG; default modelauth.json in AppRoot.
	ConfigPath string
	// DataDir is MODELAUTH_DATA_DIR, the embedded file store's folder;
	// default .modelauth (relative to the working directory); "" when
	// KeyVaultURL is set.
	DataDir string
	// KeyVaultURL is KEYVAULT_URL; empty selects the embedded file store.
	KeyVaultURL string
	// AuthorityHost is AZURE_AUTHORITY_HOST, the Microsoft Entra host that
	// azidentity authenticates against; empty means the public cloud's.
	// (azidentity reads AZURE_TENANT_ID, AZURE_CLIENT_ID and
	// AZURE_CLIENT_SECRET itself.)
	AuthorityHost string
	// KeyCacheTTL is KEY_CACHE_TTL: how long a validator trusts the keys
	// it read, and so how long a regenerated key's old value keeps working
	// on other instances.
	KeyCacheTTL time.Duration
	// KeyRefreshMinInterval is KEY_REFRESH_MIN_INTERVAL: the least time
	// between two store reads for one service caused by unknown keys.
	KeyRefreshMinInterval time.Duration
	// KeyCacheMaxStale is KEY_CACHE_MAX_STALENESS: how long past its TTL a
	// validator keeps serving cached keys while the store is unavailable,
	// before answering 503.
	KeyCacheMaxStale time.Duration
	// KeyReadTimeout is KEY_READ_TIMEOUT: how long a validation waits for
	// a store read (an unknown key's, or an expired cache's) before it
	// answers from the cached keys (within KEY_CACHE_MAX_STALENESS, else
	// 503) while the read goes on in the background. 0: no bound, a
	// validation waits for the store however long it takes.
	KeyReadTimeout time.Duration
	// ScoreTimeout is SCORE_TIMEOUT: the whole time a scoring request may
	// take upstream.
	ScoreTimeout time.Duration
	// ScoreMaxBodyBytes is SCORE_MAX_BODY_BYTES: the cap on a scoring
	// request's body and on the upstream response's body.
	ScoreMaxBodyBytes int64
	// LogLevel is LOG_LEVEL: debug, info, warn or error.
	LogLevel slog.Level
	// RotationSchedule is ROTATION_SCHEDULE: the rotatekeys timer's
	// NCRONTAB schedule, 6 fields with seconds. The Functions host reads it
	// itself (%ROTATION_SCHEDULE% in function.json); the handler checks it
	// so that a bad value refuses the start.
	RotationSchedule string

	// Issuer is MODELAUTH_ISSUER: the iss of the app's tokens, its base
	// URL plus /api. Default https://$WEBSITE_HOSTNAME/api when the
	// Functions host sets WEBSITE_HOSTNAME (as Azure does), else
	// http://localhost:7071/api.
	Issuer string
	// TokenSigningAlg is TOKEN_SIGNING_ALG: RS256 (default) or ES256.
	TokenSigningAlg string
	// TokenLeeway is TOKEN_LEEWAY: the clock skew allowed on exp, nbf and
	// iat of every token checked.
	TokenLeeway time.Duration
	// TokenMaxBytes is TOKEN_MAX_BYTES: longer bearer tokens are refused
	// before they are parsed.
	TokenMaxBytes int
	// TokenCacheSize is TOKEN_CACHE_SIZE: how many verified tokens each
	// instance remembers.
	TokenCacheSize int
	// SigningKeyPeriod is SIGNING_KEY_ROTATION_PERIOD: how long a signing
	// key signs before the next one takes over.
	SigningKeyPeriod time.Duration
	// AdminKeyEnabled is ADMIN_KEY_ENABLED (default true): false refuses
	// the administrator key, leaving callers to OIDC_ISSUERS.
	AdminKeyEnabled bool
	// OIDCIssuers is OIDC_ISSUERS: the external OpenID Connect issuers
	// (comma-separated, exactly as their tokens' iss) whose tokens callers
	// and entra-mode services present.
	OIDCIssuers []string
	// OIDCAudiences is OIDC_AUDIENCES: the aud values accepted on
	// callers' tokens (the app registration's Application ID URI or
	// client id).
	OIDCAudiences []string

	// PrefetchSchedule is PREFETCH_SCHEDULE: the prefetchtokens timer's
	// NCRONTAB schedule (6 fields).
	PrefetchSchedule string
	// PrefetchPeriod is the longest gap between two runs of
	// PrefetchSchedule (over the next day).
	PrefetchPeriod time.Duration
	// PrefetchLead is PREFETCH_LEAD: how long before a stored token's
	// refreshAfter the prefetch replaces it. Default the larger of two
	// PrefetchPeriods and 5 minutes.
	PrefetchLead time.Duration

	// EndpointSettleDelay is ENDPOINT_SETTLE_DELAY: how long after an
	// Azure ML endpoint took a new key (its regenerateKeys operation
	// succeeded) the rotation waits before testing it and telling clients:
	// the scoring plane may lag the management plane.
	EndpointSettleDelay time.Duration
	// EndpointOperationTimeout is ENDPOINT_OPERATION_TIMEOUT: the bound on
	// one regenerateKeys operation, polls included.
	EndpointOperationTimeout time.Duration
	// EndpointPollInterval is ENDPOINT_POLL_INTERVAL: the wait between
	// polls of an operation whose answer has no Retry-After.
	EndpointPollInterval time.Duration

	// Getenv reads app settings named by the configuration file (a
	// consumer's credentialSetting). Nil reads nothing.
	Getenv func(string) string
}

// DefaultPrefetchSchedule runs prefetchtokens every 5 minutes.
const DefaultPrefetchSchedule = "0 */5 * * * *"

// SchedulePeriod returns the longest gap between two runs of a 6-field
// NCRONTAB expression over the day after from.
func SchedulePeriod(expr string, from time.Time) (time.Duration, error) {
	sched, err := ncrontab.Parse(strings.TrimSpace(expr))
	if err != nil {
		return 0, err
	}
	var longest time.Duration
	t := sched.Next(from)
	for end := from.Add(24 * time.Hour); t.Before(end); {
		n := sched.Next(t)
		if n.IsZero() {
			break
		}
		longest = max(longest, n.Sub(t))
		t = n
	}
	if longest == 0 { // less often than daily
		longest = sched.Next(t).Sub(t)
	}
	return longest, nil
}

// DefaultRotationSchedule runs the rotatekeys timer every 6 hours, on the
// hour (00:00, 06:00, 12:00, 18:00).
const DefaultRotationSchedule = "0 0 */6 * * *"

// ncrontab parses Azure Functions' 6-field NCRONTAB:
// {second} {minute} {hour} {day} {month} {day-of-week}.
var ncrontab = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// CheckSchedule checks a 6-field NCRONTAB expression, such as
// "0 0 */6 * * *" (every 6 hours).
func CheckSchedule(expr string) error {
	expr = strings.TrimSpace(expr)
	if n := len(strings.Fields(expr)); n != 6 {
		return fmt.Errorf("want an NCRONTAB expression of 6 fields ({second} {minute} {hour} {day} {month} {day-of-week}), such as %q for every 6 hours; got %d fields", DefaultRotationSchedule, n)
	}
	if _, err := ncrontab.Parse(expr); err != nil {
		return fmt.Errorf("not a valid NCRONTAB expression: %v", err)
	}
	return nil
}

// Defaults of the settings that only the app has (the functions have no
// defaults of their own: docs/design.md section 11).
const (
	DefaultScoreTimeout      = 60 * time.Second
	DefaultScoreMaxBodyBytes = 10 << 20
)

// DefaultSettings returns the settings used when no variable is set. Every
// default comes from the package that owns it.
func DefaultSettings() Settings {
	return Settings{
		AppRoot:               ".",
		DataDir:               ".modelauth",
		KeyCacheTTL:           cache.DefaultTTL,
		KeyRefreshMinInterval: cache.DefaultRefreshMinInterval,
		KeyCacheMaxStale:      cache.DefaultMaxStale,
		KeyReadTimeout:        cache.DefaultReadTimeout,
		ScoreTimeout:          DefaultScoreTimeout,
		ScoreMaxBodyBytes:     DefaultScoreMaxBodyBytes,
		LogLevel:              slog.LevelInfo,
		RotationSchedule:      DefaultRotationSchedule,
		Issuer:                "http://localhost:7071/api",
		TokenSigningAlg:       signingkey.RS256,
		TokenLeeway:           jwtauth.DefaultLeeway,
		TokenMaxBytes:         jwtauth.DefaultMaxTokenBytes,
		TokenCacheSize:        tokencache.DefaultSize,
		SigningKeyPeriod:      signingkey.DefaultPeriod,
		AdminKeyEnabled:       true,
		PrefetchSchedule:      DefaultPrefetchSchedule,
		PrefetchPeriod:        prefetch.DefaultPeriod,
		PrefetchLead:          prefetch.LeadFor(prefetch.DefaultPeriod),

		EndpointSettleDelay:      amlendpoint.DefaultSettle,
		EndpointOperationTimeout: azureml.DefaultOperationTimeout,
		EndpointPollInterval:     azureml.DefaultPollInterval,
	}
}

// KeyCache returns the key caches' bounds: KEY_CACHE_TTL,
// KEY_REFRESH_MIN_INTERVAL, KEY_CACHE_MAX_STALENESS and KEY_READ_TIMEOUT.
func (s Settings) KeyCache() cache.Bounds {
	return cache.Bounds{TTL: s.KeyCacheTTL, RefreshMinInterval: s.KeyRefreshMinInterval, MaxStale: s.KeyCacheMaxStale, ReadTimeout: s.KeyReadTimeout}
}

// SettingNames lists every app setting LoadSettings reads.
var SettingNames = []string{
	"FUNCTIONS_APP_ROOT_PATH", "MODELAUTH_CONFIG", "MODELAUTH_DATA_DIR", "KEYVAULT_URL", "AZURE_AUTHORITY_HOST",
	"KEY_CACHE_TTL", "KEY_REFRESH_MIN_INTERVAL", "KEY_CACHE_MAX_STALENESS", "KEY_READ_TIMEOUT",
	"SCORE_TIMEOUT", "SCORE_MAX_BODY_BYTES", "LOG_LEVEL", "ROTATION_SCHEDULE",
	"WEBSITE_HOSTNAME", "MODELAUTH_ISSUER", "TOKEN_SIGNING_ALG", "TOKEN_LEEWAY", "TOKEN_MAX_BYTES", "TOKEN_CACHE_SIZE",
	"SIGNING_KEY_ROTATION_PERIOD", "ADMIN_KEY_ENABLED", "OIDC_ISSUERS", "OIDC_AUDIENCES",
	"PREFETCH_SCHEDULE", "PREFETCH_LEAD",
	"ENDPOINT_SETTLE_DELAY", "ENDPOINT_OPERATION_TIMEOUT", "ENDPOINT_POLL_INTERVAL",
}

// LoadSettings reads the settings through getenv and checks them. The error
// names every bad setting.
func LoadSettings(getenv func(string) string) (Settings, error) {
	s := DefaultSettings()
	var problems []error
	str := func(name string, dst *string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			*dst = v
		}
	}
	dur := func(name string, dst *time.Duration, min, max time.Duration) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < min || d > max {
			problems = append(problems, fmt.Errorf("%s=%q: want a duration from %v to %v, such as 30s", name, v, min, max))
			return
		}
		*dst = d
	}
	str("FUNCTIONS_APP_ROOT_PATH", &s.AppRoot)
	s.ConfigPath = filepath.Join(s.AppRoot, "modelauth.json")
	str("MODELAUTH_CONFIG", &s.ConfigPath)
	str("KEYVAULT_URL", &s.KeyVaultURL)
	if s.KeyVaultURL == "" {
		// Only the embedded file store has a folder: with Key Vault the
		// setting is not read at all, so no platform that always uses Key
		// Vault (Azure as deployed, Lambda) has to carry it.
		str("MODELAUTH_DATA_DIR", &s.DataDir)
	} else {
		s.DataDir = ""
	}
	str("AZURE_AUTHORITY_HOST", &s.AuthorityHost)
	dur("KEY_CACHE_TTL", &s.KeyCacheTTL, time.Second, time.Hour)
	dur("KEY_REFRESH_MIN_INTERVAL", &s.KeyRefreshMinInterval, 0, time.Minute)
	dur("KEY_CACHE_MAX_STALENESS", &s.KeyCacheMaxStale, 0, 24*time.Hour)
	dur("KEY_READ_TIMEOUT", &s.KeyReadTimeout, 0, time.Minute)
	dur("SCORE_TIMEOUT", &s.ScoreTimeout, time.Second, 10*time.Minute)
	num := func(name, unit string, dst *int64, min, max int64) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min || n > max {
			problems = append(problems, fmt.Errorf("%s=%q: want a whole number of %s from %d to %d", name, v, unit, min, max))
			return
		}
		*dst = n
	}
	list := func(name string) []string {
		var out []string
		for _, f := range strings.Split(getenv(name), ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	num("SCORE_MAX_BODY_BYTES", "bytes", &s.ScoreMaxBodyBytes, 1, 1<<30)
	if h := strings.TrimSpace(getenv("WEBSITE_HOSTNAME")); h != "" {
		s.Issuer = "https://" + h + "/api"
	}
	str("MODELAUTH_ISSUER", &s.Issuer)
	if u, err := url.Parse(s.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s.Issuer, "/") {
		problems = append(problems, fmt.Errorf("MODELAUTH_ISSUER=%q: want the app's base URL plus /api, such as https://myapp.azurewebsites.net/api (no trailing slash)", s.Issuer))
	}
	str("TOKEN_SIGNING_ALG", &s.TokenSigningAlg)
	if s.TokenSigningAlg != "RS256" && s.TokenSigningAlg != "ES256" {
		problems = append(problems, fmt.Errorf("TOKEN_SIGNING_ALG=%q: want RS256 or ES256", s.TokenSigningAlg))
	}
	dur("TOKEN_LEEWAY", &s.TokenLeeway, 0, 5*time.Minute)
	maxBytes, cacheSize := int64(s.TokenMaxBytes), int64(s.TokenCacheSize)
	num("TOKEN_MAX_BYTES", "bytes", &maxBytes, 1024, 16<<10) // bearer.MaxHeaderLen
	num("TOKEN_CACHE_SIZE", "tokens", &cacheSize, 1, 10_000_000)
	s.TokenMaxBytes, s.TokenCacheSize = int(maxBytes), int(cacheSize)
	dur("SIGNING_KEY_ROTATION_PERIOD", &s.SigningKeyPeriod, 24*time.Hour, 365*24*time.Hour)
	switch v := strings.ToLower(strings.TrimSpace(getenv("ADMIN_KEY_ENABLED"))); v {
	case "", "true", "1":
	case "false", "0":
		s.AdminKeyEnabled = false
	default:
		problems = append(problems, fmt.Errorf("ADMIN_KEY_ENABLED=%q: want true or false", v))
	}
	s.OIDCIssuers, s.OIDCAudiences = list("OIDC_ISSUERS"), list("OIDC_AUDIENCES")
	str("PREFETCH_SCHEDULE", &s.PrefetchSchedule)
	if err := CheckSchedule(s.PrefetchSchedule); err != nil {
		problems = append(problems, fmt.Errorf("PREFETCH_SCHEDULE=%q: %w", s.PrefetchSchedule, err))
	} else {
		s.PrefetchPeriod, _ = SchedulePeriod(s.PrefetchSchedule, time.Now())
		s.PrefetchLead = prefetch.LeadFor(s.PrefetchPeriod)
	}
	dur("PREFETCH_LEAD", &s.PrefetchLead, time.Minute, 12*time.Hour)
	dur("ENDPOINT_SETTLE_DELAY", &s.EndpointSettleDelay, 0, time.Hour)
	dur("ENDPOINT_OPERATION_TIMEOUT", &s.EndpointOperationTimeout, time.Second, 2*time.Hour)
	dur("ENDPOINT_POLL_INTERVAL", &s.EndpointPollInterval, time.Millisecond, 5*time.Minute)
	s.Getenv = getenv
	if !s.AdminKeyEnabled && (len(s.OIDCIssuers) == 0 || len(s.OIDCAudiences) == 0) {
		problems = append(problems, errors.New("ADMIN_KEY_ENABLED=false needs OIDC_ISSUERS and OIDC_AUDIENCES: otherwise nobody could call the management functions"))
	}
	if v := strings.TrimSpace(getenv("LOG_LEVEL")); v != "" {
		if err := s.LogLevel.UnmarshalText([]byte(v)); err != nil {
			problems = append(problems, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", v))
		}
	}
	str("ROTATION_SCHEDULE", &s.RotationSchedule)
	if err := CheckSchedule(s.RotationSchedule); err != nil {
		problems = append(problems, fmt.Errorf("ROTATION_SCHEDULE=%q: %w", s.RotationSchedule, err))
	}
	if s.KeyVaultURL != "" {
		if u, err := url.Parse(s.KeyVaultURL); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			problems = append(problems, fmt.Errorf("KEYVAULT_URL=%q: want the vault's https URL, such as https://myvault.vault.azure.net/", s.KeyVaultURL))
		}
	}
	if len(problems) > 0 {
		return Settings{}, fmt.Errorf("config: %w: %w", ErrInvalid, errors.Join(problems...))
	}
	return s, nil
}
