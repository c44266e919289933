package amltest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/modelauth/modelauth/shared/amltest"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// TestMain trusts the keyvaulttest CA (SSL_CERT_FILE) before any TLS
// connection of the process: Go reads it once.
func TestMain(m *testing.M) { os.Exit(keyvaulttest.RunTests(m)) }

const (
	endpointID = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws-prod/onlineEndpoints/llm-chat"
	// fastPoll is PollUntilDone's frequency when no Retry-After is sent.
	fastPoll = 10 * time.Millisecond
)

// env is a kv and an amltest server on it, with an azcore pipeline that
// authenticates with a client-secret credential from kv.
type env struct {
	kv  *keyvaulttest.Server
	aml *amltest.Server
	pl  runtime.Pipeline
}

// newEnv starts kv and the server (opts.KV is set here) and builds the
// pipeline: azcore's retries off unless retry is set.
func newEnv(t *testing.T, opts *amltest.Options, retry *policy.RetryOptions) *env {
	t.Helper()
	kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{Resources: []string{amltest.DefaultAudience, amltest.AADTokenAudience}})
	var o amltest.Options
	if opts != nil {
		o = *opts
	}
	o.KV = kv
	aml := amltest.NewServer(t, &o)
	return &env{kv: kv, aml: aml, pl: newPipeline(t, kv, aml, retry)}
}

func newCredential(t testing.TB, kv *keyvaulttest.Server, aml *amltest.Server) azcore.TokenCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(kv.TenantID, kv.ClientID, kv.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: aml.Cloud()},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func newPipeline(t testing.TB, kv *keyvaulttest.Server, aml *amltest.Server, retry *policy.RetryOptions) runtime.Pipeline {
	t.Helper()
	opts := &policy.ClientOptions{Cloud: aml.Cloud(), Retry: policy.RetryOptions{MaxRetries: -1}}
	if retry != nil {
		opts.Retry = *retry
	}
	bearer := runtime.NewBearerTokenPolicy(newCredential(t, kv, aml), []string{aml.Audience + "/.default"}, nil)
	return runtime.NewPipeline("amltest", "v0.0.0", runtime.PipelineOptions{PerRetry: []policy.Policy{bearer}}, opts)
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// send sends a management request for the resource path (an id plus an
// optional action) with the api-version and an optional JSON body.
func (e *env) send(t testing.TB, ctx context.Context, method, path string, body any) (*http.Response, error) {
	t.Helper()
	req, err := runtime.NewRequest(ctx, method, e.aml.URL+path+"?api-version="+amltest.APIVersion)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		if err := runtime.MarshalAsJSON(req, body); err != nil {
			t.Fatal(err)
		}
	}
	return e.pl.Do(req)
}

// call sends a request and fails the test unless it answers want; it
// returns the body.
func (e *env) call(t testing.TB, method, path string, body any, want int) []byte {
	t.Helper()
	resp, err := e.send(t, ctxTimeout(t, 10*time.Second), method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d (%s); want %d", method, path, resp.StatusCode, b, want)
	}
	return b
}

// listKeys is the endpoint's keys through POST listKeys.
func (e *env) listKeys(t testing.TB, id string) (string, string) {
	t.Helper()
	var k struct{ PrimaryKey, SecondaryKey string }
	if err := json.Unmarshal(e.call(t, http.MethodPost, id+"/listKeys", nil, http.StatusOK), &k); err != nil {
		t.Fatal(err)
	}
	return k.PrimaryKey, k.SecondaryKey
}

// regenerate starts a regeneration and returns azcore's poller for it.
func (e *env) regenerate(t testing.TB, ctx context.Context, id string, body any) (*runtime.Poller[struct{}], error) {
	t.Helper()
	resp, err := e.send(t, ctx, http.MethodPost, id+"/regenerateKeys", body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return nil, runtime.NewResponseError(resp)
	}
	return runtime.NewPoller[struct{}](resp, e.pl, &runtime.NewPollerOptions[struct{}]{
		FinalStateVia: runtime.FinalStateViaLocation,
	})
}

// score posts to a scoring URI with the key and returns the status.
func score(t testing.TB, uri, key string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, uri, strings.NewReader(`{"input":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// raw sends a request without the pipeline (no token unless given).
func raw(t testing.TB, method, url, token string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// armCode is the error code of ARM's error body.
func armCode(t testing.TB, b []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("not ARM's error body: %s", b)
	}
	if e.Error.Message == "" {
		t.Errorf("error body without a message: %s", b)
	}
	return e.Error.Code
}

func responseError(t testing.TB, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T); want *azcore.ResponseError", err, err)
	}
	return re
}
