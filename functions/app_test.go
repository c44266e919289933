package functions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/oidctest"
)

type binding struct {
	Type      string   `json:"type"`
	Direction string   `json:"direction"`
	Name      string   `json:"name"`
	AuthLevel string   `json:"authLevel"`
	Methods   []string `json:"methods"`
	Route     string   `json:"route"`
	Schedule  string   `json:"schedule"`
}

func readFunctions(t *testing.T) map[string][]binding {
	t.Helper()
	paths, err := filepath.Glob("*/function.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no function.json found: %v", err)
	}
	fns := map[string][]binding{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Bindings []binding `json:"bindings"`
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		fns[filepath.Dir(p)] = doc.Bindings
	}
	return fns
}

func newTestApp(t testing.TB, services string) *App {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "modelauth.json")
	os.WriteFile(cfgPath, []byte(services), 0o600)
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir = cfgPath, filepath.Join(dir, "data")
	a, err := NewApp(context.Background(), s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestFunctionJSONMatchesRoutes checks every function folder against what
// the handler serves: HTTP functions anonymous, forwarding-eligible, and
// each route template reaching a handler for each method; timer and Event
// Grid functions (one trigger, no other binding) served at POST /<name>,
// and a timer's %SETTING% schedule one the handler reads.
func TestFunctionJSONMatchesRoutes(t *testing.T) {
	a := newTestApp(t, `{"services":[{"name":"svc","authMode":"none"}]}`)
	h := a.Handler()
	folderRE := regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	for name, bs := range readFunctions(t) {
		if !folderRE.MatchString(name) {
			t.Errorf("function folder %q is not lower case", name)
		}
		var in, out []binding
		for _, b := range bs {
			if b.Direction == "in" {
				in = append(in, b)
			} else {
				out = append(out, b)
			}
		}
		if len(in) == 1 && len(out) == 0 && (in[0].Type == "timerTrigger" || in[0].Type == "eventGridTrigger") {
			req := httptest.NewRequest("POST", "/"+name, nil)
			if _, pattern := h.(*router).mux.Handler(req); pattern == "" || pattern == "/" {
				t.Errorf("%s: POST /%s reaches no handler (pattern %q)", name, name, pattern)
			}
			if in[0].Type == "timerTrigger" {
				// A setting the handler checks, or a fixed schedule it
				// would accept as one.
				m := regexp.MustCompile(`^%([A-Z_]+)%$`).FindStringSubmatch(in[0].Schedule)
				_, literalErr := config.SchedulePeriod(in[0].Schedule, time.Now())
				if (m == nil || !slices.Contains(config.SettingNames, m[1])) && (m != nil || literalErr != nil) {
					t.Errorf("%s: schedule %q; want %%SETTING%% naming a setting the handler checks, or a valid 6-field schedule", name, in[0].Schedule)
				}
			}
			continue
		}
		if len(in) != 1 || len(out) != 1 || in[0].Type != "httpTrigger" || out[0].Type != "http" {
			t.Errorf("%s: want exactly one httpTrigger in and one http out (forwarding), got %+v", name, bs)
			continue
		}
		if in[0].AuthLevel != "anonymous" {
			t.Errorf("%s: authLevel %q; want anonymous", name, in[0].AuthLevel)
		}
		methods := in[0].Methods
		if len(methods) == 0 {
			methods = []string{"get", "post", "put", "delete", "patch", "head", "options"}
		}
		// Fill the template: {x} and {x?} get a value, {*x} a two-segment tail.
		path := "/api/" + regexp.MustCompile(`\{\*[^}]+\}|\{[^}]+\}`).ReplaceAllStringFunc(in[0].Route, func(p string) string {
			switch {
			case strings.HasPrefix(p, "{*"):
				return "a/b"
			case p == "{service}":
				return "svc"
			case p == "{action?}":
				return "regenerate"
			}
			return "x"
		})
		for _, m := range methods {
			req := httptest.NewRequest(strings.ToUpper(m), path, nil)
			_, pattern := h.(*router).mux.Handler(req)
			if pattern == "" || pattern == "/" {
				t.Errorf("%s: %s %s reaches no handler", name, m, path)
			}
		}
	}
}

func TestReadinessProbeAndUnknownPaths(t *testing.T) {
	a := newTestApp(t, `{"services":[]}`)
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 {
		t.Fatalf("GET / = %d", rec.Code)
	}
	for _, p := range []string{"/api/nothing", "/prefetchkeys", "/api/rotatekeys", "/api/prefetchtokens", "/api/services/x/keys/a/b"} {
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest("POST", p, nil))
		if rec.Code != 404 || !strings.Contains(rec.Body.String(), `"code":"NotFound"`) {
			t.Errorf("POST %s = %d %s; want a JSON 404", p, rec.Code, rec.Body)
		}
	}
}

