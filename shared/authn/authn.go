// Package authn decides who a credential comes from: the one validation
// path that the validate and score functions and the Lambda authorizers
// share for service callers (keys, the app's tokens, Microsoft Entra
// tokens, each only for services of that mode), and that the management
// functions use for their callers (the administrator key, or tokens of
// external OIDC issuers with app roles).
//
// The edge reads the credential: an HTTP function from its request's
// Authorization header, a Lambda authorizer from its event, each with
// [FromHeader]. authn never sees the request.
//
// # Errors
//
// Failures are [*Failure] values around an *apierror.Error whose message
// is safe to return: Unauthorized (with the RFC 6750 challenge),
// BadRequest for a malformed Authorization header, Forbidden for a caller
// without the right, NotFound for an unknown service and Unavailable when
// keys cannot be read. A Failure is an [apierror.Challenger]: apierror.Write
// answers it with its challenge. No error names a key or repeats a token.
package authn

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/bearer"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/oidc"
	"github.com/modelauth/modelauth/shared/tokencache"
)

// Auth types reported in [Identity.AuthType].
const (
	TypeKey   = "key"
	TypeToken = "token"
	TypeEntra = "entra"
	TypeNone  = "none"
)

// Identity is who a request to a service comes from.
type Identity struct {
	Service  string `json:"service"`
	Subject  string `json:"subject"`
	AuthType string `json:"authType"`
	KeyType  string `json:"keyType,omitempty"`

	// enc, when set, holds the identity's headers and JSON, prepared once
	// for the identities a configuration can produce.
	enc *encoded
}

type encoded struct {
	// headers holds the values of X-ModelAuth-Service, -Subject,
	// -Auth-Type and -Key-Type; SetHeaders gives each as a full slice of
	// one, so that an append copies.
	headers [4]string
	json    []byte // the JSON and a newline
}

// newEncoded prepares id in two allocations: every token verified makes
// one.
func newEncoded(id Identity) *encoded {
	e := &encoded{headers: [4]string{id.Service, id.Subject, id.AuthType, cmp.Or(id.KeyType, NotApplicable)}}
	size := len(`{"service":"","subject":"","authType":"","keyType":""}`+"\n") + len(id.Service) + len(id.Subject) + len(id.AuthType) + len(id.KeyType)
	e.json = append(id.AppendJSON(make([]byte, 0, size)), '\n')
	return e
}

func (e *encoded) header(i int) []string { return e.headers[i : i+1 : i+1] }

// NotApplicable is the value of an identity header that does not apply to
// the identity, such as X-ModelAuth-Key-Type for a token: every header is
// always sent, since intermediaries may drop an empty one, and a gateway
// that copies a missing one may send its own placeholder text (Caddy 2.6's
// forward_auth does).
const NotApplicable = "none"

// Headers set by [SetHeaders]; each starts with [HeaderPrefix], compared
// without regard to case.
const (
	HeaderPrefix   = "x-modelauth-"
	HeaderService  = "X-ModelAuth-Service"
	HeaderSubject  = "X-ModelAuth-Subject"
	HeaderAuthType = "X-ModelAuth-Auth-Type"
	HeaderKeyType  = "X-ModelAuth-Key-Type"
)

// The canonical forms of the header names, as net/http stores them: set
// directly, they skip canonicalisation on every request.
var (
	canonService  = http.CanonicalHeaderKey(HeaderService)
	canonSubject  = http.CanonicalHeaderKey(HeaderSubject)
	canonAuthType = http.CanonicalHeaderKey(HeaderAuthType)
	canonKeyType  = http.CanonicalHeaderKey(HeaderKeyType)
)

// SetHeaders writes id as X-ModelAuth-* headers into h, replacing any:
// every one of them, with [NotApplicable] for a value the identity lacks.
func SetHeaders(h http.Header, id Identity) {
	e := id.enc
	if e == nil {
		e = newEncoded(id)
	}
	h[canonService] = e.header(0)
	h[canonSubject] = e.header(1)
	h[canonAuthType] = e.header(2)
	h[canonKeyType] = e.header(3)
}

