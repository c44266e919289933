package azfunc

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
)

// ErrBadPort means a port setting is not a number from 1 to 65535.
var ErrBadPort = errors.New("azfunc: bad port")

// DefaultPort is the port [ListenAddr] uses when the host set none, as in
// the Functions documentation's Go sample.
const DefaultPort = 8080

// ListenAddr returns the address the handler must listen on:
// 127.0.0.1 and the port in FUNCTIONS_CUSTOMHANDLER_PORT, or else in
// FUNCTIONS_HTTPWORKER_PORT (the legacy name the host also sets), or else
// [DefaultPort]. The host always calls 127.0.0.1. getenv is usually
// [os.Getenv]; an empty value counts as unset.
//
// # Errors
//
// It returns an error wrapping [ErrBadPort], naming the variable, if the
// chosen value is not a decimal number from 1 to 65535.
func ListenAddr(getenv func(string) string) (string, error) {
	port := DefaultPort
	for _, name := range []string{"FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT"} {
		v := getenv(name)
		if v == "" {
			continue
		}
		p, err := parsePort(v)
		if err != nil {
			return "", fmt.Errorf("%w: %s=%q: %w", ErrBadPort, name, v, err)
		}
		port = p
		break
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// parsePort accepts only ASCII digits, so "+80", " 80" and "0x50" fail.
func parsePort(v string) (int, error) {
	if len(v) > 5 {
		return 0, errors.New("not a port number")
	}
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return 0, errors.New("not a decimal number")
		}
	}
	p, _ := strconv.Atoi(v)
	if p < 1 || p > 65535 {
		return 0, errors.New("out of range 1-65535")
	}
	return p, nil
}

// Ready returns the handler for the host's readiness and health probe,
// GET / (polled every 25 ms while the handler starts; any response counts
// as ready). It answers GET and HEAD of / with 200 and {"status":"ready"},
// other methods with 405, and other paths with 404, so that it can be
// registered as a ServeMux's catch-all "/" without answering invocations
// of unknown functions with a 200 the host would take for success.
func Ready() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/":
			writeError(w, http.StatusNotFound, "not_found", "no function at this path")
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		default:
			_ = writeJSON(w, http.StatusOK, []byte(`{"status":"ready"}`))
		}
	})
}
