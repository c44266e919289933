package keyvaulttest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// nodeDir holds the Node check: package.json, its package-lock.json and
// check.js; `npm ci --prefix shared/keyvaulttest/testdata/node` installs
// its node_modules (.ci/run does).
const nodeDir = "testdata/node"

// requireNodeEnv, set to 1 (as .ci/run does), makes TestNodeSDK fail
// rather than skip when node or the installed packages are missing.
const requireNodeEnv = "KEYVAULTTEST_REQUIRE_NODE"

// nodeResult is what check.js prints.
type nodeResult struct {
	Set         []nodeSecret   `json:"set"`
	Latest      nodeSecret     `json:"latest"`
	First       nodeSecret     `json:"first"`
	Versions    []nodeSecret   `json:"versions"`
	SecretPages [][]nodeSecret `json:"secretPages"`
	Secrets     []nodeSecret   `json:"secrets"`
	Updated     nodeSecret     `json:"updated"`
	DisabledGet *struct {
		StatusCode int    `json:"statusCode"`
		Code       string `json:"code"`
		Message    string `json:"message"`
	} `json:"disabledGet"`
}

type nodeSecret struct {
	Value           *string           `json:"value"`
	ID              string            `json:"id"`
	Name            string            `json:"name"`
	Version         string            `json:"version"`
	Enabled         bool              `json:"enabled"`
	ContentType     *string           `json:"contentType"`
	Tags            map[string]string `json:"tags"`
	CreatedOn       *string           `json:"createdOn"`
	UpdatedOn       *string           `json:"updatedOn"`
	ExpiresOn       *string           `json:"expiresOn"`
	RecoveryLevel   string            `json:"recoveryLevel"`
	RecoverableDays int               `json:"recoverableDays"`
}

// TestNodeSDK drives the server with a second SDK, the Azure SDK for
// JavaScript (@azure/keyvault-secrets with @azure/identity's
// ClientSecretCredential, MSAL for Node), through testdata/node/check.js:
// set, get, list versions, list secrets (pages of one), update properties
// and a read of a disabled version. It runs twice: with Options.NamedVault,
// where Node's SDK checks the challenge resource as it does against Azure,
// and with the default 127.0.0.1 vault, whose resource (https://0.0.1:<port>)
// Node's URL parser reads as the address 0.0.0.1, so that the check is
// off there (disableChallengeResourceVerification).
func TestNodeSDK(t *testing.T) {
	node := nodeOrSkip(t)
	for _, tt := range []struct {
		name       string
		namedVault bool
	}{{"NamedVault", true}, {"IPVault", false}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{NamedVault: tt.namedVault})
			res := runNodeCheck(t, node, kv, !tt.namedVault)
			checkNodeResult(t, kv, res)
			st := kv.Stats()
			if st.Challenges < 1 || st.TokensIssued < 1 || st.Discovery < 1 || st.Set != 3 || st.Update != 1 || st.ListSecrets != 3 {
				t.Errorf("stats %s; want >=1 challenge, token and discovery, 3 sets, 1 update, 3 pages of secrets", describe(st))
			}
		})
	}
}

// nodeOrSkip returns the node executable, or skips the test (fails it
// with KEYVAULTTEST_REQUIRE_NODE=1) when node or the packages are missing.
func nodeOrSkip(t *testing.T) string {
	t.Helper()
	const enable = "Node.js 20+ and its packages are needed: run `npm ci --prefix shared/keyvaulttest/testdata/node` " +
		"(from the repository's root; .ci/run does) to enable this test"
	skip := t.Skipf
	if os.Getenv(requireNodeEnv) == "1" {
		skip = t.Fatalf
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("no node on PATH. %s", enable)
	}
	for _, p := range []string{"@azure/keyvault-secrets", "@azure/identity"} {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", p, "package.json")); err != nil {
			skip("%s is not installed in %s/node_modules. %s", p, nodeDir, enable)
		}
	}
	return node
}

// runNodeCheck runs check.js against kv with a minimal environment (no
// proxy settings: Node's SDK honours HTTPS_PROXY) and decodes its output.
func runNodeCheck(t *testing.T, node string, kv *keyvaulttest.Server, disableVerification bool) nodeResult {
	t.Helper()
	ca, err := keyvaulttest.CertFile()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "check.js")
	cmd.Dir = nodeDir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"NODE_EXTRA_CA_CERTS=" + ca,
		"KEYVAULT_URL=" + kv.VaultURL,
		"AZURE_AUTHORITY_HOST=" + kv.AuthorityHost,
		"AZURE_TENANT_ID=" + kv.TenantID,
		"AZURE_CLIENT_ID=" + kv.ClientID,
		"AZURE_CLIENT_SECRET=" + kv.ClientSecret,
		"KVT_PREFIX=node",
	}
	if disableVerification {
		cmd.Env = append(cmd.Env, "KVT_DISABLE_CHALLENGE_VERIFICATION=1")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node check.js: %v\n%s", err, stderr.Bytes())
	}
	var res nodeResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("node check.js printed %q: %v", stdout.Bytes(), err)
	}
	return res
}

