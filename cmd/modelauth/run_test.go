package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeApp answers every request with status and body, and records the
// Authorization header it got.
type fakeApp struct {
	status int
	body   string
	delay  time.Duration

	mu   sync.Mutex
	auth []string
	path []string
}

func (f *fakeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.path = append(f.path, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	w.Write([]byte(f.body))
}

func runFake(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestRunErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		app    *fakeApp
		args   []string
		code   int
		stderr string
	}{
		{"forbidden", &fakeApp{status: 403, body: `{"error":{"code":"Forbidden","message":"the caller lacks the role Keys.Read.iris or Keys.Read.All"}}`},
			[]string{"keys", "get", "iris"}, exitFailed,
			"modelauth: keys get iris: 403 Forbidden: the caller lacks the role Keys.Read.iris or Keys.Read.All\n"},
		{"server error", &fakeApp{status: 503, body: `{"error":{"code":"ServiceUnavailable","message":"the keys cannot be read right now"}}`},
			[]string{"token", "get", "tok"}, exitFailed,
			"modelauth: token get tok: 503 Service Unavailable: the keys cannot be read right now\n"},
		{"error without a body", &fakeApp{status: 502, body: `<html>bad gateway</html>`},
			[]string{"keys", "rotate", "iris"}, exitFailed, "modelauth: keys rotate iris: 502 Bad Gateway\n"},
		{"unreadable answer", &fakeApp{status: 200, body: `not json`},
			[]string{"keys", "get", "iris"}, exitFailed, "modelauth: keys get iris: modelauth: unexpected response: GET services/iris/keys: "},
		{"token without accessToken", &fakeApp{status: 200, body: `{}`},
			[]string{"token", "get", "tok"}, exitFailed, "modelauth: token get tok: modelauth: unexpected response: "},
		{"timeout", &fakeApp{status: 200, body: `{}`, delay: 300 * time.Millisecond},
			[]string{"keys", "get", "iris", "--timeout", "50ms"}, exitTransport, "modelauth: keys get iris: no answer from http://127.0.0.1:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.app)
			defer srv.Close()
			code, stdout, stderr := runFake(t, map[string]string{envURL: srv.URL + "/api", envKey: "admin-secret"}, tt.args...)
			if code != tt.code || !strings.HasPrefix(stderr, tt.stderr) || stdout != "" {
				t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, stderr %q", tt.args, code, stdout, stderr, tt.code, tt.stderr)
			}
			if strings.Contains(stderr, "admin-secret") {
				t.Errorf("stderr holds the key: %q", stderr)
			}
		})
	}
}

func TestRunCredentialAndURL(t *testing.T) {
	app := &fakeApp{status: 200, body: `{"primaryKey":"p","secondaryKey":"s","activeKeyType":"Secondary"}`}
	srv := httptest.NewServer(app)
	defer srv.Close()
	for _, tt := range []struct {
		name     string
		env      map[string]string
		args     []string
		wantAuth string
	}{
		{"key from the environment", map[string]string{envURL: srv.URL + "/api", envKey: "from-env"}, []string{"keys", "get", "iris"}, "Bearer from-env"},
		{"flag wins", map[string]string{envURL: srv.URL + "/api", envKey: "from-env"}, []string{"keys", "get", "iris", "--key", "from-flag"}, "Bearer from-flag"},
		{"flag before the command", map[string]string{envURL: "http://192.0.2.1/api"}, []string{"--url", srv.URL + "/api/", "--key=k", "keys", "get", "iris"}, "Bearer k"},
		{"no credential, no header", map[string]string{envURL: srv.URL + "/api"}, []string{"keys", "get", "iris"}, ""},
		{"after --", map[string]string{envURL: srv.URL + "/api"}, []string{"keys", "get", "--", "iris"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			app.mu.Lock()
			app.auth, app.path = nil, nil
			app.mu.Unlock()
			code, stdout, stderr := runFake(t, tt.env, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if want := "Primary    p\nSecondary  s  (active)\n"; stdout != want {
				t.Errorf("stdout = %q; want %q", stdout, want)
			}
			if len(app.auth) != 1 || app.auth[0] != tt.wantAuth || app.path[0] != "GET /api/services/iris/keys" {
				t.Errorf("requests %v with Authorization %q; want one GET /api/services/iris/keys with %q", app.path, app.auth, tt.wantAuth)
			}
		})
	}
}

// TestFlagErrorsNeverRepeatASecret: a key that begins with '-' typed where
// a flag was expected is not written to stderr.
func TestFlagErrorsNeverRepeatASecret(t *testing.T) {
	secret := "-Xk3SECRETSECRETSECRETSECRETSECRETSECRET"
	for _, args := range [][]string{
		{"validate", "iris", secret},
		{"validate", "iris", "--credential=x", "-" + secret},
		{"--timeout=" + secret, "keys", "get", "iris"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, func(string) string { return "" }, &out, &errb)
		if code != 2 || strings.Contains(errb.String(), "SECRET") || strings.Contains(out.String(), "SECRET") {
			t.Errorf("run(%q) = %d, stderr %q; want exit 2 without the value", args, code, errb.String())
		}
	}
}
