package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/cmd/funchost/hosttest"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/logtest"
)

// This end-to-end test stages the app with `make stage`, starts the local
// host (cmd/funchost) as a subprocess on a free port, and drives every
// key-auth feature over real HTTP, as a user or a gateway would.

type app struct {
	url      string
	dataDir  string
	logs     *logtest.Buffer
	adminKey string
	client   *http.Client
}

// startApp stages the function app into a temporary folder with the given
// service configuration and starts the local host on it.
func startApp(t *testing.T, services string, env []string) *app {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	h := hosttest.Start(t, hosttest.Options{Services: services, Env: env})
	return &app{url: h.URL, dataDir: h.DataDir, logs: h.Logs, adminKey: h.AdminKey, client: &http.Client{
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	r.json(t, &e)
	if e.Error.Message == "" {
		t.Fatalf("error body without a message: %s", r.body)
	}
	return e.Error.Code
}

func (a *app) do(t *testing.T, method, path, auth string, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

type keysBody struct {
	PrimaryKey, SecondaryKey, ActiveKeyType string
}

// TestMain trusts the Key Vault test server's CA through SSL_CERT_FILE, in
// this process and (inherited) in the handler's.
func TestMain(m *testing.M) {
	os.Exit(keyvaulttest.RunTests(m))
}

func TestEndToEndKeyAuth(t *testing.T) {
	t.Run("file store", func(t *testing.T) { keyAuthScenario(t, nil, nil) })
	t.Run("key vault", func(t *testing.T) {
		kv := keyvaulttest.NewServer(t, nil)
		keyAuthScenario(t, kv.Env(), []string{kv.ClientSecret})
		if st := kv.Stats(); st.TokensIssued == 0 || st.Get == 0 || st.Set == 0 {
			t.Errorf("the app did not use the vault: %+v", st)
		}
	})
}

// keyAuthScenario drives every key-auth feature through the local host;
// env selects the store. secrets are more values the logs must not hold.
func keyAuthScenario(t *testing.T, env []string, secrets []string) {
	type seen struct {
		path   string
		header http.Header
		body   string
	}
	var (
		mu       sync.Mutex
		upstream []seen
	)
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		upstream = append(upstream, seen{r.URL.RequestURI(), r.Header.Clone(), string(b)})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"prediction":[1],"path":%q}`, r.URL.Path)
	}))
	defer model.Close()

	a := startApp(t, `{"services":[
		{"name":"iris","authMode":"key","scoringUri":"`+model.URL+`/score"},
		{"name":"iris2","authMode":"key"},
		{"name":"open","authMode":"none"},
		{"name":"tok","authMode":"token"}
	]}`, env)
	admin := "Bearer " + a.adminKey
	issued := append([]string{a.adminKey}, secrets...)

	// get_keys: only for the administrator.
	r := a.do(t, "GET", "/api/services/iris/keys", "", "")
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="modelauth"` {
		t.Fatalf("get_keys without credentials = %d %q; want 401 with a bare challenge", r.status, r.header.Get("WWW-Authenticate"))
	}
	r = a.do(t, "GET", "/api/services/iris/keys", "Bearer wrong-admin-key-wrong-admin-key-000", "")
	if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("get_keys with a wrong key = %d %q; want 401 invalid_token", r.status, r.header.Get("WWW-Authenticate"))
	}
	r = a.do(t, "GET", "/api/services/iris/keys", admin, "")
	if r.status != 200 {
		t.Fatalf("get_keys = %d %s", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("get_keys Cache-Control = %q; want no-store", cc)
	}
	var keys keysBody
	r.json(t, &keys)
	if len(keys.PrimaryKey) != 43 || len(keys.SecondaryKey) != 43 || keys.PrimaryKey == keys.SecondaryKey || keys.ActiveKeyType != "Primary" {
		t.Fatalf("get_keys body = %+v", keys)
	}
	issued = append(issued, keys.PrimaryKey, keys.SecondaryKey)
	// The same keys on a second read.
	var again keysBody
	a.do(t, "GET", "/api/services/iris/keys", admin, "").json(t, &again)
	if again != keys {
		t.Fatalf("second get_keys = %+v; want %+v", again, keys)
	}

	// get_keys refusals.
	for _, tt := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/api/services/nosuch/keys", 404, "NotFound"},
		{"GET", "/api/services/open/keys", 409, "Conflict"},
		{"GET", "/api/services/tok/keys", 409, "Conflict"},
		{"GET", "/api/services/iris/keys/regenerate", 405, "MethodNotAllowed"},
		{"POST", "/api/services/iris/keys/frobnicate", 404, "NotFound"},
	} {
		r := a.do(t, tt.method, tt.path, admin, "")
		if r.status != tt.status || r.errorCode(t) != tt.code {
			t.Errorf("%s %s = %d %s; want %d %s", tt.method, tt.path, r.status, r.body, tt.status, tt.code)
		}
	}

	// validate.
	validate := func(path, auth string) response { return a.do(t, "GET", path, auth, "") }
	for _, tt := range []struct {
		name, path, auth string
		status           int
		keyType          string
		challenge        string
	}{
		{"primary", "/api/services/iris/validate", "Bearer " + keys.PrimaryKey, 200, "Primary", ""},
		{"secondary", "/api/services/iris/validate", "Bearer " + keys.SecondaryKey, 200, "Secondary", ""},
		{"envoy tail", "/api/services/iris/validate/v1/models/iris:predict?x=1", "Bearer " + keys.PrimaryKey, 200, "Primary", ""},
		{"wrong key", "/api/services/iris/validate", "Bearer " + strings.Repeat("x", 43), 401, "", `Bearer realm="iris", error="invalid_token"`},
		{"jwt for a key service", "/api/services/iris/validate", "Bearer a.b.c", 401, "", `error="invalid_token"`},
		{"no header", "/api/services/iris/validate", "", 401, "", `Bearer realm="iris"`},
		{"other scheme", "/api/services/iris/validate", "Basic dXNlcjpwYXNz", 401, "", `Bearer realm="iris"`},
		{"malformed", "/api/services/iris/validate", "Bearer a b", 400, "", `error="invalid_request"`},
		{"unknown service", "/api/services/nosuch/validate", "Bearer " + keys.PrimaryKey, 404, "", ""},
		{"other service's key", "/api/services/iris2/validate", "Bearer " + keys.PrimaryKey, 401, "", `error="invalid_token"`},
		{"admin key as a service key", "/api/services/iris/validate", admin, 401, "", `error="invalid_token"`},
		{"token-mode service", "/api/services/tok/validate", "Bearer " + keys.PrimaryKey, 401, "", `error="invalid_token"`},
		{"mode none", "/api/services/open/validate/anything", "", 200, "", ""},
	} {
		t.Run("validate "+tt.name, func(t *testing.T) {
			r := validate(tt.path, tt.auth)
			if r.status != tt.status {
				t.Fatalf("status = %d %s; want %d", r.status, r.body, tt.status)
			}
			ch := r.header.Get("WWW-Authenticate")
			if tt.challenge != "" && !strings.HasPrefix(ch, tt.challenge) && !strings.Contains(ch, tt.challenge) {
				t.Errorf("WWW-Authenticate = %q; want %q", ch, tt.challenge)
			}
			if tt.name == "no header" || tt.name == "other scheme" {
				if strings.Contains(ch, "error=") {
					t.Errorf("challenge for missing credentials has an error: %q", ch)
				}
			}
			if tt.status != 200 {
				r.errorCode(t)
				if r.header.Get("X-ModelAuth-Service") != "" {
					t.Errorf("failure carries identity headers")
				}
				return
			}
			var id struct{ Service, Subject, AuthType, KeyType string }
			r.json(t, &id)
			// Every identity header is sent: "none" where it does not apply.
			wantHeader := tt.keyType
			if wantHeader == "" {
				wantHeader = "none"
			}
			if got := r.header.Get("X-ModelAuth-Key-Type"); got != wantHeader || id.KeyType != tt.keyType {
				t.Errorf("key type = header %q body %q; want %q and %q", got, id.KeyType, wantHeader, tt.keyType)
			}
			if r.header.Get("X-ModelAuth-Service") != id.Service || id.Service == "" {
				t.Errorf("service header %q, body %q", r.header.Get("X-ModelAuth-Service"), id.Service)
			}
			if r.header.Get("X-ModelAuth-Auth-Type") != id.AuthType || r.header.Get("X-ModelAuth-Subject") != id.Subject {
				t.Errorf("identity headers %v do not match body %+v", r.header, id)
			}
		})
	}
	// POST and other methods validate too.
	if r := a.do(t, "POST", "/api/services/iris/validate", "Bearer "+keys.SecondaryKey, `{"x":1}`); r.status != 200 {
		t.Errorf("POST validate = %d", r.status)
	}

	// regen_key Primary: the old Primary stops working at once, the new
	// one works, Secondary is untouched.
	r = a.do(t, "POST", "/api/services/iris/keys/regenerate", "", `{"keyType":"Primary"}`)
	if r.status != 401 {
		t.Fatalf("regen without credentials = %d", r.status)
	}
	r = a.do(t, "POST", "/api/services/iris/keys/regenerate", admin, `{"keyType":"Primary"}`)
	if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("regen = %d %v %s", r.status, r.header, r.body)
	}
	var regen keysBody
	r.json(t, &regen)
	if regen.PrimaryKey == keys.PrimaryKey || len(regen.PrimaryKey) != 43 || regen.SecondaryKey != keys.SecondaryKey {
		t.Fatalf("after regen Primary: %+v (before %+v)", regen, keys)
	}
	issued = append(issued, regen.PrimaryKey)
	if r := validate("/api/services/iris/validate", "Bearer "+keys.PrimaryKey); r.status != 401 {
		t.Errorf("old Primary after regen = %d; want 401", r.status)
	}
	if r := validate("/api/services/iris/validate", "Bearer "+regen.PrimaryKey); r.status != 200 {
		t.Errorf("new Primary = %d; want 200", r.status)
	}
	if r := validate("/api/services/iris/validate", "Bearer "+keys.SecondaryKey); r.status != 200 {
		t.Errorf("Secondary after regen of Primary = %d; want 200", r.status)
	}
	// A user-supplied Secondary.
	mine := "user-supplied-secondary-key_0123456789"
	r = a.do(t, "POST", "/api/services/iris/keys/regenerate", admin, `{"keyType":"secondary","keyValue":"`+mine+`"}`)
	if r.status != 200 {
		t.Fatalf("regen Secondary with a value = %d %s", r.status, r.body)
	}
	issued = append(issued, mine)
	if r := validate("/api/services/iris/validate", "Bearer "+mine); r.status != 200 || r.header.Get("X-ModelAuth-Key-Type") != "Secondary" {
		t.Errorf("user-supplied Secondary = %d %q", r.status, r.header.Get("X-ModelAuth-Key-Type"))
	}
	// The administrator key, or another key in use, cannot become a key.
	for _, v := range []string{a.adminKey, regen.PrimaryKey} {
		if r := a.do(t, "POST", "/api/services/iris/keys/regenerate", admin, `{"keyType":"Secondary","keyValue":"`+v+`"}`); r.status != 400 {
			t.Errorf("regen to a key in use = %d %s; want 400", r.status, r.body)
		}
	}
	// get_keys with the route's optional action left empty; unknown paths.
	if r := a.do(t, "GET", "/api/services/iris/keys/", admin, ""); r.status != 200 {
		t.Errorf("GET keys/ = %d", r.status)
	}
	// (No function's route matches: the host answers, as the real one does.)
	if r := a.do(t, "GET", "/api/services/iris/nothing", admin, ""); r.status != 404 {
		t.Errorf("unknown path = %d %s", r.status, r.body)
	}
	// Bad regen bodies.
	for _, body := range []string{``, `{`, `{"keyType":"Tertiary"}`, `{"keyType":"Primary","keyValue":"short"}`,
		`{"keyType":"Primary","keyValue":"has.a.dot.in.it.aaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`, `{"keyType":"Primary","extra":1}`} {
		if r := a.do(t, "POST", "/api/services/iris/keys/regenerate", admin, body); r.status != 400 || r.errorCode(t) != "BadRequest" {
			t.Errorf("regen with %q = %d %s; want 400", body, r.status, r.body)
		}
	}

	// score: reaches the upstream only when authorized, with neither the
	// key nor a client-sent X-ModelAuth-* header.
	r = a.do(t, "POST", "/api/services/iris/score", "Bearer "+keys.SecondaryKey, `{"data":[[1]]}`)
	if r.status != 401 {
		t.Fatalf("score with the replaced Secondary = %d; want 401", r.status)
	}
	r = a.do(t, "POST", "/api/services/iris/score", "", `{"data":[[1]]}`)
	if r.status != 401 {
		t.Fatalf("score without a key = %d; want 401", r.status)
	}
	mu.Lock()
	if len(upstream) != 0 {
		t.Fatalf("the upstream was called for unauthorized requests: %+v", upstream)
	}
	mu.Unlock()
	r = a.do(t, "POST", "/api/services/iris/score/v2/predict?debug=1", "Bearer "+regen.PrimaryKey, `{"data":[[1,2]]}`,
		"X-ModelAuth-Subject", "forged", "X-Modelauth-Evil", "1", "x-functions-key", "fk")
	if r.status != 200 || !strings.Contains(string(r.body), `"prediction"`) {
		t.Fatalf("score = %d %s", r.status, r.body)
	}
	mu.Lock()
	if len(upstream) != 1 {
		t.Fatalf("upstream calls = %d; want 1", len(upstream))
	}
	got := upstream[0]
	mu.Unlock()
	if got.path != "/score/v2/predict?debug=1" || got.body != `{"data":[[1,2]]}` {
		t.Errorf("upstream got %q %q", got.path, got.body)
	}
	if got.header.Get("Authorization") != "" || got.header.Get("X-Functions-Key") != "" || got.header.Get("X-Modelauth-Evil") != "" {
		t.Errorf("upstream saw credentials or forged headers: %v", got.header)
	}
	if got.header.Get("X-ModelAuth-Subject") != "key:Primary" || got.header.Get("X-ModelAuth-Service") != "iris" ||
		got.header.Get("X-ModelAuth-Key-Type") != "Primary" || len(got.header.Values("X-ModelAuth-Subject")) != 1 {
		t.Errorf("upstream identity headers: %v", got.header)
	}
	for _, k := range issued {
		for name, vals := range got.header {
			if strings.Contains(strings.Join(vals, " "), k) {
				t.Errorf("upstream header %s carries a key", name)
			}
		}
	}
	// A service without a scoringUri.
	if r := a.do(t, "POST", "/api/services/open/score", "", `{}`); r.status != 404 {
		t.Errorf("score without scoringUri = %d", r.status)
	}

	// The logs hold audit events and none of the keys issued in this run.
	logs := a.logs.String()
	for _, want := range []string{`"event":"get_keys"`, `"event":"regen_key"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	for _, k := range issued {
		if strings.Contains(logs, k) {
			t.Errorf("a key issued in this run appears in the logs")
		}
	}
}
