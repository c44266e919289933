package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/global"

	"github.com/modelauth/modelauth/infra"
)

// The SAM template (infra/aws/template.yaml) against the code and docs/settings.md,
// as infra/settings_test.go checks the Azure and local platforms: the
// settings the Lambda bootstrap reads are found by running its real cold
// start over the environment the template gives each function.

// samFunctions are the template's functions with the handler kind each
// must serve.
var samFunctions = map[string]string{
	"AuthorizerFunction": "http-authorizer",
	"HttpFunction":       "http",
	"ScheduledFunction":  "scheduled",
}

// Lambda sets these in every function's environment (and reserves them:
// a template may not set them).
var lambdaSet = []string{
	"LAMBDA_TASK_ROOT", "AWS_REGION", "AWS_DEFAULT_REGION",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
}

// Read by the bootstrap but rightly not in the template: the SDK's
// optional endpoint overrides, and AZURE_CLIENT_SECRET, read only to refuse
// it.
var notInTemplate = []string{"AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL", "AZURE_CLIENT_SECRET"}

// Only Azure sets WEBSITE_HOSTNAME: the code reads it everywhere, and finds
// it empty on Lambda.
const azureOnly = "WEBSITE_HOSTNAME"

func samTemplate(t *testing.T) *cloudformation.Template {
	t.Helper()
	tpl, err := infra.SAM()
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

var (
	refExpr  = regexp.MustCompile(`^Ref\(([A-Za-z0-9:]+)\)$`)
	subExpr  = regexp.MustCompile(`^Sub\((.*)\)$`)
	ifExpr   = regexp.MustCompile(`^If\(\[([A-Za-z0-9]+) (.*)\]\)$`)
	subVar   = regexp.MustCompile(`\$\{([A-Za-z0-9:.]+)\}`)
	notEqual = regexp.MustCompile(`^Not\(\[Equals\(\[Ref\(([A-Za-z0-9]+)\) (.*)\]\)\]\)$`)
	// intrinsic is any other function infra.SAM kept as text.
	intrinsic = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*\(.*\)$`)
)

// samValue resolves the value v of the setting name as CloudFormation
// would with the parameters' defaults: literals as they are, Ref of a
// parameter its Default, Sub and If evaluated. What has no default (a
// parameter without one, a resource, a pseudo parameter) takes its
// stand-in from stand, and the test fails if there is none.
func samValue(t *testing.T, tpl *cloudformation.Template, name, v string, stand map[string]string) string {
	t.Helper()
	ref := func(id string) string {
		if p, ok := tpl.Parameters[id]; ok && p.Default != nil {
			return fmt.Sprint(p.Default)
		}
		s, ok := stand[id]
		if !ok {
			t.Fatalf("%s refers to %s, which has no default and no stand-in in this test", name, id)
		}
		return s
	}
	if m := refExpr.FindStringSubmatch(v); m != nil {
		return ref(m[1])
	}
	if m := subExpr.FindStringSubmatch(v); m != nil {
		return subVar.ReplaceAllStringFunc(m[1], func(s string) string { return ref(s[2 : len(s)-1]) })
	}
	if m := ifExpr.FindStringSubmatch(v); m != nil {
		branches := splitTop(m[2])
		if len(branches) != 2 {
			t.Fatalf("%s: %s: want a condition and two values", name, v)
		}
		cond, _ := tpl.Conditions[m[1]].(string)
		c := notEqual.FindStringSubmatch(cond)
		if c == nil {
			t.Fatalf("%s: condition %s is %q, which this test cannot evaluate (only Not(Equals(Ref(parameter), literal)))", name, m[1], cond)
		}
		if ref(c[1]) != c[2] {
			return samValue(t, tpl, name, branches[0], stand)
		}
		return samValue(t, tpl, name, branches[1], stand)
	}
	if intrinsic.MatchString(v) {
		t.Fatalf("%s = %s: an intrinsic function this test cannot evaluate", name, v)
	}
	return v
}

// splitTop splits s at the spaces outside parentheses and brackets.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case ' ':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// documentedForLambda returns the settings docs/settings.md's table gives the
// Lambda platform.
func documentedForLambda(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("../../docs/settings.md")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := infra.DocSettings(data)
	if err != nil {
		t.Fatal(err)
	}
	return doc.For(infra.Lambda)
}

// TestLambdaSettings: for each function of the SAM template, the real cold
// start accepts the environment the template gives it (with the
// parameters' defaults, the Key Vault and SSM test servers standing in for
// the parameters without one, and what Lambda itself sets), and reads
// exactly that environment, less what Lambda sets and the optional
// overrides; docs/settings.md documents for Lambda exactly what the three read.
func TestLambdaSettings(t *testing.T) {
	keepDefaultLogger(t)
	tpl := samTemplate(t)
	f := newFixture(t)

	// The parameters without a default, and what Sub refers to besides
	// parameters.
	stand := map[string]string{
		"KeyVaultUrl":    f.kv.VaultURL,
		"AzureTenantId":  f.kv.TenantID,
		"AzureClientId":  f.kv.ClientID,
		"HttpApi":        "a1b2c3d4e5",
		"AWS::Region":    testRegion,
		"AWS::URLSuffix": "amazonaws.com",
	}
	// CloudFormation would refuse a stand-in (or a default) that breaks
	// its parameter's constraints.
	for id, p := range tpl.Parameters {
		v, ok := stand[id]
		if !ok && p.Default != nil {
			v, ok = fmt.Sprint(p.Default), true
		}
		if !ok {
			t.Errorf("parameter %s has no default and no stand-in in this test", id)
			continue
		}
		if p.AllowedPattern != nil && !regexp.MustCompile(*p.AllowedPattern).MatchString(v) {
			t.Errorf("parameter %s = %q does not match its AllowedPattern %s", id, v, *p.AllowedPattern)
		}
		if len(p.AllowedValues) > 0 && !slices.ContainsFunc(p.AllowedValues, func(a any) bool { return fmt.Sprint(a) == v }) {
			t.Errorf("parameter %s = %q is not among its AllowedValues %v", id, v, p.AllowedValues)
		}
	}
	if got := samValue(t, tpl, "AZURE_CLIENT_SECRET_PARAMETER", "Ref(AzureClientSecretParameterName)", stand); got != testParameter {
		t.Fatalf("the template's default secret parameter is %s; the SSM test server serves %s", got, testParameter)
	}

	// What Lambda sets: the zip's root with modelauth.json, the region and
	// the role's temporary credentials.
	taskRoot := t.TempDir()
	if err := os.WriteFile(filepath.Join(taskRoot, "modelauth.json"), []byte(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	fromLambda := lambdaEnv{
		"LAMBDA_TASK_ROOT":      taskRoot,
		"AWS_REGION":            testRegion,
		"AWS_DEFAULT_REGION":    testRegion,
		"AWS_ACCESS_KEY_ID":     testAccessKeyID,
		"AWS_SECRET_ACCESS_KEY": testSecretAccessKey,
		"AWS_SESSION_TOKEN":     "modelauth-test-session-token",
	}
	// Test only: the SSM and Entra test servers instead of AWS's and
	// Microsoft's.
	testOnly := lambdaEnv{
		"AWS_ENDPOINT_URL_SSM": f.ssm.URL,
		"AZURE_AUTHORITY_HOST": f.kv.AuthorityHost,
	}

	exempt := infra.NameSet(lambdaSet, notInTemplate)
	readAll := map[string]bool{}
	started := 0
	for _, fn := range slices.Sorted(maps.Keys(samFunctions)) {
		t.Run(fn, func(t *testing.T) {
			samEnv, err := infra.LambdaEnvironment(tpl, fn)
			if err != nil {
				t.Fatal(err)
			}
			env := lambdaEnv{}
			for n, v := range samEnv {
				env[n] = samValue(t, tpl, n, v, stand)
			}
			if iss := env["MODELAUTH_ISSUER"]; !strings.HasPrefix(iss, "https://") {
				t.Errorf("MODELAUTH_ISSUER resolves to %q; want an https URL", iss)
			}
			for _, n := range slices.Sorted(maps.Keys(samEnv)) {
				if slices.Contains(lambdaSet, n) {
					t.Errorf("the SAM template sets %s for %s, which Lambda reserves and sets itself", n, fn)
				}
				if slices.Contains(notInTemplate, n) || n == "MODELAUTH_DATA_DIR" {
					t.Errorf("the SAM template sets %s for %s", n, fn)
				}
			}
			maps.Copy(env, fromLambda)
			maps.Copy(env, testOnly)
			t.Logf("%s's environment:\n%s", fn, strings.Join(env.list(), "\n"))

			rec := infra.NewRecorder(env)
			calls := f.ssm.Calls()
			_, app, err := newHandler(context.Background(), rec.Getenv, io.Discard)
			if err != nil {
				t.Fatalf("the cold start refuses the SAM template's environment for %s: %v", fn, err)
			}
			app.Close()
			started++
			if got := f.ssm.Calls() - calls; got != 1 {
				t.Errorf("%d SSM GetParameter calls in the cold start; want 1", got)
			}

			read := rec.Read()
			delete(read, azureOnly)
			maps.Copy(readAll, read)
			if read["MODELAUTH_DATA_DIR"] {
				t.Error("the cold start reads MODELAUTH_DATA_DIR, though the store is Key Vault")
			}
			for _, n := range slices.Sorted(maps.Keys(read)) {
				if _, ok := samEnv[n]; !ok && !exempt[n] {
					t.Errorf("%s reads %s, which the SAM template does not set for it", fn, n)
				}
			}
			for _, n := range slices.Sorted(maps.Keys(samEnv)) {
				if !read[n] {
					t.Errorf("the SAM template sets %s for %s, which its cold start does not read", n, fn)
				}
			}
		})
	}
	if started != len(samFunctions) {
		// A refused cold start failed its subtest; or -run picked some.
		t.Logf("%d of %d cold starts ran: docs/settings.md's table is not compared", started, len(samFunctions))
		return
	}

	missing, extra := infra.Compare(documentedForLambda(t), readAll)
	for _, n := range missing {
		t.Errorf("the Lambda functions read %s, which docs/settings.md's settings table does not document for Lambda", n)
	}
	for _, n := range extra {
		t.Errorf("docs/settings.md's settings table documents %s for Lambda, which no Lambda function reads", n)
	}
}

// makeVar is a Makefile variable's definition.
func makeVar(t *testing.T, makefile, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `\s*[:?]?=\s*(.*)$`).FindStringSubmatch(makefile)
	if m == nil {
		t.Fatalf("the Makefile does not define %s", name)
	}
	return strings.TrimSpace(m[1])
}

// TestSAMHandlers: every function of the SAM template serves a handler kind
// the bootstrap knows, on provided.al2023 from the zip `make package`
// writes for its architecture; and the three functions serve the
// authorizer, the HTTP functions and the schedules.
func TestSAMHandlers(t *testing.T) {
	tpl := samTemplate(t)
	g, _ := tpl.Globals["Function"].(*global.Function)
	if g == nil {
		g = &global.Function{}
	}

	// The zips `make package` writes: $(PACKAGE)/modelauth-lambda-<arch>.zip
	// for each <arch> of LAMBDA_ARCHES, with the template two folders below
	// the repository's root.
	data, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	makefile := string(data)
	if !strings.Contains(makefile, "$(PACKAGE)/modelauth-lambda-$$arch.zip") {
		t.Fatal("the Makefile's package target no longer writes $(PACKAGE)/modelauth-lambda-$$arch.zip")
	}
	pkg := makeVar(t, makefile, "PACKAGE")
	var arches []string
	for _, a := range strings.Fields(makeVar(t, makefile, "LAMBDA_ARCHES")) {
		arch, _, _ := strings.Cut(a, ":")
		arches = append(arches, arch)
	}

	fns := tpl.GetAllServerlessFunctionResources()
	kinds := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(fns)) {
		fn := fns[name]
		env, err := infra.LambdaEnvironment(tpl, name)
		if err != nil {
			t.Fatal(err)
		}
		kind := env[HandlerSetting]
		kinds[name] = kind
		if _, ok := handlers[kind]; !ok {
			t.Errorf("%s: %s=%q; want one of %s", name, HandlerSetting, kind, strings.Join(handlerKinds(), ", "))
		}

		str := func(own, glob *string) string {
			switch {
			case own != nil:
				return *own
			case glob != nil:
				return *glob
			}
			return ""
		}
		if rt := str(fn.Runtime, g.Runtime); rt != "provided.al2023" {
			t.Errorf("%s: Runtime %q; want provided.al2023", name, rt)
		}
		if h := str(fn.Handler, g.Handler); h != "bootstrap" {
			t.Errorf("%s: Handler %q; want bootstrap", name, h)
		}
		archs := fn.Architectures
		if archs == nil && g.Architectures != nil {
			archs = *g.Architectures
		}
		if archs == nil {
			archs = []string{"x86_64"} // Lambda's default
		}
		if len(archs) != 1 || !slices.Contains(arches, archs[0]) {
			t.Errorf("%s: Architectures %v; want one of %v", name, archs, arches)
			continue
		}
		code := fn.CodeUri
		if code == nil {
			code = g.CodeUri
		}
		want := path.Join("../..", pkg, "modelauth-lambda-"+archs[0]+".zip")
		switch {
		case code == nil || code.String == nil:
			t.Errorf("%s: CodeUri %+v; want %s", name, code, want)
		case *code.String != want:
			t.Errorf("%s (%s): CodeUri %s; want %s, the zip `make package` writes", name, archs[0], *code.String, want)
		}
	}

	for _, name := range slices.Sorted(maps.Keys(samFunctions)) {
		if got, ok := kinds[name]; !ok {
			t.Errorf("the SAM template has no function %s", name)
		} else if got != samFunctions[name] {
			t.Errorf("%s serves %s=%q; want %q", name, HandlerSetting, got, samFunctions[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(kinds)) {
		if _, ok := samFunctions[name]; !ok {
			t.Errorf("the SAM template's function %s (%s=%q) is not one this test knows", name, HandlerSetting, kinds[name])
		}
	}
}
