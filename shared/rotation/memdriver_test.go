package rotation_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/modelauth/modelauth/shared/secretstore/driver"
)

// memDriver is an in-memory driver with Key Vault's semantics for the
// operations rotation uses, and a hook before every call that tests use to
// pause, reorder or kill the caller.
type memDriver struct {
	mu       sync.Mutex
	secrets  map[string][]driver.Secret // oldest first
	now      func() time.Time
	before   func(ctx context.Context, op string) error // may be nil
	getCalls int
}

var errNotFound = errors.New("mem: not found")

func newMemDriver(now func() time.Time) *memDriver {
	return &memDriver{secrets: map[string][]driver.Secret{}, now: now}
}

func (m *memDriver) gate(ctx context.Context, op string) error {
	if m.before != nil {
		return m.before(ctx, op)
	}
	return nil
}

func (m *memDriver) SetSecret(ctx context.Context, name string, p driver.SetParams) (driver.Properties, error) {
	if err := m.gate(ctx, "set "+name); err != nil {
		return driver.Properties{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var id [16]byte
	rand.Read(id[:])
	now := m.now()
	s := driver.Secret{Value: p.Value, Properties: driver.Properties{
		Name: name, Version: hex.EncodeToString(id[:]), Enabled: p.Enabled, Expires: p.Expires,
		Created: now, Updated: now, Tags: maps.Clone(p.Tags),
	}}
	if s.Tags == nil {
		s.Tags = map[string]string{}
	}
	m.secrets[name] = append(m.secrets[name], s)
	return s.Properties, nil
}

func (m *memDriver) GetSecret(ctx context.Context, name, version string) (driver.Secret, error) {
	if err := m.gate(ctx, "get "+name); err != nil {
		return driver.Secret{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.getCalls++
	return m.find(name, version)
}

func (m *memDriver) find(name, version string) (driver.Secret, error) {
	vs := m.secrets[name]
	if len(vs) == 0 {
		return driver.Secret{}, errNotFound
	}
	if version == "" {
		s := vs[len(vs)-1]
		s.Tags = maps.Clone(s.Tags)
		return s, nil
	}
	for _, s := range vs {
		if s.Version == version {
			s.Tags = maps.Clone(s.Tags)
			return s, nil
		}
	}
	return driver.Secret{}, errNotFound
}

func (m *memDriver) ListVersions(ctx context.Context, name string) ([]driver.Properties, error) {
	if err := m.gate(ctx, "list "+name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.secrets[name]
	if len(vs) == 0 {
		return nil, errNotFound
	}
	out := make([]driver.Properties, 0, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		p := vs[i].Properties
		p.Tags = maps.Clone(p.Tags)
		out = append(out, p)
	}
	return out, nil
}

func (m *memDriver) UpdateProperties(ctx context.Context, name, version string, u driver.Update) (driver.Properties, error) {
	if err := m.gate(ctx, "update "+name); err != nil {
		return driver.Properties{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.secrets[name]
	for i := range vs {
		if vs[i].Version == version || (version == "" && i == len(vs)-1) {
			if u.Tags != nil {
				vs[i].Tags = maps.Clone(u.Tags)
			}
			if u.Expires != nil {
				e := *u.Expires
				vs[i].Expires = &e
			}
			if u.Enabled != nil {
				vs[i].Enabled = *u.Enabled
			}
			vs[i].Updated = m.now()
			return vs[i].Properties, nil
		}
	}
	return driver.Properties{}, errNotFound
}

func (m *memDriver) ErrorCode(err error) driver.ErrorCode {
	switch {
	case errors.Is(err, errNotFound):
		return driver.NotFound
	case errors.Is(err, errCrashed):
		return driver.Unavailable
	}
	return driver.Unknown
}

func (m *memDriver) Close() error { return nil }

// newest returns a secret's newest value straight from memory, or "".
func (m *memDriver) newest(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.find(name, "")
	if err != nil {
		return ""
	}
	return s.Value
}

// all returns every version of a secret, oldest first.
func (m *memDriver) all(name string) []driver.Secret {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]driver.Secret(nil), m.secrets[name]...)
}
