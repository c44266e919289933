// Package infra holds modelauth's deployment templates and reads them for
// the tests that keep them true to the code and to the docs (docs/settings.md, docs/azure.md, docs/aws-lambda.md):
//
//	azure/main.bicep                      stage 1: the Flex Consumption function app, storage, Key Vault, identity, monitoring
//	azure/eventgrid.bicep                 stage 2: Key Vault events to keyvaultevents, after the zip deploy
//	azure/consumer-access.bicep           a consumer's read access to its own secret
//	azure/aml-endpoint-access.bicep       the app identity's key-operator role on one Azure ML endpoint (a module of main.bicep)
//	azure/main.parameters.example.json    parameters for main.bicep
//	aws/template.yaml                     the AWS SAM template: Lambda functions, HTTP API, authorizer, schedules
//
// The Bicep compiler cannot run where the tests run, so [ParseBicep] reads
// the parts of Bicep these templates use (params, resources, object and
// array literals); `az bicep build` checks the files where it is
// installed. The SAM template is parsed with goformation ([SAM]).
package infra

import (
	"embed"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/global"
	"github.com/awslabs/goformation/v7/intrinsics"
	"github.com/robfig/cron/v3"
)

//go:embed azure/*.bicep azure/*.json aws/template.yaml
var files embed.FS

// File returns the text of a template, by its path under infra/.
func File(name string) (string, error) {
	b, err := files.ReadFile(name)
	return string(b), err
}

