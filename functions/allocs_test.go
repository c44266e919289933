//go:build !race

// Allocation counts are not meaningful under the race detector: make test
// runs these in its pass without it.

package functions

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// reusedWriter is a ResponseWriter whose header map is cleared, not
// replaced, between requests: net/http's own per-request allocations are
// not the handler's.
type reusedWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *reusedWriter) Header() http.Header         { return w.h }
func (w *reusedWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *reusedWriter) WriteHeader(s int)           { w.status = s }

// handlerAllocs is the allocations of one request to h, with req and the
// writer reused; it fails t unless h answers 200.
func handlerAllocs(t *testing.T, h http.Handler, req *http.Request) float64 {
	t.Helper()
	w := &reusedWriter{h: make(http.Header, 16)}
	run := func() {
		clear(w.h)
		w.status, w.n = 0, 0
		h.ServeHTTP(w, req)
	}
	run()
	if w.status != http.StatusOK || w.h.Get("X-Modelauth-Service") == "" || w.n == 0 {
		t.Fatalf("%s answered %d with %v", req.URL, w.status, w.h)
	}
	return testing.AllocsPerRun(1000, run)
}

// TestValidateAllocs pins validate's hot paths at zero allocations: a key,
// a remembered token, each plain and in the gateway mode (design 2.7).
func TestValidateAllocs(t *testing.T) {
	keyApp := newTestApp(t, `{"services":[{"name":"bench"}]}`)
	keys, err := keyApp.Keys.Get(t.Context(), "bench")
	if err != nil {
		t.Fatal(err)
	}
	tokApp := newTestApp(t, benchTokenServices)
	token := issueTokens(t, tokApp, 1)[0]
	for _, c := range []struct {
		name string
		app  *App
		auth string
	}{
		{"key", keyApp, "Bearer " + keys.PrimaryKey},
		{"remembered token", tokApp, token},
	} {
		h := c.app.Handler()
		for _, path := range []string{"/api/services/bench/validate", "/api/services/bench/validate/v1/score?refusalStatus=401"} {
			req := httptest.NewRequest("GET", path, nil)
			req.Header.Set("Authorization", c.auth)
			if n := handlerAllocs(t, h, req); n != 0 {
				t.Errorf("%s, %s: %v allocations per request; want 0", c.name, path, n)
			}
		}
	}
}
