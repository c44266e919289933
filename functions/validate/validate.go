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

// Function serves the validate function.
type Function struct {
	Services *authn.Services
	Log      *slog.Logger // may be nil
}

var _ http.Handler = (*Function)(nil)

var noStore = []string{"no-store"}

// ServeHTTP validates for the service in the route's {service}.
func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.Serve(w, r, r.PathValue("service"))
}

// Serve validates r for service.
func (f *Function) Serve(w http.ResponseWriter, r *http.Request, service string) {
	w.Header()["Cache-Control"] = noStore[:1:1]
	id, fail := f.Services.Authenticate(r.Context(), service, authn.FromHeader(r.Header["Authorization"]))
	if fail != nil {
		fail.Write(w, f.Log)
		return
	}
	authn.SetHeaders(w.Header(), id)
	var buf [256]byte
	apierror.WriteRawJSON(w, http.StatusOK, append(id.AppendJSON(buf[:0]), '\n'))
}