// Body returns id as validate answers it: its JSON and a newline. For an
// identity the app built (as [Services.Authenticate] returns them) it is
// encoded once and shared: the caller must not change it.
func (id Identity) Body() []byte {
	if id.enc != nil {
		return id.enc.json[:len(id.enc.json):len(id.enc.json)]
	}
	return append(id.AppendJSON(nil), '\n')
}

// AppendJSON appends id as JSON, as encoding/json would write it, to b.
func (id Identity) AppendJSON(b []byte) []byte {
	if id.enc != nil {
		return append(b, id.enc.json[:len(id.enc.json)-1]...)
	}
	if !plainJSON(id.Service) || !plainJSON(id.Subject) || !plainJSON(id.AuthType) || !plainJSON(id.KeyType) {
		data, err := json.Marshal(id) // enc is unexported: not encoded
		if err != nil {               // cannot happen: all fields are strings
			panic(err)
		}
		return append(b, data...)
	}
	b = append(b, `{"service":"`...)
	b = append(b, id.Service...)
	b = append(b, `","subject":"`...)
	b = append(b, id.Subject...)
	b = append(b, `","authType":"`...)
	b = append(b, id.AuthType...)
	if id.KeyType != "" {
		b = append(b, `","keyType":"`...)
		b = append(b, id.KeyType...)
	}
	return append(b, `"}`...)
}

// plainJSON reports whether encoding/json writes s between quotes as it is.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// Failure is an authentication failure: the error to answer with and the
// challenge for WWW-Authenticate ("" when none applies).
type Failure struct {
	Err       *apierror.Error
	Challenge string
}

var _ apierror.Challenger = (*Failure)(nil)

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// WWWAuthenticate returns the challenge: f is an [apierror.Challenger].
func (f *Failure) WWWAuthenticate() string { return f.Challenge }

// Write answers with the failure and its challenge, as [apierror.Write]
// does; causes go to log.
func (f *Failure) Write(w http.ResponseWriter, log *slog.Logger) {
	apierror.Write(w, log, f)
}

func unauthorized(realm, code, msg string) *Failure {
	return &Failure{Err: apierror.New(apierror.Unauthorized, msg), Challenge: bearer.Challenge(realm, code, msg)}
}

// credentials returns the presented Bearer value, or the failure to answer.
func credentials(c Credential, realm string) (string, *Failure) {
	return credentialFailure(c.value, c.Err(), realm)
}

// unsyntaxed is credentials without the b64token check (see
// [bearer.SplitValues]): the caller must call syntax before it answers
// anything but a token that passed every check before.
func unsyntaxed(c Credential, realm string) (string, *Failure) {
	v, err := c.split()
	return credentialFailure(v, err, realm)
}

// syntax returns the failure of a credential that breaks the b64token
// syntax, or nil.
func syntax(c Credential, realm string) *Failure {
	_, f := credentials(c, realm)
	return f
}

func credentialFailure(v string, err error, realm string) (string, *Failure) {
	switch {
	case errors.Is(err, bearer.ErrMissing):
		return "", unauthorized(realm, "", "bearer credentials are required")
	case err != nil:
		return "", &Failure{
			Err:       apierror.New(apierror.BadRequest, "malformed Authorization header"),
			Challenge: bearer.Challenge(realm, bearer.InvalidRequest, "malformed Authorization header"),
		}
	}
	return v, nil
}

// ExternalVerifier verifies tokens of external OpenID Connect issuers:
// [oidc.Verifier].
type ExternalVerifier interface {
	Verify(ctx context.Context, raw string, audiences []string) (*oidc.Claims, error)
}

var _ ExternalVerifier = (*oidc.Verifier)(nil)

