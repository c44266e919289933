package amlendpoint_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/modelauth/modelauth/shared/amlendpoint"
	"github.com/modelauth/modelauth/shared/amltest"
	"github.com/modelauth/modelauth/shared/azureml"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/rotation"
)

// TestMain trusts the test servers' CA (SSL_CERT_FILE).
func TestMain(m *testing.M) { os.Exit(keyvaulttest.RunTests(m)) }

const idPrefix = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/onlineEndpoints/"

// setup returns a target over endpoints on an Azure ML management test
// server, each reached through the real azcore pipeline.
func setup(t *testing.T, opts amltest.Options, modes map[string]string, probe *amlendpoint.Probe) (*amlendpoint.Target, *amltest.Server) {
	t.Helper()
	kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{Resources: []string{amltest.DefaultAudience}})
	opts.KV = kv
	aml := amltest.NewServer(t, &opts)
	target := &amlendpoint.Target{Endpoints: map[string]amlendpoint.Endpoint{}}
	for name, mode := range modes {
		aml.AddEndpoint(idPrefix+name, mode)
		ep, err := azureml.ParseEndpointID(idPrefix + name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := azureml.NewKeysClient(ep, kv.Credential(t), &azureml.KeysOptions{
			Options:      azureml.Options{ClientOptions: azcore.ClientOptions{Cloud: aml.Cloud(), Retry: policy.RetryOptions{MaxRetries: -1}}},
			PollInterval: 10 * time.Millisecond, OperationTimeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		target.Endpoints[name] = amlendpoint.Endpoint{Client: c, Probe: probe}
	}
	return target, aml
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestApplyTestKeys(t *testing.T) {
	target, aml := setup(t, amltest.Options{}, map[string]string{"churn": "Key"}, &amlendpoint.Probe{Body: []byte(`{"data":[[1]]}`)})
	c := ctx(t)
	keys, err := target.Keys(c, "churn")
	p, s := aml.Keys(idPrefix + "churn")
	if err != nil || keys != [2]string{p, s} {
		t.Fatalf("Keys = %v: want the endpoint's", err)
	}
	v, _ := azureml.GenerateKey()
	if err := target.Test(c, "churn", keysecret.Secondary, v); err == nil {
		t.Fatal("Test passed a value the endpoint does not hold")
	}
	if err := target.Apply(c, "churn", keysecret.Secondary, rotation.Staged{Value: v}); err != nil {
		t.Fatal(err)
	}
	if err := target.Test(c, "churn", keysecret.Secondary, v); err != nil {
		t.Fatalf("Test after Apply: %v", err)
	}
	if err := target.Test(c, "churn", keysecret.Primary, v); err == nil {
		t.Error("Test passed the value in the other slot")
	}
	if st := aml.Stats(); st.Scored != 1 {
		t.Errorf("probes answered 200: %d; want 1", st.Scored)
	}
}

// TestProbeWaitsForTheScoringPlane: with a scoring plane that learns keys
// 300ms after the operation, the probe right after the set is refused
// (probe_refused), and passes after a settle delay longer than the lag.
func TestProbeWaitsForTheScoringPlane(t *testing.T) {
	target, _ := setup(t, amltest.Options{ScoringLag: 300 * time.Millisecond}, map[string]string{"churn": "Key"}, &amlendpoint.Probe{Body: []byte(`{}`)})
	c := ctx(t)
	v, _ := azureml.GenerateKey()
	if err := target.Apply(c, "churn", keysecret.Primary, rotation.Staged{Value: v}); err != nil {
		t.Fatal(err)
	}
	err := target.Test(c, "churn", keysecret.Primary, v)
	var f *amlendpoint.Failure
	if !errors.As(err, &f) || f.Reason() != "probe_refused" {
		t.Fatalf("Test without settling = %v; want probe_refused", err)
	}
	target.Settle = 500 * time.Millisecond
	w, _ := azureml.GenerateKey()
	if err := target.Apply(c, "churn", keysecret.Primary, rotation.Staged{Value: w}); err != nil {
		t.Fatal(err)
	}
	if err := target.Test(c, "churn", keysecret.Primary, w); err != nil {
		t.Fatalf("Test after settling: %v", err)
	}
}

func TestFailureCauses(t *testing.T) {
	c := ctx(t)
	v, _ := azureml.GenerateKey()
	for name, tc := range map[string]struct {
		setup func(*amltest.Server)
		call  func(*amlendpoint.Target) error
		cause string
	}{
		"not key mode": {nil, func(tg *amlendpoint.Target) error { _, err := tg.Keys(c, "tok"); return err }, "not_key_mode"},
		"forbidden": {func(s *amltest.Server) {
			s.Deny("Microsoft.MachineLearningServices/workspaces/onlineEndpoints/regenerateKeys/action")
		},
			func(tg *amlendpoint.Target) error {
				return tg.Apply(c, "churn", keysecret.Primary, rotation.Staged{Value: v})
			}, "forbidden"},
		"throttled": {func(s *amltest.Server) {
			s.InjectFault(amltest.OpListKeys, amltest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 5})
		}, func(tg *amlendpoint.Target) error { _, err := tg.Keys(c, "churn"); return err }, "throttled"},
		"unavailable": {func(s *amltest.Server) {
			s.InjectFault(amltest.OpGet, amltest.Fault{Status: http.StatusServiceUnavailable})
		},
			func(tg *amlendpoint.Target) error { _, err := tg.Keys(c, "churn"); return err }, "unavailable"},
		"conflict": {func(s *amltest.Server) {
			s.InjectFault(amltest.OpRegenerateKeys, amltest.Fault{Status: http.StatusConflict})
		},
			func(tg *amlendpoint.Target) error {
				return tg.Apply(c, "churn", keysecret.Primary, rotation.Staged{Value: v})
			}, "conflict"},
		"operation failed": {func(s *amltest.Server) { s.FailOperations(1, "InternalServerError", "boom") },
			func(tg *amlendpoint.Target) error {
				return tg.Apply(c, "churn", keysecret.Primary, rotation.Staged{Value: v})
			}, "operation_failed"},
		"reset": {func(s *amltest.Server) { s.InjectFault(amltest.OpListKeys, amltest.Fault{Reset: true, Times: -1}) },
			func(tg *amlendpoint.Target) error { _, err := tg.Keys(c, "churn"); return err }, "transport"},
	} {
		t.Run(name, func(t *testing.T) {
			target, aml := setup(t, amltest.Options{}, map[string]string{"churn": "Key", "tok": "AMLToken"}, nil)
			if tc.setup != nil {
				tc.setup(aml)
			}
			err := tc.call(target)
			var f *amlendpoint.Failure
			if !errors.As(err, &f) || f.Reason() != tc.cause {
				t.Fatalf("err = %v; want cause %s", err, tc.cause)
			}
		})
	}
	target, _ := setup(t, amltest.Options{}, map[string]string{"churn": "Key"}, nil)
	if _, err := target.Keys(c, "nope"); !errors.Is(err, amlendpoint.ErrUnknownEndpoint) {
		t.Errorf("unknown endpoint: %v", err)
	}
}
