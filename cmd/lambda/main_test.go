package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/lambdaadapter"
	"github.com/modelauth/modelauth/shared/logtest"
)

func TestMain(m *testing.M) { os.Exit(keyvaulttest.RunTests(m)) }

// testConfig: two key services, and one whose keys rotate every 4 s.
const testConfig = `{"services":[
	{"name":"iris","authMode":"key"},
	{"name":"other","authMode":"key"},
	{"name":"fast","authMode":"key","rotationPeriod":"4s","refreshInterval":"2s"}
]}`

// lambdaEnv is a Lambda function's environment.
type lambdaEnv map[string]string

func (e lambdaEnv) getenv(name string) string { return e[name] }

// with returns a copy of e with the given KEY=value settings; an empty
// value removes the setting.
func (e lambdaEnv) with(settings ...string) lambdaEnv {
	c := make(lambdaEnv, len(e)+len(settings))
	for k, v := range e {
		c[k] = v
	}
	for _, kv := range settings {
		k, v, _ := strings.Cut(kv, "=")
		if v == "" {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// list returns e as sorted KEY=value lines.
func (e lambdaEnv) list() []string {
	var l []string
	for k, v := range e {
		l = append(l, k+"="+v)
	}
	slices.Sort(l)
	return l
}

// fixture is a Key Vault test server, an SSM test endpoint holding the
// vault's client secret as a SecureString, and the environment of a Lambda
// function that uses both.
type fixture struct {
	kv  *keyvaulttest.Server
	ssm *ssmServer
	env lambdaEnv
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	kv := keyvaulttest.NewServer(t, nil)
	ssm := newSSMServer(t, map[string]ssmParam{
		testParameter:  {Type: "SecureString", Value: kv.ClientSecret},
		"/plain":       {Type: "String", Value: kv.ClientSecret},
		"/wrong":       {Type: "SecureString", Value: "not-the-client-secret"},
		"/denied":      {Error: "AccessDeniedException"},
		"/empty":       {Type: "SecureString", Value: ""},
		"/not-a-param": {Error: "ParameterNotFound"},
	})
	cfg := filepath.Join(t.TempDir(), "modelauth.json")
	if err := os.WriteFile(cfg, []byte(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	env := lambdaEnv{}.with(kv.Env()...).with(
		"AZURE_CLIENT_SECRET=", // never on Lambda
		SecretParameterSetting+"="+testParameter,
		"AWS_ENDPOINT_URL_SSM="+ssm.URL,
		"AWS_ACCESS_KEY_ID="+testAccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+testSecretAccessKey,
		"AWS_SESSION_TOKEN=modelauth-test-session-token",
		"AWS_REGION="+testRegion,
		"MODELAUTH_CONFIG="+cfg,
		"KEY_CACHE_TTL=1s",
	)
	return &fixture{kv: kv, ssm: ssm, env: env}
}

// keepDefaultLogger restores slog's default logger, which newApp sets,
// when the test ends.
func keepDefaultLogger(t *testing.T) {
	saved := slog.Default()
	t.Cleanup(func() { slog.SetDefault(saved) })
}

// TestNewHandler builds each kind of handler as a cold start does, and
// checks its type, one invocation through aws-lambda-go's own decoding,
// and the SSM read behind it.
func TestNewHandler(t *testing.T) {
	keepDefaultLogger(t)
	f := newFixture(t)
	ctx := context.Background()
	for _, tt := range []struct {
		kind    string
		want    reflect.Type
		payload string
		check   func(t *testing.T, out []byte)
	}{
		{kind: "http-authorizer", want: reflect.TypeFor[func(context.Context, events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error)](),
			payload: `{"version":"2.0","type":"REQUEST","rawPath":"/services/iris/score","headers":{"authorization":"Bearer wrong"}}`,
			check: func(t *testing.T, out []byte) {
				if !sameJSON(t, out, []byte(`{"isAuthorized":false}`)) {
					t.Errorf("response %s; want a denial", out)
				}
			}},
		{kind: "rest-token-authorizer", want: reflect.TypeFor[func(context.Context, events.APIGatewayCustomAuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error)]()},
		{kind: "rest-request-authorizer", want: reflect.TypeFor[func(context.Context, events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error)]()},
		{kind: "http", want: reflect.TypeFor[func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)]()},
		{kind: "function-url", want: reflect.TypeFor[func(context.Context, events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error)](),
			payload: `{"version":"2.0","rawPath":"/.well-known/openid-configuration","requestContext":{"http":{"method":"GET"}}}`,
			check: func(t *testing.T, out []byte) {
				var res events.LambdaFunctionURLResponse
				if err := json.Unmarshal(out, &res); err != nil || res.StatusCode != 200 || !strings.Contains(res.Body, `"jwks_uri"`) {
					t.Errorf("response %s, %v; want the OpenID configuration", out, err)
				}
			}},
		{kind: "scheduled", want: reflect.TypeFor[func(context.Context, lambdaadapter.ScheduledEvent) (string, error)](),
			payload: `{"function":"prefetchtokens"}`,
			check: func(t *testing.T, out []byte) {
				if string(out) != `"prefetchtokens: done"` {
					t.Errorf("response %s; want \"prefetchtokens: done\"", out)
				}
			}},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			var logs logtest.Buffer
			calls := f.ssm.Calls()
			h, app, err := newHandler(ctx, f.env.with(HandlerSetting+"="+tt.kind).getenv, &logs)
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			if got := reflect.TypeOf(h); got != tt.want {
				t.Errorf("handler type %v; want %v", got, tt.want)
			}
			if got := f.ssm.Calls() - calls; got != 1 {
				t.Errorf("%d SSM GetParameter calls in the cold start; want 1", got)
			}
			if tt.payload != "" {
				out, err := lambda.NewHandler(h).Invoke(ctx, []byte(tt.payload))
				if err != nil {
					t.Fatalf("Invoke(%s): %v", tt.payload, err)
				}
				tt.check(t, out)
			}
			if !strings.Contains(logs.String(), `"msg":"lambda_started"`) || !strings.Contains(logs.String(), `"handler":"`+tt.kind+`"`) {
				t.Errorf("no lambda_started event for %s in the logs:\n%s", tt.kind, logs.String())
			}
			if strings.Contains(logs.String(), f.kv.ClientSecret) {
				t.Errorf("the client secret is in the logs")
			}
		})
	}
}

// TestNewHandlerRefuses checks the cold starts that must fail, and that
// their errors say why without the secret.
func TestNewHandlerRefuses(t *testing.T) {
	keepDefaultLogger(t)
	f := newFixture(t)
	base := f.env.with(HandlerSetting + "=http-authorizer")
	for _, tt := range []struct {
		name    string
		env     lambdaEnv
		wantErr error    // matched with errors.Is, if set
		want    []string // in the error text
		noSSM   bool     // refused before the SSM read
	}{
		{name: "unknown handler", env: base.with(HandlerSetting + "=authorizer"), noSSM: true,
			want: []string{`MODELAUTH_LAMBDA_HANDLER="authorizer"`, "function-url, http, http-authorizer, rest-request-authorizer, rest-token-authorizer, scheduled"}},
		{name: "no handler", env: base.with(HandlerSetting + "="), noSSM: true, want: []string{`MODELAUTH_LAMBDA_HANDLER=""`}},
		{name: "file store", env: base.with("KEYVAULT_URL="), wantErr: errFileStore, noSSM: true,
			want: []string{"KEYVAULT_URL is empty", "file store is refused", "does not outlast"}},
		{name: "file store with a data dir", env: base.with("KEYVAULT_URL=", "MODELAUTH_DATA_DIR=/tmp/modelauth"), wantErr: errFileStore, noSSM: true},
		{name: "client secret in the environment", env: base.with("AZURE_CLIENT_SECRET=" + f.kv.ClientSecret), wantErr: errPlainSecret, noSSM: true,
			want: []string{"AZURE_CLIENT_SECRET is set", SecretParameterSetting}},
		{name: "no secret parameter", env: base.with(SecretParameterSetting + "="), noSSM: true,
			want: []string{SecretParameterSetting + " is empty"}},
		{name: "no tenant", env: base.with("AZURE_TENANT_ID="), noSSM: true, want: []string{"AZURE_TENANT_ID is empty"}},
		{name: "no client", env: base.with("AZURE_CLIENT_ID="), noSSM: true, want: []string{"AZURE_CLIENT_ID is empty"}},
		{name: "bad settings", env: base.with("KEY_CACHE_TTL=forever"), noSSM: true, want: []string{"KEY_CACHE_TTL"}},
		{name: "parameter not found", env: base.with(SecretParameterSetting + "=/not-a-param"),
			want: []string{"SSM parameter /not-a-param", "ParameterNotFound"}},
		{name: "access denied", env: base.with(SecretParameterSetting + "=/denied"),
			want: []string{"SSM parameter /denied", "AccessDeniedException"}},
		{name: "not a SecureString", env: base.with(SecretParameterSetting + "=/plain"),
			want: []string{"SSM parameter /plain", "is a String; it must be a SecureString"}},
		{name: "empty parameter", env: base.with(SecretParameterSetting + "=/empty"), want: []string{"SSM parameter /empty", "empty"}},
		{name: "bad SSM endpoint", env: base.with("AWS_ENDPOINT_URL_SSM=ftp://ssm.example"), noSSM: true, want: []string{"not an http(s) URL"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := f.ssm.Calls()
			var logs logtest.Buffer
			h, app, err := newHandler(context.Background(), tt.env.getenv, &logs)
			if err == nil {
				app.Close()
				t.Fatalf("newHandler = %T; want an error", h)
			}
			t.Logf("error: %v", err)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v; want %v", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, secret := range []string{f.kv.ClientSecret, "not-the-client-secret", testSecretAccessKey} {
				if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
					t.Errorf("a secret is in the error or the logs")
				}
			}
			if got := f.ssm.Calls() - calls; tt.noSSM && got != 0 {
				t.Errorf("%d SSM calls; want none before the refusal", got)
			}
		})
	}
}

