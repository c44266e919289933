// Package jwks is the jwks function: the documents that let gateways (APIM
// validate-jwt, Envoy jwt_authn, Kong) verify the app's tokens without
// calling it.
//
//	GET /api/.well-known/jwks.json             the published signing keys
//	GET /api/.well-known/openid-configuration  OpenID Connect discovery
//
// With MODELAUTH_ISSUER at the app's base URL plus /api,
// {iss}/.well-known/openid-configuration resolves to the second. Both are
// public, carry Cache-Control: public, max-age=3600, and hold public key
// members only. Other documents are 404.
package jwks

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/jwk"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// Documents under /.well-known.
const (
	JWKSDocument      = "jwks.json"
	DiscoveryDocument = "openid-configuration"
)

// Function serves the jwks function.
type Function struct {
	// Issuer is MODELAUTH_ISSUER.
	Issuer string
	Alg    string
	Keys   *signingkey.Set
	Log    *slog.Logger
	// Ready, if set, tells whether the key set can be served: until it
	// returns nil (the app's first signing key is written), jwks.json
	// answers with its error (a 503 with Retry-After) rather than a key
	// set that gateways would cache without the key.
	Ready func() error
}

// Discovery is the OpenID Connect discovery document: the members that
// docs/design.md section 2.2 lists, all that a verifier of the app's
// tokens needs.
type Discovery struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	ResponseTypesSupported           []string `json:"response_types_supported"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
}

var _ http.Handler = (*Function)(nil)

var cacheControl = "public, max-age=" + strconv.Itoa(int(signingkey.JWKSMaxAge.Seconds()))

func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	doc := r.PathValue("document")
	if doc != JWKSDocument && doc != DiscoveryDocument {
		apierror.Write(w, f.Log, apierror.New(apierror.NotFound, "unknown document"))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		apierror.Write(w, f.Log, apierror.New(apierror.MethodNotAllowed, "use GET"))
		return
	}
	if doc == DiscoveryDocument {
		w.Header().Set("Cache-Control", cacheControl)
		apierror.WriteJSON(w, http.StatusOK, Discovery{
			Issuer:                           f.Issuer,
			JWKSURI:                          f.Issuer + "/.well-known/" + JWKSDocument,
			ResponseTypesSupported:           []string{"token"},
			SubjectTypesSupported:            []string{"public"},
			IDTokenSigningAlgValuesSupported: []string{f.Alg},
		})
		return
	}
	if f.Ready != nil {
		if err := f.Ready(); err != nil {
			apierror.Write(w, f.Log, err)
			return
		}
	}
	keys, err := f.Keys.Published(r.Context())
	if err != nil {
		apierror.Write(w, f.Log, apierror.Wrap(apierror.Unavailable, "the signing keys cannot be read right now", err))
		return
	}
	set := jwk.Set{Keys: []jwk.Key{}}
	for _, k := range keys {
		j, err := jwk.FromPublic(k.Kid, k.Alg, k.Public)
		if err != nil {
			apierror.Write(w, f.Log, apierror.Wrap(apierror.Internal, "a signing key cannot be published", err))
			return
		}
		set.Keys = append(set.Keys, j)
	}
	w.Header().Set("Cache-Control", cacheControl)
	apierror.WriteJSON(w, http.StatusOK, set)
}