func TestStoreFailureIs503(t *testing.T) {
	a := newTestApp(t, `{"services":[{"name":"svc"}]}`)
	h := a.Handler()
	adminKey, err := a.Store.GetSecret(context.Background(), "admin-key", "")
	if err != nil {
		t.Fatal(err)
	}
	a.Store.Close() // every store call fails from now on
	req := httptest.NewRequest("GET", "/api/services/svc/keys", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey.Value)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("get_keys with the store down = %d %s; want 503", rec.Code, rec.Body)
	}
	admin := "Bearer " + strings.Repeat("a", 43)
	for _, tt := range []struct{ method, path, auth string }{
		{"GET", "/api/services/svc/validate", "Bearer " + strings.Repeat("k", 43)},
		{"POST", "/api/services/svc/score", "Bearer " + strings.Repeat("k", 43)},
	} {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		req.Header.Set("Authorization", tt.auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(string(body), `"ServiceUnavailable"`) {
			t.Errorf("%s %s with the store down = %d %s; want 503", tt.method, tt.path, rec.Code, body)
		}
		if strings.Contains(string(body), "secretstore") || strings.Contains(string(body), a.Settings.DataDir) {
			t.Errorf("the 503 leaks the store's error: %s", body)
		}
	}
	// The admin key was read at start and is still cached: a wrong admin key
	// is refused from the cache, not answered 503.
	req = httptest.NewRequest("GET", "/api/services/svc/keys", nil)
	req.Header.Set("Authorization", admin)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("get_keys with a wrong admin key, store down = %d; want 401 from the cached admin key", rec.Code)
	}
}

func TestRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "modelauth.json")
	os.WriteFile(cfgPath, []byte(`{"services":[{"name":"x","authEnabled":true,"tokenAuthEnabled":true}]}`), 0o600)
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir = cfgPath, filepath.Join(dir, "data")
	_, err := NewApp(context.Background(), s, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), `service "x"`) {
		t.Fatalf("NewApp = %v; want a refusal naming service x", err)
	}
	if _, err := os.Stat(s.DataDir); err == nil {
		t.Errorf("a refused start created the store")
	}
}

