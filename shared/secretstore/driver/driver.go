// Package driver defines the interface that secret store drivers implement.
//
// Application code does not use this package: it uses the portable
// [github.com/modelauth/modelauth/shared/secretstore.Store], which checks
// arguments against the Key Vault rules before a driver sees them. A driver
// therefore receives only names, tags and values that are already valid, and
// names that are already lower case.
package driver

import (
	"context"
	"fmt"
	"time"
)

// Properties describe one version of a secret, without its value.
type Properties struct {
	// Name is the secret's name in lower case.
	Name string
	// Version identifies this version; drivers choose its form
	// (Key Vault uses 32 hexadecimal characters).
	Version     string
	ContentType string
	Enabled     bool
	// Expires and NotBefore are nil when unset.
	Expires   *time.Time
	NotBefore *time.Time
	Created   time.Time
	Updated   time.Time
	// Tags is never nil on a returned value.
	Tags map[string]string
}

// Secret is one version of a secret with its value.
type Secret struct {
	Properties
	Value string
}

// SetParams is a new version to write.
type SetParams struct {
	Value       string
	ContentType string
	// Enabled false writes a disabled version. Key Vault's default is true.
	Enabled   bool
	Expires   *time.Time
	NotBefore *time.Time
	Tags      map[string]string
}

// Update changes the properties of one version. A nil field is left as it
// is; a non-nil Tags replaces the whole tag set.
type Update struct {
	Enabled     *bool
	Expires     *time.Time
	NotBefore   *time.Time
	ContentType *string
	Tags        map[string]string
}

// ErrorCode says what kind of failure an error is. It is the one
// definition of the codes: the portable store re-exports it as
// [github.com/modelauth/modelauth/shared/secretstore.ErrorCode], with the
// same constants, so a driver's ErrorCode reports the very code that
// secretstore.Code returns.
type ErrorCode int

// Error codes. The zero value, Unknown, is an unclassified failure.
const (
	Unknown ErrorCode = iota
	// NotFound: the secret or version does not exist.
	NotFound
	// InvalidArgument: a name, tag or value breaks the rules.
	InvalidArgument
	// PermissionDenied: the store refused the caller (401 or 403 in Key Vault).
	PermissionDenied
	// Disabled: the version is disabled and cannot be read.
	Disabled
	// Conflict: the store refused the write because of its state.
	Conflict
	// Throttled: too many requests; try again later.
	Throttled
	// Unavailable: the store could not be reached or failed.
	Unavailable
	// Unpublished: the write was made, but what must follow it (the
	// store's write hook: the change journal's record) failed; callers
	// that tell users of the write must say it is not yet in effect.
	Unpublished
)

var codeNames = map[ErrorCode]string{
	Unknown:          "Unknown",
	NotFound:         "NotFound",
	InvalidArgument:  "InvalidArgument",
	PermissionDenied: "PermissionDenied",
	Disabled:         "Disabled",
	Conflict:         "Conflict",
	Throttled:        "Throttled",
	Unavailable:      "Unavailable",
	Unpublished:      "Unpublished",
}

// String returns the code's name, such as "NotFound".
func (c ErrorCode) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("ErrorCode(%d)", int(c))
}

// Driver is a secret store with Key Vault's semantics. Implementations must
// be safe for concurrent use.
type Driver interface {
	// SetSecret writes a new version, which becomes the newest.
	SetSecret(ctx context.Context, name string, p SetParams) (Properties, error)
	// GetSecret reads one version; version "" means the newest. Reading a
	// disabled version fails with an error whose code is Disabled. An
	// expired version is read like any other.
	GetSecret(ctx context.Context, name, version string) (Secret, error)
	// ListVersions returns the properties of every version of a secret,
	// in no promised order (Key Vault promises none): callers learn the
	// newest from GetSecret with version "", and anything else from the
	// properties. An unknown secret gives an error whose code is NotFound.
	ListVersions(ctx context.Context, name string) ([]Properties, error)
	// UpdateProperties changes one version's properties; version "" means
	// the newest.
	UpdateProperties(ctx context.Context, name, version string, u Update) (Properties, error)
	// ErrorCode classifies an error returned by the other methods.
	ErrorCode(err error) ErrorCode
	// Close releases the driver's resources.
	Close() error
}
