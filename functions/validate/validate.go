// Package validate is the validate function: it checks the credentials a
// request presents for a service and answers 200 with the caller's identity,
// or 401 with an RFC 6750 challenge.
//
// Route: /api/services/{service}/validate/{*rest}, every method. The tail is
// ignored, so that Envoy ext_authz (path prefix plus the original path),
// nginx auth_request and APIM send-request can all call it.
//
// Gateway mode (docs/design.md section 2.7): with the query parameter
// refusalStatus=401, every refusal is answered 401, its real status in
// X-ModelAuth-Status and its JSON body, one line, in X-ModelAuth-Error,
// for gateways such as nginx's auth_request that pass only 2xx, 401 and
// 403 answers of the authorizer and drop their bodies.
package validate

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/authn"
)

// Function serves the validate function.
type Function struct {
	Services *authn.Services
	Log      *slog.Logger // may be nil
}

var _ http.Handler = (*Function)(nil)

// The gateway mode's query parameter, its one value, and the headers of
// its refusals.
const (
	RefusalStatusParam = "refusalStatus"
	HeaderStatus       = "X-ModelAuth-Status"
	HeaderError        = "X-ModelAuth-Error"
)

var (
	noStore      = []string{"no-store"}
	canonStatus  = http.CanonicalHeaderKey(HeaderStatus)
	canonError   = http.CanonicalHeaderKey(HeaderError)
	badParameter = apierror.New(apierror.BadRequest, "the query parameter "+RefusalStatusParam+" takes only the value 401")
)

// ServeHTTP validates for the service in the route's {service}.
func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.Serve(w, r, r.PathValue("service"))
}

// Serve validates r for service.
func (f *Function) Serve(w http.ResponseWriter, r *http.Request, service string) {
	w.Header()["Cache-Control"] = noStore[:1:1]
	gateway, ok := gatewayMode(r.URL.RawQuery)
	if !ok {
		apierror.Write(w, f.Log, badParameter)
		return
	}
	id, fail := f.Services.Authenticate(r.Context(), service, authn.FromHeader(r.Header["Authorization"]))
	if fail != nil {
		if !gateway {
			fail.Write(w, f.Log)
			return
		}
		h := w.Header()
		status, body := apierror.Prepare(h, f.Log, fail)
		h[canonStatus] = []string{strconv.Itoa(status)}
		h[canonError] = []string{strings.TrimSuffix(string(body), "\n")}
		w.WriteHeader(http.StatusUnauthorized)
		w.Write(body)
		return
	}
	authn.SetHeaders(w.Header(), id)
	apierror.WriteRawJSON(w, http.StatusOK, id.Body())
}

// gatewayMode reports whether query asks for the gateway mode, and false
// for ok when it names refusalStatus with another value (a gateway's
// configuration error, answered 400 on every call so that it shows at
// once). Other parameters are ignored: Envoy's ext_authz, for one, appends
// the client's query to the path.
func gatewayMode(query string) (gateway, ok bool) {
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		name, value, _ := strings.Cut(pair, "=")
		if name != RefusalStatusParam {
			continue
		}
		if value != "401" {
			return false, false
		}
		gateway = true
	}
	return gateway, true
}