// Services authenticates callers of the configured services. Its fields
// must not change after the first call of Authenticate.
type Services struct {
	Config *config.Config
	Keys   *keyring.Ring
	// Tokens verifies the app's tokens for token-mode services; nil
	// refuses them.
	Tokens *jwtauth.Authority
	// Entra verifies Microsoft Entra tokens for entra-mode services; nil
	// refuses them.
	Entra ExternalVerifier
	// TokenCacheSize bounds the verified-token cache, at least 1
	// (TOKEN_CACHE_SIZE, default tokencache.DefaultSize).
	TokenCacheSize int
	// Now is the clock of the token cache; nil means time.Now.
	Now func() time.Time

	once    sync.Once
	entries map[string]*entry
	tokens  *tokencache.Cache[Identity]
}

// entry is what Authenticate needs of one service, looked up once.
type entry struct {
	svc       config.Service
	keys      keyring.ServiceKeys
	audiences []string // entra mode
	// ids are the identities the service can produce, with their headers
	// and JSON prepared: anonymous for mode none, or Primary and Secondary.
	ids map[string]Identity
}

func (s *Services) init() {
	s.once.Do(func() {
		size := s.TokenCacheSize
		s.tokens = tokencache.New[Identity](size, s.Now)
		s.entries = make(map[string]*entry, len(s.Config.Services))
		for _, svc := range s.Config.Services {
			e := &entry{svc: svc, ids: map[string]Identity{}}
			switch svc.AuthMode {
			case config.AuthNone:
				e.ids[TypeNone] = Identity{Service: svc.Name, Subject: "anonymous", AuthType: TypeNone}
			case config.AuthKey:
				e.keys, _ = s.Keys.Service(svc.Name)
				for _, kt := range []keysecret.KeyType{keysecret.Primary, keysecret.Secondary} {
					e.ids[string(kt)] = Identity{Service: svc.Name, Subject: keySubject(kt), AuthType: TypeKey, KeyType: string(kt)}
				}
			case config.AuthEntra:
				e.audiences = []string{svc.Audience}
			}
			for k, id := range e.ids {
				id.enc = newEncoded(id)
				e.ids[k] = id
			}
			s.entries[svc.Name] = e
		}
	})
}

// DropTokens forgets the verified tokens signed by kids: the signing keys
// revoked. It suits [signingkey.Set.OnRemove].
func (s *Services) DropTokens(kids []string) {
	s.init()
	s.tokens.DropKids(kids)
}

// Authenticate returns who presents cred, for service. A service in mode
// none takes any credential, even a missing or malformed one.
func (s *Services) Authenticate(ctx context.Context, service string, cred Credential) (Identity, *Failure) {
	s.init()
	e, ok := s.entries[service]
	if !ok {
		return Identity{}, &Failure{Err: apierror.New(apierror.NotFound, "unknown service")}
	}
	name := e.svc.Name
	if e.svc.AuthMode == config.AuthNone {
		return e.ids[TypeNone], nil
	}
	// A token's b64token syntax is checked only once the verified-token
	// cache has been asked: a token it remembers passed every check when
	// first seen, and the cache is keyed by the token's text. Every other
	// answer comes after the check, so that a malformed credential is
	// answered 400 before anything else, as for a key.
	raw, f := unsyntaxed(cred, name)
	if f == nil && e.svc.AuthMode == config.AuthKey {
		f = syntax(cred, name)
	}
	if f != nil {
		return Identity{}, f
	}
	// Keys never contain '.', and JWTs always do.
	isJWT := strings.IndexByte(raw, '.') >= 0
	switch e.svc.AuthMode {
	case config.AuthKey:
		if isJWT {
			return Identity{}, unauthorized(name, bearer.InvalidToken, "this service takes keys, not tokens")
		}
		kt, err := e.keys.Validate(ctx, raw)
		if err != nil {
			return Identity{}, keyFailure(name, err)
		}
		return e.ids[string(kt)], nil
	case config.AuthToken, config.AuthEntra:
		if !isJWT {
			if f := syntax(cred, name); f != nil {
				return Identity{}, f
			}
			return Identity{}, unauthorized(name, bearer.InvalidToken, "this service takes tokens, not keys")
		}
		own := e.svc.AuthMode == config.AuthToken
		if own && s.Tokens != nil {
			// Before trusting a remembered token: a signing key revoked
			// on another instance must be forgotten within the TTL.
			if err := s.Tokens.Sync(ctx); err != nil {
				if f := syntax(cred, name); f != nil {
					return Identity{}, f
				}
				return Identity{}, &Failure{Err: apierror.Wrap(apierror.Unavailable, "the signing keys cannot be read right now", err)}
			}
		}
		key := tokencache.KeyOf(raw)
		if id, ok := s.tokens.Get(key); ok && id.Service == name {
			return id, nil
		}
		if f := syntax(cred, name); f != nil {
			return Identity{}, f
		}
		if own {
			return s.verifyOwn(ctx, name, raw, key)
		}
		return s.verifyEntra(ctx, e, raw, key)
	}
	return Identity{}, &Failure{Err: apierror.New(apierror.Internal, "unknown auth mode")}
}