// TestRefusesOverlappingAudiences: an entra service whose audience is the
// management callers' is refused at start, naming both, before the store is
// opened; two entra services may share an audience only with two different
// required roles.
func TestRefusesOverlappingAudiences(t *testing.T) {
	tests := []struct {
		name, services, want string // want "" accepts
	}{
		{"service audience is a caller audience",
			`{"name":"e","authMode":"entra","audience":"api://modelauth"}`, `service "e": its audience "api://modelauth" is also in OIDC_AUDIENCES`},
		{"the same in another case",
			`{"name":"e","authMode":"entra","audience":"API://ModelAuth"}`, `service "e"`},
		{"own audience", `{"name":"e","authMode":"entra","audience":"api://e"}`, ""},
		{"shared, no roles",
			`{"name":"a","authMode":"entra","audience":"api://m"},{"name":"b","authMode":"entra","audience":"api://m"}`, `services "a" and "b" share the audience "api://m"`},
		{"shared, one role",
			`{"name":"a","authMode":"entra","audience":"api://m","requiredRole":"A"},{"name":"b","authMode":"entra","audience":"api://m"}`, `services "a" and "b"`},
		{"shared, the same role",
			`{"name":"a","authMode":"entra","audience":"api://m","requiredRole":"A"},{"name":"b","authMode":"entra","audience":"api://M","requiredRole":"A"}`, `services "a" and "b"`},
		{"shared, two roles",
			`{"name":"a","authMode":"entra","audience":"api://m","requiredRole":"A"},{"name":"b","authMode":"entra","audience":"api://m","requiredRole":"B"}`, ""},
	}
	idp := oidctest.NewProvider(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "modelauth.json")
			os.WriteFile(cfgPath, []byte(`{"services":[`+tt.services+`]}`), 0o600)
			s := config.DefaultSettings()
			s.ConfigPath, s.DataDir = cfgPath, filepath.Join(dir, "data")
			s.OIDCIssuers, s.OIDCAudiences = []string{idp.Issuer()}, []string{"api://other", "api://modelauth"}
			a, err := NewApp(context.Background(), s, slog.New(slog.DiscardHandler))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("NewApp = %v; want it accepted", err)
				}
				a.Close()
				return
			}
			if err == nil {
				a.Close()
				t.Fatalf("NewApp accepted it; want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !errors.Is(err, config.ErrInvalid) {
				t.Errorf("NewApp = %v; want %q", err, tt.want)
			}
			if _, err := os.Stat(s.DataDir); err == nil {
				t.Errorf("a refused start created the store")
			}
		})
	}
}

// TestValidateFastPathAgreesWithMux: every path the fast path takes, the mux
// routes to validate with the same service; the paths it leaves, the mux
// handles.
func TestValidateFastPathAgreesWithMux(t *testing.T) {
	a := newTestApp(t, `{"services":[{"name":"svc","authMode":"none"}]}`)
	rt := a.Handler().(*router)
	tests := []struct {
		method, target string
		fast           bool
	}{
		{"GET", "/api/services/svc/validate", true},
		{"POST", "/api/services/svc/validate/", true},
		{"GET", "/api/services/svc/validate/v1/models/x:predict?a=b", true},
		{"DELETE", "/api/services/other/validate/a/b/c/", true},
		{"GET", "/api/services//validate", false},
		{"GET", "/api/services/svc/validatex", false},
		{"GET", "/api/services/svc/keys", false},
		{"GET", "/api/services/svc/validate/../keys", false},
		{"GET", "/api/services/svc/validate//x", false},
		{"GET", "/api/services/svc/validate/./x", false},
		{"GET", "/api/services/s%2Fv/validate", false},
		{"GET", "/api/services/svc", false},
		{"GET", "/api/services/", false},
		{"GET", "/API/services/svc/validate", false},
		{"CONNECT", "/api/services/svc/validate", false},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.target, nil)
		service, fast := validateRoute(req)
		if fast != tt.fast {
			t.Errorf("%s %s: fast path %v; want %v", tt.method, tt.target, fast, tt.fast)
		}
		if !fast {
			continue
		}
		_, pattern := rt.mux.Handler(req)
		if !strings.Contains(pattern, "/validate") {
			t.Errorf("%s: the mux routes it to %q", tt.target, pattern)
			continue
		}
		// Let the mux set the path values, as it does when serving.
		var muxService string
		probe := http.NewServeMux()
		probe.HandleFunc(pattern, func(_ http.ResponseWriter, r *http.Request) { muxService = r.PathValue("service") })
		probe.ServeHTTP(httptest.NewRecorder(), req)
		if muxService != service {
			t.Errorf("%s: fast path service %q, mux %q", tt.target, service, muxService)
		}
	}
}

// FuzzIsClean: isClean agrees with the test it replaces, path.Clean's.
func FuzzIsClean(f *testing.F) {
	for _, p := range []string{"/", "/a", "/a/", "/a//b", "/a/./b", "/a/../b", "/a/.", "/a/..", "/.a/..b/", "//", "/./", "/a/b/c/"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		p = "/" + p
		if p == "//" {
			return // the root and a slash: not a path validateRoute sees
		}
		c := path.Clean(p)
		if want := c == p || c+"/" == p; isClean(p) != want {
			t.Errorf("isClean(%q) = %v; path.Clean gives %q", p, !want, c)
		}
	})
}
