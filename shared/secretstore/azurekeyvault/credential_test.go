package azurekeyvault_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/azurekeyvault"
)

// azureVars are the AZURE_* variables azidentity v1.15 reads (its
// azidentity.go, default_azure_credential.go, environment_credential.go,
// workload_identity.go and internal/customtokenproxy): a local.settings.json
// or Core Tools may export any of them empty.
var azureVars = []string{
	"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_AUTHORITY_HOST",
	"AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
	"AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_TOKEN_CREDENTIALS",
	"AZURE_ADDITIONALLY_ALLOWED_TENANTS", "AZURE_REGIONAL_AUTHORITY_NAME",
	"AZURE_KUBERNETES_TOKEN_PROXY", "AZURE_KUBERNETES_SNI_NAME", "AZURE_KUBERNETES_CA_FILE", "AZURE_KUBERNETES_CA_DATA",
}

// clearAzureEnv unsets every variable of azureVars, and the managed
// identity endpoints, for the test (restored when it ends).
func clearAzureEnv(t *testing.T) {
	for _, name := range append(azureVars, "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT") {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
}

// roundTrip writes and reads a secret through the vault with cred's
// store, failing the test if the credential does not work.
func roundTrip(t *testing.T, kv *keyvaulttest.Server, authorityHost string) {
	t.Helper()
	cred, err := azurekeyvault.NewCredential(authorityHost)
	if err != nil {
		t.Fatalf("NewCredential: %v", err)
	}
	store, err := azurekeyvault.Open(kv.VaultURL, cred, fast)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := store.SetSecret(ctx, "admin-key", secretstore.SetParams{Value: "v", Enabled: true}); err != nil {
		t.Fatalf("SetSecret: %v", err)
	}
	if got, err := store.GetSecret(ctx, "admin-key", ""); err != nil || got.Value != "v" {
		t.Fatalf("GetSecret = %q, %v", got.Value, err)
	}
}

// TestEmptyAzureVariablesWithEnvironmentCredential: the service-principal
// path (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET) works with
// each other AZURE_* variable set to "", and with all of them at once;
// NewCredential leaves none of them in the environment.
func TestEmptyAzureVariablesWithEnvironmentCredential(t *testing.T) {
	kv := keyvaulttest.NewServer(t, nil)
	used := map[string]string{
		"AZURE_TENANT_ID": kv.TenantID, "AZURE_CLIENT_ID": kv.ClientID,
		"AZURE_CLIENT_SECRET": kv.ClientSecret, "AZURE_AUTHORITY_HOST": kv.AuthorityHost,
	}
	var empty []string
	for _, name := range azureVars {
		if _, ok := used[name]; !ok {
			empty = append(empty, name)
		}
	}
	run := func(t *testing.T, names ...string) {
		clearAzureEnv(t)
		for k, v := range used {
			t.Setenv(k, v)
		}
		for _, name := range names {
			t.Setenv(name, "")
		}
		t.Setenv("AZURE_CLIENT_CERTIFICATE_PATH", " ") // blank counts as empty
		roundTrip(t, kv, kv.AuthorityHost)
		for _, name := range append(names, "AZURE_CLIENT_CERTIFICATE_PATH") {
			if _, ok := os.LookupEnv(name); ok {
				t.Errorf("%s is still in the environment", name)
			}
		}
		for k, v := range used {
			if os.Getenv(k) != v {
				t.Errorf("%s was changed", k)
			}
		}
	}
	for _, name := range empty {
		t.Run(name, func(t *testing.T) { run(t, name) })
	}
	t.Run("all", func(t *testing.T) { run(t, empty...) })
}

// appServiceIdentity is the App Service (Azure Functions) managed
// identity endpoint, IDENTITY_ENDPOINT with IDENTITY_HEADER: it hands out
// the test vault's tokens, and records which identity each request named.
type appServiceIdentity struct {
	*httptest.Server
	header string
	mu     sync.Mutex
	asked  []string // the client_id of each request, "" for the system identity
}

func newAppServiceIdentity(t *testing.T, kv *keyvaulttest.Server) *appServiceIdentity {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tok, err := kv.Credential(t).GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{kv.Resource + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	id := &appServiceIdentity{header: "identity-header-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	id.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		id.mu.Lock()
		id.asked = append(id.asked, q.Get("client_id"))
		id.mu.Unlock()
		if r.Header.Get("X-IDENTITY-HEADER") != id.header || q.Has("client_id") && q.Get("client_id") == "" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"statusCode":400,"message":"bad identity request"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"access_token": tok.Token, "expires_on": strconv.FormatInt(tok.ExpiresOn.Unix(), 10),
			"resource": q.Get("resource"), "token_type": "Bearer",
		})
	}))
	t.Cleanup(id.Close)
	return id
}

