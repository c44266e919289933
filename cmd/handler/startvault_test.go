package main

import (
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/cmd/funchost/hosttest"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// TestStartWithoutTheVault starts the app under the local host with
// KEYVAULT_URL naming a Key Vault that is not running yet (its port held
// by a listener that drops every connection, so that the Entra endpoint
// fails too). The handler must start and answer readiness, the functions
// that need the vault 503 with Retry-After while it retries in the
// background, and the handler process must keep running (no crash loop).
// Then the vault starts on that address, and the app recovers without a
// restart: the administrator key is written, get_keys answers 200.
func TestStartWithoutTheVault(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	// The vault's address, held until the vault starts.
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := hold.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer hold.Close()
	addr := hold.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	certFile, err := keyvaulttest.CertFile()
	if err != nil {
		t.Fatal(err)
	}
	kvOpts := &keyvaulttest.Options{Addr: addr, TenantID: "start-tenant", ClientID: "00000000-0000-4000-8000-000000000014",
		ClientSecret: "kvt~start-without-the-vault"}
	vaultURL := "https://127.0.0.1:" + port
	env := []string{
		"KEYVAULT_URL=" + vaultURL,
		"SSL_CERT_FILE=" + certFile,
		"AZURE_AUTHORITY_HOST=" + vaultURL,
		"AZURE_TENANT_ID=" + kvOpts.TenantID,
		"AZURE_CLIENT_ID=" + kvOpts.ClientID,
		"AZURE_CLIENT_SECRET=" + kvOpts.ClientSecret,
	}

	h := hosttest.Start(t, hosttest.Options{
		Services: `{"services":[{"name":"iris","authMode":"key"},{"name":"tok","authMode":"token"},{"name":"open","authMode":"none"}]}`,
		Env:      env, NoAdminKey: true,
	})
	a := &app{url: h.URL, dataDir: h.DataDir, logs: h.Logs, client: &http.Client{Timeout: 30 * time.Second}}

	// Readiness, on the handler's own port, as the host polls it.
	m := regexp.MustCompile(`msg="custom handler ready".* port=(\d+)`).FindStringSubmatch(a.logs.String())
	if m == nil {
		t.Fatalf("the local host logged no ready handler:\n%s", a.logs)
	}
	started, _ := crashWaitEvent(t, a, 0, 10*time.Second, "handler_started", func(e crashEvent) bool { return e.msg() == "handler_started" })
	pid := started.int("pid")
	ready := func(when string) {
		t.Helper()
		resp, err := a.client.Get("http://127.0.0.1:" + m[1] + "/")
		if err != nil {
			t.Fatalf("readiness %s: %v", when, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("readiness %s = %d; want 200", when, resp.StatusCode)
		}
	}
	ready("with the vault down")

	unavailable := func(method, path, auth string) {
		t.Helper()
		r := a.do(t, method, path, auth, "")
		ra, _ := strconv.Atoi(r.header.Get("Retry-After"))
		if r.status != http.StatusServiceUnavailable || ra < 1 || r.errorCode(t) != "ServiceUnavailable" {
			t.Fatalf("%s %s with the vault down = %d (Retry-After %q) %s; want 503 with Retry-After",
				method, path, r.status, r.header.Get("Retry-After"), r.body)
		}
		if strings.Contains(string(r.body), "127.0.0.1") || strings.Contains(string(r.body), "secretstore") {
			t.Errorf("the 503 shows the store's error: %s", r.body)
		}
	}
	someKey := "Bearer " + strings.Repeat("k", 43)
	unavailable("GET", "/api/services/iris/validate", someKey)
	unavailable("GET", "/api/services/iris/keys", someKey)
	unavailable("GET", "/api/.well-known/jwks.json", "")
	if r := a.do(t, "GET", "/api/services/open/validate", "", ""); r.status != 200 {
		t.Errorf("validate of a mode-none service with the vault down = %d %s", r.status, r.body)
	}
	if r := a.do(t, "GET", "/api/services/iris/validate", "Bearer a b", ""); r.status != 400 || r.errorCode(t) != "BadRequest" {
		t.Errorf("a malformed header with the vault down = %d %s; want 400", r.status, r.body)
	}
	if r := a.do(t, "GET", "/api/services/nosuch/validate", someKey, ""); r.status != 404 {
		t.Errorf("an unknown service with the vault down = %d %s; want 404", r.status, r.body)
	}

	// The handler retries in the background and keeps running.
	crashWaitEvent(t, a, 0, 20*time.Second, "a second failed attempt", func(e crashEvent) bool {
		return e.msg() == "store_init_failed" && e.int("attempt") >= 2
	})
	ready("after the retries")
	unavailable("GET", "/api/services/iris/keys", someKey)

	// The vault starts on the address the app was given.
	hold.Close()
	kv, err := keyvaulttest.Start(kvOpts)
	if err != nil {
		t.Fatalf("starting the vault on %s: %v", addr, err)
	}
	t.Cleanup(kv.Close)
	crashWaitEvent(t, a, 0, 45*time.Second, "store_init_completed", func(e crashEvent) bool { return e.msg() == "store_init_completed" })
	admin := "Bearer " + h.ReadAdminKey(t, 10*time.Second)
	r := a.do(t, "GET", "/api/services/iris/keys", admin, "")
	if r.status != 200 {
		t.Fatalf("get_keys after the vault started = %d %s", r.status, r.body)
	}
	var keys keysBody
	r.json(t, &keys)
	if r := a.do(t, "GET", "/api/services/iris/validate", "Bearer "+keys.PrimaryKey, ""); r.status != 200 {
		t.Errorf("validate after the vault started = %d %s", r.status, r.body)
	}
	var set struct{ Keys []map[string]any }
	r = a.do(t, "GET", "/api/.well-known/jwks.json", "", "")
	r.json(t, &set)
	if r.status != 200 || len(set.Keys) != 1 {
		t.Errorf("jwks.json after the vault started = %d %s; want the first signing key", r.status, r.body)
	}

	// One handler process all along.
	logs := a.logs.String()
	if strings.Contains(logs, "restarting the custom handler") || strings.Count(logs, `"msg":"handler_started"`) != 1 {
		t.Errorf("the handler was restarted:\n%s", logs)
	}
	for _, e := range crashEvents(logs) {
		if e.msg() == "handler_started" && e.int("pid") != pid {
			t.Errorf("handler_started by pid %d; want only %d", e.int("pid"), pid)
		}
	}
	for _, secret := range []string{admin[len("Bearer "):], keys.PrimaryKey, keys.SecondaryKey, kvOpts.ClientSecret} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold a secret")
		}
	}
}