// verifyOwn checks one of the app's tokens for service and caches who it
// proves.
func (s *Services) verifyOwn(ctx context.Context, service, cred string, key tokencache.Key) (Identity, *Failure) {
	if s.Tokens == nil {
		return Identity{}, unauthorized(service, bearer.InvalidToken, "token verification is not configured")
	}
	gen := s.tokens.Generation() // before: a key dropped meanwhile voids the Put
	c, err := s.Tokens.Verify(ctx, service, cred)
	if err != nil {
		if errors.Is(err, jwtauth.ErrUnavailable) {
			return Identity{}, &Failure{Err: apierror.Wrap(apierror.Unavailable, "the signing keys cannot be read right now", err)}
		}
		return Identity{}, tokenFailure(service, err)
	}
	id := prepared(Identity{Service: service, Subject: c.Subject, AuthType: TypeToken})
	s.tokens.Offer(gen, key, id, c.Expiry, c.Kid)
	return id, nil
}

// verifyEntra checks a Microsoft Entra token for an entra-mode service:
// its audience, and the required role if the service names one.
func (s *Services) verifyEntra(ctx context.Context, e *entry, cred string, key tokencache.Key) (Identity, *Failure) {
	name := e.svc.Name
	if s.Entra == nil {
		return Identity{}, unauthorized(name, bearer.InvalidToken, "no OIDC issuer is configured")
	}
	gen := s.tokens.Generation()
	c, err := s.Entra.Verify(ctx, cred, e.audiences)
	if err != nil {
		if errors.Is(err, oidc.ErrUnavailable) {
			return Identity{}, &Failure{Err: apierror.Wrap(apierror.Unavailable, "the issuer's keys cannot be read right now", err)}
		}
		return Identity{}, tokenFailure(name, err)
	}
	if r := e.svc.RequiredRole; r != "" && !slices.Contains(c.Roles, r) {
		return Identity{}, &Failure{
			Err:       apierror.New(apierror.Forbidden, "the token lacks the role this service requires"),
			Challenge: bearer.Challenge(name, bearer.InsufficientScope, "the token lacks the role this service requires"),
		}
	}
	id := prepared(Identity{Service: name, Subject: c.Subject, AuthType: TypeEntra})
	s.tokens.Offer(gen, key, id, c.Expiry, "")
	return id, nil
}

func prepared(id Identity) Identity {
	id.enc = newEncoded(id)
	return id
}

// tokenFailure answers a refused token; the cause goes to the log only.
func tokenFailure(realm string, err error) *Failure {
	f := unauthorized(realm, bearer.InvalidToken, "the token is not valid")
	f.Err = apierror.Wrap(apierror.Unauthorized, "the token is not valid", err)
	return f
}

// keySubject names the key a caller used, without allocating for the two
// key types.
func keySubject(kt keysecret.KeyType) string {
	switch kt {
	case keysecret.Primary:
		return "key:Primary"
	case keysecret.Secondary:
		return "key:Secondary"
	}
	return "key:" + string(kt)
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
