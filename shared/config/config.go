// Package config loads modelauth's service configuration file and its app
// settings, and refuses anything it cannot honour.
//
// # Configuration file
//
// A JSON document (path from MODELAUTH_CONFIG, default modelauth.json in the
// app root) listing the protected services:
//
//	{"services": [
//	  {"name": "iris", "authMode": "key", "scoringUri": "http://10.0.0.4:5001/score"}
//	]}
//
// name matches ^[a-z0-9][a-z0-9-]{0,39}$ and is unique (case-insensitively,
// as Key Vault names are). authMode is "key" (the default), "token",
// "entra" or "none". Azure ML's own switches authEnabled and tokenAuthEnabled are
// accepted too; key auth and token auth on together are refused, naming the
// service. scoringUri, if present, is an absolute http or https URL without
// credentials, query or fragment.
//
// rotationPeriod and refreshInterval, both optional Go durations such as
// "720h", are a key-mode service's rotation policy (docs/design.md section 5):
// how often its keys rotate (default 720h, 30 days) and how often its
// clients re-read the active key (default 24h). A period shorter than twice
// the refresh interval is refused, naming the service.
//
// tokenLifetime and tokenRefreshAfter (Go durations) are a token-mode
// service's token lifetime (default 1h, at most 24h) and when its clients
// should get a new one (default half the lifetime; less than the lifetime).
//
// audience (required) and requiredRole (optional) are an entra-mode
// service's: the aud its Microsoft Entra tokens must carry (for example
// "api://iris-scoring") and an app role they must hold. The issuers are
// the OIDC_ISSUERS setting.
//
// A field that does not belong to the service's mode is refused, as are
// unknown fields.
//
// consumers (optional) lists the clients whose tokens the prefetchtokens
// function keeps fresh in the store as tok-<name>: name (the service-name
// pattern), source "self" (the default: this app issues them for service,
// a token-mode service), "modelauth" (service at another modelauth app:
// url, and credentialSetting, the app setting that holds the credential)
// or "azureml" (endpoint: an Azure ML online endpoint's resource ID).
//
// endpoints (optional) lists Azure ML online endpoints in key mode whose
// own keys the app rotates (docs/design.md section 15): name (the
// service-name pattern, not a service's name), id (the endpoint's resource
// ID), rotationPeriod and refreshInterval as for a service, cloud
// (AzurePublic by default, AzureGovernment, AzureChina, or
// {"resourceManager","audience"} for another) and probe (optional: a safe
// scoring request, {"body": <JSON>, "deployment"?: name}).
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/modelauth/modelauth/shared/rotation"
)

// AuthMode is how callers of a service authenticate.
type AuthMode string

// Auth modes.
const (
	AuthKey   AuthMode = "key"
	AuthToken AuthMode = "token"
	AuthEntra AuthMode = "entra"
	AuthNone  AuthMode = "none"
)

// Token defaults and bounds.
const (
	DefaultTokenLifetime = time.Hour
	MaxTokenLifetime     = 24 * time.Hour
)

// Service is one protected model endpoint.
type Service struct {
	Name       string
	AuthMode   AuthMode
	ScoringURI *url.URL // nil when the service has none
	// Rotation is the key rotation policy, checked with
	// [rotation.Policy.Check]; the defaults where the file sets none.
	Rotation rotation.Policy
	// TokenLifetime and TokenRefreshAfter are a token-mode service's
	// token lifetime and refresh time (the defaults elsewhere).
	TokenLifetime     time.Duration
	TokenRefreshAfter time.Duration
	// Audience and RequiredRole are an entra-mode service's.
	Audience     string
	RequiredRole string
}

// DefaultPolicy is the rotation policy of a service that sets none:
// [rotation.DefaultPeriod] (30 days) and [rotation.DefaultRefreshInterval]
// (24 hours).
func DefaultPolicy() rotation.Policy {
	return rotation.Policy{Period: rotation.DefaultPeriod, RefreshInterval: rotation.DefaultRefreshInterval}
}

// Policy returns the named service's rotation policy, or the default for a
// service not in the file. It suits [rotation.Rotator.Policy].
func (c *Config) Policy(service string) rotation.Policy {
	if s, ok := c.Service(service); ok {
		return s.Rotation
	}
	return DefaultPolicy()
}

// MaxTokenLifetime returns the longest token lifetime of the token-mode
// services, or 0 when there are none: how long a retired signing key must
// stay published.
func (c *Config) MaxTokenLifetime() time.Duration {
	var m time.Duration
	for _, s := range c.Services {
		if s.AuthMode == AuthToken {
			m = max(m, s.TokenLifetime)
		}
	}
	return m
}

// Has reports whether a service uses mode.
func (c *Config) Has(mode AuthMode) bool {
	for _, s := range c.Services {
		if s.AuthMode == mode {
			return true
		}
	}
	return false
}