func (id *appServiceIdentity) requests() []string {
	id.mu.Lock()
	defer id.mu.Unlock()
	return append([]string(nil), id.asked...)
}

// TestEmptyAzureVariablesWithManagedIdentity: with the platform's managed
// identity endpoint (as in an Azure function app) and each AZURE_*
// variable set to "" (as local.settings.example.json's AZURE_CLIENT_ID
// exports it), and all of them at once, the credential asks for the
// system-assigned identity and its token reaches the vault. Without
// NewCredential's clean-up, azidentity itself fails on an empty
// AZURE_CLIENT_ID (checked first, so that the test shows the fault).
func TestEmptyAzureVariablesWithManagedIdentity(t *testing.T) {
	kv := keyvaulttest.NewServer(t, nil)
	id := newAppServiceIdentity(t, kv)
	setup := func(t *testing.T, names ...string) {
		clearAzureEnv(t)
		t.Setenv("IDENTITY_ENDPOINT", id.URL+"/msi/token")
		t.Setenv("IDENTITY_HEADER", id.header)
		for _, name := range names {
			t.Setenv(name, "")
		}
	}

	t.Run("azidentity alone fails", func(t *testing.T) {
		setup(t, "AZURE_CLIENT_ID")
		t.Setenv("AZURE_TOKEN_CREDENTIALS", "prod") // env, workload identity, managed identity only
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return // refused at once: the fault shows
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{kv.Resource + "/.default"}}); err == nil {
			t.Fatal("DefaultAzureCredential with AZURE_CLIENT_ID=\"\" got a token; the test no longer shows the fault it guards")
		}
	})

	for _, name := range append(azureVars, "all") {
		t.Run(name, func(t *testing.T) {
			names := []string{name}
			if name == "all" {
				names = azureVars
			}
			setup(t, names...)
			before := len(id.requests())
			roundTrip(t, kv, "")
			// MSAL caches managed identity tokens process-wide, by identity:
			// after the first subtest, a request would only come for
			// another identity than the system-assigned one.
			asked := id.requests()[before:]
			if before == 0 && len(asked) == 0 {
				t.Fatal("the managed identity endpoint was not asked")
			}
			for _, c := range asked {
				if c != "" {
					t.Errorf("asked for client_id %q; want the system-assigned identity", c)
				}
			}
			for _, n := range names {
				if _, ok := os.LookupEnv(n); ok {
					t.Errorf("%s is still in the environment", n)
				}
			}
		})
	}
}

// TestDropEmptyAzureEnv: only AZURE_* variables that are empty or blank
// go; others, and AZURE_* variables with a value, stay.
func TestDropEmptyAzureEnv(t *testing.T) {
	clearAzureEnv(t)
	t.Setenv("AZURE_CLIENT_ID", "")
	t.Setenv("AZURE_TENANT_ID", " \t")
	t.Setenv("AZURE_CLIENT_SECRET", "kept")
	t.Setenv("MODELAUTH_TEST_EMPTY", "")
	dropped := azurekeyvault.DropEmptyAzureEnv()
	if got := strings.Join(dropped, ","); !strings.Contains(got, "AZURE_CLIENT_ID") || !strings.Contains(got, "AZURE_TENANT_ID") || strings.Contains(got, "AZURE_CLIENT_SECRET") {
		t.Errorf("dropped %v; want AZURE_CLIENT_ID and AZURE_TENANT_ID only", dropped)
	}
	if _, ok := os.LookupEnv("AZURE_CLIENT_ID"); ok {
		t.Error("AZURE_CLIENT_ID is still set")
	}
	if os.Getenv("AZURE_CLIENT_SECRET") != "kept" {
		t.Error("AZURE_CLIENT_SECRET was removed")
	}
	if _, ok := os.LookupEnv("MODELAUTH_TEST_EMPTY"); !ok {
		t.Error("a variable outside AZURE_* was removed")
	}
}
