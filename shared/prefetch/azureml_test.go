package prefetch_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/modelauth/modelauth/shared/azureml"
	"github.com/modelauth/modelauth/shared/client"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/prefetch"
)

// TestMain trusts the Key Vault test server's CA (its Entra-compatible
// token endpoint authenticates the Azure ML source).
func TestMain(m *testing.M) { os.Exit(keyvaulttest.RunTests(m)) }

// TestAzureMLEndpoint prefetches an Azure ML online endpoint's token: the
// management API's Get Token, served here in Azure ML's shape, called with
// a real azidentity credential against the Entra-compatible endpoint.
func TestAzureMLEndpoint(t *testing.T) {
	e := newEnv(t)
	kv := keyvaulttest.NewServer(t, nil)
	var calls atomic.Int32
	arm := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Method != "POST" || !strings.HasSuffix(r.URL.Path, "/onlineEndpoints/scorer/token") ||
			!strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		now := e.clk.Now().Unix()
		json.NewEncoder(w).Encode(map[string]any{"accessToken": "eyJ.aml.sig", "tokenType": "Bearer",
			"expiryTimeUtc": now + 86400, "refreshAfterTimeUtc": now + 43200})
	}))
	defer arm.Close()
	ep, err := azureml.ParseEndpointID("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/onlineEndpoints/scorer")
	if err != nil {
		t.Fatal(err)
	}
	src, err := azureml.NewTokenSource(ep, kv.Credential(t), &azureml.Options{
		ManagementURL: arm.URL, Audience: kv.Resource, Now: e.clk.Now,
		ClientOptions: azcore.ClientOptions{Transport: arm.Client()},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := prefetch.New(e.store, []prefetch.Consumer{{Name: "batch", Source: src}}, &prefetch.Options{Lead: lead, Now: e.clk.Now, Period: prefetch.DefaultPeriod, FetchTimeout: prefetch.DefaultFetchTimeout})
	res, err := p.Run(context.Background())
	if err != nil || res[0].Outcome != prefetch.Fetched || calls.Load() != 1 {
		t.Fatalf("Run = %+v, %v (%d ARM calls)", res, err, calls.Load())
	}
	sec := e.stored(t)
	if sec.Value != "eyJ.aml.sig" || sec.Tags[client.TagRefreshAfter] != strconv.FormatInt(e.clk.Now().Unix()+43200, 10) || sec.Tags["service"] != "" {
		t.Fatalf("stored %q tags %v", sec.Value, sec.Tags)
	}
	if kv.Stats().TokensIssued == 0 {
		t.Error("no Entra token was issued for the management call")
	}
}
