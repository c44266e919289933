// Package oidc verifies JWTs issued by external OpenID Connect providers,
// Microsoft Entra ID in production, whose keys it discovers and caches.
//
// A [Verifier] is configured with a list of issuers, each matched exactly
// against a token's "iss". For Entra ID a tenant has two issuers, and both
// may be configured at once:
//
//	https://sts.windows.net/{tenant}/               (v1 tokens)
//	https://login.microsoftonline.com/{tenant}/v2.0  (v2 tokens)
//
// Multi-tenant "common" issuers with a "{tenantid}" template are not
// supported: list each tenant's issuers instead.
//
// For each issuer the verifier fetches, on first need,
// {issuer}/.well-known/openid-configuration, requires the document's
// "issuer" to equal the configured issuer exactly (OpenID Connect
// Discovery 1.0 section 4.3), and then fetches the JWKS at its "jwks_uri".
// Keys are picked by the token header's "kid" from the token issuer's own
// JWKS only: "jku", "x5u", "x5c" and "jwk" header parameters are ignored,
// and a token without "kid" is refused. The key's type must suit the
// token's algorithm (RSA for RS* and PS*, EC P-256 for ES256).
//
// # Caching and refresh
//
// A JWKS is cached for its response's Cache-Control max-age, bounded to
// [1 minute, 24 hours]; without a usable max-age (absent, unparseable,
// no-store or no-cache) for [Options.DefaultMaxAge]. An expired set is
// refreshed on the next verification; if that refresh fails, the old keys
// keep verifying for up to 24 hours beyond their expiry, and a warning is
// logged. A token whose kid is unknown triggers one refresh, at most one
// per [Options.RefreshMinInterval] per issuer. After a failed fetch, no
// new fetch for that issuer starts before [Options.RetryInterval] has
// passed, so an unreachable provider cannot make every request wait on
// the network. Concurrent verifications that need a fetch share one. The
// discovery document is cached until a JWKS fetch fails; the next attempt
// discovers again.
//
// # Configuration
//
// [Options] holds optional settings; the zero value of each field means
// its default, documented on the field. Only the issuers are required.
// Issuers, discovery documents' jwks_uri and redirects must use https,
// except that http is allowed for a loopback host (127.0.0.0/8, ::1,
// localhost) for tests and local runs.
//
// # Errors
//
// [Verifier.Verify] returns an error wrapping exactly one of
// [ErrTooLarge], [ErrMalformed], [ErrUnknownIssuer], [ErrUnknownKey],
// [ErrInvalid] or [ErrUnavailable]. Errors for signature and claim checks
// also wrap the sentinel of github.com/golang-jwt/jwt/v5, so that, for
// example, errors.Is(err, jwt.ErrTokenExpired) reports an expired token.
// Error messages and log lines never contain the token; their text is
// fixed per cause and carries no value taken from the token except a
// quoted, truncated "iss".
package oidc
