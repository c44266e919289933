package keyvaulttest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// The real azsecrets client and azidentity credential against the test
// server. SSL_CERT_FILE is set to [keyvaulttest.CertFile] in TestMain.
func Example() {
	kv, err := keyvaulttest.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer kv.Close()

	cred, err := azidentity.NewClientSecretCredential(kv.TenantID, kv.ClientID, kv.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: kv.AuthorityHost}},
			DisableInstanceDiscovery: true, // the authority host is not Entra's
		})
	if err != nil {
		log.Fatal(err)
	}
	client, err := azsecrets.NewClient(kv.VaultURL, cred, nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := client.SetSecret(ctx, "greeting", azsecrets.SetSecretParameters{Value: ptr("hello")}, nil); err != nil {
		log.Fatal(err)
	}
	got, err := client.GetSecret(ctx, "Greeting", "", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(*got.Value)
	st := kv.Stats()
	fmt.Printf("challenges %d, tokens %d, sets %d, gets %d\n", st.Challenges, st.TokensIssued, st.Set, st.Get)
	// Output:
	// hello
	// challenges 1, tokens 1, sets 1, gets 1
}

// Injecting a fault: the next get answers 429 with Retry-After: 1.
func ExampleServer_InjectFault() {
	kv, err := keyvaulttest.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer kv.Close()
	cred, err := azidentity.NewClientSecretCredential(kv.TenantID, kv.ClientID, kv.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: kv.AuthorityHost}},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		log.Fatal(err)
	}
	client, err := azsecrets.NewClient(kv.VaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		log.Fatal(err)
	}

	kv.InjectFault(keyvaulttest.OpGet, keyvaulttest.Fault{Times: 1, Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	_, err = client.GetSecret(context.Background(), "any", "", nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		fmt.Println(re.StatusCode, re.ErrorCode, re.RawResponse.Header.Get("Retry-After"))
	}
	// Output:
	// 429 Throttled 1
}
