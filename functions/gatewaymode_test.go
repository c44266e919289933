package functions

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestValidateGatewayMode checks validate's gateway mode
// (docs/design.md section 2.7) against validate's own answers: for each
// outcome, the gateway mode answers 401 (200 stays 200) with the same
// headers and body, the real status in X-ModelAuth-Status and the body in
// X-ModelAuth-Error.
func TestValidateGatewayMode(t *testing.T) {
	a := newTestApp(t, `{"services":[{"name":"svc"},{"name":"tok","authMode":"token"},{"name":"cold"}]}`)
	h := a.Handler()
	keys := primaryKey(t, a, "svc")
	serve := func(path, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	cases := []struct {
		name, service, auth string
		status              int
		storeDown           bool
	}{
		{"right key", "svc", "Bearer " + keys, 200, false},
		{"wrong key", "svc", "Bearer " + strings.Repeat("w", 43), 401, false},
		{"no header", "svc", "", 401, false},
		{"malformed", "svc", "Bearer a b", 400, false},
		{"unknown service", "nosuch", "Bearer " + keys, 404, false},
		{"key for a token service", "tok", "Bearer " + keys, 401, false},
		// cold's keys were never read: with the store down, validate
		// has nothing to answer from.
		{"store down", "cold", "Bearer " + strings.Repeat("w", 43), 503, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.storeDown {
				a.Store.Close()
			}
			path := "/api/services/" + c.service + "/validate"
			plain := serve(path, c.auth)
			if plain.Code != c.status {
				t.Fatalf("validate = %d %s; want %d", plain.Code, plain.Body, c.status)
			}
			for _, query := range []string{"?refusalStatus=401", "?a=b&refusalStatus=401&c", "/tail?refusalStatus=401&refusalStatus=401"} {
				got := serve(path+query, c.auth)
				want := http.StatusUnauthorized
				if c.status == 200 {
					want = 200
				}
				if got.Code != want {
					t.Errorf("%s: status %d; want %d", query, got.Code, want)
				}
				if got.Body.String() != plain.Body.String() {
					t.Errorf("%s: body %q; want validate's %q", query, got.Body, plain.Body)
				}
				for _, name := range []string{"WWW-Authenticate", "Retry-After", "Cache-Control", "Content-Type", "X-Content-Type-Options", "X-ModelAuth-Subject"} {
					if g, w := got.Header().Values(name), plain.Header().Values(name); strings.Join(g, "|") != strings.Join(w, "|") {
						t.Errorf("%s: %s = %q; want validate's %q", query, name, g, w)
					}
				}
				status, errBody := got.Header().Get("X-ModelAuth-Status"), got.Header().Get("X-ModelAuth-Error")
				if c.status == 200 {
					if status != "" || errBody != "" {
						t.Errorf("%s: a 200 carries X-ModelAuth-Status %q, X-ModelAuth-Error %q", query, status, errBody)
					}
					continue
				}
				if status != strconv.Itoa(c.status) {
					t.Errorf("%s: X-ModelAuth-Status = %q; want %d", query, status, c.status)
				}
				if errBody != strings.TrimSuffix(plain.Body.String(), "\n") {
					t.Errorf("%s: X-ModelAuth-Error = %q; want the body %q", query, errBody, plain.Body)
				}
			}
		})
	}
}

// TestValidateGatewayModeBadValue: a refusalStatus other than 401 is a
// gateway's configuration error, answered 400 even for a right key, so that
// it shows at the first call.
func TestValidateGatewayModeBadValue(t *testing.T) {
	a := newTestApp(t, `{"services":[{"name":"svc"}]}`)
	keys := primaryKey(t, a, "svc")
	for _, query := range []string{"refusalStatus=403", "refusalStatus=", "refusalStatus", "refusalStatus=401&refusalStatus=500"} {
		req := httptest.NewRequest("GET", "/api/services/svc/validate?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+keys)
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, req)
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "refusalStatus") || rec.Header().Get("X-ModelAuth-Subject") != "" {
			t.Errorf("?%s = %d %s; want 400 naming the parameter", query, rec.Code, rec.Body)
		}
	}
}

// primaryKey is service's Primary key.
func primaryKey(t *testing.T, a *App, service string) string {
	t.Helper()
	keys, err := a.Keys.Get(t.Context(), service)
	if err != nil {
		t.Fatal(err)
	}
	return keys.PrimaryKey
}
