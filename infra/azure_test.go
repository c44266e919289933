package infra_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelauth/modelauth/infra"
	"github.com/modelauth/modelauth/shared/keysecret"
)

// The Bicep compiler cannot be installed here, so these tests check what
// the templates state: resources, properties, roles and scopes, as written.

func bicep(t *testing.T, name string) *infra.BicepFile {
	t.Helper()
	f, err := infra.Bicep(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func resource(t *testing.T, f *infra.BicepFile, symbol, typ string) infra.BicepResource {
	t.Helper()
	r, ok := f.Resource(symbol)
	if !ok {
		t.Fatalf("no resource %s", symbol)
	}
	if r.Type != typ {
		t.Fatalf("resource %s is a %s; want %s", symbol, r.Type, typ)
	}
	return r
}

// wantProps checks that each path of r's body holds the expression given.
func wantProps(t *testing.T, r infra.BicepResource, want map[string]string) {
	t.Helper()
	for path, v := range want {
		if got := fmt.Sprint(r.Body.Get(path)); got != v {
			t.Errorf("%s %s = %s; want %s", r.Symbol, path, got, v)
		}
	}
}

// Built-in role definition ids.
const (
	owner                  = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	contributor            = "b24988ac-6180-42dd-9ba8-35a56f8a5be9"
	userAccessAdmin        = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
	keyVaultAdministrator  = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
	keyVaultSecretsOfficer = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
	keyVaultSecretsUser    = "4633458b-17de-408a-b874-0445c86b69e6"
	storageAccountContrib  = "17d1049b-9a84-46fb-8f53-869881c3d3ab"
)

func TestMainBicepFunctionApp(t *testing.T) {
	f := bicep(t, "azure/main.bicep")
	wantProps(t, resource(t, f, "plan", "Microsoft.Web/serverfarms"), map[string]string{
		"sku.tier": "'FlexConsumption'", "sku.name": "'FC1'", "properties.reserved": "true",
	})
	app := resource(t, f, "app", "Microsoft.Web/sites")
	wantProps(t, app, map[string]string{
		"kind":                                                 "'functionapp,linux'",
		"properties.serverFarmId":                              "plan.id",
		"properties.httpsOnly":                                 "true",
		"properties.siteConfig.minTlsVersion":                  "'1.2'",
		"properties.siteConfig.ftpsState":                      "'Disabled'",
		"identity.type":                                        "'UserAssigned'",
		"properties.functionAppConfig.runtime.name":            "'custom'",
		"properties.functionAppConfig.deployment.storage.type": "'blobContainer'",
		"properties.functionAppConfig.deployment.storage.authentication.type":                           "'UserAssignedIdentity'",
		"properties.functionAppConfig.deployment.storage.authentication.userAssignedIdentityResourceId": "identity.id",
	})
	if ids, _ := app.Body.Get("identity.userAssignedIdentities").(infra.BicepObject); len(ids) != 1 || ids["'${identity.id}'"] == nil {
		t.Errorf("the app's identities = %v; want the template's one identity", ids)
	}
	// No basic-auth publishing at all.
	policies := f.OfType("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
	var names []string
	for _, p := range policies {
		names = append(names, p.Body.String("name"))
		wantProps(t, p, map[string]string{"parent": "app", "properties.allow": "false"})
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"'ftp'", "'scm'"}) {
		t.Errorf("basic publishing policies for %v; want ftp and scm", names)
	}
	wantProps(t, resource(t, f, "storage", "Microsoft.Storage/storageAccounts"), map[string]string{
		"properties.minimumTlsVersion":        "'TLS1_2'",
		"properties.supportsHttpsTrafficOnly": "true",
		"properties.allowBlobPublicAccess":    "false",
		"properties.allowSharedKeyAccess":     "false",
	})
	wantProps(t, resource(t, f, "packageContainer", "Microsoft.Storage/storageAccounts/blobServices/containers"), map[string]string{
		"properties.publicAccess": "'None'",
	})
	// The host's storage role on the storage account only.
	wantProps(t, resource(t, f, "storageBlobOwner", "Microsoft.Authorization/roleAssignments"), map[string]string{
		"scope": "storage", "properties.principalId": "identity.properties.principalId",
		"properties.roleDefinitionId": "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)",
	})
}

func TestMainBicepKeyVault(t *testing.T) {
	f := bicep(t, "azure/main.bicep")
	wantProps(t, resource(t, f, "vault", "Microsoft.KeyVault/vaults"), map[string]string{
		"properties.enableRbacAuthorization": "true",
		"properties.enablePurgeProtection":   "true",
		"properties.enableSoftDelete":        "true",
		"properties.tenantId":                "subscription().tenantId",
	})
	// The custom role: exactly the four secret data actions, assignable in
	// this resource group only.
	role := resource(t, f, "secretsRotatorRole", "Microsoft.Authorization/roleDefinitions")
	wantProps(t, role, map[string]string{
		"properties.type":             "'CustomRole'",
		"properties.assignableScopes": "[resourceGroup().id]",
	})
	perms, _ := role.Body.Get("properties.permissions").([]any)
	if len(perms) != 1 {
		t.Fatalf("the role has %d permission blocks; want 1", len(perms))
	}
	p := perms[0].(infra.BicepObject)
	got := fmt.Sprint(p["dataActions"])
	want := fmt.Sprint([]any{
		"'Microsoft.KeyVault/vaults/secrets/getSecret/action'",
		"'Microsoft.KeyVault/vaults/secrets/setSecret/action'",
		"'Microsoft.KeyVault/vaults/secrets/readMetadata/action'",
		"'Microsoft.KeyVault/vaults/secrets/update/action'",
	})
	if got != want {
		t.Errorf("the role's data actions = %s; want %s", got, want)
	}
	for _, k := range []string{"actions", "notActions", "notDataActions"} {
		if v := fmt.Sprint(p[k]); v != "[]" {
			t.Errorf("the role's %s = %s; want none", k, v)
		}
	}
	// Assigned on the vault only, to the app's identity.
	wantProps(t, resource(t, f, "vaultRotator", "Microsoft.Authorization/roleAssignments"), map[string]string{
		"scope": "vault", "properties.roleDefinitionId": "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsRotatorRole.name)",
		"properties.principalId": "identity.properties.principalId", "properties.principalType": "'ServicePrincipal'",
	})
	wantProps(t, resource(t, f, "vaultDiagnostics", "Microsoft.Insights/diagnosticSettings"), map[string]string{
		"scope": "vault", "properties.workspaceId": "workspace.id",
	})
	diag, _ := f.Resource("vaultDiagnostics")
	if logs := fmt.Sprint(diag.Body.Get("properties.logs")); !strings.Contains(logs, "categoryGroup:'audit'") || !strings.Contains(logs, "enabled:true") {
		t.Errorf("the vault's diagnostic logs = %s; want the audit category group", logs)
	}
}

// TestBicepLeastPrivilege: every role assignment in every template names its
// scope (never the whole resource group or subscription), and no broad
// built-in role appears anywhere.
func TestBicepLeastPrivilege(t *testing.T) {
	for _, name := range []string{"azure/main.bicep", "azure/eventgrid.bicep", "azure/consumer-access.bicep", "azure/aml-endpoint-access.bicep"} {
		f := bicep(t, name)
		for _, ra := range f.OfType("Microsoft.Authorization/roleAssignments") {
			if ra.Body.String("scope") == "" {
				t.Errorf("%s: role assignment %s has no scope: it would cover the resource group", name, ra.Symbol)
			}
		}
		src, _ := infra.File(name)
		for role, id := range map[string]string{"Owner": owner, "Contributor": contributor, "User Access Administrator": userAccessAdmin,
			"Key Vault Administrator": keyVaultAdministrator, "Key Vault Secrets Officer": keyVaultSecretsOfficer,
			"Storage Account Contributor": storageAccountContrib} {
			if strings.Contains(src, id) {
				t.Errorf("%s grants %s", name, role)
			}
		}
		// No account keys, connection strings with keys or secrets in outputs.
		for _, bad := range []string{"listKeys(", "listSecrets(", "AccountKey=", "@secure()"} {
			if strings.Contains(src, bad) {
				t.Errorf("%s holds %s", name, bad)
			}
		}
	}
}

func TestMainBicepMonitoring(t *testing.T) {
	f := bicep(t, "azure/main.bicep")
	wantProps(t, resource(t, f, "appInsights", "Microsoft.Insights/components"), map[string]string{
		"properties.WorkspaceResourceId": "workspace.id", "properties.DisableLocalAuth": "true",
	})
	wantProps(t, resource(t, f, "metricsPublisher", "Microsoft.Authorization/roleAssignments"), map[string]string{
		"scope": "appInsights", "properties.principalId": "identity.properties.principalId",
	})
	alert := resource(t, f, "rotationFailedAlert", "Microsoft.Insights/scheduledQueryRules")
	wantProps(t, alert, map[string]string{"properties.scopes": "[workspace.id]", "properties.enabled": "true",
		"properties.autoMitigate": "true", "properties.skipQueryValidation": "true"})
	crit, _ := alert.Body.Get("properties.criteria.allOf").([]any)
	if len(crit) != 1 {
		t.Fatalf("the alert has %d criteria; want 1", len(crit))
	}
	c := crit[0].(infra.BicepObject)
	query := c.String("query")
	// The events the handler logs when a rotation fails (shared/rotation and
	// shared/signingkey), as they appear in its JSON lines.
	for _, ev := range []string{"rotation_failed", "signing_key_rotation_failed", "endpoint_key_drift"} {
		if !strings.Contains(query, `'"msg":"`+ev+`"'`) {
			t.Errorf("the alert's query does not look for %s:\n%s", ev, query)
		}
		if !logged(t, ev) {
			t.Errorf("the alert looks for %s, which no code logs", ev)
		}
	}
	if !strings.Contains(query, "AppTraces") {
		t.Errorf("the alert's query does not read AppTraces:\n%s", query)
	}
	if c.String("operator") != "'GreaterThan'" || c.String("threshold") != "0" || c.String("timeAggregation") != "'Count'" {
		t.Errorf("the alert fires on %s %s %s; want Count GreaterThan 0", c.String("timeAggregation"), c.String("operator"), c.String("threshold"))
	}
}

// logged reports whether Go code under shared/ or functions/ logs event.
func logged(t *testing.T, event string) bool {
	t.Helper()
	found := false
	for _, dir := range []string{"../shared", "../functions"} {
		err := walkGo(dir, func(src string) {
			if strings.Contains(src, `"`+event+`"`) {
				found = true
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return found
}

func walkGo(dir string, fn func(string)) error {
	return walkFiles(dir, func(path string) error {
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err == nil {
			fn(string(data))
		}
		return err
	})
}

func TestEventGridBicep(t *testing.T) {
	f := bicep(t, "azure/eventgrid.bicep")
	if v := resource(t, f, "vault", "Microsoft.KeyVault/vaults"); !v.Existing {
		t.Error("eventgrid.bicep declares a new vault; want main.bicep's existing one")
	}
	if a := resource(t, f, "app", "Microsoft.Web/sites"); !a.Existing {
		t.Error("eventgrid.bicep declares a new function app; want main.bicep's existing one")
	}
	wantProps(t, resource(t, f, "topic", "Microsoft.EventGrid/systemTopics"), map[string]string{
		"properties.source": "vault.id", "properties.topicType": "'Microsoft.KeyVault.vaults'",
	})
	sub := resource(t, f, "keyvaultevents", "Microsoft.EventGrid/systemTopics/eventSubscriptions")
	wantProps(t, sub, map[string]string{
		"parent":                                       "topic",
		"properties.destination.endpointType":          "'AzureFunction'",
		"properties.eventDeliverySchema":               "'EventGridSchema'",
		"properties.filter.includedEventTypes":         "['Microsoft.KeyVault.SecretNearExpiry' 'Microsoft.KeyVault.SecretExpired' 'Microsoft.KeyVault.SecretNewVersionCreated']",
		"properties.destination.properties.resourceId": "'${app.id}/functions/keyvaultevents'",
	})
	filters, _ := sub.Body.Get("properties.filter.advancedFilters").([]any)
	if len(filters) != 1 {
		t.Fatalf("%d advanced filters; want one on the subject", len(filters))
	}
	af := filters[0].(infra.BicepObject)
	if af.String("key") != "'subject'" || af.String("operatorType") != "'StringBeginsWith'" ||
		fmt.Sprint(af.Get("values")) != "['svc-' 'admin-key' 'signing-key' 'aml-']" {
		t.Errorf("the subject filter = %v; want subject beginning with svc-, admin-key, signing-key or aml-", af)
	}
	// The Azure ML endpoints' secrets, whose expiry events run the endpoint's
	// due-check (docs/design.md section 15).
	for _, name := range []string{keysecret.Endpoints.Key("scorer", keysecret.Primary), keysecret.Endpoints.Key("scorer", keysecret.Secondary), keysecret.Endpoints.Active("scorer")} {
		if ep, ok := keysecret.Endpoints.Of(name); !ok || ep != "scorer" {
			t.Errorf("keysecret.Endpoints.Of(%q) = %q, %v", name, ep, ok)
		}
		vals, _ := af.Get("values").([]any)
		if !slices.ContainsFunc(vals, func(v any) bool { return strings.HasPrefix(name, strings.Trim(fmt.Sprint(v), "'")) }) {
			t.Errorf("the subject filter drops %s, an endpoint's secret", name)
		}
	}
	// The filter lets through every secret the change journal tracks.
	for _, name := range []string{"svc-a-primary", "svc-a-secondary", "svc-a-active", keysecret.AdminKeySecret, keysecret.SigningKeySecret} {
		if !keysecret.Tracked(name) {
			t.Errorf("keysecret.Tracked(%q) = false", name)
		}
		vals, _ := af.Get("values").([]any)
		if !slices.ContainsFunc(vals, func(v any) bool { return strings.HasPrefix(name, strings.Trim(fmt.Sprint(v), "'")) }) {
			t.Errorf("the subject filter drops %s, which the journal tracks", name)
		}
	}
}

// TestConsumerAccessBicep: a consumer gets Key Vault Secrets User on its
// own secret, and only for tok-<consumer> and svc-<service>-active.
func TestConsumerAccessBicep(t *testing.T) {
	f := bicep(t, "azure/consumer-access.bicep")
	ra := resource(t, f, "consumerRead", "Microsoft.Authorization/roleAssignments")
	wantProps(t, ra, map[string]string{
		"scope":                       "vault::secret",
		"properties.principalId":      "principalId",
		"properties.roleDefinitionId": "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)",
	})
	if ra.Condition != "isToken || isActiveKey || isEndpointActiveKey" {
		t.Errorf("the assignment's condition = %q; want isToken || isActiveKey || isEndpointActiveKey", ra.Condition)
	}
	src, _ := infra.File("azure/consumer-access.bicep")
	for _, want := range []string{
		"var keyVaultSecretsUser = '" + keyVaultSecretsUser + "'",
		"var isToken = startsWith(secretName, 'tok-')",
		"var isActiveKey = startsWith(secretName, 'svc-') && endsWith(secretName, '-active')",
		"var isEndpointActiveKey = startsWith(secretName, 'aml-') && endsWith(secretName, '-active')",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("consumer-access.bicep lacks %q", want)
		}
	}
	// The same rule, applied to the app's secret names (docs/design.md section 4).
	isToken := func(s string) bool { return strings.HasPrefix(s, "tok-") }
	isActive := func(s string) bool { return strings.HasPrefix(s, "svc-") && strings.HasSuffix(s, "-active") }
	isEndpointActive := func(s string) bool { return strings.HasPrefix(s, "aml-") && strings.HasSuffix(s, "-active") }
	for name, allowed := range map[string]bool{
		"tok-batch": true, "svc-iris-active": true, keysecret.Endpoints.Active("fraud"): true,
		"svc-iris-primary": false, "svc-iris-secondary": false, "signing-key": false, "admin-key": false,
		keysecret.Endpoints.Key("fraud", keysecret.Primary): false, keysecret.Endpoints.Key("fraud", keysecret.Secondary): false,
	} {
		if got := isToken(name) || isActive(name) || isEndpointActive(name); got != allowed {
			t.Errorf("consumer access to %s = %v; want %v", name, got, allowed)
		}
	}
}

// TestDeployStory: the Azure and AWS deploy commands of docs/azure.md and
// docs/aws-lambda.md name the files that exist, and say how the Bicep is
// checked.
func TestDeployStory(t *testing.T) {
	for page, wants := range map[string][]string{
		"../docs/azure.md": {
			"az deployment group create", "-f infra/azure/main.bicep", "-f infra/azure/eventgrid.bicep",
			"az bicep build", "make package", "sam validate --lint -t infra/aws/template.yaml",
		},
		"../docs/aws-lambda.md": {
			"make package", "sam deploy", "infra/aws/template.yaml", "aws ssm put-parameter", "SecureString",
		},
	} {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(data)
		for _, want := range wants {
			if !strings.Contains(doc, want) {
				t.Errorf("%s lacks %q", page, want)
			}
		}
		for _, m := range regexp.MustCompile(`infra/[a-z]+/[A-Za-z0-9.-]+`).FindAllString(doc, -1) {
			if _, err := os.Stat("../" + m); err != nil {
				t.Errorf("%s names %s, which does not exist", page, m)
			}
		}
	}
}

// walkFiles calls fn for every regular file under dir.
func walkFiles(dir string, fn func(path string) error) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return fn(path)
	})
}

// TestHostJSONKeepsTraces: Application Insights sampling never drops a
// trace, since the rotation alert counts the handler's log lines.
func TestHostJSONKeepsTraces(t *testing.T) {
	data, err := os.ReadFile("../host.json")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Logging struct {
			ApplicationInsights struct {
				SamplingSettings struct {
					IsEnabled     bool
					ExcludedTypes string
				}
			}
		}
	}
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	s := h.Logging.ApplicationInsights.SamplingSettings
	if s.IsEnabled && !slices.Contains(strings.Split(s.ExcludedTypes, ";"), "Trace") {
		t.Errorf("host.json samples traces (excludedTypes %q): a rotation_failed line could be dropped before the alert sees it", s.ExcludedTypes)
	}
}

// endpointRoleDoc returns the Actions of the custom role docs/endpoints.md
// gives (the JSON for az role definition create).
func endpointRoleDoc(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../docs/endpoints.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	for _, b := range blocks {
		if !strings.Contains(b[1], `"IsCustom"`) {
			continue
		}
		var role struct {
			Name                        string
			IsCustom                    bool
			Actions, NotActions         []string
			DataActions, NotDataActions []string
			AssignableScopes            []string
		}
		if err := json.Unmarshal([]byte(b[1]), &role); err != nil {
			t.Fatalf("docs/endpoints.md: the role's JSON: %v", err)
		}
		if !role.IsCustom || !strings.HasPrefix(role.Name, "modelauth Azure ML endpoint key operator") {
			t.Errorf("docs/endpoints.md's role is %q (IsCustom %v); want the custom role modelauth Azure ML endpoint key operator", role.Name, role.IsCustom)
		}
		if len(role.NotActions)+len(role.DataActions)+len(role.NotDataActions) != 0 {
			t.Errorf("docs/endpoints.md's role has NotActions %v, DataActions %v, NotDataActions %v; want none", role.NotActions, role.DataActions, role.NotDataActions)
		}
		if len(role.AssignableScopes) == 0 {
			t.Error("docs/endpoints.md's role has no AssignableScopes")
		}
		return role.Actions
	}
	t.Fatal("docs/endpoints.md has no ```json block with the custom role (\"IsCustom\": true)")
	return nil
}

// TestAmlEndpointAccessBicep: the Azure ML endpoints' custom role holds
// exactly the actions docs/endpoints.md documents (read, listKeys,
// regenerateKeys and the reads of the operation's polls: nothing that
// writes, deletes or scores), and it is assigned to the app's identity on
// each endpoint of amlEndpointIds, at the endpoint, in its own group.
func TestAmlEndpointAccessBicep(t *testing.T) {
	f := bicep(t, "azure/main.bicep")
	if p, ok := f.Params["amlEndpointIds"]; !ok || p.Type != "array" || p.Default != "[]" {
		t.Errorf("main.bicep's amlEndpointIds = %+v; want an array parameter, default []", p)
	}
	role := resource(t, f, "amlKeyOperatorRole", "Microsoft.Authorization/roleDefinitions")
	if role.Condition != "!empty(amlEndpointIds)" {
		t.Errorf("the endpoint role's condition = %q; want !empty(amlEndpointIds): a role with no endpoint has nothing to grant", role.Condition)
	}
	wantProps(t, role, map[string]string{
		"name":            "amlKeyOperatorRoleName",
		"properties.type": "'CustomRole'",
	})
	if rn := role.Body.String("properties.roleName"); !strings.HasPrefix(rn, "'modelauth Azure ML endpoint key operator") {
		t.Errorf("the endpoint role's roleName = %s; want modelauth Azure ML endpoint key operator (...)", rn)
	}
	perms, _ := role.Body.Get("properties.permissions").([]any)
	if len(perms) != 1 {
		t.Fatalf("the endpoint role has %d permission blocks; want 1", len(perms))
	}
	p := perms[0].(infra.BicepObject)
	acts, _ := p["actions"].([]any)
	var got []string
	for _, a := range acts {
		got = append(got, strings.Trim(fmt.Sprint(a), "'"))
	}
	want := endpointRoleDoc(t)
	if !slices.Equal(got, want) {
		t.Errorf("main.bicep's endpoint role's actions =\n  %s\ndocs/endpoints.md's =\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, a := range got {
		if !strings.HasPrefix(a, "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/") || strings.Contains(a, "*") {
			t.Errorf("the endpoint role allows %s: want only actions on online endpoints, no wildcard", a)
		}
		for _, bad := range []string{"/write", "/delete", "/score/", "/token/"} {
			if strings.Contains(strings.ToLower(a), bad) {
				t.Errorf("the endpoint role allows %s", a)
			}
		}
	}
	// What the app calls (shared/azureml): Get, List Keys, Regenerate Keys
	// and the polls of its operation.
	for _, need := range []string{"onlineEndpoints/read", "onlineEndpoints/listKeys/action", "onlineEndpoints/regenerateKeys/action",
		"onlineEndpoints/operationsstatus/read", "onlineEndpoints/operationresults/read"} {
		if !slices.ContainsFunc(got, func(a string) bool { return strings.EqualFold(a, "Microsoft.MachineLearningServices/workspaces/"+need) }) {
			t.Errorf("the endpoint role lacks %s", need)
		}
	}
	for _, k := range []string{"notActions", "dataActions", "notDataActions"} {
		if v := fmt.Sprint(p[k]); v != "[]" {
			t.Errorf("the endpoint role's %s = %s; want none", k, v)
		}
	}

	// One module per endpoint, in the endpoint's subscription and group.
	src, _ := infra.File("azure/main.bicep")
	for _, w := range []string{
		"var amlKeyOperatorRoleName = guid(",
		"module amlEndpointAccess 'aml-endpoint-access.bicep' = [",
		"for (id, i) in amlEndpointIds: {",
		"scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])",
		"endpointId: id",
		"principalId: identity.properties.principalId",
		"roleDefinitionName: amlKeyOperatorRoleName",
		"dependsOn: [amlKeyOperatorRole]",
	} {
		if !strings.Contains(src, w) {
			t.Errorf("main.bicep lacks %q", w)
		}
	}

	m := bicep(t, "azure/aml-endpoint-access.bicep")
	for _, n := range []string{"endpointId", "principalId", "roleDefinitionName"} {
		if p, ok := m.Params[n]; !ok || p.Type != "string" || p.Default != "" {
			t.Errorf("aml-endpoint-access.bicep's %s = %+v; want a string parameter without a default", n, p)
		}
	}
	if ep := resource(t, m, "endpoint", "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"); !ep.Existing {
		t.Error("aml-endpoint-access.bicep declares a new online endpoint; want the existing one")
	} else if ep.Body.String("name") != "'${parts[8]}/${parts[10]}'" {
		t.Errorf("the endpoint's name = %s; want its workspace/name from endpointId", ep.Body.String("name"))
	}
	msrc, _ := infra.File("azure/aml-endpoint-access.bicep")
	if !strings.Contains(msrc, "var parts = split(endpointId, '/')") {
		t.Error("aml-endpoint-access.bicep does not take the endpoint's names from endpointId")
	}
	ras := m.OfType("Microsoft.Authorization/roleAssignments")
	if len(ras) != 1 {
		t.Fatalf("aml-endpoint-access.bicep has %d role assignments; want 1", len(ras))
	}
	wantProps(t, ras[0], map[string]string{
		"scope":                       "endpoint",
		"name":                        "guid(endpoint.id, principalId, roleDefinitionName)",
		"properties.roleDefinitionId": "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionName)",
		"properties.principalId":      "principalId",
		"properties.principalType":    "'ServicePrincipal'",
	})
}
