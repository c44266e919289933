package infra_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/awslabs/goformation/v7/cloudformation"

	"github.com/modelauth/modelauth/infra"
)

// samTemplate parses the SAM template (goformation) and returns it with
// each resource as its CloudFormation JSON (Type, Properties, ...).
func samTemplate(t *testing.T) (*cloudformation.Template, map[string]map[string]any) {
	t.Helper()
	tpl, err := infra.SAM()
	if err != nil {
		t.Fatalf("the SAM template does not parse: %v", err)
	}
	out := map[string]map[string]any{}
	for name, r := range tpl.Resources {
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		out[name] = m
	}
	return tpl, out
}

// prop returns the value at a dotted path under a resource's Properties.
func prop(res map[string]any, path string) any {
	var v any = res["Properties"]
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func wantProp(t *testing.T, rs map[string]map[string]any, name string, want map[string]any) {
	t.Helper()
	r, ok := rs[name]
	if !ok {
		t.Fatalf("the template has no resource %s", name)
	}
	for path, w := range want {
		if got := prop(r, path); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s.%s = %v; want %v", name, path, got, w)
		}
	}
}

func ofType(rs map[string]map[string]any, typ string) []string {
	var out []string
	for name, r := range rs {
		if r["Type"] == typ {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// TestSAMAuthorizer: the HTTP API's Lambda authorizer is the authorizer
// function, payload 2.0 with simple responses, and caches nothing (the
// README says why: a cached Allow would pass another service's routes and
// outlive regen_key).
func TestSAMAuthorizer(t *testing.T) {
	_, rs := samTemplate(t)
	if got := ofType(rs, "AWS::ApiGatewayV2::Authorizer"); !slices.Equal(got, []string{"Authorizer"}) {
		t.Fatalf("authorizers %v; want one", got)
	}
	wantProp(t, rs, "Authorizer", map[string]any{
		"ApiId":                          "Ref(HttpApi)",
		"AuthorizerType":                 "REQUEST",
		"AuthorizerPayloadFormatVersion": "2.0",
		"EnableSimpleResponses":          true,
		"AuthorizerResultTtlInSeconds":   0,
		"IdentitySource":                 []any{"$request.header.Authorization"},
		"AuthorizerUri":                  "Sub(arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${AuthorizerFunction.Arn}/invocations)",
	})
	// A missing TTL would mean API Gateway's default, 300 seconds.
	if _, ok := prop(rs["Authorizer"], "AuthorizerResultTtlInSeconds").(float64); !ok {
		t.Error("AuthorizerResultTtlInSeconds is not set: the default caches for 300 s")
	}
	wantProp(t, rs, "AuthorizerPermission", map[string]any{
		"Action": "lambda:InvokeFunction", "FunctionName": "GetAtt(AuthorizerFunction.Arn)", "Principal": "apigateway.amazonaws.com",
		"SourceArn": "Sub(arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/authorizers/${Authorizer})",
	})
	wantProp(t, rs, "HttpIntegration", map[string]any{
		"ApiId": "Ref(HttpApi)", "IntegrationType": "AWS_PROXY", "PayloadFormatVersion": "2.0",
		"IntegrationUri": "GetAtt(HttpFunction.Arn)",
	})
	wantProp(t, rs, "HttpPermission", map[string]any{
		"FunctionName": "GetAtt(HttpFunction.Arn)", "Principal": "apigateway.amazonaws.com",
		"SourceArn": "Sub(arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/$default/*)",
	})
	wantProp(t, rs, "HttpApi", map[string]any{"ProtocolType": "HTTP"})
	wantProp(t, rs, "HttpApiStage", map[string]any{"ApiId": "Ref(HttpApi)", "StageName": "$default", "AutoDeploy": true})
	// The access log never records a header: Authorization carries keys.
	format := fmt.Sprint(prop(rs["HttpApiStage"], "AccessLogSettings.Format"))
	if format == "<nil>" || strings.Contains(strings.ToLower(format), "header") || strings.Contains(format, "authorization") {
		t.Errorf("the access log format %s; want one without headers", format)
	}
}

// routeTemplate turns a function.json route (Azure's template syntax, under
// /api) into a pattern for HTTP API route paths: {x} and {x?} are one
// segment, {*x} the rest; the HTTP API's {x+} is a greedy segment.
func routeTemplate(route string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, seg := range strings.Split(route, "/") {
		switch {
		case strings.HasPrefix(seg, "{*"):
			b.WriteString(`(/\{[a-z]+\+\})?`)
		case strings.HasSuffix(seg, "?}"):
			b.WriteString(`(/\{[a-z]+\})?`)
		case strings.HasPrefix(seg, "{"):
			b.WriteString(`/\{[a-z]+\}`)
		default:
			b.WriteString("/" + regexp.QuoteMeta(seg))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// TestSAMRoutes: every route goes to the HTTP function and reaches exactly
// one HTTP function of functions/ with a method it takes; every HTTP
// function but validate's catch-all is reachable; score's routes pass the
// authorizer, and the others authenticate their callers themselves.
func TestSAMRoutes(t *testing.T) {
	_, rs := samTemplate(t)
	http := functionsByTrigger(t)["httpTrigger"]
	reached := map[string]bool{}
	for _, name := range ofType(rs, "AWS::ApiGatewayV2::Route") {
		r := rs[name]
		key := fmt.Sprint(prop(r, "RouteKey"))
		method, path, ok := strings.Cut(key, " ")
		if !ok {
			t.Errorf("route %s: key %q", name, key)
			continue
		}
		if got := prop(r, "Target"); got != "Sub(integrations/${HttpIntegration})" {
			t.Errorf("route %s targets %v; want the HTTP function's integration", name, got)
		}
		var fns []string
		for fn, fj := range http {
			b := fj.Bindings[0]
			methods := b.Methods
			if !routeTemplate(b.Route).MatchString(path) {
				continue
			}
			if method == "ANY" && len(methods) != 0 {
				t.Errorf("route %s (%s) takes every method; %s takes only %v", name, key, fn, methods)
			}
			if method != "ANY" && len(methods) != 0 && !slices.Contains(methods, strings.ToLower(method)) {
				t.Errorf("route %s (%s): %s does not take %s", name, key, fn, method)
			}
			fns = append(fns, fn)
		}
		if len(fns) != 1 {
			t.Errorf("route %s (%s) reaches functions %v; want one", name, key, fns)
			continue
		}
		reached[fns[0]] = true
		wantAuth := "NONE"
		if fns[0] == "score" {
			wantAuth = "CUSTOM"
			if got := prop(r, "AuthorizerId"); got != "Ref(Authorizer)" {
				t.Errorf("route %s (%s) has authorizer %v; want Ref(Authorizer)", name, key, got)
			}
		}
		if got := prop(r, "AuthorizationType"); got != wantAuth {
			t.Errorf("route %s (%s) authorization %v; want %s", name, key, got, wantAuth)
		}
	}
	sameNames(t, "the HTTP API's functions", reached, infra.NameSet(slices.Collect(maps.Keys(http))))
}

// TestSAMSchedules: each timer function of functions/ has one EventBridge
// Scheduler schedule invoking the scheduled function with the pinned
// input, at the same times as the NCRONTAB setting the function names
// (which the Lambda reads), over the next 500 firings. A function.json
// with a literal NCRONTAB schedule (snapshot's) has no setting: its
// schedule is a rate, and the literal must fire once per period.
func TestSAMSchedules(t *testing.T) {
	tpl, rs := samTemplate(t)
	timers := functionsByTrigger(t)["timerTrigger"]
	env, err := infra.LambdaEnvironment(tpl, "ScheduledFunction")
	if err != nil {
		t.Fatal(err)
	}
	scheduled := map[string]bool{}
	for _, name := range ofType(rs, "AWS::Scheduler::Schedule") {
		r := rs[name]
		var input struct{ Function string }
		raw := fmt.Sprint(prop(r, "Target.Input"))
		if err := json.Unmarshal([]byte(raw), &input); err != nil {
			t.Errorf("schedule %s input %s: %v", name, raw, err)
			continue
		}
		if raw != fmt.Sprintf(`{"function":%q}`, input.Function) {
			t.Errorf("schedule %s input %s; want exactly {\"function\":%q}", name, raw, input.Function)
		}
		wantProp(t, rs, name, map[string]any{
			"Target.Arn": "GetAtt(ScheduledFunction.Arn)", "Target.RoleArn": "GetAtt(SchedulerRole.Arn)",
			"FlexibleTimeWindow.Mode": "OFF", "ScheduleExpressionTimezone": "UTC",
		})
		fj, ok := timers[input.Function]
		if !ok {
			t.Errorf("schedule %s runs %q, which is not a timer function", name, input.Function)
			continue
		}
		if scheduled[input.Function] {
			t.Errorf("two schedules run %s", input.Function)
		}
		scheduled[input.Function] = true
		expr := fmt.Sprint(prop(r, "ScheduleExpression"))
		setting, isSetting := strings.CutPrefix(fj.Bindings[0].Schedule, "%")
		if setting, isSetting = strings.CutSuffix(setting, "%"); !isSetting {
			literal := fj.Bindings[0].Schedule
			want, err := infra.NCRONTAB(literal)
			if err != nil {
				t.Errorf("%s's function.json schedule %q: %v", input.Function, literal, err)
				continue
			}
			period, err := infra.SchedulerRate(expr)
			if err != nil {
				t.Errorf("schedule %s: %v (a function.json's literal schedule takes a rate)", name, err)
				continue
			}
			at := want.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			for i := range 500 {
				if next := want.Next(at); next.Sub(at) != period {
					t.Errorf("schedule %s (%s) fires every %v where %s's %q fires %v after %v (firing %d)", name, expr, period, input.Function, literal, next.Sub(at), at, i)
					break
				}
				at = want.Next(at)
			}
			continue
		}
		want, err := infra.NCRONTAB(env[setting])
		if err != nil {
			t.Errorf("the scheduled function's %s=%q: %v", setting, env[setting], err)
			continue
		}
		got, err := infra.SchedulerCron(expr)
		if err != nil {
			t.Errorf("schedule %s: %v", name, err)
			continue
		}
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 500 {
			g, w := got.Next(at), want.Next(at)
			if !g.Equal(w) {
				t.Errorf("schedule %s (%s) fires at %v where %s=%q fires at %v (firing %d)", name, expr, g, setting, env[setting], w, i)
				break
			}
			at = g
		}
	}
	sameNames(t, "the SAM schedules", scheduled, infra.NameSet(slices.Collect(maps.Keys(timers))))
	// One attempt per tick: Lambda's own retries of an asynchronous
	// invocation would overlap the next tick.
	wantProp(t, rs, "ScheduledFunction", map[string]any{"EventInvokeConfig.MaximumRetryAttempts": 0})
}

// statements returns the statements of a role's inline policies, as JSON.
func statements(t *testing.T, role map[string]any) []string {
	t.Helper()
	if mp := prop(role, "ManagedPolicyArns"); mp != nil {
		t.Errorf("a role has managed policies %v; want its own statements only", mp)
	}
	var out []string
	policies, _ := prop(role, "Policies").([]any)
	for _, p := range policies {
		doc, _ := p.(map[string]any)["PolicyDocument"].(map[string]any)
		sts, _ := doc["Statement"].([]any)
		for _, st := range sts {
			data, _ := json.Marshal(st)
			out = append(out, string(data))
		}
	}
	return out
}

// TestSAMLeastPrivilege: each function has its own role, allowed to write
// its own log group and read the one SSM parameter (decrypting through SSM
// only, and only with a customer managed key); the scheduler may invoke
// the scheduled function and nothing else; no statement has a wildcard
// action or resource.
func TestSAMLeastPrivilege(t *testing.T) {
	tpl, rs := samTemplate(t)
	ssm := `{"Action":"ssm:GetParameter","Effect":"Allow","Resource":"Sub(arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${AzureClientSecretParameterName})"}`
	kms := `"If([HasKmsKey map[Action:kms:Decrypt Condition:map[StringEquals:map[kms:ViaService:Sub(ssm.${AWS::Region}.${AWS::URLSuffix})]] Effect:Allow Resource:Ref(SecretKmsKeyArn)] Ref(AWS::NoValue)])"`
	fns := ofType(rs, "AWS::Serverless::Function")
	if !slices.Equal(fns, []string{"AuthorizerFunction", "HttpFunction", "ScheduledFunction"}) {
		t.Fatalf("functions %v", fns)
	}
	roles := map[string]bool{}
	for _, fn := range fns {
		base := strings.TrimSuffix(fn, "Function")
		role := fmt.Sprint(prop(rs[fn], "Role"))
		if role != "GetAtt("+base+"Role.Arn)" {
			t.Errorf("%s's role = %s; want its own, %sRole", fn, role, base)
		}
		roles[base+"Role"] = true
		f, _ := tpl.GetServerlessFunctionWithName(fn)
		if f.FunctionName == nil {
			t.Fatalf("%s has no FunctionName: its log group's name would be unknown", fn)
		}
		suffix := strings.TrimSuffix(strings.TrimPrefix(*f.FunctionName, "Sub(${AWS::StackName}-"), ")")
		wantProp(t, rs, base+"LogGroup", map[string]any{"LogGroupName": "Sub(/aws/lambda/${AWS::StackName}-" + suffix + ")"})
		logs := `{"Action":["logs:CreateLogStream","logs:PutLogEvents"],"Effect":"Allow","Resource":"GetAtt(` + base + `LogGroup.Arn)"}`
		got := statements(t, rs[base+"Role"])
		if want := []string{logs, ssm, kms}; !slices.Equal(got, want) {
			t.Errorf("%sRole's statements:\n%s\nwant:\n%s", base, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if p := fmt.Sprint(prop(rs[base+"Role"], "AssumeRolePolicyDocument")); !strings.Contains(p, "Service:lambda.amazonaws.com") {
			t.Errorf("%sRole is assumed by %s; want lambda.amazonaws.com", base, p)
		}
	}
	got := statements(t, rs["SchedulerRole"])
	if want := []string{`{"Action":"lambda:InvokeFunction","Effect":"Allow","Resource":"GetAtt(ScheduledFunction.Arn)"}`}; !slices.Equal(got, want) {
		t.Errorf("SchedulerRole's statements %v; want %v", got, want)
	}
	if p := fmt.Sprint(prop(rs["SchedulerRole"], "AssumeRolePolicyDocument")); !strings.Contains(p, "Service:scheduler.amazonaws.com") ||
		!strings.Contains(p, "aws:SourceAccount:Ref(AWS::AccountId)") {
		t.Errorf("SchedulerRole is assumed by %s; want scheduler.amazonaws.com for this account only", p)
	}
	roles["SchedulerRole"] = true
	sameNames(t, "the template's roles", infra.NameSet(ofType(rs, "AWS::IAM::Role")), roles)
	for _, role := range ofType(rs, "AWS::IAM::Role") {
		for _, st := range statements(t, rs[role]) {
			if strings.Contains(st, `"*"`) || strings.Contains(st, `:*"`) && !strings.Contains(st, "LogGroup") {
				t.Errorf("%s has a wildcard: %s", role, st)
			}
		}
	}
	// CloudFormation cannot create a SecureString, and a String parameter
	// would hold the secret in plain text: the operator creates it.
	if ps := ofType(rs, "AWS::SSM::Parameter"); len(ps) != 0 {
		t.Errorf("the template creates SSM parameters %v", ps)
	}
	if p, ok := tpl.Parameters["AzureClientSecretParameterName"]; !ok || p.Default != "/modelauth/azure-client-secret" {
		t.Errorf("AzureClientSecretParameterName = %+v; want a parameter defaulting to /modelauth/azure-client-secret", p)
	}
}
