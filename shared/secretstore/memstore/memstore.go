// Package memstore is an in-memory secret store driver, for tests. It keeps
// every version of every secret in memory with Key Vault's semantics, and
// passes the conformance suite in secretstore/drivertest, so code tested
// against it sees what it would see against filestore or Key Vault:
// case-insensitive names, a new version on every write, the newest read by
// default, whole-second times, disabled versions refused. Versions are
// listed newest first unless [Options.ListOrder] says otherwise; Key Vault
// promises no order, and callers must not rely on one.
//
// # Hooks
//
// A test that needs more than a store sets [Options]: Now gives the times
// recorded in Created and Updated, and BeforeFn runs before every call, to
// count calls, pause or reorder callers, or fail a call. An error BeforeFn
// returns fails the call, which then changes nothing; an [*Error] carries
// the code (and, when throttled, the Retry-After) that the store reports
// for it:
//
//	var down atomic.Bool
//	var gets atomic.Int64
//	store := memstore.Open(&memstore.Options{
//		BeforeFn: func(ctx context.Context, op, name string) error {
//			if op == memstore.OpGet {
//				gets.Add(1)
//			}
//			if down.Load() {
//				return &memstore.Error{Code: secretstore.Unavailable}
//			}
//			return nil
//		},
//	})
//
// A test reads what the store holds through the [secretstore.Store] itself;
// BeforeFn sees those reads too, with the test's context, by which it can
// tell them apart.
//
// # Errors
//
// Errors wrap package driver's common sentinels ([driver.ErrNotFound],
// [driver.ErrDisabled], [driver.ErrInvalidArgument], [driver.ErrClosed]),
// which [driver.CommonCode] classifies; an [*Error] from BeforeFn to its Code; anything else to Unknown (and a
// context's error to Unavailable, by the portable store). No error contains
// a secret value.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
)

// The operations that [Options.BeforeFn] is told about. They are the Op
// of a [secretstore.Error] for the same call.
const (
	OpSet    = "set"    // SetSecret
	OpGet    = "get"    // GetSecret
	OpList   = "list"   // ListVersions
	OpUpdate = "update" // UpdateProperties
)

