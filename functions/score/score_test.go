package score

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/authn"
	"github.com/modelauth/modelauth/shared/config"
)

// newFunction serves one open (auth mode none) service whose scoringUri is
// upstream, through a real mux as the handler registers it.
// testLimits are the limits of a test that sets none.
var testLimits = Limits{Timeout: time.Minute, MaxBodyBytes: 10 << 20}

func newFunction(t *testing.T, upstream string, limits *Limits, log *slog.Logger) http.Handler {
	t.Helper()
	cfg, err := config.Parse([]byte(`{"services":[{"name":"m","authMode":"none","scoringUri":"` + upstream + `"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	l := testLimits
	if limits != nil {
		l = *limits
	}
	f := New(&authn.Services{Config: cfg}, l, log, nil)
	mux := http.NewServeMux()
	mux.Handle("/api/services/{service}/score", f)
	mux.Handle("/api/services/{service}/score/{rest...}", f)
	return mux
}

func serve(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestUpstreamFailuresLeakNothing(t *testing.T) {
	secretish := "internal-host-detail-xyz"
	tests := []struct {
		name    string
		handler http.HandlerFunc
		limits  *Limits
		body    string
		status  int
	}{
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://"+secretish+"/elsewhere", http.StatusFound)
		}, nil, "", http.StatusBadGateway},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(2 * time.Second)
		}, &Limits{Timeout: 100 * time.Millisecond, MaxBodyBytes: testLimits.MaxBodyBytes}, "", http.StatusGatewayTimeout},
		{"declared response too large", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.Write(bytes.Repeat([]byte("a"), 100))
		}, &Limits{Timeout: testLimits.Timeout, MaxBodyBytes: 10}, "", http.StatusBadGateway},
		{"request too large", func(w http.ResponseWriter, r *http.Request) {
			t.Error("the upstream was called for a request over the cap")
		}, &Limits{Timeout: testLimits.Timeout, MaxBodyBytes: 10}, strings.Repeat("b", 11), http.StatusRequestEntityTooLarge},
		{"connection reset", func(w http.ResponseWriter, r *http.Request) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}, nil, "", http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := httptest.NewServer(tt.handler)
			defer up.Close()
			var logs bytes.Buffer
			h := newFunction(t, up.URL+"/"+secretish, tt.limits, slog.New(slog.NewJSONHandler(&logs, nil)))
			rec := serve(h, "POST", "/api/services/m/score", tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status = %d %s; want %d", rec.Code, rec.Body, tt.status)
			}
			all := fmt.Sprint(rec.Header()) + rec.Body.String()
			if strings.Contains(all, secretish) || strings.Contains(all, up.URL) {
				t.Errorf("the response leaks the upstream: %s", all)
			}
			if !strings.Contains(rec.Body.String(), `"error":{"code"`) {
				t.Errorf("body %s is not an error document", rec.Body)
			}
		})
	}
}

func TestChunkedRequestOverCap(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
	}))
	defer up.Close()
	h := newFunction(t, up.URL, &Limits{Timeout: testLimits.Timeout, MaxBodyBytes: 10}, nil)
	req := httptest.NewRequest("POST", "/api/services/m/score", io.MultiReader(strings.NewReader(strings.Repeat("c", 50))))
	req.ContentLength = -1
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d %s; want 413", rec.Code, rec.Body)
	}
}

func TestStreamedResponseOverCapIsCut(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 10; i++ {
			w.Write(bytes.Repeat([]byte("d"), 10))
			w.(http.Flusher).Flush()
		}
	}))
	defer up.Close()
	h := newFunction(t, up.URL, &Limits{Timeout: testLimits.Timeout, MaxBodyBytes: 25}, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api/services/m/score", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) > 25 {
		t.Fatalf("read %d bytes; cap is 25", len(b))
	}
	if err == nil {
		t.Fatalf("a response cut at the cap ended cleanly: the client cannot tell it was cut")
	}
}

func TestExactCapPasses(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush() // no Content-Length: streamed
		w.Write(bytes.Repeat([]byte("e"), 25))
	}))
	defer up.Close()
	srv := httptest.NewServer(newFunction(t, up.URL, &Limits{Timeout: testLimits.Timeout, MaxBodyBytes: 25}, nil))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api/services/m/score", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != 25 || resp.StatusCode != 200 {
		t.Fatalf("status %d, %d bytes, err %v; want 200, 25 bytes", resp.StatusCode, len(b), err)
	}
}

func TestPathJoinAndQuery(t *testing.T) {
	tests := []struct{ base, path, want string }{
		{"/score", "/api/services/m/score", "/score"},
		{"/score", "/api/services/m/score/v1/x?a=1&b=2", "/score/v1/x?a=1&b=2"},
		{"/", "/api/services/m/score/x", "/x"},
		{"", "/api/services/m/score/x%20y/%7Ez", "/x%20y/~z"},
		{"/score", "/api/services/m/score/a.b/.hidden/..x/x../v1;p=1", "/score/a.b/.hidden/..x/x../v1;p=1"},
		{"/score", "/api/services/m/score/caf%C3%A9/%E2%82%AC", "/score/caf%C3%A9/%E2%82%AC"},
	}
	for _, tt := range tests {
		var got string
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.URL.RequestURI() }))
		h := newFunction(t, up.URL+tt.base, nil, nil)
		if rec := serve(h, "GET", tt.path, ""); rec.Code != 200 {
			t.Errorf("%s: status %d", tt.path, rec.Code)
		}
		up.Close()
		if got != tt.want {
			t.Errorf("base %q, request %q: upstream got %q; want %q", tt.base, tt.path, got, tt.want)
		}
	}
}

func TestUpstreamSeesNoCredentialsOrForgedIdentity(t *testing.T) {
	var got *http.Request
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r }))
	defer up.Close()
	h := newFunction(t, up.URL, nil, nil)
	req := httptest.NewRequest("POST", "/api/services/m/score/x?code=funckey&keep=1&Code=2", strings.NewReader("{}"))
	for name, v := range map[string]string{
		"Authorization": "Bearer k", "x-functions-key": "fk", "X-Functions-Key": "fk2", "X_Functions_Key": "fk3",
		"X-ModelAuth-Subject": "forged", "x-modelauth-service": "forged", "X_ModelAuth_Subject": "under",
		"X-MODELAUTH-EXTRA": "x", "X-Other": "kept",
	} {
		req.Header[name] = []string{v} // as sent, without canonicalising
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || got == nil {
		t.Fatalf("status %d", rec.Code)
	}
	for name, vals := range got.Header {
		n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		if n == "authorization" || n == "x-functions-key" {
			t.Errorf("upstream saw %s", name)
		}
		if strings.HasPrefix(n, "x-modelauth-") {
			for _, v := range vals {
				if v == "forged" || v == "under" || v == "x" {
					t.Errorf("upstream saw the client's %s: %q", name, v)
				}
			}
		}
	}
	if got.Header.Get("X-ModelAuth-Subject") != "anonymous" || got.Header.Get("X-Other") != "kept" {
		t.Errorf("upstream headers: %v", got.Header)
	}
	if q := got.URL.Query(); q.Has("code") || q.Get("keep") != "1" || q.Get("Code") != "2" {
		t.Errorf("upstream query %q; want code removed, the rest kept", got.URL.RawQuery)
	}
}

// TestTailRefusals sends each spelling of a way out of the scoringUri's
// path to score: each is answered 400 (code BadRequest) and never reaches the
// upstream, while its control, the same path without the attacked part,
// reaches the upstream under the scoringUri's path.
func TestTailRefusals(t *testing.T) {
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.EscapedPath())
	}))
	defer up.Close()
	h := newFunction(t, up.URL+"/api/v1/service/m/score", nil, nil)
	cfg, err := config.Parse([]byte(`{"services":[{"name":"m","authMode":"none","scoringUri":"` + up.URL + `/api/v1/service/m/score"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// The function itself, without a mux that would redirect literal dot
	// segments before it (the app's router sends those to Serve too).
	f := New(&authn.Services{Config: cfg}, testLimits, nil, nil)
	tests := []struct{ name, tail, control string }{
		{"encoded slash", "..%2f..%2fadmin", "..a..admin"},
		{"encoded slash, upper case", "..%2F..%2Fadmin", "..a..admin"},
		{"encoded slash alone", "a%2fb", "a/b"},
		{"encoded backslash", "..%5c..%5cadmin", "..a..admin"},
		{"encoded backslash, upper case", "a%5Cb", "ab"},
		{"double encoding of a slash", "..%252f..%252fadmin", "..a..admin"},
		{"double encoding of a dot", "%252e%252e/x", "x"},
		{"percent sign", "100%25", "100"},
		{"backslash", `a\..\b`, "a..b"},
		{"encoded dot dot", "%2e%2e/%2e%2e/x", "x"},
		{"encoded dot dot, upper case", "%2E%2E/x", "x"},
		{"half-encoded dot dot", ".%2e/x", "x"},
		{"half-encoded dot dot, other half", "%2e./x", "x"},
		{"encoded dot", "%2e/x", "x"},
		{"dot dot", "a/../../x", "a/x"},
		{"dot", "./x", "x"},
		{"dot dot at the end", "a/..", "a"},
		{"dot dot with a path parameter", "..;jsessionid=1/x", "a;jsessionid=1/x"},
		{"encoded dot dot with a parameter", "%2e%2e;/x", "a;/x"},
		{"three dots", ".../x", "x"},
		{"fullwidth dots", "%EF%BC%8E%EF%BC%8E/x", "%EF%BC%A1/x"},
		{"two dot leader", "%E2%80%A5/x", "x"},
		{"vertical ellipsis", "%EF%B8%99/x", "x"},
		{"two dot leader, vertical", "%EF%B8%B0/x", "x"},
		{"fullwidth slash", "..%EF%BC%8F..%EF%BC%8Fadmin", "..a..admin"},
		{"fullwidth backslash", "..%EF%BC%BC..%EF%BC%BCadmin", "..a..admin"},
		{"small reverse solidus", "..%EF%B9%A8admin", "..admin"},
		{"dot dot and a space", "..%20/x", "..a/x"},
		{"dot dot and a tab", "..%09/x", "..a/x"},
		{"NUL", "..%00/x", "..a/x"},
		{"DEL", "a%7Fb", "ab"},
		{"overlong dot", "%c0%ae%c0%ae/x", "x"},
		{"overlong slash", "..%c0%afadmin", "..admin"},
		{"truncated escape", "x%2", "x"},
		{"bad escape", "x%zz", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			rec := serve(h, "GET", "/api/services/m/score/"+tt.control, "")
			if rec.Code != 200 || len(got) != 1 || !strings.HasPrefix(got[0], "/api/v1/service/m/score/") {
				t.Fatalf("control %q: %d, upstream got %q; want 200 under the scoringUri", tt.control, rec.Code, got)
			}
			got = nil
			req := httptest.NewRequest("GET", "/", nil)
			req.URL.RawPath = "/api/services/m/score/" + tt.tail // as sent, whatever it decodes to
			req.URL.Path, _ = url.PathUnescape(req.URL.RawPath)
			if req.URL.EscapedPath() != req.URL.RawPath {
				req.URL.Path = req.URL.RawPath // not valid escaping: the server keeps it as is
			}
			rec = httptest.NewRecorder()
			f.Serve(rec, req, "m")
			if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"code":"BadRequest"`) {
				t.Errorf("%q: %d %s; want 400 BadRequest", tt.tail, rec.Code, rec.Body)
			}
			if len(got) != 0 {
				t.Errorf("%q reached the upstream at %q", tt.tail, got)
			}
		})
	}
}

// TestUpstreamCannotForgeIdentityHeaders: X-ModelAuth-* headers and
// trailers from the upstream, in any spelling, never reach the client.
func TestUpstreamCannotForgeIdentityHeaders(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Modelauth-Subject"] = []string{"forged"}
		w.Header()["x-modelauth-service"] = []string{"forged"}
		w.Header()["X_ModelAuth_Auth_Type"] = []string{"forged"}
		w.Header()["X-Model-Kept"] = []string{"kept"}
		w.Header()["X-Modelauth-Early"] = []string{"forged"}
		w.WriteHeader(http.StatusEarlyHints)
		delete(w.Header(), "X-Modelauth-Early")
		w.Header().Set("Trailer", "X-ModelAuth-Key-Type")
		w.Write([]byte("ok"))
		w.(http.Flusher).Flush()
		w.Header().Set("X-ModelAuth-Key-Type", "forged")
		w.Header().Set(http.TrailerPrefix+"X-ModelAuth-Unannounced", "forged")
	}))
	defer up.Close()
	srv := httptest.NewServer(newFunction(t, up.URL, nil, nil))
	defer srv.Close()
	var early []http.Header // the 1xx answers the client saw
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{Got1xxResponse: func(_ int, h textproto.MIMEHeader) error {
		early = append(early, http.Header(h).Clone())
		return nil
	}})
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/services/m/score", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" || resp.Header.Get("X-Model-Kept") != "kept" {
		t.Fatalf("response = %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if len(early) != 1 {
		t.Fatalf("the client saw %d 1xx answers; want the upstream's 103", len(early))
	}
	for _, h := range append(early, resp.Header, resp.Trailer) {
		for name := range h {
			if n := strings.ToLower(strings.ReplaceAll(name, "_", "-")); strings.HasPrefix(n, "x-modelauth-") {
				t.Errorf("the client got the upstream's %s: %q", name, h[name])
			}
		}
	}
}
