package functions

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
	checkOK(b, h, req)
	b.ReportAllocs()
	w := &discardWriter{h: make(http.Header, 16)}
	for b.Loop() {
		clear(w.h) // as net/http's own header map, not the handler's allocation
		h.ServeHTTP(w, req)
	}
}

// checkOK fails b unless h answers req 200: a benchmark of refusals
// measures the wrong path.
func checkOK(b *testing.B, h http.Handler, req *http.Request) {
	b.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("%s answered %d %s", req.URL.Path, rec.Code, rec.Body)
	}
}

const benchTokenServices = `{"services":[{"name":"bench","authMode":"token"}]}`

// issueTokens signs n tokens for the bench service with a's authority,
// on every CPU.
func issueTokens(b testing.TB, a *App, n int) []string {
	b.Helper()
	tokens := make([]string, n)
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		failed atomic.Bool
	)
	for range runtime.NumCPU() {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				tok, _, err := a.Tokens.Issue(b.Context(), "bench", "admin", time.Hour, 30*time.Minute)
				if err != nil {
					failed.Store(true)
					return
				}
				tokens[i] = "Bearer " + tok.AccessToken
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		b.Fatal("issuing tokens failed")
	}
	return tokens
}

// BenchmarkValidateTokenCached is validate with the same token on every
// request: after the first, the verified-token cache answers.
func BenchmarkValidateTokenCached(b *testing.B) {
	a := newTestApp(b, benchTokenServices)
	benchHandler(b, a.Handler(), issueTokens(b, a, 1)[0])
}

// BenchmarkValidateTokenNew is validate with a new token on every
// request: each one is parsed and its signature checked. The b.N tokens
// are signed before the timer starts.
func BenchmarkValidateTokenNew(b *testing.B) {
	a := newTestApp(b, benchTokenServices)
	h := a.Handler()
	tokens := issueTokens(b, a, b.N+1)
	req := httptest.NewRequest("GET", "/api/services/bench/validate", nil)
	req.Header.Set("Authorization", tokens[b.N])
	checkOK(b, h, req)
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		reqs[i] = httptest.NewRequest("GET", "/api/services/bench/validate", nil)
		reqs[i].Header.Set("Authorization", tokens[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := &discardWriter{h: make(http.Header, 8)}
		h.ServeHTTP(w, reqs[i])
	}
}

// BenchmarkVerifyRS256 is the bare signature check of one of the app's
// tokens: SHA-256 of the signing input and rsa.VerifyPKCS1v15 with the
// app's 2048-bit key. BenchmarkValidateTokenNew can be no faster.
func BenchmarkVerifyRS256(b *testing.B) {
	a := newTestApp(b, benchTokenServices)
	key, err := a.SigningKeys.Signer(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	pub := key.Public.(*rsa.PublicKey)
	raw := strings.TrimPrefix(issueTokens(b, a, 1)[0], "Bearer ")
	dot := strings.LastIndexByte(raw, '.')
	input := []byte(raw[:dot])
	sig, err := base64.RawURLEncoding.DecodeString(raw[dot+1:])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.Sum256(input)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}
