package authn

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/bearer"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/oidc"
)

// AdminRealm is the realm of management challenges.
const AdminRealm = "modelauth"

// AdminSubject is the subject of a caller presenting the administrator key.
const AdminSubject = "admin"

// Right is what a management call needs, as app roles grant it
// (docs/design.md section 1).
type Right int

// Rights.
const (
	// ReadKeys: get_keys. Roles Keys.Read.All, Keys.Read.<service>, or
	// Keys.Admin (regen_key answers the keys anyway).
	ReadKeys Right = iota
	// AdminKeys: regen_key, rotate, and the signing keys' rotate and
	// revoke. Role Keys.Admin.
	AdminKeys
	// GetTokens: get_token. Roles Tokens.Get.All or Tokens.Get.<service>.
	GetTokens
)

// App roles.
const (
	RoleKeysReadAll  = "Keys.Read.All"
	RoleKeysAdmin    = "Keys.Admin"
	RoleTokensGetAll = "Tokens.Get.All"
)

// Caller is an authenticated caller of a management function.
type Caller struct {
	Subject string
	admin   bool     // the administrator key: every right
	roles   []string // app roles of a caller token
}

// Can reports whether the caller has right for service ("" for rights
// that concern no service, such as the signing keys).
func (c Caller) Can(right Right, service string) bool {
	if c.admin {
		return true
	}
	has := func(role string) bool { return slices.Contains(c.roles, role) }
	switch right {
	case ReadKeys:
		return has(RoleKeysAdmin) || has(RoleKeysReadAll) || service != "" && has("Keys.Read."+service)
	case AdminKeys:
		return has(RoleKeysAdmin)
	case GetTokens:
		return has(RoleTokensGetAll) || service != "" && has("Tokens.Get."+service)
	}
	return false
}

// RoleFor names the narrowest role that grants right for service, for
// error messages.
func RoleFor(right Right, service string) string {
	switch right {
	case ReadKeys:
		return "Keys.Read." + service + " or " + RoleKeysReadAll
	case GetTokens:
		return "Tokens.Get." + service + " or " + RoleTokensGetAll
	}
	return RoleKeysAdmin
}

// Callers authenticates the callers of the management functions: the
// administrator key (unless AdminKeyDisabled), or a token of an external
// OIDC issuer for one of Audiences. Its fields must not change once in use.
type Callers struct {
	Keys             *keyring.Ring
	AdminKeyDisabled bool
	// OIDC verifies caller tokens; nil refuses them.
	OIDC      ExternalVerifier
	Audiences []string
}

// Authenticate returns the caller who presents cred.
func (c *Callers) Authenticate(ctx context.Context, cred Credential) (Caller, *Failure) {
	raw, f := credentials(cred, AdminRealm)
	if f != nil {
		return Caller{}, f
	}
	if strings.IndexByte(raw, '.') < 0 {
		if c.AdminKeyDisabled {
			return Caller{}, unauthorized(AdminRealm, bearer.InvalidToken, "the administrator key is switched off: present a token of a configured issuer")
		}
		if err := c.Keys.ValidateAdmin(ctx, raw); err != nil {
			return Caller{}, keyFailure(AdminRealm, err)
		}
		return Caller{Subject: AdminSubject, admin: true}, nil
	}
	if c.OIDC == nil || len(c.Audiences) == 0 {
		return Caller{}, unauthorized(AdminRealm, bearer.InvalidToken, "no token issuer is configured for callers: use the administrator key")
	}
	claims, err := c.OIDC.Verify(ctx, raw, c.Audiences)
	if err != nil {
		if errors.Is(err, oidc.ErrUnavailable) {
			return Caller{}, &Failure{Err: apierror.Wrap(apierror.Unavailable, "the issuer's keys cannot be read right now", err)}
		}
		return Caller{}, tokenFailure(AdminRealm, err)
	}
	return Caller{Subject: claims.Subject, roles: claims.Roles}, nil
}

// Authorize authenticates the caller who presents cred and checks right
// for service.
func (c *Callers) Authorize(ctx context.Context, cred Credential, right Right, service string) (Caller, *Failure) {
	caller, f := c.Authenticate(ctx, cred)
	if f != nil {
		return Caller{}, f
	}
	if !caller.Can(right, service) {
		msg := "the caller lacks the role " + RoleFor(right, service)
		return Caller{}, &Failure{
			Err:       apierror.New(apierror.Forbidden, msg),
			Challenge: bearer.Challenge(AdminRealm, bearer.InsufficientScope, msg),
		}
	}
	return caller, nil
}