// TestColdStartWithoutTheVault: a cold start whose vault cannot be
// reached, or refuses the client secret, does not fail the init (Lambda
// would retry it on every invocation, each one failing): the app answers
// 503 with Retry-After, the authorizers deny, and the administrator key is
// written in the background once the vault answers.
func TestColdStartWithoutTheVault(t *testing.T) {
	keepDefaultLogger(t)
	f := newFixture(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "https://" + dead.Addr().String()
	dead.Close() // connections refused from now on
	for _, tt := range []struct {
		name string
		env  lambdaEnv
	}{
		{"vault unreachable", f.env.with("KEYVAULT_URL="+deadURL, "AZURE_AUTHORITY_HOST="+deadURL)},
		{"wrong client secret", f.env.with(SecretParameterSetting + "=/wrong")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs logtest.Buffer
			h, app, err := newHandler(context.Background(), tt.env.with(HandlerSetting+"=http").getenv, &logs)
			if err != nil {
				t.Fatalf("newHandler = %v; want a cold start that answers 503", err)
			}
			defer app.Close()
			out, err := lambda.NewHandler(h).Invoke(context.Background(),
				[]byte(`{"version":"2.0","rawPath":"/services/iris/keys","headers":{"authorization":"Bearer `+strings.Repeat("a", 43)+`"},"requestContext":{"http":{"method":"GET"}}}`))
			if err != nil {
				t.Fatal(err)
			}
			var res events.APIGatewayV2HTTPResponse
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatal(err)
			}
			ra := res.Headers["Retry-After"]
			if res.StatusCode != 503 || ra == "" || !strings.Contains(res.Body, `"ServiceUnavailable"`) {
				t.Errorf("get_keys = %d (Retry-After %q) %s; want 503 with Retry-After", res.StatusCode, ra, res.Body)
			}
			if !strings.Contains(logs.String(), `"msg":"store_init_failed"`) || !strings.Contains(logs.String(), `"msg":"lambda_started"`) {
				t.Errorf("no store_init_failed and lambda_started in the logs:\n%s", logs.String())
			}
			for _, secret := range []string{f.kv.ClientSecret, "not-the-client-secret"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("a secret is in the logs")
				}
			}
		})
	}
}

// TestRun checks that run reports a failed cold start rather than start
// serving.
func TestRun(t *testing.T) {
	keepDefaultLogger(t)
	f := newFixture(t)
	err := run(context.Background(), f.env.with(HandlerSetting+"=http-authorizer", "KEYVAULT_URL=").getenv)
	if !errors.Is(err, errFileStore) {
		t.Fatalf("run = %v; want %v", err, errFileStore)
	}
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}
