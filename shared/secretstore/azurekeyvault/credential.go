package azurekeyvault

import (
	"fmt"
	"net/url"
	"os"
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
//
// Before azidentity reads the environment, NewCredential removes from it
// every AZURE_* variable that is empty or blank ([DropEmptyAzureEnv]):
// local.settings.json files and Core Tools export unset settings as empty
// variables, which the app's settings treat as unset but azidentity, which
// asks whether some are set at all (AZURE_CLIENT_ID, AZURE_TENANT_ID,
// AZURE_FEDERATED_TOKEN_FILE, AZURE_TOKEN_CREDENTIALS), takes as set to "":
// an empty AZURE_CLIENT_ID names a user-assigned managed identity with an
// empty client id, and managed identity fails.
func NewCredential(authorityHost string) (azcore.TokenCredential, error) {
	DropEmptyAzureEnv()
	opts := &azidentity.DefaultAzureCredentialOptions{}
	var err error
	if opts.DisableInstanceDiscovery, err = NoInstanceDiscovery(authorityHost); err != nil {
		return nil, err
	}
	cred, err := azidentity.NewDefaultAzureCredential(opts)
	if err != nil {
		return nil, fmt.Errorf("azurekeyvault: credentials: %w", err)
	}
	return cred, nil
}

// NoInstanceDiscovery reports whether a credential for authorityHost
// (AZURE_AUTHORITY_HOST; "" is the public cloud) must switch instance
// discovery off: for any host but Entra's own, as azidentity documents for
// private clouds. It fails for a value that is not an https URL.
func NoInstanceDiscovery(authorityHost string) (bool, error) {
	if authorityHost == "" {
		return false, nil
	}
	u, err := url.Parse(authorityHost)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return false, fmt.Errorf("azurekeyvault: AZURE_AUTHORITY_HOST %q is not an https URL", authorityHost)
	}
	return !isEntraHost(u.Hostname()), nil
}

func isEntraHost(host string) bool {
	for _, h := range entraHosts {
		if strings.EqualFold(host, h) {
			return true
		}
	}
	return false
}

// AzureEnvPrefix is the prefix of the environment variables azidentity
// reads (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET,
// AZURE_AUTHORITY_HOST, AZURE_FEDERATED_TOKEN_FILE,
// AZURE_CLIENT_CERTIFICATE_PATH, AZURE_TOKEN_CREDENTIALS, ...).
const AzureEnvPrefix = "AZURE_"

// DropEmptyAzureEnv removes from the process's environment every variable
// named AZURE_* whose value is empty or only blanks, and returns their
// names: for modelauth, as for its settings, such a variable is unset.
// Variables with a value are left as they are.
func DropEmptyAzureEnv() []string {
	var dropped []string
	for _, kv := range os.Environ() {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, AzureEnvPrefix) || strings.TrimSpace(value) != "" {
			continue
		}
		os.Unsetenv(name)
		dropped = append(dropped, name)
	}
	return dropped
}