// Config is the checked configuration file.
type Config struct {
	Services []Service
	// Consumers are the clients whose tokens prefetchtokens keeps fresh.
	Consumers []Consumer
	// Endpoints are the Azure ML online endpoints whose keys the app
	// rotates.
	Endpoints      []Endpoint
	byName         map[string]int
	endpointByName map[string]int
}

// Service returns the named service.
func (c *Config) Service(name string) (Service, bool) {
	i, ok := c.byName[name]
	if !ok {
		return Service{}, false
	}
	return c.Services[i], true
}

// ServiceNameRE is the pattern of a service name.
var ServiceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// MaxFileBytes caps the size of a configuration file.
const MaxFileBytes = 1 << 20

// ErrInvalid is wrapped by every error about the configuration's content.
var ErrInvalid = errors.New("invalid configuration")

type fileService struct {
	Name             string  `json:"name"`
	AuthMode         *string `json:"authMode"`
	AuthEnabled      *bool   `json:"authEnabled"`
	TokenAuthEnabled *bool   `json:"tokenAuthEnabled"`
	ScoringURI       *string `json:"scoringUri"`
	RotationPeriod   *string `json:"rotationPeriod"`
	RefreshInterval  *string `json:"refreshInterval"`
	TokenLifetime    *string `json:"tokenLifetime"`
	TokenRefresh     *string `json:"tokenRefreshAfter"`
	Audience         *string `json:"audience"`
	RequiredRole     *string `json:"requiredRole"`
}

type file struct {
	Services  []fileService  `json:"services"`
	Consumers []fileConsumer `json:"consumers"`
	Endpoints []fileEndpoint `json:"endpoints"`
}

// Load reads and checks the configuration file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: reading %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("config: %s: %w: larger than %d bytes", path, ErrInvalid, MaxFileBytes)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return c, nil
}

// Parse checks a configuration document. The error names every problem
// found and the service it concerns.
func Parse(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON document", ErrInvalid)
	}
	c := &Config{byName: make(map[string]int)}
	var problems []error
	for i, fs := range f.Services {
		s, err := checkService(i, fs)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if _, dup := c.byName[s.Name]; dup {
			problems = append(problems, fmt.Errorf("service %q is listed twice", s.Name))
			continue
		}
		c.byName[s.Name] = len(c.Services)
		c.Services = append(c.Services, s)
	}
	problems = append(problems, c.checkSharedAudiences()...)
	problems = append(problems, c.checkConsumers(f.Consumers)...)
	problems = append(problems, c.checkEndpoints(f.Endpoints)...)
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, errors.Join(problems...))
	}
	return c, nil
}

// checkSharedAudiences refuses two entra-mode services with one audience
// (compared without regard to case, as Entra compares Application ID
// URIs), unless both name a requiredRole and the roles differ: one app
// registration with a role per service. Otherwise a token for one would be
// a token for the other.
func (c *Config) checkSharedAudiences() []error {
	var problems []error
	for i, a := range c.Services {
		if a.AuthMode != AuthEntra {
			continue
		}
		for _, b := range c.Services[i+1:] {
			if b.AuthMode != AuthEntra || !strings.EqualFold(a.Audience, b.Audience) {
				continue
			}
			if a.RequiredRole == "" || b.RequiredRole == "" || a.RequiredRole == b.RequiredRole {
				problems = append(problems, fmt.Errorf("services %q and %q share the audience %q: that is allowed only when both name a requiredRole and the roles differ", a.Name, b.Name, a.Audience))
			}
		}
	}
	return problems
}

