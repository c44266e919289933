package azureml_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/modelauth/modelauth/shared/azureml"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

func ExampleParseEndpointID() {
	ep, err := azureml.ParseEndpointID("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws-prod/onlineEndpoints/llm-chat")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ep.Workspace, ep.Name)
	// Output:
	// ws-prod llm-chat
}

// A token for an aml_token online endpoint. In production the credential
// is azidentity's (DefaultAzureCredential, a managed identity) and the
// options are nil; here the Entra token endpoint is keyvaulttest's and
// Azure Resource Manager an httptest server.
func ExampleNewTokenSource() {
	kv, err := keyvaulttest.Start(nil) // Entra's token endpoint
	if err != nil {
		log.Fatal(err)
	}
	defer kv.Close()
	arm := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"accessToken":         "eyJ0eXAiOiJKV1Qi...",
			"tokenType":           "Bearer",
			"expiryTimeUtc":       1_900_003_600,
			"refreshAfterTimeUtc": 1_900_001_800,
		})
	}))
	defer arm.Close()

	cred, err := azidentity.NewClientSecretCredential(kv.TenantID, kv.ClientID, kv.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: kv.AuthorityHost}},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		log.Fatal(err)
	}
	ep, err := azureml.ParseEndpointID("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws-prod/onlineEndpoints/llm-chat")
	if err != nil {
		log.Fatal(err)
	}
	ts, err := azureml.NewTokenSource(ep, cred, &azureml.Options{
		ManagementURL: arm.URL,
		Audience:      kv.Resource,
		ClientOptions: azcore.ClientOptions{Transport: arm.Client()},
		Now:           func() time.Time { return time.Unix(1_900_000_000, 0) },
	})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := ts.Token(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.TokenType, tok.ExpiresOn.Format(time.RFC3339), tok.RefreshAfter.Format(time.RFC3339))
	// Output:
	// Bearer 2030-03-17T18:46:40Z 2030-03-17T18:16:40Z
}
