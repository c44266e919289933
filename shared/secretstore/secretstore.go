// Package secretstore is modelauth's portable secret store: one concrete
// [Store] over a small driver interface, with Key Vault's rules.
//
// Three drivers exist: filestore (the embedded default, files on local
// disk), azurekeyvault (Azure Key Vault) and memstore (in memory, for
// tests). All pass the conformance suite in secretstore/drivertest, which
// pins the rules that [Store] documents.
//
// # Rules
//
// Names match ^[0-9a-zA-Z-]{1,127}$ and are case-insensitive. Every write
// makes a new version; reading without a version returns the newest, and
// a listing of the versions comes in no promised order. A
// secret carries at most 15 tags, with names of at most 512 characters and
// values of at most 256. A value is at most 25 KiB. Updating properties with
// tags replaces the whole tag set. Reading a disabled version is refused
// ([Disabled]); an expired version is read like any other. There is no
// compare-and-swap.
//
// # Errors
//
// Every error returned by a [Store] method carries a code that [Code]
// reports, and never contains a secret value.
package secretstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelauth/modelauth/shared/secretstore/driver"
)

// Limits of Key Vault that every driver shares.
const (
	MaxTags         = 15
	MaxTagNameLen   = 512
	MaxTagValueLen  = 256
	MaxValueBytes   = 25 * 1024
	MaxNameLen      = 127
	maxVersionBytes = 64
)

var nameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

// Types shared with drivers.
type (
	Properties = driver.Properties
	Secret     = driver.Secret
	SetParams  = driver.SetParams
	Update     = driver.Update
)

// ErrorCode says what kind of failure an error is. It is the driver
// package's type, so that drivers report the codes that [Code] returns
// with no conversion.
type ErrorCode = driver.ErrorCode

// Error codes. The zero value, Unknown, is an unclassified failure.
const (
	Unknown = driver.Unknown
	// NotFound: the secret or version does not exist.
	NotFound = driver.NotFound
	// InvalidArgument: a name, tag or value breaks the rules.
	InvalidArgument = driver.InvalidArgument
	// PermissionDenied: the store refused the caller (401 or 403 in Key Vault).
	PermissionDenied = driver.PermissionDenied
	// Disabled: the version is disabled and cannot be read.
	Disabled = driver.Disabled
	// Conflict: the store refused the write because of its state.
	Conflict = driver.Conflict
	// Throttled: too many requests; try again later.
	Throttled = driver.Throttled
	// Unavailable: the store could not be reached or failed.
	Unavailable = driver.Unavailable
	// Unpublished: the write was made but the [WriteHook] failed.
	Unpublished = driver.Unpublished
)

