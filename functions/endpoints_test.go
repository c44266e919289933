package functions

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/amltest"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/logtest"
)

const amlID = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws/onlineEndpoints/"

// endpointEnv is the app on the Key Vault test server, with Azure ML
// endpoints on the Azure ML management test server, both reached with the
// app's own credential and clients.
type endpointEnv struct {
	t     testing.TB
	app   *App
	aml   *amltest.Server
	url   string
	admin string
	logs  *logtest.Buffer
	seen  map[string]bool // every key value seen, for the log check
	// scoring holds the endpoints' scoring URIs, by name.
	scoring map[string]string
}

// addEndpoint creates an endpoint at the test server.
func (e *endpointEnv) addEndpoint(name, mode string) {
	e.scoring[name] = e.aml.AddEndpoint(amlID+name, mode)
}

func newEndpointEnv(t testing.TB, endpoints string, amlOpts amltest.Options, tune func(*config.Settings)) *endpointEnv {
	t.Helper()
	kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{Resources: []string{amltest.DefaultAudience}})
	amlOpts.KV = kv
	aml := amltest.NewServer(t, &amlOpts)
	for _, line := range kv.Env() {
		k, v, _ := strings.Cut(line, "=")
		if k != "SSL_CERT_FILE" {
			t.Setenv(k, v)
		}
	}
	dir := t.TempDir()
	cfg := strings.ReplaceAll(endpoints, "ARM", aml.URL)
	cfg = strings.ReplaceAll(cfg, "AUDIENCE", amltest.DefaultAudience)
	cfgPath := filepath.Join(dir, "modelauth.json")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := config.DefaultSettings()
	s.ConfigPath, s.KeyVaultURL, s.AuthorityHost, s.DataDir = cfgPath, kv.VaultURL, kv.AuthorityHost, ""
	s.EndpointSettleDelay, s.EndpointPollInterval, s.EndpointOperationTimeout = 0, 10*time.Millisecond, 5*time.Second
	if tune != nil {
		tune(&s)
	}
	log, logs := logtest.New()
	a, err := NewApp(context.Background(), s, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	select {
	case <-a.StoreReady():
	case <-time.After(30 * time.Second):
		t.Fatal("the store did not become ready")
	}
	adm, err := a.Store.GetSecret(context.Background(), keysecret.AdminKeySecret, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &endpointEnv{t: t, app: a, aml: aml, url: srv.URL + "/api/services/", admin: adm.Value, logs: logs, seen: map[string]bool{adm.Value: true}, scoring: map[string]string{}}
}

// call sends a management request with the administrator key.
func (e *endpointEnv) call(method, path, body string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.admin)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"primaryKey", "secondaryKey"} {
		if v, ok := m[k].(string); ok {
			e.seen[v] = true
		}
	}
	return resp.StatusCode, m
}

// endpointKeys returns the endpoint's keys at the test server.
func (e *endpointEnv) endpointKeys(name string) (string, string) {
	p, s := e.aml.Keys(amlID + name)
	e.seen[p], e.seen[s] = true, true
	return p, s
}

// told is what clients read: the endpoint's active copy in the store.
func (e *endpointEnv) told(name string) string {
	e.t.Helper()
	sec, err := e.app.Store.GetSecret(context.Background(), keysecret.Endpoints.Active(name), "")
	if err != nil {
		e.t.Fatal(err)
	}
	e.seen[sec.Value] = true
	return sec.Value
}