// CheckCallerAudiences refuses an entra-mode service whose audience is one
// of audiences, the management callers' (OIDC_AUDIENCES): a caller's token
// would then be a token for the service, and the service's tokens tokens
// of callers. It compares without regard to case; it cannot tell that
// api://x and the client id of the same app registration are one
// audience.
func (c *Config) CheckCallerAudiences(audiences []string) error {
	var problems []error
	for _, s := range c.Services {
		if s.AuthMode != AuthEntra {
			continue
		}
		for _, a := range audiences {
			if strings.EqualFold(s.Audience, a) {
				problems = append(problems, fmt.Errorf("service %q: its audience %q is also in OIDC_AUDIENCES (%q), the management callers' audience: give the service its own", s.Name, s.Audience, a))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("config: %w: %w", ErrInvalid, errors.Join(problems...))
	}
	return nil
}

func checkService(i int, fs fileService) (Service, error) {
	if !ServiceNameRE.MatchString(fs.Name) {
		return Service{}, fmt.Errorf("services[%d]: name %q must match %s", i, clip(fs.Name), ServiceNameRE)
	}
	s := Service{Name: fs.Name}
	mode, err := authMode(fs)
	if err != nil {
		return Service{}, fmt.Errorf("service %q: %w", fs.Name, err)
	}
	s.AuthMode = mode
	if fs.ScoringURI != nil {
		u, err := checkScoringURI(*fs.ScoringURI)
		if err != nil {
			return Service{}, fmt.Errorf("service %q: scoringUri: %w", fs.Name, err)
		}
		s.ScoringURI = u
	}
	s.Rotation = DefaultPolicy()
	s.TokenLifetime = DefaultTokenLifetime
	for _, d := range []struct {
		field string
		raw   *string
		dst   *time.Duration
		mode  AuthMode
	}{
		{"rotationPeriod", fs.RotationPeriod, &s.Rotation.Period, AuthKey},
		{"refreshInterval", fs.RefreshInterval, &s.Rotation.RefreshInterval, AuthKey},
		{"tokenLifetime", fs.TokenLifetime, &s.TokenLifetime, AuthToken},
		{"tokenRefreshAfter", fs.TokenRefresh, &s.TokenRefreshAfter, AuthToken},
	} {
		if d.raw == nil {
			continue
		}
		if mode != d.mode {
			return Service{}, fmt.Errorf("service %q: %s applies to %s mode, not %s", fs.Name, d.field, d.mode, mode)
		}
		v, err := positiveDuration(d.field, *d.raw)
		if err != nil {
			return Service{}, fmt.Errorf("service %q: %w", fs.Name, err)
		}
		*d.dst = v
	}
	if err := s.Rotation.Check(); err != nil {
		return Service{}, fmt.Errorf("service %q: %w", fs.Name, err)
	}
	if s.TokenRefreshAfter == 0 {
		s.TokenRefreshAfter = s.TokenLifetime / 2
	}
	switch {
	case s.TokenLifetime < time.Minute || s.TokenLifetime > MaxTokenLifetime:
		return Service{}, fmt.Errorf("service %q: tokenLifetime %v: want 1m to %v", fs.Name, s.TokenLifetime, MaxTokenLifetime)
	case s.TokenRefreshAfter >= s.TokenLifetime:
		return Service{}, fmt.Errorf("service %q: tokenRefreshAfter %v must be less than tokenLifetime %v", fs.Name, s.TokenRefreshAfter, s.TokenLifetime)
	}
	for _, f := range []struct {
		field string
		raw   *string
		dst   *string
	}{{"audience", fs.Audience, &s.Audience}, {"requiredRole", fs.RequiredRole, &s.RequiredRole}} {
		if f.raw == nil {
			continue
		}
		if mode != AuthEntra {
			return Service{}, fmt.Errorf("service %q: %s applies to entra mode, not %s", fs.Name, f.field, mode)
		}
		*f.dst = strings.TrimSpace(*f.raw)
	}
	if mode == AuthEntra && s.Audience == "" {
		return Service{}, fmt.Errorf("service %q: entra mode needs an audience (the aud of its Entra tokens, such as \"api://%s\")", fs.Name, fs.Name)
	}
	return s, nil
}

// authMode reconciles authMode with Azure ML's authEnabled and
// tokenAuthEnabled switches.
func authMode(fs fileService) (AuthMode, error) {
	keyOn := fs.AuthEnabled != nil && *fs.AuthEnabled
	tokenOn := fs.TokenAuthEnabled != nil && *fs.TokenAuthEnabled
	if keyOn && tokenOn {
		return "", errors.New("key auth and token auth cannot both be enabled")
	}
	var fromSwitches AuthMode
	switch {
	case keyOn:
		fromSwitches = AuthKey
	case tokenOn:
		fromSwitches = AuthToken
	case fs.AuthEnabled != nil || fs.TokenAuthEnabled != nil:
		fromSwitches = AuthNone
	}
	if fs.AuthMode == nil {
		if fromSwitches != "" {
			return fromSwitches, nil
		}
		return AuthKey, nil
	}
	m := AuthMode(*fs.AuthMode)
	switch m {
	case AuthKey, AuthToken, AuthEntra, AuthNone:
	default:
		return "", fmt.Errorf("authMode %q is not one of key, token, entra, none", clip(string(m)))
	}
	if fromSwitches != "" && fromSwitches != m {
		return "", fmt.Errorf("authMode %q contradicts authEnabled/tokenAuthEnabled", m)
	}
	return m, nil
}

func checkScoringURI(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("must be an absolute http or https URL")
	case u.Host == "":
		return nil, errors.New("has no host")
	case u.User != nil:
		return nil, errors.New("must not carry credentials")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, errors.New("must not have a query or fragment")
	}
	return u, nil
}

// positiveDuration parses a file's duration field, such as "720h".
func positiveDuration(field, raw string) (time.Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(raw))
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%s %q: want a positive Go duration such as \"720h\"", field, clip(raw))
	}
	return v, nil
}

// clip shortens a value quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
