// Package validate is the validate function: it checks the credentials a
// request presents for a service and answers 200 with the caller's identity,
// or 401 with an RFC 6750 challenge.
//
// Route: /api/services/{service}/validate/{*rest}, every method. The tail is
// ignored, so that Envoy ext_authz (path prefix plus the original path),
// nginx auth_request and APIM send-request can all call it.
package validate

import (
	"log/slog"
	"net/http"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/authn"
)

// Handler returns the validate function. log may be nil.
func Handler(services *authn.Services, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		id, f := services.Authenticate(r.Context(), r.PathValue("service"), r)
		if f != nil {
			f.Write(w, log)
			return
		}
		authn.SetHeaders(w.Header(), id)
		apierror.WriteJSON(w, http.StatusOK, id)
	})
}
