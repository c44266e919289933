package keyvaulttest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

const apiVersion = "2026-04-01"

// TestMain trusts the test CA through SSL_CERT_FILE before any TLS
// connection of the process: Go reads it once.
func TestMain(m *testing.M) {
	os.Exit(keyvaulttest.RunTests(m))
}

// setEnv points the process's environment at kv for the test.
func setEnv(t *testing.T, kv *keyvaulttest.Server) {
	t.Helper()
	for _, line := range kv.Env() {
		k, v, _ := strings.Cut(line, "=")
		t.Setenv(k, v)
	}
}

// newCredential is a client-secret credential for kv, built without the
// environment so that tests can run in parallel. maxRetries is the token
// requests' retry count (-1: none).
func newCredential(t testing.TB, kv *keyvaulttest.Server, maxRetries int32) azcore.TokenCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(kv.TenantID, kv.ClientID, kv.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud: cloudFor(kv),
				Retry: policy.RetryOptions{MaxRetries: maxRetries, RetryDelay: 10 * time.Millisecond},
			},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// newClient is the real azsecrets client for kv, with azcore's retries
// off unless retry is set.
func newClient(t testing.TB, kv *keyvaulttest.Server, cred azcore.TokenCredential, retry *policy.RetryOptions) *azsecrets.Client {
	t.Helper()
	opts := &azsecrets.ClientOptions{}
	opts.Retry = policy.RetryOptions{MaxRetries: -1}
	if retry != nil {
		opts.Retry = *retry
	}
	c, err := azsecrets.NewClient(kv.VaultURL, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func ptr[T any](v T) *T { return &v }

// rawClient sends raw requests; it trusts the test CA through SSL_CERT_FILE.
var rawClient = &http.Client{Timeout: 10 * time.Second}

type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body, keeping numbers as json.Number.
func (r rawResponse) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

// errorCode is the code of a Key Vault error body.
func (r rawResponse) errorCode(t testing.TB) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// do sends a raw request to rawURL (absolute, or a path of the vault) with
// an optional bearer token and JSON body.
func do(t testing.TB, kv *keyvaulttest.Server, method, rawURL, token string, body any) rawResponse {
	t.Helper()
	if strings.HasPrefix(rawURL, "/") {
		rawURL = kv.VaultURL + rawURL
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// postForm posts a token request to kv's token endpoint.
func postForm(t testing.TB, kv *keyvaulttest.Server, tenant string, form url.Values) rawResponse {
	t.Helper()
	resp, err := rawClient.PostForm(kv.AuthorityHost+"/"+tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// token gets an access token for kv's vault from its token endpoint, as
// MSAL asks for one.
func token(t testing.TB, kv *keyvaulttest.Server) string {
	t.Helper()
	r := postForm(t, kv, kv.TenantID, url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {kv.ClientID},
		"client_secret": {kv.ClientSecret},
		"scope":         {kv.Resource + "/.default openid offline_access profile"},
	})
	if r.status != http.StatusOK {
		t.Fatalf("token: status %d: %s", r.status, r.body)
	}
	tok, _ := r.json(t)["access_token"].(string)
	if tok == "" {
		t.Fatalf("token: no access_token in %s", r.body)
	}
	return tok
}

// secretPath is /secrets/<name>[/<version>]?api-version=...
func secretPath(name string, rest ...string) string {
	p := "/secrets/" + name
	for _, r := range rest {
		p += "/" + r
	}
	return p + "?api-version=" + apiVersion
}

// setRaw writes a version with a raw request and returns its version id.
func setRaw(t testing.TB, kv *keyvaulttest.Server, tok, name string, body map[string]any) string {
	t.Helper()
	r := do(t, kv, http.MethodPut, secretPath(name), tok, body)
	if r.status != http.StatusOK {
		t.Fatalf("PUT %s: status %d: %s", name, r.status, r.body)
	}
	id, _ := r.json(t)["id"].(string)
	return id[strings.LastIndex(id, "/")+1:]
}

func responseError(t testing.TB, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if err == nil {
		t.Fatal("got no error; want a ResponseError")
	}
	if !asResponseError(err, &re) {
		t.Fatalf("error %v (%T); want *azcore.ResponseError", err, err)
	}
	return re
}

func describe(st keyvaulttest.Stats) string { return fmt.Sprintf("%+v", st) }

// cloudFor is a cloud whose authority host is kv's.
func cloudFor(kv *keyvaulttest.Server) cloud.Configuration {
	return cloud.Configuration{ActiveDirectoryAuthorityHost: kv.AuthorityHost}
}
