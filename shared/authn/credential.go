package authn

import (
	"log/slog"

	"github.com/modelauth/modelauth/shared/bearer"
)

// Credential is the Bearer credential a caller presents, as the edge read
// it from the Authorization header: an HTTP function from its request, a
// Lambda authorizer from its event. It holds the credential, or the reason
// there is none: missing or malformed. The zero Credential is a missing
// one. Neither its String nor its LogValue shows the credential.
type Credential struct {
	// value is the credential when err is nil: not yet checked against
	// the b64token syntax, which Err checks (see [bearer.SplitValues]).
	value string
	err   error // bearer.ErrMissing or bearer.ErrMalformed
}

// FromHeader returns the credential of a request's Authorization header
// values: all of them, as [net/http.Header] holds them
// (r.Header["Authorization"]) or as an event lists them. No value, an empty
// one or another scheme than Bearer is a missing credential, which
// [Services.Authenticate] and [Callers.Authenticate] answer 401 with a
// bare challenge; more than one value, or Bearer credentials that break
// RFC 6750's syntax, a malformed one, which they answer 400
// invalid_request. See [bearer.ParseValues].
func FromHeader(values []string) Credential {
	v, err := bearer.SplitValues(values)
	return Credential{value: v, err: err}
}

// Err returns nil for a presented credential, else [bearer.ErrMissing] or
// [bearer.ErrMalformed].
func (c Credential) Err() error {
	if _, err := c.split(); err != nil {
		return err
	}
	if !bearer.IsB64Token(c.value) {
		return bearer.ErrMalformed
	}
	return nil
}

// split returns the credential and the error Err would give but for the
// b64token syntax, which is left unchecked.
func (c Credential) split() (string, error) {
	if c.err == nil && c.value == "" {
		return "", bearer.ErrMissing
	}
	return c.value, c.err
}

// String describes c without the credential: "Bearer [redacted]",
// "missing" or "malformed".
func (c Credential) String() string {
	switch c.Err() {
	case nil:
		return "Bearer [redacted]"
	case bearer.ErrMalformed:
		return "malformed"
	}
	return "missing"
}

// GoString is String, so that %#v does not show the credential either.
func (c Credential) GoString() string { return "authn.Credential(" + c.String() + ")" }

// LogValue is String, for [log/slog].
func (c Credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

var _ slog.LogValuer = Credential{}
