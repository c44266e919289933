package driver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors that drivers holding the secrets themselves (the file
// store, the in-memory store) return; [CommonCode] classifies them. A
// driver over a service (Key Vault) classifies that service's errors
// instead.
var (
	// ErrNotFound: the secret or the version does not exist.
	ErrNotFound = errors.New("not found")
	// ErrDisabled: the version is disabled and cannot be read.
	ErrDisabled = errors.New("version is disabled")
	// ErrInvalidArgument: a name the driver cannot store (the portable
	// store refuses it before the driver sees it).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store is closed")
)

// CommonCode classifies the sentinel errors above, and reports ok false
// for any other error.
func CommonCode(err error) (code ErrorCode, ok bool) {
	switch {
	case errors.Is(err, ErrNotFound):
		return NotFound, true
	case errors.Is(err, ErrDisabled):
		return Disabled, true
	case errors.Is(err, ErrInvalidArgument):
		return InvalidArgument, true
	case errors.Is(err, ErrClosed):
		return Unavailable, true
	}
	return Unknown, false
}

// NewVersionID returns a new version id: 32 lower-case hexadecimal
// characters, as Key Vault's.
func NewVersionID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// WholeSecond is t as Key Vault keeps times: whole seconds, in UTC.
func WholeSecond(t time.Time) time.Time { return t.Truncate(time.Second).UTC() }

// WholeSecondPtr is [WholeSecond] of *t, or nil.
func WholeSecondPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	w := WholeSecond(*t)
	return &w
}

// CloneTime returns a copy of *t, or nil, that shares nothing with t.
func CloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// ListOrder is an order in which a driver that lets its user choose (the
// in-memory store, and the Key Vault test server through its own setting)
// lists versions. Key Vault promises no order, so neither does
// [Driver.ListVersions]: these orders let tests check that no caller
// depends on one.
type ListOrder int

// Listing orders.
const (
	// NewestFirst lists versions in reverse creation order (the zero
	// value: what the in-memory store does by default).
	NewestFirst ListOrder = iota
	// OldestFirst lists versions in creation order.
	OldestFirst
	// VersionIDOrder lists versions by their id, as strings: unrelated to
	// their age.
	VersionIDOrder
	// RandomOrder lists versions in an order drawn anew for every listing
	// from a seeded generator.
	RandomOrder
)

// ListOrders are every [ListOrder].
var ListOrders = []ListOrder{NewestFirst, OldestFirst, VersionIDOrder, RandomOrder}

// String returns the order's name, such as "version-id".
func (o ListOrder) String() string {
	switch o {
	case NewestFirst:
		return "newest-first"
	case OldestFirst:
		return "oldest-first"
	case VersionIDOrder:
		return "version-id"
	case RandomOrder:
		return "random"
	}
	return fmt.Sprintf("ListOrder(%d)", int(o))
}
