// Package token is the token function: get_token for a token-mode service.
//
//	POST /api/services/{service}/token
//
// It answers {"accessToken","tokenType":"Bearer","expiryOn","refreshAfter"}
// (Unix seconds, as Azure ML's v1 token API) with Cache-Control: no-store
// to a caller with the role Tokens.Get.<service> or Tokens.Get.All (the
// administrator key has every right). The token's sub is the caller. Every
// token issued writes an audit event with the caller, the service and the
// token's jti, never the token. A service not in token mode is 409.
package token

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/authn"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// Function serves the token function.
type Function struct {
	Config  *config.Config
	Callers *authn.Callers
	// Tokens issues the tokens; nil when no service is in token mode.
	Tokens *jwtauth.Authority
	Log    *slog.Logger
}

var _ http.Handler = (*Function)(nil)

func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	apierror.ServeNoStore(w, r, f.Log, f.serve)
}

func (f *Function) serve(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return apierror.New(apierror.MethodNotAllowed, "use POST")
	}
	service := r.PathValue("service")
	caller, fail := f.Callers.Authorize(r.Context(), authn.FromHeader(r.Header["Authorization"]), authn.GetTokens, service)
	if fail != nil {
		return fail
	}
	svc, ok := f.Config.Service(service)
	if !ok {
		return apierror.New(apierror.NotFound, "unknown service")
	}
	if svc.AuthMode != config.AuthToken || f.Tokens == nil {
		return apierror.New(apierror.Conflict, "service "+svc.Name+" uses "+string(svc.AuthMode)+" auth: tokens are issued only for services in token mode")
	}
	tok, issued, err := f.Tokens.Issue(r.Context(), svc.Name, caller.Subject, svc.TokenLifetime, svc.TokenRefreshAfter)
	switch {
	case errors.Is(err, signingkey.ErrKeyFormat):
		return apierror.Wrap(apierror.Internal, "the stored signing key cannot be read: revoke it (POST /api/signing-keys/revoke)", err)
	case err != nil:
		return apierror.Wrap(apierror.Unavailable, "no token can be issued right now: the signing key cannot be read", err)
	}
	f.Log.Info("audit", "event", "get_token", "subject", caller.Subject, "service", svc.Name,
		"jti", issued.JTI, "kid", issued.Kid, "expiryOn", tok.ExpiryOn)
	apierror.WriteJSON(w, http.StatusOK, tok)
	return nil
}