// Bicep parses the Bicep file name (such as "azure/main.bicep").
func Bicep(name string) (*BicepFile, error) {
	src, err := File(name)
	if err != nil {
		return nil, err
	}
	f, err := ParseBicep(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

// AzureAppSettings returns the app settings main.bicep gives the function
// app (the literal object of its appsettings resource), each name with
// its Bicep expression.
func AzureAppSettings() (map[string]string, error) {
	f, err := Bicep("azure/main.bicep")
	if err != nil {
		return nil, err
	}
	for _, r := range f.OfType("Microsoft.Web/sites/config") {
		if r.Body.String("name") != "'appsettings'" {
			continue
		}
		props, ok := r.Body.Get("properties").(BicepObject)
		if !ok {
			return nil, fmt.Errorf("main.bicep: the appsettings resource's properties are not an object literal")
		}
		out := map[string]string{}
		for k, v := range props {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("main.bicep: app setting %s is not a single expression", k)
			}
			out[k] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("main.bicep has no Microsoft.Web/sites/config resource named appsettings")
}

// SAM parses aws/template.yaml. Intrinsic functions are not resolved but
// kept as readable text: Ref(Name), GetAtt(Name.Attr), Sub(text),
// If([cond a b]), and so on, so that tests can check what refers to what.
func SAM() (*cloudformation.Template, error) {
	data, err := files.ReadFile("aws/template.yaml")
	if err != nil {
		return nil, err
	}
	keep := func(name string, input, template any) any {
		fn := strings.TrimPrefix(name, "Fn::")
		if fn == "Ref" {
			// A Number parameter stands for its default, which typed
			// properties need; every other reference stays visible.
			if p, ok := param(template, input); ok && p["Type"] == "Number" && p["Default"] != nil {
				return p["Default"]
			}
		}
		if fn == "GetAtt" {
			if parts, ok := input.([]any); ok {
				var s []string
				for _, p := range parts {
					s = append(s, fmt.Sprint(p))
				}
				input = strings.Join(s, ".")
			}
		}
		return fmt.Sprintf("%s(%v)", fn, input)
	}
	overrides := map[string]intrinsics.IntrinsicHandler{}
	for _, fn := range []string{"Ref", "Fn::GetAtt", "Fn::Sub", "Fn::If", "Fn::Join", "Fn::Select", "Fn::Split",
		"Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Fn::FindInMap", "Fn::Base64", "Fn::GetAZs", "Fn::ImportValue"} {
		overrides[fn] = keep
	}
	return goformation.ParseYAMLWithOptions(data, &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: overrides})
}

// param returns the declaration of the template's parameter name.
func param(template, name any) (map[string]any, bool) {
	t, _ := template.(map[string]any)
	params, _ := t["Parameters"].(map[string]any)
	n, _ := name.(string)
	p, ok := params[n].(map[string]any)
	return p, ok
}

// LambdaEnvironment returns the environment the SAM template gives the
// function with logical id fn: the Globals' variables with the function's
// own on top.
func LambdaEnvironment(t *cloudformation.Template, fn string) (map[string]string, error) {
	f, err := t.GetServerlessFunctionWithName(fn)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	if g, ok := t.Globals["Function"].(*global.Function); ok && g.Environment != nil {
		maps.Copy(env, g.Environment.Variables)
	}
	if f.Environment != nil {
		maps.Copy(env, f.Environment.Variables)
	}
	return env, nil
}

// Platform is where modelauth runs, as docs/settings.md's settings table names
// it.
type Platform string

// The platforms.
const (
	Azure  Platform = "Azure"
	Local  Platform = "local"
	Lambda Platform = "Lambda"
)

var (
	settingsHeading = "## App settings"
	settingRow      = regexp.MustCompile("^\\| (`[A-Za-z_]+`(?:, `[A-Za-z_]+`)*) \\| [^|]* \\| ([^|]*) \\|")
	settingName     = regexp.MustCompile("`([A-Za-z_]+)`")
)

// Settings is the settings table of docs/settings.md: each setting with
// the platforms that read it.
type Settings map[string][]Platform

// For returns the settings documented for platform p.
func (s Settings) For(p Platform) map[string]bool {
	out := map[string]bool{}
	for n, ps := range s {
		if slices.Contains(ps, p) {
			out[n] = true
		}
	}
	return out
}

// NameSet returns the names of the lists as a set.
func NameSet(lists ...[]string) map[string]bool {
	out := map[string]bool{}
	for _, l := range lists {
		for _, n := range l {
			out[n] = true
		}
	}
	return out
}

// Compare returns, sorted, the names want has and got lacks, and those
// got has and want lacks.
func Compare(got, want map[string]bool) (missing, extra []string) {
	for n := range want {
		if !got[n] {
			missing = append(missing, n)
		}
	}
	for n := range got {
		if !want[n] {
			extra = append(extra, n)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return missing, extra
}

// DocSettings reads the settings table of docs/settings.md (the first
// table after "## App settings"): each setting named in a row's first
// cell, with the platforms of its third cell (such as "Azure, local,
// Lambda").
func DocSettings(doc []byte) (Settings, error) {
	text := string(doc)
	i := strings.Index(text, settingsHeading)
	if i < 0 {
		return nil, fmt.Errorf("docs/settings.md has no %q section", settingsHeading)
	}
	out := Settings{}
	inTable := false
	for _, line := range strings.Split(text[i:], "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		m := settingRow.FindStringSubmatch(line)
		if m == nil {
			continue // the header and its rule
		}
		var platforms []Platform
		for _, p := range strings.Split(m[2], ",") {
			switch pl := Platform(strings.TrimSpace(p)); pl {
			case Azure, Local, Lambda:
				platforms = append(platforms, pl)
			default:
				return nil, fmt.Errorf("docs/settings.md settings row %s: unknown platform %q", m[1], p)
			}
		}
		for _, n := range settingName.FindAllStringSubmatch(m[1], -1) {
			if _, dup := out[n[1]]; dup {
				return nil, fmt.Errorf("docs/settings.md documents %s twice", n[1])
			}
			out[n[1]] = platforms
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("docs/settings.md's %q table has no rows", settingsHeading)
	}
	return out, nil
}

// Recorder is a getenv over a fixed environment that remembers every name
// asked for: what the code reads, found by running it.
type Recorder struct {
	mu   sync.Mutex
	env  map[string]string
	read map[string]bool
}

// NewRecorder returns a Recorder over env.
func NewRecorder(env map[string]string) *Recorder {
	return &Recorder{env: env, read: map[string]bool{}}
}

// Getenv returns env's value of name and remembers that name was read.
func (r *Recorder) Getenv(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.read[name] = true
	return r.env[name]
}

// Read returns the names read so far.
func (r *Recorder) Read() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.read)
}

// SchedulerCron parses an EventBridge Scheduler cron expression,
// cron(minutes hours day-of-month month day-of-week year), into a
// schedule of robfig/cron (which the local host and the handler use for
// NCRONTAB), so that the two can be compared. It takes the subset that
// NCRONTAB can also say: the year *, one of the day fields ?, and no L, W
// or # forms.
func SchedulerCron(expr string) (cron.Schedule, error) {
	inner, ok := strings.CutPrefix(expr, "cron(")
	if inner, ok = strings.CutSuffix(inner, ")"); !ok {
		return nil, fmt.Errorf("%q is not cron(...)", expr)
	}
	f := strings.Fields(inner)
	if len(f) != 6 {
		return nil, fmt.Errorf("%q: want 6 fields, got %d", expr, len(f))
	}
	if f[5] != "*" {
		return nil, fmt.Errorf("%q: a year other than * has no NCRONTAB form", expr)
	}
	if (f[2] == "?") == (f[4] == "?") {
		return nil, fmt.Errorf("%q: exactly one of day-of-month and day-of-week must be ?", expr)
	}
	for i, field := range f[:5] {
		if strings.ContainsAny(field, "LW#") || (i == 4 && strings.ContainsAny(field, "0123456789")) {
			// Day-of-week numbers differ (EventBridge counts Sunday as 1).
			return nil, fmt.Errorf("%q: field %q has no NCRONTAB form here", expr, field)
		}
		if field == "?" {
			f[i] = "*"
		}
	}
	return NCRONTAB(strings.Join(append([]string{"0"}, f[:5]...), " "))
}

// SchedulerRate parses an EventBridge Scheduler rate expression,
// rate(value unit) with unit minute(s), hour(s) or day(s) (singular for a
// value of 1), into its period. A rate schedule fires every period from
// its creation, so it has no fixed phase: it matches an NCRONTAB schedule
// whose firings are all one period apart.
func SchedulerRate(expr string) (time.Duration, error) {
	inner, ok := strings.CutPrefix(expr, "rate(")
	if inner, ok = strings.CutSuffix(inner, ")"); !ok {
		return 0, fmt.Errorf("%q is not rate(...)", expr)
	}
	f := strings.Fields(inner)
	if len(f) != 2 {
		return 0, fmt.Errorf("%q: want a value and a unit", expr)
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 1 || f[0] != strconv.Itoa(n) {
		return 0, fmt.Errorf("%q: the value %q is not a positive integer", expr, f[0])
	}
	unit, plural := f[1], n != 1
	if plural {
		var ok bool
		if unit, ok = strings.CutSuffix(unit, "s"); !ok {
			return 0, fmt.Errorf("%q: a value other than 1 takes a plural unit", expr)
		}
	}
	per, ok := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[unit]
	if !ok {
		return 0, fmt.Errorf("%q: the unit %q is not minute(s), hour(s) or day(s)", expr, f[1])
	}
	return time.Duration(n) * per, nil
}

// NCRONTAB parses a six-field NCRONTAB expression as the Functions host
// reads %ROTATION_SCHEDULE%.
func NCRONTAB(expr string) (cron.Schedule, error) {
	return cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow).Parse(expr)
}