// scores reports whether the endpoint's scoring URI accepts key.
func (e *endpointEnv) scores(name, key string) bool {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.scoring[name], strings.NewReader(`{"data":[1]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// noKeyInLogs fails the test if any key value seen appears in the logs.
func (e *endpointEnv) noKeyInLogs() {
	e.t.Helper()
	logs := e.logs.String()
	for k := range e.seen {
		if k != "" && strings.Contains(logs, k) {
			e.t.Errorf("a key is in the logs")
		}
	}
}

const endpointsConfig = `{"services":[{"name":"iris"}],"endpoints":[
	{"name":"churn","id":"` + amlID + `churn","cloud":{"resourceManager":"ARM","audience":"AUDIENCE"},"probe":{"body":{"data":[1]}}},
	{"name":"tok","id":"` + amlID + `tok","cloud":{"resourceManager":"ARM","audience":"AUDIENCE"}}]}`

// TestEndpointKeysThroughTheApp drives an endpoint's keys through the
// management routes as a user would: adoption on first get_keys, a
// rotation, an emergency regen_key, one whose operation fails, a portal
// regeneration repaired at the next due-check, and an endpoint not in key
// mode.
func TestEndpointKeysThroughTheApp(t *testing.T) {
	e := newEndpointEnv(t, endpointsConfig, amltest.Options{}, nil)
	e.addEndpoint("churn", "Key")
	e.addEndpoint("tok", "AMLToken")
	p0, s0 := e.endpointKeys("churn")

	// get_keys adopts the endpoint's keys: clients can read the active
	// copy from the start.
	status, keys := e.call("GET", "churn/keys", "")
	if status != 200 || keys["primaryKey"] != p0 || keys["secondaryKey"] != s0 || keys["activeKeyType"] != "Primary" {
		t.Fatalf("get_keys = %d %v; want the endpoint's keys, Primary active", status, keys["activeKeyType"])
	}
	if e.told("churn") != p0 || !e.scores("churn", e.told("churn")) {
		t.Fatal("the active copy is not the endpoint's Primary, or does not score")
	}

	// rotate: the Secondary is replaced at the endpoint, tested, and told.
	status, rot := e.call("POST", "churn/keys/rotate", "")
	r, _ := rot["rotation"].(map[string]any)
	if status != 200 || r["outcome"] != "completed" || r["keyType"] != "Secondary" {
		t.Fatalf("rotate = %d %v", status, rot)
	}
	p1, s1 := e.endpointKeys("churn")
	if p1 != p0 || s1 == s0 || e.told("churn") != s1 || rot["secondaryKey"] != s1 || rot["activeKeyType"] != "Secondary" {
		t.Fatal("after the rotation the endpoint, the answer and the active copy disagree")
	}
	if !e.scores("churn", s1) || !e.scores("churn", p0) || e.scores("churn", s0) {
		t.Fatal("after the rotation: want the new key and the previous active key to score, the replaced one refused")
	}

	// regen_key of the Primary: the old value stops working when the
	// answer comes.
	status, keys = e.call("POST", "churn/keys/regenerate", `{"keyType":"Primary"}`)
	p2, _ := e.endpointKeys("churn")
	if status != 200 || p2 == p0 || keys["primaryKey"] != p2 || e.scores("churn", p0) || !e.scores("churn", p2) {
		t.Fatalf("regen_key = %d: want the endpoint's new Primary answered, the old one refused", status)
	}
	// A user-supplied value outside Azure ML's alphabet is refused.
	if status, _ := e.call("POST", "churn/keys/regenerate", `{"keyType":"Primary","keyValue":"`+strings.Repeat("a-_", 12)+`"}`); status != 400 {
		t.Errorf("regen_key with a bad keyValue = %d; want 400", status)
	}

	// A regen whose operation fails answers 503 and leaves the old value
	// working and told; the next due-check sets the value that is in the
	// store.
	e.aml.FailOperations(1, "InternalServerError", "injected")
	status, body := e.call("POST", "churn/keys/regenerate", `{"keyType":"Secondary"}`)
	if status != 503 || !e.scores("churn", s1) || e.told("churn") != s1 {
		t.Fatalf("regen_key with a failed operation = %d %v: want 503, the old Secondary still working and told", status, body)
	}
	if _, err := e.app.Endpoints.RotateIfDue(context.Background(), "churn"); err != nil {
		t.Fatal(err)
	}
	_, s3 := e.endpointKeys("churn")
	if s3 == s1 || e.told("churn") != s3 || !e.scores("churn", s3) {
		t.Fatal("the due-check did not set the regenerated Secondary at the endpoint and tell it")
	}

	// A regeneration in the portal is adopted at the next due-check.
	e.aml.SetKey(amlID+"churn", "Secondary", "PortalRegeneratedKey0123456789abcdefXYZ")
	e.seen["PortalRegeneratedKey0123456789abcdefXYZ"] = true
	if _, err := e.app.Endpoints.RotateIfDue(context.Background(), "churn"); err != nil {
		t.Fatal(err)
	}
	if e.told("churn") != "PortalRegeneratedKey0123456789abcdefXYZ" || !strings.Contains(e.logs.String(), "endpoint_key_drift") {
		t.Fatal("the portal's key was not adopted and told, or no endpoint_key_drift was logged")
	}

	// A rotation the app's identity lacks the role for fails with a clear
	// cause, and changes nothing clients are told.
	told := e.told("churn")
	e.aml.Deny("Microsoft.MachineLearningServices/workspaces/onlineEndpoints/regenerateKeys/action")
	if status, _ := e.call("POST", "churn/keys/rotate", ""); status != 503 {
		t.Errorf("rotate without the role = %d; want 503", status)
	}
	if !strings.Contains(e.logs.String(), `"cause":"forbidden"`) || e.told("churn") != told || !e.scores("churn", told) {
		t.Error("a forbidden set: want rotation_failed with cause forbidden, and the told key unchanged and working")
	}

	// An endpoint not in key mode is refused, and says why.
	if status, body := e.call("GET", "tok/keys", ""); status != 409 {
		t.Errorf("get_keys of an AMLToken endpoint = %d %v; want 409", status, body)
	}
	// A name that is neither is 404; a service's keys still work.
	if status, _ := e.call("GET", "nope/keys", ""); status != 404 {
		t.Errorf("unknown name = %d", status)
	}
	if status, _ := e.call("GET", "iris/keys", ""); status != 200 {
		t.Errorf("a service's get_keys = %d", status)
	}
	e.noKeyInLogs()
}
