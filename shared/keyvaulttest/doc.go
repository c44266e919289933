// Package keyvaulttest is a Key Vault test server: an in-memory Azure Key
// Vault (the secrets operations modelauth uses) and a Microsoft Entra token
// endpoint on one 127.0.0.1 TLS port, which the real azsecrets client and
// the real azidentity credentials use unchanged. Production code has no
// test switch: a test points it at the server through the environment
// ([Server.Env]).
//
//	func TestMain(m *testing.M) {
//		f, err := keyvaulttest.CertFile()
//		if err != nil {
//			log.Fatal(err)
//		}
//		os.Setenv("SSL_CERT_FILE", f) // before the first TLS connection
//		os.Exit(m.Run())
//	}
//
//	func TestStore(t *testing.T) {
//		kv := keyvaulttest.NewServer(t, nil)
//		for _, line := range kv.Env() {
//			k, v, _ := strings.Cut(line, "=")
//			t.Setenv(k, v)
//		}
//		// production code: DefaultAzureCredential, azsecrets.NewClient(KEYVAULT_URL, ...)
//	}
//
// # TLS
//
// Every server of a process has a certificate (for 127.0.0.1, ::1 and
// localhost) issued by one test CA made for the process, whose PEM file is
// [CertFile]. Go reads SSL_CERT_FILE once per process, when it first loads
// the system roots, so set it before the process's first TLS connection,
// for example in TestMain.
//
// # Vault
//
// The server speaks the Key Vault REST protocol (any api-version of the
// form 7.5 or 2026-04-01; the azsecrets v1.5.1 default is 2026-04-01):
//
//	PUT   /secrets/{name}                SetSecret: a new version, the newest
//	GET   /secrets/{name}/{version}      GetSecret; an empty version (or none) reads the newest
//	GET   /secrets/{name}/versions       versions, oldest first (or Options.ListOrder), with maxresults and nextLink paging
//	PATCH /secrets/{name}/{version}      UpdateSecretProperties: only the fields sent; an empty version updates the newest
//	GET   /secrets                       ListSecretProperties: one item per secret, by lowercase name, with maxresults and nextLink paging
//
// with Key Vault's rules: names are case-insensitive and match
// ^[0-9a-zA-Z-]{1,127}$ (a secret keeps the spelling of its first write);
// versions are 32 lowercase hex digits; at most 15 tags, names up to 512
// characters and values up to 256; values up to 25,600 bytes; tags sent to
// an update replace the whole set; reading a disabled version answers 403
// Forbidden ("Operation get is not allowed on a disabled secret.", inner
// code SecretDisabled); expired and not-yet-valid versions are read like
// any other; an unknown secret or version answers 404 SecretNotFound;
// listing the versions of an unknown secret answers an empty page. A
// listing of secrets (SecretItems) gives each secret's id without a version
// (<VaultURL>/secrets/<name>, in the spelling of its first write) and the
// attributes, tags and content type of its newest version, disabled or
// not, and never a value. Ids are
// full URLs (<VaultURL>/secrets/<name>/<version>) and timestamps (created,
// updated, nbf, exp) integer Unix seconds. A listing's default page has
// [DefaultPageSize] versions (Options.PageSize; maxresults 1..25 overrides
// it) and its nextLink is an absolute URL that carries the api-version, as
// the client adds none to it; a listing of secrets pages the same way.
//
// Errors are Key Vault's body {"error":{"code":...,"message":...}} with an
// x-ms-error-code header: 400 BadParameter (a missing api-version, a bad
// name, value, tag or body), 401 Unauthorized (the challenge), 403
// Forbidden, 404 SecretNotFound.
//
// # Authentication
//
// A vault request without a bearer token, or with one this server did not
// issue, that has expired, or is for another resource, gets 401 with
//
//	WWW-Authenticate: Bearer authorization="<AuthorityHost>/<TenantID>", resource="<Resource>"
//
// where Resource is https://0.0.1:<port>: the client checks that the
// vault's host (127.0.0.1:<port>) ends with "." plus the resource's host,
// and then asks its credential for a token for <Resource>/.default from
// that tenant. That is the Go SDK's check. The Azure SDK for JavaScript
// parses the resource as a WHATWG URL, which reads 0.0.1 as the address
// 0.0.0.1, and no suffix of an IP address survives that: a vault addressed
// by IP can pass its check only with disableChallengeResourceVerification.
// Options.NamedVault serves the vault as https://vault.localhost:<port>
// instead, with the resource https://localhost:<port>, which every SDK's
// check accepts; the client must then resolve vault.localhost (RFC 6761)
// to 127.0.0.1 itself, as neither Go's resolver nor glibc's does.
// testdata/node/check.js (run by TestNodeSDK) drives the server with
// @azure/keyvault-secrets and @azure/identity in both ways.
//
// The token endpoint, on the same port (AZURE_AUTHORITY_HOST), serves
// what MSAL (for Go and for Node) does for a confidential client with a
// client secret: GET /<tenant>/v2.0/.well-known/openid-configuration
// (with issuer, authorization_endpoint, token_endpoint and jwks_uri, which
// MSAL for Node requires; the keys at /<tenant>/discovery/v2.0/keys are an
// empty set, as tokens are opaque), and POST
// /<tenant>/oauth2/v2.0/token with grant_type=client_credentials, answered
// with {"token_type":"Bearer","expires_in":...,"access_token":...} (an
// opaque random token) for the one application it knows (TenantID,
// ClientID, ClientSecret); a wrong secret gets 401 invalid_client
// (AADSTS7000215) as from Entra. It also serves /common/discovery/instance,
// but MSAL sends instance discovery for an authority host that is not
// Entra's to login.microsoftonline.com: azidentity credentials need
// DisableInstanceDiscovery for this server, as for any private cloud.
//
// # Faults and counters
//
// [Server.InjectFault] makes requests of one operation answer an error
// status (with Retry-After), wait, reset the connection or hang until the
// client gives up; [Server.Stats] counts authenticated requests per
// operation, challenges, and token requests, for tests and benchmarks that
// count store calls.
//
// # Logging
//
// The server logs one event per request to Options.Logger (discarded by
// default): method, path, operation, status and duration; never a secret
// value, a token or a client secret.
package keyvaulttest
