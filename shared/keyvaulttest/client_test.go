package keyvaulttest_test

import (
	"errors"
	"net/http"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

var versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func asResponseError(err error, re **azcore.ResponseError) bool { return errors.As(err, re) }

func isResponseError(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re)
}

// TestRealClient drives the real azsecrets client with the production
// credential path: DefaultAzureCredential from the environment.
func TestRealClient(t *testing.T) {
	kv := keyvaulttest.NewServer(t, nil)
	setEnv(t, kv)
	if _, ok := os.LookupEnv("AZURE_TOKEN_CREDENTIALS"); ok {
		t.Setenv("AZURE_TOKEN_CREDENTIALS", "") // restored after the test
		os.Unsetenv("AZURE_TOKEN_CREDENTIALS")
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	client, err := azsecrets.NewClient(os.Getenv("KEYVAULT_URL"), cred, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 15*time.Second)

	// SetSecret: the first request is challenged, a token is fetched.
	exp := time.Unix(2_000_000_000, 0).UTC()
	set, err := client.SetSecret(ctx, "Svc-Demo-Primary", azsecrets.SetSecretParameters{
		Value:            ptr("v1"),
		ContentType:      ptr("text/plain"),
		SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp},
		Tags:             map[string]*string{"kind": ptr("service-key"), "state": ptr("current")},
	}, nil)
	if err != nil {
		t.Fatalf("SetSecret: %v", err)
	}
	if got, want := set.ID.Name(), "Svc-Demo-Primary"; got != want {
		t.Errorf("ID.Name() = %q; want %q", got, want)
	}
	if v := set.ID.Version(); !versionRE.MatchString(v) {
		t.Errorf("ID.Version() = %q; want 32 lowercase hex digits", v)
	}
	if got, want := string(*set.ID), kv.VaultURL+"/secrets/Svc-Demo-Primary/"+set.ID.Version(); got != want {
		t.Errorf("ID = %q; want %q", got, want)
	}
	if set.Value == nil || *set.Value != "v1" || set.ContentType == nil || *set.ContentType != "text/plain" {
		t.Errorf("SetSecret returned value/contentType %v/%v", set.Value, set.ContentType)
	}
	a := set.Attributes
	if a == nil || a.Enabled == nil || !*a.Enabled || a.Created == nil || a.Updated == nil || a.Expires == nil || !a.Expires.Equal(exp) {
		t.Errorf("SetSecret attributes = %+v", a)
	}
	if a != nil && (a.RecoveryLevel == nil || a.RecoverableDays == nil) {
		t.Errorf("SetSecret attributes lack recoveryLevel/recoverableDays: %+v", a)
	}
	if len(set.Tags) != 2 || *set.Tags["kind"] != "service-key" {
		t.Errorf("SetSecret tags = %v", set.Tags)
	}
	st := kv.Stats()
	if st.Challenges != 1 || st.TokensIssued != 1 || st.TokenRequests != 1 || st.Set != 1 || st.Discovery < 1 {
		t.Errorf("after the first SetSecret: stats %s; want 1 challenge, 1 token, 1 set, >=1 discovery", describe(st))
	}

	versions := []string{set.ID.Version()}
	for _, v := range []string{"v2", "v3", "v4", "v5"} {
		r, err := client.SetSecret(ctx, "svc-demo-primary", azsecrets.SetSecretParameters{Value: ptr(v)}, nil)
		if err != nil {
			t.Fatalf("SetSecret %s: %v", v, err)
		}
		if r.ID.Name() != "Svc-Demo-Primary" {
			t.Errorf("a later write renamed the secret: %q", r.ID.Name())
		}
		versions = append(versions, r.ID.Version())
	}

	// GetSecret: newest (path /secrets/{name}/), by version, any case.
	newest, err := client.GetSecret(ctx, "SVC-DEMO-PRIMARY", "", nil)
	if err != nil {
		t.Fatalf("GetSecret newest: %v", err)
	}
	if *newest.Value != "v5" || newest.ID.Version() != versions[4] {
		t.Errorf("newest = %q version %s; want v5 version %s", *newest.Value, newest.ID.Version(), versions[4])
	}
	first, err := client.GetSecret(ctx, "svc-demo-primary", versions[0], nil)
	if err != nil {
		t.Fatalf("GetSecret version: %v", err)
	}
	if *first.Value != "v1" || first.Tags["state"] == nil || *first.Tags["state"] != "current" {
		t.Errorf("version 1 = %q tags %v", *first.Value, first.Tags)
	}

	// Listing: five versions on three pages of two.
	before := kv.Stats().List
	var listed []string
	pager := client.NewListSecretPropertiesVersionsPager("svc-demo-primary", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("NextPage: %v", err)
		}
		for _, p := range page.Value {
			listed = append(listed, p.ID.Version())
			if p.Attributes == nil || p.Attributes.Created == nil {
				t.Errorf("listed item without attributes.created: %+v", p)
			}
		}
	}
	if got := kv.Stats().List - before; got != 3 {
		t.Errorf("listing took %d requests; want 3 pages", got)
	}
	if len(listed) != 5 {
		t.Fatalf("listed %d versions; want 5", len(listed))
	}
	for i := range versions {
		if listed[i] != versions[i] {
			t.Errorf("listed[%d] = %s; want %s (creation order)", i, listed[i], versions[i])
		}
	}

	// UpdateSecretProperties: only the fields sent; tags replace the set.
	upd, err := client.UpdateSecretProperties(ctx, "svc-demo-primary", versions[0], azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(false)},
		Tags:             map[string]*string{"state": ptr("retired")},
	}, nil)
	if err != nil {
		t.Fatalf("UpdateSecretProperties: %v", err)
	}
	if upd.Value != nil {
		t.Errorf("update returned the value")
	}
	if *upd.Attributes.Enabled || len(upd.Tags) != 1 || *upd.Tags["state"] != "retired" {
		t.Errorf("after update: enabled %v tags %v; want false, {state: retired}", *upd.Attributes.Enabled, upd.Tags)
	}
	if upd.ContentType == nil || *upd.ContentType != "text/plain" || upd.Attributes.Expires == nil || !upd.Attributes.Expires.Equal(exp) {
		t.Errorf("update changed fields it was not sent: contentType %v exp %v", upd.ContentType, upd.Attributes.Expires)
	}

	// A disabled version is refused; unknown secrets and versions are 404.
	_, err = client.GetSecret(ctx, "svc-demo-primary", versions[0], nil)
	if re := responseError(t, err); re.StatusCode != http.StatusForbidden || re.ErrorCode != "Forbidden" {
		t.Errorf("reading a disabled version: %d %s; want 403 Forbidden", re.StatusCode, re.ErrorCode)
	}
	_, err = client.GetSecret(ctx, "no-such-secret", "", nil)
	if re := responseError(t, err); re.StatusCode != http.StatusNotFound || re.ErrorCode != "SecretNotFound" {
		t.Errorf("unknown secret: %d %s; want 404 SecretNotFound", re.StatusCode, re.ErrorCode)
	}
	_, err = client.GetSecret(ctx, "svc-demo-primary", "0123456789abcdef0123456789abcdef", nil)
	if re := responseError(t, err); re.StatusCode != http.StatusNotFound || re.ErrorCode != "SecretNotFound" {
		t.Errorf("unknown version: %d %s; want 404 SecretNotFound", re.StatusCode, re.ErrorCode)
	}

	// A second client with the same credential is challenged again but
	// reuses the cached token.
	client2, err := azsecrets.NewClient(kv.VaultURL, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client2.GetSecret(ctx, "svc-demo-primary", "", nil); err != nil {
		t.Fatalf("second client: %v", err)
	}
	st = kv.Stats()
	if st.Challenges != 2 || st.TokensIssued != 1 {
		t.Errorf("after a second client: stats %s; want 2 challenges, 1 token", describe(st))
	}
	if st.Set != 5 || st.Get != 6 || st.Update != 1 || st.List != 3 {
		t.Errorf("stats %s; want 5 set, 6 get, 1 update, 3 list", describe(st))
	}
}

