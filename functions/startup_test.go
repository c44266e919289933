package functions

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/journal"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/logtest"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/memstore"
)

// downStore is a store that fails every call while down is set.
func downStore(down *atomic.Bool) *secretstore.Store {
	return memstore.Open(&memstore.Options{BeforeFn: func(ctx context.Context, op, name string) error {
		if down.Load() {
			return &memstore.Error{Code: secretstore.Unavailable}
		}
		return nil
	}})
}

func startupSettings(t *testing.T, services string) config.Settings {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "modelauth.json")
	if err := os.WriteFile(cfgPath, []byte(services), 0o600); err != nil {
		t.Fatal(err)
	}
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir = cfgPath, filepath.Join(dir, "data")
	return s
}

// TestStartsWithTheStoreDown: a store that fails at start does not refuse
// the start; readiness answers, the functions that need the store answer
// 503 with Retry-After, jwks.json too (not an empty key set), the retries
// are logged without a secret, and once the store answers the
// administrator key and the first signing key are written without a
// restart, and the functions answer.
func TestStartsWithTheStoreDown(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	store := downStore(&down)
	s := startupSettings(t, `{"services":[{"name":"svc"},{"name":"tok","authMode":"token"},{"name":"open","authMode":"none"}]}`)
	log, logs := logtest.New()
	began := time.Now()
	a, err := NewAppWithStore(context.Background(), s, store, log)
	if err != nil {
		t.Fatalf("NewAppWithStore with the store down = %v; want a start", err)
	}
	defer a.Close()
	if d := time.Since(began); d > startWait+time.Second {
		t.Errorf("NewAppWithStore took %v; want at most about %v", d, startWait)
	}
	h := a.Handler()
	do := func(method, path, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	select {
	case <-a.StoreReady():
		t.Fatal("StoreReady closed with the store down")
	default:
	}

	if rec := do("GET", "/", ""); rec.Code != 200 {
		t.Errorf("readiness with the store down = %d; want 200", rec.Code)
	}
	if rec := do("GET", "/api/services/open/validate", ""); rec.Code != 200 {
		t.Errorf("validate of a mode-none service with the store down = %d; want 200", rec.Code)
	}
	if rec := do("GET", "/api/.well-known/openid-configuration", ""); rec.Code != 200 {
		t.Errorf("openid-configuration with the store down = %d; want 200", rec.Code)
	}
	key := "Bearer " + strings.Repeat("k", 43)
	for _, tt := range []struct{ method, path, auth string }{
		{"GET", "/api/services/svc/keys", key},
		{"POST", "/api/services/svc/keys/regenerate", key},
		{"GET", "/api/services/svc/validate", key},
		{"POST", "/api/services/tok/token", key},
		{"GET", "/api/.well-known/jwks.json", ""},
	} {
		rec := do(tt.method, tt.path, tt.auth)
		ra, _ := strconv.Atoi(rec.Header().Get("Retry-After"))
		if rec.Code != http.StatusServiceUnavailable || ra < 1 || !strings.Contains(rec.Body.String(), `"ServiceUnavailable"`) {
			t.Errorf("%s %s with the store down = %d (Retry-After %q) %s; want 503 with Retry-After",
				tt.method, tt.path, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `"msg":"store_init_failed","step":"signing_key"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no store_init_failed for both steps in the log:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"msg":"store_init_failed","step":"admin_key","attempt":1`) {
		t.Errorf("no store_init_failed for the administrator key:\n%s", logs)
	}

	down.Store(false)
	select {
	case <-a.StoreReady():
	case <-time.After(10 * time.Second):
		t.Fatalf("the start's writes did not complete after the store came back:\n%s", logs)
	}
	adm, err := store.GetSecret(context.Background(), keysecret.AdminKeySecret, "")
	if err != nil {
		t.Fatalf("the administrator key after recovery: %v", err)
	}
	if rec := do("GET", "/api/services/svc/keys", "Bearer "+adm.Value); rec.Code != 200 {
		t.Errorf("get_keys after recovery = %d %s", rec.Code, rec.Body)
	}
	rec := do("GET", "/api/.well-known/jwks.json", "")
	var set struct{ Keys []map[string]any }
	json.Unmarshal(rec.Body.Bytes(), &set)
	if rec.Code != 200 || len(set.Keys) != 1 {
		t.Errorf("jwks.json after recovery = %d %s; want the first signing key", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), `"msg":"store_init_completed"`) {
		t.Errorf("no store_init_completed in the log")
	}
	if strings.Contains(logs.String(), adm.Value) {
		t.Errorf("the log holds the administrator key")
	}
}

// TestStartWithTheStoreUpIsComplete: with a store that answers, NewApp
// returns with the administrator key and the first signing key written,
// as before, and logs no retry.
func TestStartWithTheStoreUpIsComplete(t *testing.T) {
	var down atomic.Bool
	store := downStore(&down)
	log, logs := logtest.New()
	a, err := NewAppWithStore(context.Background(), startupSettings(t, `{"services":[{"name":"tok","authMode":"token"}]}`), store, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	select {
	case <-a.StoreReady():
	default:
		t.Fatal("StoreReady not closed when NewApp returned")
	}
	if _, err := store.GetSecret(context.Background(), keysecret.AdminKeySecret, ""); err != nil {
		t.Errorf("administrator key: %v", err)
	}
	if vs, err := store.ListVersions(context.Background(), keysecret.SigningKeySecret); err != nil || len(vs) != 1 {
		t.Errorf("signing keys = %d, %v; want one", len(vs), err)
	}
	if strings.Contains(logs.String(), "store_init") {
		t.Errorf("logged a retry with the store up:\n%s", logs)
	}
}

// TestCloseEndsStartRetries: Close with the store still down ends the
// background retries at once.
func TestCloseEndsStartRetries(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	a, err := NewAppWithStore(context.Background(), startupSettings(t, `{"services":[{"name":"svc"}]}`), downStore(&down), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	a.Close()
	if d := time.Since(began); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	select {
	case <-a.init.exited:
	default:
		t.Error("the retries still run after Close")
	}
}

// TestRegenWhoseRecordFailsAnswersNotPublished: when the change journal's
// record of a regen_key cannot be written, the answer is 503 NotPublished
// with Retry-After, the old key still works (the new one is in no
// instance's view), and calling again replaces it.
func TestRegenWhoseRecordFailsAnswersNotPublished(t *testing.T) {
	var recordsDown atomic.Bool
	store := memstore.Open(&memstore.Options{BeforeFn: func(_ context.Context, op, name string) error {
		if recordsDown.Load() && op == memstore.OpSet && strings.HasPrefix(name, journal.Prefix+"2") {
			return &memstore.Error{Code: secretstore.Unavailable}
		}
		return nil
	}})
	s := startupSettings(t, `{"services":[{"name":"svc"}]}`)
	a, err := NewAppWithStore(context.Background(), s, store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	<-a.StoreReady()
	h := a.Handler()
	adm, err := store.GetSecret(context.Background(), keysecret.AdminKeySecret, "")
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, auth string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(`{"keyType":"Primary"}`)
		}
		req := httptest.NewRequest(method, path, body)
		req.Header.Set("Authorization", "Bearer "+auth)
		h.ServeHTTP(rec, req)
		return rec
	}
	keys := do("GET", "/api/services/svc/keys", adm.Value)
	var before struct{ PrimaryKey string }
	json.Unmarshal(keys.Body.Bytes(), &before)
	if keys.Code != 200 || before.PrimaryKey == "" {
		t.Fatalf("get_keys = %d %s", keys.Code, keys.Body)
	}
	recordsDown.Store(true)
	rec := do("POST", "/api/services/svc/keys/regenerate", adm.Value)
	if ra, _ := strconv.Atoi(rec.Header().Get("Retry-After")); rec.Code != 503 || ra < 1 || !strings.Contains(rec.Body.String(), `"NotPublished"`) {
		t.Fatalf("regen with the journal down = %d (Retry-After %q) %s; want 503 NotPublished with Retry-After", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if strings.Contains(rec.Body.String(), before.PrimaryKey) {
		t.Fatal("the answer holds a key")
	}
	if rec := do("GET", "/api/services/svc/validate", before.PrimaryKey); rec.Code != 200 {
		t.Errorf("the old key after an unpublished regen = %d; want 200 (the new key is not in effect)", rec.Code)
	}
	recordsDown.Store(false)
	rec = do("POST", "/api/services/svc/keys/regenerate", adm.Value)
	var after struct{ PrimaryKey string }
	json.Unmarshal(rec.Body.Bytes(), &after)
	if rec.Code != 200 || after.PrimaryKey == "" || after.PrimaryKey == before.PrimaryKey {
		t.Fatalf("regen again = %d %s", rec.Code, rec.Body)
	}
	if rec := do("GET", "/api/services/svc/validate", before.PrimaryKey); rec.Code != 401 {
		t.Errorf("the old key after the regen = %d; want 401", rec.Code)
	}
	if rec := do("GET", "/api/services/svc/validate", after.PrimaryKey); rec.Code != 200 {
		t.Errorf("the new key = %d; want 200", rec.Code)
	}
}
