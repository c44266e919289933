package functions

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmarks
// measure the handlers rather than a recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

const identityBody = `{"service":"bench","subject":"key:Primary","authType":"key","keyType":"Primary"}` + "\n"

// BenchmarkValidateHandler is validate with a key through the handler's
// routes; BenchmarkBareHandler answers the same headers and body without
// checking anything: the difference is what validation costs.
func BenchmarkValidateHandler(b *testing.B) {
	a := newTestApp(b, `{"services":[{"name":"bench"}]}`)
	keys, err := a.Keys.Get(b.Context(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	benchHandler(b, a.Handler(), "Bearer "+keys.PrimaryKey)
}

func BenchmarkBareHandler(b *testing.B) {
	benchHandler(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The cheapest way to set them: canonical names, no checks.
		h["Cache-Control"] = []string{"no-store"}
		h["X-Modelauth-Service"] = []string{"bench"}
		h["X-Modelauth-Subject"] = []string{"key:Primary"}
		h["X-Modelauth-Auth-Type"] = []string{"key"}
		h["X-Modelauth-Key-Type"] = []string{"Primary"}
		h["Content-Type"] = []string{"application/json; charset=utf-8"}
		h["X-Content-Type-Options"] = []string{"nosniff"}
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, identityBody)
	}), "Bearer x")
}

func benchHandler(b *testing.B, h http.Handler, auth string) {
	req := httptest.NewRequest("GET", "/api/services/bench/validate", nil)
	req.Header.Set("Authorization", auth)
	b.ReportAllocs()
	for b.Loop() {
		w := &discardWriter{h: make(http.Header, 8)}
		h.ServeHTTP(w, req)
	}
}
