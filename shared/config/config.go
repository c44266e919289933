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
// as Key Vault names are). authMode is "key" (the default), "token" or
// "none". Azure ML's own switches authEnabled and tokenAuthEnabled are
// accepted too; key auth and token auth on together are refused, naming the
// service. scoringUri, if present, is an absolute http or https URL without
// credentials, query or fragment.
//
// rotationPeriod and refreshInterval, both optional Go durations such as
// "720h", are a key-mode service's rotation policy (design.md section 5):
// how often its keys rotate (default 720h, 30 days) and how often its
// clients re-read the active key (default 24h). A period shorter than twice
// the refresh interval is refused, naming the service. Unknown fields are
// refused.
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
	AuthNone  AuthMode = "none"
)

// Service is one protected model endpoint.
type Service struct {
	Name       string
	AuthMode   AuthMode
	ScoringURI *url.URL // nil when the service has none
	// Rotation is the key rotation policy, checked with
	// [rotation.Policy.Check]; the defaults where the file sets none.
	Rotation rotation.Policy
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

// Config is the checked configuration file.
type Config struct {
	Services []Service
	byName   map[string]int
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
}

type file struct {
	Services []fileService `json:"services"`
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
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, errors.Join(problems...))
	}
	return c, nil
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
	for _, d := range []struct {
		field string
		raw   *string
		dst   *time.Duration
	}{
		{"rotationPeriod", fs.RotationPeriod, &s.Rotation.Period},
		{"refreshInterval", fs.RefreshInterval, &s.Rotation.RefreshInterval},
	} {
		if d.raw == nil {
			continue
		}
		v, err := time.ParseDuration(strings.TrimSpace(*d.raw))
		if err != nil || v <= 0 {
			return Service{}, fmt.Errorf("service %q: %s %q: want a positive Go duration such as \"720h\"", fs.Name, d.field, clip(*d.raw))
		}
		*d.dst = v
	}
	if err := s.Rotation.Check(); err != nil {
		return Service{}, fmt.Errorf("service %q: %w", fs.Name, err)
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
	case AuthKey, AuthToken, AuthNone:
	default:
		return "", fmt.Errorf("authMode %q is not one of key, token, none", clip(string(m)))
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

// clip shortens a value quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