func checkNodeResult(t *testing.T, kv *keyvaulttest.Server, res nodeResult) {
	t.Helper()
	idRE := regexp.MustCompile(`^` + regexp.QuoteMeta(kv.VaultURL) + `/secrets/(node-[ab])/([0-9a-f]{32})$`)
	if len(res.Set) != 3 {
		t.Fatalf("set %d secrets; want 3", len(res.Set))
	}
	for i, want := range []struct{ name, value string }{{"node-a", "v1"}, {"node-a", "v2"}, {"node-b", "b1"}} {
		s := res.Set[i]
		m := idRE.FindStringSubmatch(s.ID)
		if m == nil || m[1] != want.name || m[2] != s.Version || s.Name != want.name || s.Value == nil || *s.Value != want.value ||
			!s.Enabled || s.CreatedOn == nil || s.UpdatedOn == nil || s.RecoveryLevel == "" || s.RecoverableDays == 0 {
			t.Errorf("set[%d] = %+v; want %s=%s with id <vault>/secrets/<name>/<version>", i, s, want.name, want.value)
		}
	}
	v1, v2 := res.Set[0].Version, res.Set[1].Version
	const exp = "2033-05-18T03:33:20.000Z" // Unix 2,000,000,000
	if l := res.Latest; l.Value == nil || *l.Value != "v2" || l.Version != v2 {
		t.Errorf("latest = %+v; want v2 (%s)", l, v2)
	}
	if f := res.First; f.Value == nil || *f.Value != "v1" || f.Version != v1 || f.ContentType == nil || *f.ContentType != "text/plain" ||
		f.ExpiresOn == nil || *f.ExpiresOn != exp || fmt.Sprint(f.Tags) != "map[kind:service-key state:current]" {
		t.Errorf("first = %+v; want v1 with its content type, expiry and tags", f)
	}
	var listed []string
	for _, v := range res.Versions {
		listed = append(listed, v.Version)
		if v.Value != nil || v.Name != "node-a" {
			t.Errorf("listed version %+v: want node-a without a value", v)
		}
	}
	if fmt.Sprint(listed) != fmt.Sprint([]string{v1, v2}) {
		t.Errorf("versions %v; want [%s %s]", listed, v1, v2)
	}
	if len(res.SecretPages) != 2 || len(res.SecretPages[0]) != 1 || len(res.SecretPages[1]) != 1 {
		t.Fatalf("secret pages %+v; want two pages of one (maxPageSize 1, nextLink)", res.SecretPages)
	}
	if len(res.Secrets) != 2 {
		t.Fatalf("secrets %+v; want node-a and node-b", res.Secrets)
	}
	for i, s := range res.Secrets {
		want := []string{"node-a", "node-b"}[i]
		if s.Name != want || s.ID != kv.VaultURL+"/secrets/"+want || s.Version != "" || s.Value != nil || !s.Enabled ||
			s.CreatedOn == nil || s.RecoveryLevel == "" || res.SecretPages[i][0].ID != s.ID {
			t.Errorf("secrets[%d] = %+v; want %s, id without a version, on page %d", i, s, want, i+1)
		}
	}
	if a := res.Secrets[0]; len(a.Tags) != 0 || a.ContentType != nil || a.ExpiresOn != nil {
		t.Errorf("node-a listed as %+v; want its newest version's properties (no tags, content type or expiry)", a)
	}
	if b := res.Secrets[1]; fmt.Sprint(b.Tags) != "map[kind:other]" {
		t.Errorf("node-b listed with tags %v; want kind=other", b.Tags)
	}
	if u := res.Updated; u.Version != v1 || u.Enabled || fmt.Sprint(u.Tags) != "map[state:retired]" || u.ContentType == nil ||
		*u.ContentType != "text/plain" || u.ExpiresOn == nil || *u.ExpiresOn != exp || u.Value != nil {
		t.Errorf("updated = %+v; want v1 disabled, tags replaced, content type and expiry kept", u)
	}
	if d := res.DisabledGet; d == nil || d.StatusCode != http.StatusForbidden || d.Code != "Forbidden" || !strings.Contains(d.Message, "disabled") {
		t.Errorf("get of the disabled version: %+v; want 403 Forbidden", d)
	}
}

// TestNamedVaultRealClient checks that the Go SDK's challenge check
// accepts Options.NamedVault's resource (https://localhost:<port>) too:
// the client dials 127.0.0.1 for vault.localhost, which Go's resolver
// does not resolve.
func TestNamedVaultRealClient(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{NamedVault: true})
	if !strings.HasPrefix(kv.VaultURL, "https://"+keyvaulttest.LocalhostVault+":") || !strings.HasPrefix(kv.Resource, "https://localhost:") {
		t.Fatalf("VaultURL %s, Resource %s", kv.VaultURL, kv.Resource)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && host == keyvaulttest.LocalhostVault {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return dial(ctx, network, addr)
	}
	client, err := azsecrets.NewClient(kv.VaultURL, newCredential(t, kv, -1), &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: &http.Client{Transport: tr},
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 15*time.Second)
	if _, err := client.SetSecret(ctx, "named", azsecrets.SetSecretParameters{Value: ptr("v")}, nil); err != nil {
		t.Fatalf("SetSecret: %v", err)
	}
	got, err := client.GetSecret(ctx, "named", "", nil)
	if err != nil || got.Value == nil || *got.Value != "v" || !strings.HasPrefix(string(*got.ID), kv.VaultURL+"/secrets/named/") {
		t.Fatalf("GetSecret: %+v, %v", got, err)
	}
}