var (
	nameRE    = regexp.MustCompile(`^[0-9a-z-]{1,127}$`)
	versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// Options are the optional settings of [Open]. A nil *Options means the
// defaults.
type Options struct {
	// Now returns the current time for the Created and Updated
	// properties, which are kept in whole seconds, UTC. Default time.Now.
	Now func() time.Time

	// BeforeFn, if set, is called before every call of the driver, with
	// the call's context, its operation (OpSet, OpGet, OpList or OpUpdate)
	// and the secret's name in lower case. If it returns an error, the call
	// returns that error (which the portable store wraps) and changes
	// nothing. It is called without any lock held: it may block, to pause
	// or reorder callers, and it may call the store. Calls made at once
	// call it at once.
	BeforeFn func(ctx context.Context, op, name string) error

	// ListOrder is the order ListVersions lists versions in; default
	// newest first. Key Vault promises no order: tests set the others to
	// check that nothing depends on one.
	ListOrder driver.ListOrder
	// ListSeed seeds the generator of [driver.RandomOrder]: one seed
	// gives one sequence of listings.
	ListSeed uint64
}

// Error is an error for [Options.BeforeFn] to return: the driver reports
// Code for it, and RetryAfter when Code is Throttled.
type Error struct {
	Code secretstore.ErrorCode
	// RetryAfter is how long a Throttled store asks callers to wait; it
	// becomes the RetryAfter of the [secretstore.Error].
	RetryAfter time.Duration
	// Err is the cause, if any, for errors.Is and errors.As.
	Err error
}

func (e *Error) Error() string {
	s := e.Code.String()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Open returns a new, empty store. It is safe for concurrent use.
func Open(opts *Options) *secretstore.Store {
	return secretstore.New(open(opts))
}

var _ driver.Driver = (*memDriver)(nil)

type memDriver struct {
	now    func() time.Time
	before func(ctx context.Context, op, name string) error

	order driver.ListOrder

	mu      sync.Mutex
	rng     *rand.Rand // RandomOrder's generator, under mu
	closed  bool
	secrets map[string][]*version // name -> versions, oldest first
}

// version is one stored version. Its fields change only under mu, and
// callers get copies.
type version struct {
	props driver.Properties
	value string
}

func open(opts *Options) *memDriver {
	d := &memDriver{now: time.Now, secrets: make(map[string][]*version)}
	if opts != nil {
		if opts.Now != nil {
			d.now = opts.Now
		}
		d.before = opts.BeforeFn
		d.order = opts.ListOrder
		d.rng = rand.New(rand.NewPCG(opts.ListSeed, opts.ListSeed^0x6a09e667f3bcc908))
	}
	return d
}

// SetSecret writes a new version, which becomes the newest.
func (d *memDriver) SetSecret(ctx context.Context, name string, p driver.SetParams) (_ driver.Properties, err error) {
	defer wrap(&err, OpSet, name)
	if err := d.enter(ctx, OpSet, name); err != nil {
		return driver.Properties{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return driver.Properties{}, driver.ErrClosed
	}
	now := driver.WholeSecond(d.now())
	tags := maps.Clone(p.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	v := &version{
		props: driver.Properties{
			Name:        name,
			Version:     d.newVersionLocked(name),
			ContentType: p.ContentType,
			Enabled:     p.Enabled,
			Expires:     driver.WholeSecondPtr(p.Expires),
			NotBefore:   driver.WholeSecondPtr(p.NotBefore),
			Created:     now,
			Updated:     now,
			Tags:        tags,
		},
		value: p.Value,
	}
	d.secrets[name] = append(d.secrets[name], v)
	return v.properties(), nil
}

// GetSecret reads one version; version "" means the newest.
func (d *memDriver) GetSecret(ctx context.Context, name, ver string) (_ driver.Secret, err error) {
	defer wrap(&err, OpGet, name)
	if err := d.enter(ctx, OpGet, name); err != nil {
		return driver.Secret{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.findLocked(name, ver)
	if err != nil {
		return driver.Secret{}, err
	}
	if !v.props.Enabled {
		return driver.Secret{}, fmt.Errorf("version %q: %w", v.props.Version, driver.ErrDisabled)
	}
	return driver.Secret{Properties: v.properties(), Value: v.value}, nil
}

// ListVersions returns the properties of every version, in the order
// [Options.ListOrder] sets.
func (d *memDriver) ListVersions(ctx context.Context, name string) (_ []driver.Properties, err error) {
	defer wrap(&err, OpList, name)
	if err := d.enter(ctx, OpList, name); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, driver.ErrClosed
	}
	vs := d.secrets[name]
	if len(vs) == 0 {
		return nil, driver.ErrNotFound
	}
	out := make([]driver.Properties, 0, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		out = append(out, vs[i].properties())
	}
	switch d.order {
	case driver.OldestFirst:
		slices.Reverse(out)
	case driver.VersionIDOrder:
		slices.SortFunc(out, func(a, b driver.Properties) int { return strings.Compare(a.Version, b.Version) })
	case driver.RandomOrder:
		d.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out, nil
}

// UpdateProperties changes one version's properties; version "" means the
// newest.
func (d *memDriver) UpdateProperties(ctx context.Context, name, ver string, u driver.Update) (_ driver.Properties, err error) {
	defer wrap(&err, OpUpdate, name)
	if err := d.enter(ctx, OpUpdate, name); err != nil {
		return driver.Properties{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.findLocked(name, ver)
	if err != nil {
		return driver.Properties{}, err
	}
	if u.Enabled != nil {
		v.props.Enabled = *u.Enabled
	}
	if u.Expires != nil {
		v.props.Expires = driver.WholeSecondPtr(u.Expires)
	}
	if u.NotBefore != nil {
		v.props.NotBefore = driver.WholeSecondPtr(u.NotBefore)
	}
	if u.ContentType != nil {
		v.props.ContentType = *u.ContentType
	}
	if u.Tags != nil {
		v.props.Tags = maps.Clone(u.Tags)
	}
	v.props.Updated = driver.WholeSecond(d.now())
	return v.properties(), nil
}

// ErrorCode classifies an error returned by the other methods.
func (d *memDriver) ErrorCode(err error) driver.ErrorCode {
	if e := (*Error)(nil); errors.As(err, &e) {
		return e.Code
	}
	code, _ := driver.CommonCode(err) // else a context's error: the portable store reports it as Unavailable
	return code
}

// RetryAfter returns the RetryAfter of an [*Error] in err, or 0.
func (d *memDriver) RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// Close marks the store closed; later calls fail with [driver.ErrClosed]. The
// versions are dropped.
func (d *memDriver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.secrets = nil
	return nil
}

// enter runs the hook and the checks that every call makes first.
func (d *memDriver) enter(ctx context.Context, op, name string) error {
	if d.before != nil {
		if err := d.before(ctx, op, name); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !nameRE.MatchString(name) {
		// The portable store lower-cases and checks names; this guards the
		// raw driver, as the other drivers guard theirs.
		return fmt.Errorf("%w: malformed secret name", driver.ErrInvalidArgument)
	}
	return nil
}

// findLocked returns a version of a secret, or its newest for "".
func (d *memDriver) findLocked(name, ver string) (*version, error) {
	if d.closed {
		return nil, driver.ErrClosed
	}
	vs := d.secrets[name]
	if len(vs) == 0 {
		return nil, driver.ErrNotFound
	}
	if ver == "" {
		return vs[len(vs)-1], nil
	}
	ver = strings.ToLower(ver)
	if versionRE.MatchString(ver) {
		for _, v := range vs {
			if v.props.Version == ver {
				return v, nil
			}
		}
	}
	return nil, fmt.Errorf("version %q: %w", ver, driver.ErrNotFound)
}

// newVersionLocked returns a new version id, 32 lower-case hexadecimal
// characters as Key Vault's, unique within the secret.
func (d *memDriver) newVersionLocked(name string) string {
	for {
		if id := driver.NewVersionID(); !d.hasVersionLocked(name, id) {
			return id
		}
	}
}

func (d *memDriver) hasVersionLocked(name, id string) bool {
	for _, v := range d.secrets[name] {
		if v.props.Version == id {
			return true
		}
	}
	return false
}

// properties returns a copy of v's properties that shares nothing with v.
func (v *version) properties() driver.Properties {
	p := v.props
	p.Tags = maps.Clone(p.Tags)
	if p.Tags == nil {
		p.Tags = map[string]string{}
	}
	p.Expires = driver.CloneTime(p.Expires)
	p.NotBefore = driver.CloneTime(p.NotBefore)
	return p
}

// wrap gives an error from a driver method its context. The secret's name
// is shown only if it is a valid one; values are never shown.
func wrap(err *error, op, name string) {
	if *err == nil {
		return
	}
	if !nameRE.MatchString(name) {
		name = "(invalid name)"
	}
	*err = fmt.Errorf("memstore: %s %s: %w", op, name, *err)
}
