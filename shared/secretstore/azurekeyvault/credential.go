package azurekeyvault

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// entraHosts are the Microsoft Entra authority hosts of the public and
// sovereign clouds, which MSAL validates itself.
var entraHosts = []string{
	"login.microsoftonline.com", "login.microsoft.com", "login.windows.net", "sts.windows.net",
	"login.microsoftonline.us", "login.usgovcloudapi.net", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn",
}

// NewCredential returns DefaultAzureCredential: environment credentials
// (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET), workload
// identity, managed identity (AZURE_CLIENT_ID selects a user-assigned one),
// then `az login`. authorityHost is AZURE_AUTHORITY_HOST: when it names a
// host other than Entra's own, as for Azure Stack or a private cloud,
// instance discovery against login.microsoftonline.com is switched off, as
// azidentity documents for such clouds.
func NewCredential(authorityHost string) (azcore.TokenCredential, error) {
	opts := &azidentity.DefaultAzureCredentialOptions{}
	if authorityHost != "" {
		u, err := url.Parse(authorityHost)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("azurekeyvault: AZURE_AUTHORITY_HOST %q is not an https URL", authorityHost)
		}
		opts.DisableInstanceDiscovery = !isEntraHost(u.Hostname())
	}
	cred, err := azidentity.NewDefaultAzureCredential(opts)
	if err != nil {
		return nil, fmt.Errorf("azurekeyvault: credentials: %w", err)
	}
	return cred, nil
}

func isEntraHost(host string) bool {
	for _, h := range entraHosts {
		if strings.EqualFold(host, h) {
			return true
		}
	}
	return false
}
