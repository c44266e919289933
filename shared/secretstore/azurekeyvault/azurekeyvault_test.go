package azurekeyvault_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/azurekeyvault"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
	"github.com/modelauth/modelauth/shared/secretstore/drivertest"
)

// TestMain trusts the test server's CA through SSL_CERT_FILE, as a
// deployed app trusts Key Vault's: Go reads it once, before any TLS.
func TestMain(m *testing.M) {
	os.Exit(keyvaulttest.RunTests(m))
}

// credential is the credential production builds from the environment
// (TestProductionCredentialPath goes through the environment itself).
func credential(t testing.TB, kv *keyvaulttest.Server) azcore.TokenCredential {
	return kv.Credential(t)
}

func openStore(t testing.TB, kv *keyvaulttest.Server, opts *azurekeyvault.Options) *secretstore.Store {
	t.Helper()
	s, err := azurekeyvault.Open(kv.VaultURL, credential(t, kv), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fast keeps retries short so that fault tests finish quickly.
var fast = &azurekeyvault.Options{MaxRetries: azurekeyvault.DefaultMaxRetries, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 2 * time.Second, TryTimeout: 2 * time.Second}

func TestConformance(t *testing.T) {
	// The server's listing orders, by the suite's name for them.
	orders := map[driver.ListOrder]keyvaulttest.ListOrder{
		driver.OldestFirst:    keyvaulttest.OldestFirst,
		driver.VersionIDOrder: keyvaulttest.VersionIDOrder,
		driver.RandomOrder:    keyvaulttest.RandomOrder,
	}
	drivertest.RunConformanceTests(t, drivertest.Harness{
		NewOrderedStore: func(t *testing.T, order driver.ListOrder) *secretstore.Store {
			return openStore(t, keyvaulttest.NewServer(t, &keyvaulttest.Options{ListOrder: orders[order], ListSeed: 1}), nil)
		},
		Orders: []driver.ListOrder{driver.OldestFirst, driver.VersionIDOrder, driver.RandomOrder},
	})
}

// TestProductionCredentialPath goes through the environment exactly as the
// deployed app does: AZURE_AUTHORITY_HOST, AZURE_TENANT_ID, AZURE_CLIENT_ID,
// AZURE_CLIENT_SECRET read by DefaultAzureCredential.
func TestProductionCredentialPath(t *testing.T) {
	kv := keyvaulttest.NewServer(t, nil)
	for _, line := range kv.Env() {
		k, v, _ := strings.Cut(line, "=")
		t.Setenv(k, v)
	}
	os.Unsetenv("AZURE_TOKEN_CREDENTIALS")
	cred, err := azurekeyvault.NewCredential(os.Getenv("AZURE_AUTHORITY_HOST"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := azurekeyvault.Open(os.Getenv("KEYVAULT_URL"), cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := store.SetSecret(ctx, "admin-key", secretstore.SetParams{Value: "v", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := store.GetSecret(ctx, "ADMIN-KEY", ""); err != nil || got.Value != "v" {
		t.Fatalf("GetSecret = %q, %v", got.Value, err)
	}
	st := kv.Stats()
	if st.TokensIssued != 1 || st.Challenges < 1 || st.Set != 1 || st.Get != 1 {
		t.Errorf("server saw %+v; want one token, a challenge, one set and one get", st)
	}
}

func TestWrongCredentialIsPermissionDenied(t *testing.T) {
	kv := keyvaulttest.NewServer(t, nil)
	cred, err := azidentity.NewClientSecretCredential(kv.TenantID, kv.ClientID, "wrong-secret",
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: kv.AuthorityHost}},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	store, _ := azurekeyvault.Open(kv.VaultURL, cred, fast)
	_, err = store.GetSecret(context.Background(), "x", "")
	if secretstore.Code(err) != secretstore.PermissionDenied {
		t.Fatalf("wrong client secret: %v (code %s); want PermissionDenied", err, secretstore.Code(err))
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Fatal("the error repeats the client secret")
	}
}

// TestFaults maps each fault the server injects to the code callers act on.
func TestFaults(t *testing.T) {
	tests := []struct {
		name       string
		op         keyvaulttest.Op
		fault      keyvaulttest.Fault
		code       secretstore.ErrorCode
		retryAfter time.Duration
	}{
		{"429 longer than the retry cap", keyvaulttest.OpGet, keyvaulttest.Fault{Status: 429, RetryAfter: 30 * time.Second}, secretstore.Throttled, 30 * time.Second},
		{"500 every try", keyvaulttest.OpGet, keyvaulttest.Fault{Status: 500}, secretstore.Unavailable, 0},
		{"503 every try", keyvaulttest.OpList, keyvaulttest.Fault{Status: 503}, secretstore.Unavailable, 0},
		{"reset", keyvaulttest.OpGet, keyvaulttest.Fault{Reset: true}, secretstore.Unavailable, 0},
		{"hang past the try timeout", keyvaulttest.OpGet, keyvaulttest.Fault{Hang: true}, secretstore.Unavailable, 0},
		{"403", keyvaulttest.OpGet, keyvaulttest.Fault{Status: 403}, secretstore.PermissionDenied, 0},
		{"409 on update", keyvaulttest.OpUpdate, keyvaulttest.Fault{Status: 409}, secretstore.Conflict, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kv := keyvaulttest.NewServer(t, nil)
			opts := *fast
			opts.TryTimeout = 300 * time.Millisecond
			store := openStore(t, kv, &opts)
			ctx := context.Background()
			p, err := store.SetSecret(ctx, "s", secretstore.SetParams{Value: "v", Enabled: true})
			if err != nil {
				t.Fatal(err)
			}
			kv.InjectFault(tt.op, tt.fault)
			switch tt.op {
			case keyvaulttest.OpGet:
				_, err = store.GetSecret(ctx, "s", "")
			case keyvaulttest.OpList:
				_, err = store.ListVersions(ctx, "s")
			case keyvaulttest.OpUpdate:
				f := false
				_, err = store.UpdateProperties(ctx, "s", p.Version, secretstore.Update{Enabled: &f})
			}
			if got := secretstore.Code(err); got != tt.code {
				t.Fatalf("code = %s (%v); want %s", got, err, tt.code)
			}
			var se *secretstore.Error
			if errors.As(err, &se) && se.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v; want %v", se.RetryAfter, tt.retryAfter)
			}
			// The version is intact once the fault is gone.
			kv.ClearFaults()
			if got, err := store.GetSecret(ctx, "s", p.Version); err != nil || got.Value != "v" {
				t.Fatalf("after the fault: %q, %v", got.Value, err)
			}
		})
	}
}

func TestDisabledAndNotFound(t *testing.T) {
	kv := keyvaulttest.NewServer(t, nil)
	store := openStore(t, kv, fast)
	ctx := context.Background()
	p, _ := store.SetSecret(ctx, "s", secretstore.SetParams{Value: "v", Enabled: true})
	f := false
	if _, err := store.UpdateProperties(ctx, "s", "", secretstore.Update{Enabled: &f}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetSecret(ctx, "s", p.Version); secretstore.Code(err) != secretstore.Disabled {
		t.Fatalf("disabled read: %v; want Disabled", err)
	}
	if _, err := store.GetSecret(ctx, "nosuch", ""); secretstore.Code(err) != secretstore.NotFound {
		t.Fatalf("unknown secret: %v; want NotFound", err)
	}
}

// TestWritesUnderFaultsLoseNothing: a failed or throttled write never
// creates a stray or damaged version, and is not retried blindly.
func TestWritesUnderFaultsLoseNothing(t *testing.T) {
	kv := keyvaulttest.NewServer(t, nil)
	store := openStore(t, kv, fast)
	ctx := context.Background()
	write := func(v string) error {
		_, err := store.SetSecret(ctx, "k", secretstore.SetParams{Value: v, Enabled: true, Tags: map[string]string{"n": v}})
		return err
	}
	if err := write("v1"); err != nil {
		t.Fatal(err)
	}
	before := kv.Stats().Set

	kv.InjectFault(keyvaulttest.OpSet, keyvaulttest.Fault{Times: 1, Status: 500})
	if err := write("v2"); secretstore.Code(err) != secretstore.Unavailable {
		t.Fatalf("write during a 500: %v; want Unavailable", err)
	}
	if n := kv.Stats().Set - before; n != 1 {
		t.Fatalf("a write that failed with 500 was sent %d times; want once (no blind retry)", n)
	}
	kv.InjectFault(keyvaulttest.OpSet, keyvaulttest.Fault{Times: 1, Reset: true})
	if err := write("v3"); secretstore.Code(err) != secretstore.Unavailable {
		t.Fatalf("write on a reset connection: %v; want Unavailable", err)
	}
	kv.InjectFault(keyvaulttest.OpSet, keyvaulttest.Fault{Times: 1, Status: 429, RetryAfter: time.Second})
	if err := write("v4"); err != nil {
		t.Fatalf("a throttled write with Retry-After 1s is retried after it: %v", err)
	}

	versions, err := store.ListVersions(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, p := range versions {
		s, err := store.GetSecret(ctx, "k", p.Version)
		if err != nil || s.Tags["n"] != s.Value {
			t.Fatalf("version %s damaged: %+v, %v", p.Version, s, err)
		}
		values = append(values, s.Value)
	}
	if got := strings.Join(values, ","); got != "v4,v1" {
		t.Fatalf("versions newest first = %s; want v4,v1", got)
	}
	if newest, _ := store.GetSecret(ctx, "k", ""); newest.Value != "v4" {
		t.Fatalf("newest = %q", newest.Value)
	}
}

func TestConcurrentClientsAgree(t *testing.T) {
	kv := keyvaulttest.NewServer(t, nil)
	a, b := openStore(t, kv, nil), openStore(t, kv, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			a.SetSecret(ctx, "c", secretstore.SetParams{Value: fmt.Sprint("a", i), Enabled: true})
		}()
		go func() {
			defer wg.Done()
			b.SetSecret(ctx, "c", secretstore.SetParams{Value: fmt.Sprint("b", i), Enabled: true})
		}()
	}
	wg.Wait()
	va, err1 := a.ListVersions(ctx, "c")
	vb, err2 := b.ListVersions(ctx, "c")
	if err1 != nil || err2 != nil || len(va) != 20 || len(vb) != 20 || va[0].Version != vb[0].Version {
		t.Fatalf("clients disagree: %d %d versions, %v %v", len(va), len(vb), err1, err2)
	}
}