// Error is the error type of every [Store] method.
type Error struct {
	Code ErrorCode
	Op   string // "get", "set", "list" or "update"
	Name string // the secret's name, never its value
	Err  error  // the driver's error, or nil for an argument error
	// RetryAfter is how long a Throttled store asked callers to wait, or 0.
	RetryAfter time.Duration
	msg        string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("secretstore: %s %s: %s", e.Op, e.Name, e.Code)
	if e.msg != "" {
		s += ": " + e.msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Code returns the code of an error from a [Store] method, or Unknown.
func Code(err error) ErrorCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Unknown
}

// Store is a secret store. It is safe for concurrent use.
type Store struct {
	d    driver.Driver
	hook WriteHook
}

// A Write is a successful write, as a [WriteHook] is told of it.
type Write struct {
	// Props are the written version's properties, as the store returned
	// them.
	Props Properties
	// Value is the value SetSecret wrote; "" for UpdateProperties, which
	// writes no value (Set false).
	Value string
	Set   bool
}

// WriteHook is told of every successful write of the Store, before the
// write returns. Its error is returned by the write, with code
// Unpublished: the version is written, but the hook's work after it (the
// change journal's record, package journal) is not done.
type WriteHook func(ctx context.Context, w Write) error

// Share returns another Store over the same driver, without a write hook:
// another instance's client of the same store (for tests of several
// instances over one in-memory store).
func (s *Store) Share() *Store { return &Store{d: s.d} }

// OnWrite sets the Store's write hook. It must be called before the Store
// is used.
func (s *Store) OnWrite(h WriteHook) { s.hook = h }

// written runs the write hook after a successful write.
func (s *Store) written(ctx context.Context, op, name string, w Write) error {
	if s.hook == nil {
		return nil
	}
	if err := s.hook(ctx, w); err != nil {
		return &Error{Code: Unpublished, Op: op, Name: name, Err: err, msg: "written, not yet published", RetryAfter: RetryAfterOf(err)}
	}
	return nil
}

// RetryAfterOf returns the Retry-After of the first *Error in err's chain
// that has one, or 0.
func RetryAfterOf(err error) time.Duration {
	for err != nil {
		var se *Error
		if !errors.As(err, &se) {
			return 0
		}
		if se.RetryAfter > 0 {
			return se.RetryAfter
		}
		err = se.Err
	}
	return 0
}

// RetryAfterHint is how long a caller told of e should wait before trying
// again (package apierror looks for this method): the store's Retry-After,
// or 1s for a write that is not yet published.
func (e *Error) RetryAfterHint() time.Duration {
	if e.RetryAfter > 0 {
		return e.RetryAfter
	}
	if e.Code == Unpublished {
		return time.Second
	}
	return 0
}

// New returns a Store over d. Drivers export Open functions that call it.
func New(d driver.Driver) *Store { return &Store{d: d} }

// SetSecret writes a new version of the secret, which becomes the newest.
func (s *Store) SetSecret(ctx context.Context, name string, p SetParams) (Properties, error) {
	const op = "set"
	lname, err := checkName(op, name)
	if err != nil {
		return Properties{}, err
	}
	if len(p.Value) > MaxValueBytes {
		return Properties{}, argError(op, name, fmt.Sprintf("value is %d bytes, more than %d", len(p.Value), MaxValueBytes))
	}
	if !utf8.ValidString(p.Value) {
		// Key Vault carries values as JSON strings: invalid UTF-8 would not
		// survive it.
		return Properties{}, argError(op, name, "value is not valid UTF-8")
	}
	if err := checkTags(p.Tags); err != nil {
		return Properties{}, argError(op, name, err.Error())
	}
	props, err := s.d.SetSecret(ctx, lname, p)
	if err != nil {
		return props, s.wrap(op, name, err)
	}
	return props, s.written(ctx, op, name, Write{Props: props, Value: p.Value, Set: true})
}

// GetSecret reads a version of the secret; version "" reads the newest.
// Returns an error with code NotFound for an unknown secret or version and
// Disabled for a disabled version.
func (s *Store) GetSecret(ctx context.Context, name, version string) (Secret, error) {
	const op = "get"
	lname, err := checkName(op, name)
	if err != nil {
		return Secret{}, err
	}
	if err := checkVersion(op, name, version); err != nil {
		return Secret{}, err
	}
	sec, err := s.d.GetSecret(ctx, lname, version)
	return sec, s.wrap(op, name, err)
}

// ListVersions returns the properties of every version, in no promised
// order: Key Vault promises none. The newest version is the one
// [Store.GetSecret] with version "" reads; versions written in the same
// second have the same Created time, so Created alone cannot order them.
func (s *Store) ListVersions(ctx context.Context, name string) ([]Properties, error) {
	const op = "list"
	lname, err := checkName(op, name)
	if err != nil {
		return nil, err
	}
	props, err := s.d.ListVersions(ctx, lname)
	return props, s.wrap(op, name, err)
}

// UpdateProperties changes a version's properties; version "" means the
// newest. Non-nil tags replace the whole tag set.
func (s *Store) UpdateProperties(ctx context.Context, name, version string, u Update) (Properties, error) {
	const op = "update"
	lname, err := checkName(op, name)
	if err != nil {
		return Properties{}, err
	}
	if err := checkVersion(op, name, version); err != nil {
		return Properties{}, err
	}
	if err := checkTags(u.Tags); err != nil {
		return Properties{}, argError(op, name, err.Error())
	}
	props, err := s.d.UpdateProperties(ctx, lname, version, u)
	if err != nil {
		return props, s.wrap(op, name, err)
	}
	return props, s.written(ctx, op, name, Write{Props: props})
}

// Close releases the driver.
func (s *Store) Close() error { return s.d.Close() }

func (s *Store) wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	code := s.d.ErrorCode(err)
	if code == Unknown && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		code = Unavailable
	}
	e := &Error{Code: code, Op: op, Name: name, Err: err}
	if ra, ok := s.d.(interface{ RetryAfter(error) time.Duration }); ok && code == Throttled {
		e.RetryAfter = ra.RetryAfter(err)
	}
	return e
}

func argError(op, name, msg string) error {
	return &Error{Code: InvalidArgument, Op: op, Name: name, msg: msg}
}

func checkName(op, name string) (string, error) {
	if !nameRE.MatchString(name) {
		shown := name
		if len(shown) > MaxNameLen || !utf8.ValidString(shown) {
			shown = "(invalid name)"
		}
		return "", argError(op, shown, "name must match ^[0-9a-zA-Z-]{1,127}$")
	}
	return strings.ToLower(name), nil
}

func checkVersion(op, name, version string) error {
	if len(version) > maxVersionBytes || strings.ContainsAny(version, "/\\.") {
		return argError(op, name, "malformed version")
	}
	return nil
}

func checkTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return fmt.Errorf("%d tags, more than %d", len(tags), MaxTags)
	}
	for k, v := range tags {
		if k == "" || utf8.RuneCountInString(k) > MaxTagNameLen {
			return fmt.Errorf("tag name must have 1 to %d characters", MaxTagNameLen)
		}
		if utf8.RuneCountInString(v) > MaxTagValueLen {
			return fmt.Errorf("tag %q: value longer than %d characters", k, MaxTagValueLen)
		}
	}
	return nil
}

// IsThrottled reports whether err is a throttled store's (Key Vault's 429),
// which concerns every read of the store, not only the one that failed,
// and the Retry-After it named (0: none). It is what shared/cache.NewGate
// takes.
func IsThrottled(err error) (retryAfter time.Duration, ok bool) {
	var se *Error
	if errors.As(err, &se) && se.Code == Throttled {
		return se.RetryAfter, true
	}
	return 0, false
}