// TestRealClientExpiredReadable: Key Vault does not enforce exp or nbf on
// reads.
func TestRealClientExpiredReadable(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	client := newClient(t, kv, newCredential(t, kv, -1), nil)
	ctx := ctxTimeout(t, 10*time.Second)
	past, future := time.Now().Add(-48*time.Hour), time.Now().Add(48*time.Hour)
	if _, err := client.SetSecret(ctx, "expired", azsecrets.SetSecretParameters{
		Value:            ptr("old"),
		SecretAttributes: &azsecrets.SecretAttributes{Expires: &past, NotBefore: &future},
	}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := client.GetSecret(ctx, "expired", "", nil)
	if err != nil {
		t.Fatalf("reading an expired version: %v", err)
	}
	if *got.Value != "old" || got.Attributes.Expires.Unix() != past.Unix() || got.Attributes.NotBefore.Unix() != future.Unix() {
		t.Errorf("got %q exp %v nbf %v", *got.Value, got.Attributes.Expires, got.Attributes.NotBefore)
	}
}

// TestWrongClientSecret: Entra's 401 invalid_client reaches the caller as
// an AuthenticationFailedError.
func TestWrongClientSecret(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	cred, err := azidentity.NewClientSecretCredential(kv.TenantID, kv.ClientID, "wrong",
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloudFor(kv), Retry: policy.RetryOptions{MaxRetries: -1}},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	client := newClient(t, kv, cred, nil)
	_, err = client.GetSecret(ctxTimeout(t, 10*time.Second), "x", "", nil)
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) {
		t.Fatalf("error %v; want an AuthenticationFailedError", err)
	}
	if afe.RawResponse == nil || afe.RawResponse.StatusCode != http.StatusUnauthorized {
		t.Fatalf("raw response %v; want 401", afe.RawResponse)
	}
	if st := kv.Stats(); st.TokensIssued != 0 || st.TokenRequests != 1 {
		t.Errorf("stats %s; want 1 token request, none issued", describe(st))
	}
}

