package infra_test

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelauth/modelauth/infra"
	"github.com/modelauth/modelauth/shared/azfunc"
	"github.com/modelauth/modelauth/shared/config"
)

// The settings every platform's code reads are found by running the code
// (config.LoadSettings and azfunc.ListenAddr, what the handler reads) over
// that platform's environment: the Bicep app settings for Azure,
// local.settings.example.json locally. What neither modelauth's code nor
// the platform reads is stale.

// The Functions host sets these itself, in Azure and locally.
var hostSet = []string{"FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_APP_ROOT_PATH"}

// Only Azure sets WEBSITE_HOSTNAME: the code reads it everywhere, and
// finds it empty elsewhere.
const azureOnly = "WEBSITE_HOSTNAME"

// Read by the Functions host or a library, not by modelauth's code.
var (
	azureLibraryRead = []string{
		"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
		"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
		"AZURE_CLIENT_ID", // azidentity: the user-assigned managed identity
	}
	localLibraryRead = []string{
		"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage", // Core Tools; the local host ignores them
		"AZURE_TENANT_ID", "AZURE_CLIENT_ID", // azidentity, with AZURE_CLIENT_SECRET
	}
)

func docSettings(t *testing.T) infra.Settings {
	t.Helper()
	data, err := os.ReadFile("../docs/settings.md")
	if err != nil {
		t.Fatal(err)
	}
	s, err := infra.DocSettings(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// codeRead runs what the handler runs at start over env and returns the
// names it read, failing if the settings are refused.
func codeRead(t *testing.T, env map[string]string) map[string]bool {
	t.Helper()
	rec := infra.NewRecorder(env)
	if _, err := config.LoadSettings(rec.Getenv); err != nil {
		t.Fatalf("the handler refuses these settings: %v", err)
	}
	if _, err := azfunc.ListenAddr(rec.Getenv); err != nil {
		t.Fatal(err)
	}
	return rec.Read()
}

func union(a, b map[string]bool) map[string]bool {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

// sameNames reports the difference of got (what a file holds) and want.
func sameNames(t *testing.T, what string, got, want map[string]bool) {
	t.Helper()
	missing, extra := infra.Compare(got, want)
	for _, n := range missing {
		t.Errorf("%s lacks %s", what, n)
	}
	for _, n := range extra {
		t.Errorf("%s holds %s, which nothing reads there", what, n)
	}
}

// bicepValue is the value a Bicep app setting takes with the parameters'
// defaults: literals and parameters are evaluated, other expressions
// (resource properties) take the stand-in of stand.
func bicepValue(t *testing.T, f *infra.BicepFile, name, expr string, stand map[string]string) string {
	t.Helper()
	switch {
	case strings.HasPrefix(expr, "'") && strings.HasSuffix(expr, "'") && !strings.Contains(expr, "${"):
		return strings.ReplaceAll(expr[1:len(expr)-1], `\'`, `'`)
	case expr == "true" || expr == "false":
		return expr
	case strings.HasPrefix(expr, "string(") && strings.HasSuffix(expr, ")"):
		return bicepValue(t, f, name, expr[len("string("):len(expr)-1], stand)
	}
	if p, ok := f.Params[expr]; ok {
		if p.Default == "" {
			t.Fatalf("app setting %s comes from parameter %s, which has no default", name, expr)
		}
		return bicepValue(t, f, name, p.Default, stand)
	}
	if v, ok := stand[name]; ok {
		return v
	}
	return "stand-in for " + expr
}

// TestAzureSettings: the Bicep app settings are exactly what the app and
// its host read in Azure, they pass the handler's checks with the
// parameters' defaults, and docs/settings.md documents each one for Azure.
func TestAzureSettings(t *testing.T) {
	bicepSettings, err := infra.AzureAppSettings()
	if err != nil {
		t.Fatal(err)
	}
	f, err := infra.Bicep("azure/main.bicep")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		// What the host sets.
		"FUNCTIONS_CUSTOMHANDLER_PORT": "40123", "FUNCTIONS_APP_ROOT_PATH": "/home/site/wwwroot",
		"WEBSITE_HOSTNAME": "modelauth-x.azurewebsites.net",
	}
	stand := map[string]string{"KEYVAULT_URL": "https://kv-modelauth-x.vault.azure.net/"}
	for n, expr := range bicepSettings {
		env[n] = bicepValue(t, f, n, expr, stand)
	}
	read := codeRead(t, env)
	if read["MODELAUTH_DATA_DIR"] {
		t.Error("with Key Vault the handler still reads MODELAUTH_DATA_DIR")
	}
	got := infra.NameSet(slices.Collect(maps.Keys(bicepSettings)))
	want := union(read, infra.NameSet(azureLibraryRead))
	for _, n := range append(hostSet, azureOnly) {
		delete(want, n)
	}
	sameNames(t, "main.bicep's app settings", got, want)

	sameNames(t, "docs/settings.md's settings for Azure", docSettings(t).For(infra.Azure), union(read, infra.NameSet(azureLibraryRead)))

	// Flex Consumption takes the runtime from functionAppConfig and
	// refuses these; the host's storage is reached with the identity.
	for _, n := range []string{"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
		"AzureWebJobsStorage", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "AZURE_CLIENT_SECRET"} {
		if _, ok := bicepSettings[n]; ok {
			t.Errorf("main.bicep sets %s", n)
		}
	}
	if v := bicepSettings["AzureWebJobsStorage__credential"]; v != "'managedidentity'" {
		t.Errorf("AzureWebJobsStorage__credential = %s; want 'managedidentity'", v)
	}
	for _, n := range []string{"AzureWebJobsStorage__clientId", "AZURE_CLIENT_ID"} {
		if v := bicepSettings[n]; v != "identity.properties.clientId" {
			t.Errorf("%s = %s; want the app's identity's client id", n, v)
		}
	}
	if v := bicepSettings["KEYVAULT_URL"]; v != "vault.properties.vaultUri" {
		t.Errorf("KEYVAULT_URL = %s; want the template's vault", v)
	}
}

// TestLocalSettings: local.settings.example.json holds exactly what the app
// and Core Tools read locally, and docs/settings.md documents each one for
// local.
func TestLocalSettings(t *testing.T) {
	data, err := os.ReadFile("../local.settings.example.json")
	if err != nil {
		t.Fatal(err)
	}
	var ls struct{ Values map[string]string }
	if err := json.Unmarshal(data, &ls); err != nil {
		t.Fatal(err)
	}
	env := maps.Clone(ls.Values)
	env["FUNCTIONS_CUSTOMHANDLER_PORT"], env["FUNCTIONS_APP_ROOT_PATH"] = "40123", t.TempDir()
	read := codeRead(t, env)
	delete(read, azureOnly)
	if !read["MODELAUTH_DATA_DIR"] {
		t.Error("with the embedded store the handler does not read MODELAUTH_DATA_DIR")
	}
	want := union(read, infra.NameSet(localLibraryRead))
	for _, n := range hostSet {
		delete(want, n)
	}
	sameNames(t, "local.settings.example.json", infra.NameSet(slices.Collect(maps.Keys(ls.Values))), want)
	sameNames(t, "docs/settings.md's settings for local", docSettings(t).For(infra.Local), union(read, infra.NameSet(localLibraryRead)))
}

// functionJSON is a function folder's function.json.
type functionJSON struct {
	Bindings []struct {
		Type     string
		Route    string
		Methods  []string
		Schedule string
	}
}

// functionsByTrigger reads every functions/<name>/function.json and
// returns the folders by trigger type.
func functionsByTrigger(t *testing.T) map[string]map[string]functionJSON {
	t.Helper()
	paths, err := filepath.Glob("../functions/*/function.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no function folders: %v", err)
	}
	out := map[string]map[string]functionJSON{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var fj functionJSON
		if err := json.Unmarshal(data, &fj); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		trigger := fj.Bindings[0].Type
		if out[trigger] == nil {
			out[trigger] = map[string]functionJSON{}
		}
		out[trigger][filepath.Base(filepath.Dir(p))] = fj
	}
	return out
}

// TestAzureTriggersWired: every timer's %SETTING% is an app setting of the
// Bicep and of local.settings.example.json, whose values the handler
// accepts as NCRONTAB (a timer with a literal schedule, snapshot's, has a
// valid NCRONTAB instead); every Event Grid function has its subscription
// in eventgrid.bicep, and nothing else does.
func TestAzureTriggersWired(t *testing.T) {
	byTrigger := functionsByTrigger(t)
	bicepSettings, err := infra.AzureAppSettings()
	if err != nil {
		t.Fatal(err)
	}
	main, err := infra.Bicep("azure/main.bicep")
	if err != nil {
		t.Fatal(err)
	}
	if len(byTrigger["timerTrigger"]) == 0 || len(byTrigger["eventGridTrigger"]) == 0 || len(byTrigger["httpTrigger"]) == 0 {
		t.Fatalf("function folders by trigger: %v", slices.Collect(maps.Keys(byTrigger)))
	}
	for name, fj := range byTrigger["timerTrigger"] {
		setting, ok := strings.CutPrefix(fj.Bindings[0].Schedule, "%")
		if setting, ok = strings.CutSuffix(setting, "%"); !ok {
			if _, err := infra.NCRONTAB(fj.Bindings[0].Schedule); err != nil {
				t.Errorf("%s's schedule %q is neither an app setting reference nor NCRONTAB: %v", name, fj.Bindings[0].Schedule, err)
			}
			continue
		}
		expr, ok := bicepSettings[setting]
		if !ok {
			t.Errorf("%s's schedule %s is not an app setting in main.bicep", name, setting)
			continue
		}
		if _, err := infra.NCRONTAB(bicepValue(t, main, setting, expr, nil)); err != nil {
			t.Errorf("%s: main.bicep's %s: %v", name, setting, err)
		}
	}

	eg, err := infra.Bicep("azure/eventgrid.bicep")
	if err != nil {
		t.Fatal(err)
	}
	subscribed := map[string]bool{}
	for _, sub := range eg.OfType("Microsoft.EventGrid/systemTopics/eventSubscriptions") {
		if dt := sub.Body.String("properties.destination.endpointType"); dt != "'AzureFunction'" {
			t.Errorf("subscription %s delivers to %s; want 'AzureFunction'", sub.Symbol, dt)
		}
		target := sub.Body.String("properties.destination.properties.resourceId")
		fn, ok := strings.CutPrefix(target, "'${app.id}/functions/")
		if fn, ok = strings.CutSuffix(fn, "'"); !ok {
			t.Errorf("subscription %s targets %s; want '${app.id}/functions/<name>'", sub.Symbol, target)
			continue
		}
		subscribed[fn] = true
	}
	sameNames(t, "eventgrid.bicep's subscriptions", subscribed, infra.NameSet(slices.Collect(maps.Keys(byTrigger["eventGridTrigger"]))))
}

// TestParametersExample: the example parameters file names only main.bicep
// parameters, and every parameter without a default.
func TestParametersExample(t *testing.T) {
	src, err := infra.File("azure/main.parameters.example.json")
	if err != nil {
		t.Fatal(err)
	}
	var pf struct {
		Parameters map[string]struct{ Value any }
	}
	if err := json.Unmarshal([]byte(src), &pf); err != nil {
		t.Fatal(err)
	}
	main, err := infra.Bicep("azure/main.bicep")
	if err != nil {
		t.Fatal(err)
	}
	for n, v := range pf.Parameters {
		p, ok := main.Params[n]
		if !ok {
			t.Errorf("the example sets %s, which main.bicep does not declare", n)
			continue
		}
		var okType bool
		switch v.Value.(type) {
		case string:
			okType = p.Type == "string"
		case float64:
			okType = p.Type == "int"
		case bool:
			okType = p.Type == "bool"
		case []any:
			okType = p.Type == "array"
		case map[string]any:
			okType = p.Type == "object"
		}
		if !okType {
			t.Errorf("the example's %s is %T; main.bicep declares it %s", n, v.Value, p.Type)
		}
	}
	for n, p := range main.Params {
		if _, ok := pf.Parameters[n]; !ok && p.Default == "" {
			t.Errorf("main.bicep's %s has no default and the example lacks it", n)
		}
	}
}
