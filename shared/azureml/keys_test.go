package azureml_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/modelauth/modelauth/shared/amltest"
	"github.com/modelauth/modelauth/shared/azureml"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

const keysID = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws-prod/onlineEndpoints/churn"

// keysSetup starts kv and an Azure ML management test server with one key
// endpoint, and returns a KeysClient for it through the real azcore
// pipeline and poller, with the credential kv's Entra endpoint serves.
func keysSetup(t *testing.T, amlOpts amltest.Options, tune func(*azureml.KeysOptions)) (*azureml.KeysClient, *amltest.Server) {
	t.Helper()
	kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{Resources: []string{amltest.DefaultAudience}})
	amlOpts.KV = kv
	aml := amltest.NewServer(t, &amlOpts)
	aml.AddEndpoint(keysID, "Key")
	ep, err := azureml.ParseEndpointID(keysID)
	if err != nil {
		t.Fatal(err)
	}
	o := &azureml.KeysOptions{
		Options:          azureml.Options{ClientOptions: azcore.ClientOptions{Cloud: aml.Cloud(), Retry: policy.RetryOptions{RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond}}},
		PollInterval:     10 * time.Millisecond,
		OperationTimeout: 5 * time.Second,
	}
	if tune != nil {
		tune(o)
	}
	c, err := azureml.NewKeysClient(ep, kv.Credential(t), o)
	if err != nil {
		t.Fatal(err)
	}
	return c, aml
}

func TestKeysClient(t *testing.T) {
	for _, locOnly := range []bool{false, true} {
		name := "async-operation"
		if locOnly {
			name = "location-only"
		}
		t.Run(name, func(t *testing.T) {
			c, aml := keysSetup(t, amltest.Options{LocationOnly: locOnly, Polls: 2}, nil)
			ctx := ctxTimeout(t)
			info, err := c.Get(ctx)
			if err != nil || !azureml.IsKeyMode(info.AuthMode) || info.ScoringURI == "" {
				t.Fatalf("Get = %+v, %v", info, err)
			}
			p, s := aml.Keys(keysID)
			keys, err := c.ListKeys(ctx)
			if err != nil || keys.Primary != p || keys.Secondary != s {
				t.Fatalf("ListKeys = %v; want the server's keys", err)
			}
			if strings.Contains(keys.String()+keys.GoString(), p) {
				t.Error("Keys prints a key")
			}
			v, _ := azureml.GenerateKey()
			if err := c.RegenerateKeys(ctx, "Secondary", v); err != nil {
				t.Fatal(err)
			}
			if p2, s2 := aml.Keys(keysID); p2 != p || s2 != v {
				t.Error("regenerateKeys did not set the Secondary to the value, or changed the Primary")
			}
			st := aml.Stats()
			if st.OperationsSucceeded != 1 || st.Poll < 2 {
				t.Errorf("stats %+v: want one operation followed by at least 2 polls", st)
			}
		})
	}
}

func TestKeysClientFailures(t *testing.T) {
	ctx := ctxTimeout(t)
	t.Run("operation failed", func(t *testing.T) {
		c, aml := keysSetup(t, amltest.Options{}, nil)
		_, s := aml.Keys(keysID)
		aml.FailOperations(1, "InternalServerError", "the key could not be set")
		v, _ := azureml.GenerateKey()
		err := c.RegenerateKeys(ctx, "Secondary", v)
		var ae *azureml.Error
		if !errors.As(err, &ae) || ae.Code != "InternalServerError" {
			t.Fatalf("err = %v; want an *Error with the operation's code", err)
		}
		if strings.Contains(err.Error(), v) {
			t.Error("the error holds the key")
		}
		if _, s2 := aml.Keys(keysID); s2 != s {
			t.Error("a failed operation changed the key")
		}
	})
	t.Run("operation never ends", func(t *testing.T) {
		c, aml := keysSetup(t, amltest.Options{}, func(o *azureml.KeysOptions) { o.OperationTimeout = 300 * time.Millisecond })
		aml.NeverEnd(1)
		v, _ := azureml.GenerateKey()
		start := time.Now()
		err := c.RegenerateKeys(ctx, "Primary", v)
		if !errors.Is(err, azureml.ErrOperationTimeout) {
			t.Fatalf("err = %v; want ErrOperationTimeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the bound of 300ms took %v", d)
		}
	})
	t.Run("throttled then served", func(t *testing.T) {
		// azcore does not retry when Retry-After exceeds MaxRetryDelay.
		c, aml := keysSetup(t, amltest.Options{}, func(o *azureml.KeysOptions) { o.ClientOptions.Retry.MaxRetryDelay = 2 * time.Second })
		aml.InjectFault(amltest.OpListKeys, amltest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 1})
		start := time.Now()
		if _, err := c.ListKeys(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("the retry came after %v; want Retry-After (1s) honoured", d)
		}
	})
	t.Run("retry-after on polls", func(t *testing.T) {
		c, aml := keysSetup(t, amltest.Options{RetryAfter: 1}, nil)
		v, _ := azureml.GenerateKey()
		start := time.Now()
		if err := c.RegenerateKeys(ctx, "Primary", v); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("the operation ended after %v; the poller did not wait Retry-After (1s)", d)
		}
		_ = aml
	})
	for name, tc := range map[string]struct {
		setup  func(*amltest.Server)
		status int
		code   string
	}{
		"forbidden": {func(s *amltest.Server) {
			s.Deny("Microsoft.MachineLearningServices/workspaces/onlineEndpoints/listKeys/action")
		}, http.StatusForbidden, "AuthorizationFailed"},
		"server error": {func(s *amltest.Server) {
			s.InjectFault(amltest.OpListKeys, amltest.Fault{Status: http.StatusInternalServerError, Times: -1})
		}, http.StatusInternalServerError, "InternalServerError"},
	} {
		t.Run(name, func(t *testing.T) {
			c, aml := keysSetup(t, amltest.Options{}, func(o *azureml.KeysOptions) { o.ClientOptions.Retry.MaxRetries = 1 })
			tc.setup(aml)
			_, err := c.ListKeys(ctx)
			var ae *azureml.Error
			if !errors.As(err, &ae) || ae.StatusCode != tc.status || ae.Code != tc.code {
				t.Fatalf("err = %v; want HTTP %d %s", err, tc.status, tc.code)
			}
		})
	}
	t.Run("unknown endpoint", func(t *testing.T) {
		kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{Resources: []string{amltest.DefaultAudience}})
		aml := amltest.NewServer(t, &amltest.Options{KV: kv})
		ep, _ := azureml.ParseEndpointID(keysID)
		c, err := azureml.NewKeysClient(ep, kv.Credential(t), &azureml.KeysOptions{Options: azureml.Options{ClientOptions: azcore.ClientOptions{Cloud: aml.Cloud()}}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Get(ctx)
		var ae *azureml.Error
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound || ae.Code != "ResourceNotFound" {
			t.Fatalf("err = %v; want 404 ResourceNotFound", err)
		}
	})
}
