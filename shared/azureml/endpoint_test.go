package azureml_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/modelauth/modelauth/shared/azureml"
)

const validID = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws-prod/onlineEndpoints/llm-chat"

var validEndpoint = azureml.Endpoint{
	SubscriptionID: "00000000-1111-2222-3333-444444444444",
	ResourceGroup:  "rg-ml",
	Workspace:      "ws-prod",
	Name:           "llm-chat",
}

func TestParseEndpointID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		id      string
		want    azureml.Endpoint
		wantErr error
	}{
		{name: "valid", id: validID, want: validEndpoint},
		{
			name: "segment names in any case",
			id:   "/SUBSCRIPTIONS/00000000-1111-2222-3333-444444444444/resourcegroups/rg-ml/Providers/microsoft.machinelearningservices/WorkSpaces/ws-prod/onlineendpoints/llm-chat",
			want: validEndpoint,
		},
		{
			name: "values keep their case",
			id:   "/subscriptions/S/resourceGroups/RG.with(parens)_x/providers/Microsoft.MachineLearningServices/workspaces/WS_1/onlineEndpoints/Ep-1",
			want: azureml.Endpoint{SubscriptionID: "S", ResourceGroup: "RG.with(parens)_x", Workspace: "WS_1", Name: "Ep-1"},
		},
		{name: "empty", id: "", wantErr: azureml.ErrInvalidEndpoint},
		{name: "no leading slash", id: strings.TrimPrefix(validID, "/"), wantErr: azureml.ErrInvalidEndpoint},
		{name: "a URL", id: "https://management.azure.com" + validID, wantErr: azureml.ErrInvalidEndpoint},
		{name: "wrong provider", id: strings.Replace(validID, "Microsoft.MachineLearningServices", "Microsoft.CognitiveServices", 1), wantErr: azureml.ErrInvalidEndpoint},
		{name: "batch endpoint", id: strings.Replace(validID, "onlineEndpoints", "batchEndpoints", 1), wantErr: azureml.ErrInvalidEndpoint},
		{name: "registry, not workspace", id: strings.Replace(validID, "workspaces", "registries", 1), wantErr: azureml.ErrInvalidEndpoint},
		{name: "workspace only", id: strings.TrimSuffix(validID, "/onlineEndpoints/llm-chat"), wantErr: azureml.ErrInvalidEndpoint},
		{name: "no endpoint name", id: strings.TrimSuffix(validID, "llm-chat"), wantErr: azureml.ErrInvalidEndpoint},
		{name: "no endpoint name nor slash", id: strings.TrimSuffix(validID, "/llm-chat"), wantErr: azureml.ErrInvalidEndpoint},
		{name: "subscription only", id: "/subscriptions/00000000-1111-2222-3333-444444444444", wantErr: azureml.ErrInvalidEndpoint},
		{name: "empty resource group", id: strings.Replace(validID, "/rg-ml/", "//", 1), wantErr: azureml.ErrInvalidEndpoint},
		{name: "missing resourceGroups segment", id: strings.Replace(validID, "/resourceGroups/rg-ml", "", 1), wantErr: azureml.ErrInvalidEndpoint},
		{name: "deployment after the endpoint", id: validID + "/deployments/blue", wantErr: azureml.ErrInvalidEndpoint},
		{name: "token action after the endpoint", id: validID + "/token", wantErr: azureml.ErrInvalidEndpoint},
		{name: "trailing slash", id: validID + "/", wantErr: azureml.ErrInvalidEndpoint},
		{name: "query", id: validID + "?api-version=2024-04-01", wantErr: azureml.ErrInvalidEndpoint},
		{name: "space in a name", id: strings.Replace(validID, "ws-prod", "ws prod", 1), wantErr: azureml.ErrInvalidEndpoint},
		{name: "escaped slash", id: strings.Replace(validID, "ws-prod", "ws%2Fprod", 1), wantErr: azureml.ErrInvalidEndpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := azureml.ParseEndpointID(tt.id)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseEndpointID(%q) error = %v; want %v", tt.id, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseEndpointID(%q) = %+v; want %+v", tt.id, got, tt.want)
			}
		})
	}
}

func TestEndpointID(t *testing.T) {
	t.Parallel()
	if got := validEndpoint.ID(); got != validID {
		t.Errorf("ID() = %q; want %q", got, validID)
	}
	if got := validEndpoint.String(); got != validID {
		t.Errorf("String() = %q; want %q", got, validID)
	}
}

// FuzzParseEndpointID: never panics; an accepted ID round-trips through
// Endpoint.ID, which differs from it at most in the segment names' case.
func FuzzParseEndpointID(f *testing.F) {
	for _, s := range []string{
		validID,
		strings.ToLower(validID),
		validID + "/",
		"/subscriptions/a/resourceGroups/b/providers/Microsoft.MachineLearningServices/workspaces/c/onlineEndpoints/d",
		"/subscriptions//resourceGroups//providers/Microsoft.MachineLearningServices/workspaces//onlineEndpoints/",
		"",
		"/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		ep, err := azureml.ParseEndpointID(id)
		if err != nil {
			if !errors.Is(err, azureml.ErrInvalidEndpoint) {
				t.Fatalf("ParseEndpointID(%q) error %v does not wrap ErrInvalidEndpoint", id, err)
			}
			return
		}
		if !strings.EqualFold(ep.ID(), id) || len(ep.ID()) != len(id) {
			t.Fatalf("ParseEndpointID(%q).ID() = %q", id, ep.ID())
		}
		again, err := azureml.ParseEndpointID(ep.ID())
		if err != nil || again != ep {
			t.Fatalf("ParseEndpointID(%q) = %+v, %v; want %+v", ep.ID(), again, err, ep)
		}
	})
}