// TestConcurrentClients: the store and the counters under concurrent use.
func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	cred := newCredential(t, kv, -1)
	ctx := ctxTimeout(t, 15*time.Second)
	const workers, writes = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*writes*2)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := newClient(t, kv, cred, nil)
			for range writes {
				if _, err := client.SetSecret(ctx, "shared", azsecrets.SetSecretParameters{Value: ptr("x")}, nil); err != nil {
					errs <- err
				}
				if _, err := client.GetSecret(ctx, "shared", "", nil); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := kv.Stats()
	if st.Set != workers*writes || st.Get != workers*writes {
		t.Errorf("stats %s; want %d sets and gets", describe(st), workers*writes)
	}
	n := 0
	pager := newClient(t, kv, cred, nil).NewListSecretPropertiesVersionsPager("shared", &azsecrets.ListSecretPropertiesVersionsOptions{})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != workers*writes {
		t.Errorf("listed %d versions; want %d", n, workers*writes)
	}
}

// BenchmarkGetSecret shows how a benchmark counts store calls: the
// server's counters report the requests the client made.
func BenchmarkGetSecret(b *testing.B) {
	kv := keyvaulttest.NewServer(b, nil)
	client := newClient(b, kv, newCredential(b, kv, -1), nil)
	ctx := ctxTimeout(b, time.Minute)
	if _, err := client.SetSecret(ctx, "bench", azsecrets.SetSecretParameters{Value: ptr("v")}, nil); err != nil {
		b.Fatal(err)
	}
	before := kv.Stats()
	for b.Loop() {
		if _, err := client.GetSecret(ctx, "bench", "", nil); err != nil {
			b.Fatal(err)
		}
	}
	after := kv.Stats()
	b.ReportMetric(float64(after.Get-before.Get)/float64(b.N), "store-calls/op")
	b.ReportMetric(float64(after.TokenRequests-before.TokenRequests), "token-requests")
}
