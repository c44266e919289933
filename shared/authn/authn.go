// Package authn decides who a request comes from: the one validation path
// that the validate and score functions share for service callers, and that
// the management functions use for administrators.
//
// # Errors
//
// Failures are *apierror.Error values whose message is safe to return:
// Unauthorized (with the RFC 6750 challenge in [Challenge]), BadRequest for
// a malformed Authorization header, NotFound for an unknown service and
// Unavailable when the keys cannot be read. No error names a key.
package authn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/bearer"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keyring"
)

// Auth types reported in [Identity.AuthType].
const (
	TypeKey  = "key"
	TypeNone = "none"
)

// Identity is who a request to a service comes from.
type Identity struct {
	Service  string `json:"service"`
	Subject  string `json:"subject"`
	AuthType string `json:"authType"`
	KeyType  string `json:"keyType,omitempty"`
}

// Headers set by [SetHeaders]; each starts with [HeaderPrefix], compared
// without regard to case.
const (
	HeaderPrefix   = "x-modelauth-"
	HeaderService  = "X-ModelAuth-Service"
	HeaderSubject  = "X-ModelAuth-Subject"
	HeaderAuthType = "X-ModelAuth-Auth-Type"
	HeaderKeyType  = "X-ModelAuth-Key-Type"
)

// SetHeaders writes id as X-ModelAuth-* headers into h, replacing any.
func SetHeaders(h http.Header, id Identity) {
	h.Set(HeaderService, id.Service)
	h.Set(HeaderSubject, id.Subject)
	h.Set(HeaderAuthType, id.AuthType)
	if id.KeyType != "" {
		h.Set(HeaderKeyType, id.KeyType)
	} else {
		h.Del(HeaderKeyType)
	}
}

// Failure is an authentication failure: the error to answer with and the
// challenge for WWW-Authenticate ("" when none applies).
type Failure struct {
	Err       *apierror.Error
	Challenge string
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Write answers with the failure and its challenge; causes go to log.
func (f *Failure) Write(w http.ResponseWriter, log *slog.Logger) {
	if f.Challenge != "" {
		w.Header().Set("WWW-Authenticate", f.Challenge)
	}
	apierror.Write(w, log, f.Err)
}

func unauthorized(realm, code, msg string) *Failure {
	return &Failure{Err: apierror.New(apierror.Unauthorized, msg), Challenge: bearer.Challenge(realm, code, msg)}
}

// credentials returns the presented Bearer value, or the failure to answer.
func credentials(r *http.Request, realm string) (string, *Failure) {
	cred, err := bearer.Parse(r)
	switch {
	case errors.Is(err, bearer.ErrMissing):
		return "", unauthorized(realm, "", "bearer credentials are required")
	case err != nil:
		return "", &Failure{
			Err:       apierror.New(apierror.BadRequest, "malformed Authorization header"),
			Challenge: bearer.Challenge(realm, bearer.InvalidRequest, "malformed Authorization header"),
		}
	}
	return cred, nil
}

// Services authenticates callers of the configured services.
type Services struct {
	Config *config.Config
	Keys   *keyring.Ring
}

// Authenticate returns who r comes from, for service.
func (s *Services) Authenticate(ctx context.Context, service string, r *http.Request) (Identity, *Failure) {
	svc, ok := s.Config.Service(service)
	if !ok {
		return Identity{}, &Failure{Err: apierror.New(apierror.NotFound, "unknown service")}
	}
	id := Identity{Service: svc.Name}
	switch svc.AuthMode {
	case config.AuthNone:
		id.Subject, id.AuthType = "anonymous", TypeNone
		return id, nil
	case config.AuthKey:
		cred, f := credentials(r, svc.Name)
		if f != nil {
			return Identity{}, f
		}
		if strings.Contains(cred, ".") {
			return Identity{}, unauthorized(svc.Name, bearer.InvalidToken, "this service takes keys, not tokens")
		}
		kt, err := s.Keys.Validate(ctx, svc.Name, cred)
		if err != nil {
			return Identity{}, keyFailure(svc.Name, err)
		}
		id.Subject, id.AuthType, id.KeyType = "key:"+string(kt), TypeKey, string(kt)
		return id, nil
	default:
		// Token verification arrives with token auth; until then nothing
		// passes for a token-mode service.
		if _, f := credentials(r, svc.Name); f != nil {
			return Identity{}, f
		}
		return Identity{}, unauthorized(svc.Name, bearer.InvalidToken, "token verification is not available for this service")
	}
}

func keyFailure(realm string, err error) *Failure {
	switch {
	case errors.Is(err, keyring.ErrNoMatch):
		return unauthorized(realm, bearer.InvalidToken, "the key is not valid")
	case errors.Is(err, keyring.ErrDisabled):
		return unauthorized(realm, bearer.InvalidToken, "the key is not valid")
	default:
		return &Failure{Err: apierror.Wrap(apierror.Unavailable, "the keys cannot be read right now", err)}
	}
}

// Caller is an authenticated caller of a management function.
type Caller struct {
	Subject string
}

// AdminRealm is the realm of management challenges.
const AdminRealm = "modelauth"

// Admin authenticates administrators: callers presenting the
// administrator key.
type Admin struct {
	Keys *keyring.Ring
}

// Authenticate returns the caller of r, who must be an administrator.
func (a *Admin) Authenticate(ctx context.Context, r *http.Request) (Caller, *Failure) {
	cred, f := credentials(r, AdminRealm)
	if f != nil {
		return Caller{}, f
	}
	if err := a.Keys.ValidateAdmin(ctx, cred); err != nil {
		return Caller{}, keyFailure(AdminRealm, err)
	}
	return Caller{Subject: "admin"}, nil
}
