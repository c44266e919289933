package lambdaadapter_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/lambdaadapter"
)

// token gets a token for the token-mode service tok, through get_token
// served by the Function URL adapter.
func (e *env) token(t *testing.T) string {
	t.Helper()
	req := events.LambdaFunctionURLRequest{RawPath: "/services/tok/token", Headers: map[string]string{"authorization": bearerOf(e.admin)}}
	req.RequestContext.HTTP.Method = http.MethodPost
	res, err := lambdaadapter.FunctionURLHandler(e.handler)(context.Background(), req)
	var tok jwtauth.Token
	if err != nil || res.StatusCode != 200 || json.Unmarshal([]byte(res.Body), &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("get_token = %d %s, %v", res.StatusCode, res.Body, err)
	}
	return tok.AccessToken
}

func TestHTTPAuthorizerSample(t *testing.T) {
	e := newEnv(t)
	authorize := lambdaadapter.HTTPAuthorizer(e.app.Services())
	ctx := context.Background()

	// The AWS sample as it is: /my/path names no service.
	sample := load[events.APIGatewayV2CustomAuthorizerV2Request](t, "httpapi-authorizer-v2.json")
	res, err := authorize(ctx, sample)
	if err != nil || res.IsAuthorized {
		t.Fatalf("sample = %+v, %v; want denied", res, err)
	}
	golden(t, "httpapi-authorizer-deny.json", res)

	// The sample for a modelauth route, with iris's key in the lower-case
	// header API Gateway sends.
	req := sample
	req.RawPath = "/services/iris/score"
	req.Headers = cloneMap(sample.Headers)
	req.Headers["authorization"] = bearerOf(e.iris.PrimaryKey)
	res, err = authorize(ctx, req)
	if err != nil || !res.IsAuthorized {
		t.Fatalf("iris key = %+v, %v; want authorized", res, err)
	}
	golden(t, "httpapi-authorizer-allow.json", res)
}

func TestHTTPAuthorizer(t *testing.T) {
	e := newEnv(t)
	authorize := lambdaadapter.HTTPAuthorizer(e.app.Services())
	tok := e.token(t)
	sample := load[events.APIGatewayV2CustomAuthorizerV2Request](t, "httpapi-authorizer-v2.json")
	tests := []struct {
		name    string
		path    string
		stage   string
		params  map[string]string
		headers map[string]string
		want    map[string]any // nil: denied
	}{
		{name: "primary key", path: "/services/iris/score", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)},
			want: map[string]any{"service": "iris", "subject": "key:Primary", "authType": "key", "keyType": "Primary"}},
		{name: "secondary key", path: "/services/iris/validate/a/b", headers: map[string]string{"authorization": bearerOf(e.iris.SecondaryKey)},
			want: map[string]any{"service": "iris", "subject": "key:Secondary", "authType": "key", "keyType": "Secondary"}},
		{name: "header name in another case", path: "/services/iris/score", headers: map[string]string{"Authorization": bearerOf(e.iris.PrimaryKey)},
			want: map[string]any{"service": "iris", "subject": "key:Primary", "authType": "key", "keyType": "Primary"}},
		{name: "path parameter", path: "/services/iris/score", params: map[string]string{"service": "iris"}, headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)},
			want: map[string]any{"service": "iris", "subject": "key:Primary", "authType": "key", "keyType": "Primary"}},
		{name: "path parameter, other route", path: "/models/iris/score", params: map[string]string{"service": "iris"}, headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)},
			want: map[string]any{"service": "iris", "subject": "key:Primary", "authType": "key", "keyType": "Primary"}},
		{name: "stage prefix", path: "/prod/services/iris/score", stage: "prod", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)},
			want: map[string]any{"service": "iris", "subject": "key:Primary", "authType": "key", "keyType": "Primary"}},
		{name: "api prefix", path: "/api/services/iris/score", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)},
			want: map[string]any{"service": "iris", "subject": "key:Primary", "authType": "key", "keyType": "Primary"}},
		{name: "token", path: "/services/tok/score", headers: map[string]string{"authorization": bearerOf(tok)},
			want: map[string]any{"service": "tok", "subject": "admin", "authType": "token", "keyType": "none"}},
		{name: "open service", path: "/services/open/score",
			want: map[string]any{"service": "open", "subject": "anonymous", "authType": "none", "keyType": "none"}},

		{name: "iris key for other", path: "/services/other/score", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)}},
		{name: "other key for iris", path: "/services/iris/score", headers: map[string]string{"authorization": bearerOf(e.other.PrimaryKey)}},
		{name: "wrong key", path: "/services/iris/score", headers: map[string]string{"authorization": bearerOf(strings.Repeat("A", 43))}},
		{name: "no header", path: "/services/iris/score"},
		{name: "empty header", path: "/services/iris/score", headers: map[string]string{"authorization": ""}},
		{name: "basic scheme", path: "/services/iris/score", headers: map[string]string{"authorization": "Basic " + e.iris.PrimaryKey}},
		{name: "two headers", path: "/services/iris/score", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey), "Authorization": bearerOf(e.iris.PrimaryKey)}},
		{name: "two headers, open service", path: "/services/open/score", headers: map[string]string{"authorization": "Bearer a", "Authorization": "Bearer a"},
			want: map[string]any{"service": "open", "subject": "anonymous", "authType": "none", "keyType": "none"}},
		{name: "joined headers", path: "/services/iris/score", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey) + "," + bearerOf(e.iris.PrimaryKey)}},
		{name: "key for token service", path: "/services/tok/score", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)}},
		{name: "token for key service", path: "/services/iris/score", headers: map[string]string{"authorization": bearerOf(tok)}},
		{name: "unknown service", path: "/services/nope/score", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)}},
		{name: "no service", path: "/services/", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)}},
		{name: "no route", path: "/score", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)}},
		{name: "unknown service parameter", path: "/models/nope", params: map[string]string{"service": "nope"}},
		{name: "parameter and path disagree", path: "/services/iris/score", params: map[string]string{"service": "other"}, headers: map[string]string{"authorization": bearerOf(e.other.PrimaryKey)}},
		{name: "dot segments", path: "/services/iris/../other/score", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)}},
		{name: "encoded slash", path: "/services/iris%2F..%2Fother/score", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)}},
		{name: "encoded dots", path: "/services/iris/%2e%2e/other/score", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)}},
		{name: "backslash", path: `/services/iris\..\other/score`, headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)}},
		{name: "stage not stripped elsewhere", path: "/services/prod/services/iris", stage: "prod", headers: map[string]string{"authorization": bearerOf(e.iris.PrimaryKey)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := sample
			req.RawPath, req.PathParameters, req.Headers = tt.path, tt.params, tt.headers
			req.RequestContext.Stage = tt.stage
			if tt.stage == "" {
				req.RequestContext.Stage = "$default"
			}
			res, err := authorize(context.Background(), req)
			if err != nil {
				t.Fatalf("error %v; the authorizer never fails", err)
			}
			if tt.want == nil {
				if res.IsAuthorized || res.Context != nil {
					t.Errorf("got %+v; want denied without context", res)
				}
				return
			}
			if !res.IsAuthorized {
				t.Fatalf("denied; want %v", tt.want)
			}
			got, _ := json.Marshal(res.Context)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("context = %s; want %s", got, want)
			}
		})
	}
}

// TestKeyOfOneServiceNeverAnother tries every key on every service, with
// every authorizer.
func TestKeyOfOneServiceNeverAnother(t *testing.T) {
	e := newEnv(t)
	s := e.app.Services()
	httpAuth := lambdaadapter.HTTPAuthorizer(s)
	tokenAuth := lambdaadapter.RESTTokenAuthorizer(s)
	requestAuth := lambdaadapter.RESTRequestAuthorizer(s)
	keys := map[string][]string{
		"iris":  {e.iris.PrimaryKey, e.iris.SecondaryKey},
		"other": {e.other.PrimaryKey, e.other.SecondaryKey},
		"admin": {e.admin},
		"tok":   {e.token(t)},
	}
	ctx := context.Background()
	for owner, creds := range keys {
		for _, service := range []string{"iris", "other", "tok"} {
			for _, cred := range creds {
				want := owner == service
				h, err := httpAuth(ctx, events.APIGatewayV2CustomAuthorizerV2Request{
					RawPath: "/services/" + service + "/score", Headers: map[string]string{"authorization": bearerOf(cred)},
				})
				if err != nil || h.IsAuthorized != want {
					t.Errorf("HTTP: %s's credential for %s: authorized %t, %v; want %t", owner, service, h.IsAuthorized, err, want)
				}
				arn := "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/POST/services/" + service + "/score"
				r, err := tokenAuth(ctx, events.APIGatewayCustomAuthorizerRequest{Type: "TOKEN", AuthorizationToken: bearerOf(cred), MethodArn: arn})
				if err != nil || allowed(r, arn) != want {
					t.Errorf("TOKEN: %s's credential for %s: %+v, %v; want allowed %t", owner, service, r, err, want)
				}
				r, err = requestAuth(ctx, events.APIGatewayCustomAuthorizerRequestTypeRequest{Type: "REQUEST", MethodArn: arn,
					Headers: map[string]string{"Authorization": bearerOf(cred)}, PathParameters: map[string]string{"service": service}})
				if err != nil || allowed(r, arn) != want {
					t.Errorf("REQUEST: %s's credential for %s: %+v, %v; want allowed %t", owner, service, r, err, want)
				}
			}
		}
	}
}

// allowed evaluates a REST authorizer's policy for resource as IAM does:
// an explicit Deny wins, else an Allow that matches.
func allowed(r events.APIGatewayCustomAuthorizerResponse, resource string) bool {
	allow := false
	for _, st := range r.PolicyDocument.Statement {
		for _, p := range st.Resource {
			if !iamMatch(p, resource) || !containsAction(st.Action) {
				continue
			}
			switch st.Effect {
			case "Deny":
				return false
			case "Allow":
				allow = true
			}
		}
	}
	return allow
}

func containsAction(actions []string) bool {
	for _, a := range actions {
		if a == "execute-api:Invoke" || a == "execute-api:*" || a == "*" {
			return true
		}
	}
	return false
}

func TestRESTTokenAuthorizerSample(t *testing.T) {
	e := newEnv(t)
	authorize := lambdaadapter.RESTTokenAuthorizer(e.app.Services())
	ctx := context.Background()

	// The AWS sample as it is: token "allow" for GET / names no service.
	sample := load[events.APIGatewayCustomAuthorizerRequest](t, "rest-token-authorizer.json")
	res, err := authorize(ctx, sample)
	if err != nil || allowed(res, sample.MethodArn) {
		t.Fatalf("sample = %+v, %v; want a Deny", res, err)
	}
	golden(t, "rest-token-deny-sample.json", res)

	req := sample
	req.MethodArn = "arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/prod/GET/services/iris/score"
	req.AuthorizationToken = bearerOf(e.iris.PrimaryKey)
	res, err = authorize(ctx, req)
	if err != nil || !allowed(res, req.MethodArn) {
		t.Fatalf("iris key = %+v, %v; want an Allow", res, err)
	}
	golden(t, "rest-token-allow.json", res)

	// The policy has the shape of aws-lambda-go's response sample.
	var shape, ours map[string]any
	raw, _ := json.Marshal(load[events.APIGatewayCustomAuthorizerResponse](t, "rest-authorizer-response.json"))
	json.Unmarshal(raw, &shape)
	raw, _ = json.Marshal(res)
	json.Unmarshal(raw, &ours)
	for _, k := range []string{"principalId", "policyDocument", "context"} {
		if _, ok := ours[k]; !ok || shape[k] == nil {
			t.Errorf("response field %q: ours %v, sample %v", k, ours[k], shape[k])
		}
	}

	req.AuthorizationToken = bearerOf(e.iris.PrimaryKey[:len(e.iris.PrimaryKey)-2] + "AA")
	res, err = authorize(ctx, req)
	if err != nil || allowed(res, req.MethodArn) {
		t.Fatalf("wrong key = %+v, %v; want a Deny", res, err)
	}
	golden(t, "rest-token-deny.json", res)
}

func TestRESTAllowIsScopedToTheService(t *testing.T) {
	e := newEnv(t)
	const api = "arn:aws:execute-api:eu-west-1:123456789012:abcdef123"
	res, err := lambdaadapter.RESTTokenAuthorizer(e.app.Services())(context.Background(), events.APIGatewayCustomAuthorizerRequest{
		Type: "TOKEN", AuthorizationToken: bearerOf(e.iris.PrimaryKey), MethodArn: api + "/prod/POST/services/iris/score",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := api + "/prod/*/services/iris/*"; len(res.PolicyDocument.Statement) != 1 || strings.Join(res.PolicyDocument.Statement[0].Resource, " ") != want {
		t.Fatalf("policy %+v; want the one resource %s", res.PolicyDocument, want)
	}
	if got := lambdaadapter.AllowResource(api+"/prod/POST/services/iris/score", "iris"); got != api+"/prod/*/services/iris/*" {
		t.Errorf("AllowResource = %q", got)
	}
	for arn, want := range map[string]bool{
		api + "/prod/POST/services/iris/score":                                               true,
		api + "/prod/GET/services/iris/keys":                                                 true,
		api + "/prod/GET/services/iris/validate/a/b":                                         true,
		api + "/prod/DELETE/services/iris/":                                                  true,
		api + "/prod/POST/services/other/score":                                              false,
		api + "/prod/POST/services/iris2/score":                                              false,
		api + "/prod/POST/services/iri/score":                                                false,
		api + "/prod/POST/services/iris":                                                     false, // nothing below the service
		api + "/test/POST/services/iris/score":                                               false,
		api + "/prod/POST/signing-keys/rotate":                                               false,
		api + "/prod/GET/.well-known/jwks.json":                                              false,
		"arn:aws:execute-api:eu-west-1:123456789012:zzzzzz/prod/POST/services/iris/score":    false,
		"arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/POST/services/iris/score": false,
	} {
		if got := allowed(res, arn); got != want {
			t.Errorf("allowed(%s) = %t; want %t", arn, got, want)
		}
	}
}

func TestRESTTokenAuthorizer(t *testing.T) {
	e := newEnv(t)
	authorize := lambdaadapter.RESTTokenAuthorizer(e.app.Services())
	const irisArn = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/services/iris/keys"
	tests := []struct {
		name, token, arn string
		want             string // Allow, Deny or Unauthorized
	}{
		{"primary", bearerOf(e.iris.PrimaryKey), irisArn, "Allow"},
		{"secondary", bearerOf(e.iris.SecondaryKey), irisArn, "Allow"},
		{"lower-case scheme", "bearer " + e.iris.PrimaryKey, irisArn, "Allow"},
		{"aws-cn partition", bearerOf(e.iris.PrimaryKey), "arn:aws-cn:execute-api:cn-north-1:123456789012:abcdef123/prod/GET/services/iris/keys", "Allow"},
		{"open service, no credential", "", "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/services/open/x", "Allow"},
		{"no credential", "", irisArn, "Unauthorized"},
		{"other scheme", "Basic " + e.iris.PrimaryKey, irisArn, "Unauthorized"},
		{"key without scheme", e.iris.PrimaryKey, irisArn, "Unauthorized"},
		{"malformed", "Bearer a b", irisArn, "Deny"},
		{"wrong key", bearerOf(strings.Repeat("A", 43)), irisArn, "Deny"},
		{"other's key", bearerOf(e.other.PrimaryKey), irisArn, "Deny"},
		{"admin key", bearerOf(e.admin), irisArn, "Deny"},
		{"unknown service", bearerOf(e.iris.PrimaryKey), "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/services/nope/keys", "Deny"},
		{"unknown service, no credential", "", "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/services/nope/keys", "Deny"},
		{"no service", bearerOf(e.iris.PrimaryKey), "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/", "Deny"},
		{"nothing below the service", bearerOf(e.iris.PrimaryKey), "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/services/iris", "Deny"},
		{"service not first", bearerOf(e.iris.PrimaryKey), "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/x/services/iris/keys", "Deny"},
		{"dot segments", bearerOf(e.iris.PrimaryKey), "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/services/iris/../other/keys", "Deny"},
		{"not an arn", bearerOf(e.iris.PrimaryKey), "services/iris/keys", "Deny"},
		{"other service's arn type", bearerOf(e.iris.PrimaryKey), "arn:aws:lambda:us-east-1:123456789012:abcdef123/prod/GET/services/iris/keys", "Deny"},
		{"empty arn", bearerOf(e.iris.PrimaryKey), "", "Deny"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := authorize(context.Background(), events.APIGatewayCustomAuthorizerRequest{Type: "TOKEN", AuthorizationToken: tt.token, MethodArn: tt.arn})
			checkREST(t, res, err, tt.arn, tt.want)
		})
	}
}

// checkREST checks a REST authorizer's answer: want is Allow (of arn),
// Deny (of exactly arn) or Unauthorized (the error API Gateway maps to 401).
func checkREST(t *testing.T, res events.APIGatewayCustomAuthorizerResponse, err error, arn, want string) {
	t.Helper()
	switch want {
	case "Unauthorized":
		if !errors.Is(err, lambdaadapter.ErrUnauthorized) || err.Error() != "Unauthorized" {
			t.Fatalf("got %+v, %v; want the error \"Unauthorized\"", res, err)
		}
		return
	case "Allow":
		if err != nil || !allowed(res, arn) || res.PrincipalID == "" || res.PolicyDocument.Version != "2012-10-17" {
			t.Fatalf("got %+v, %v; want an Allow of %s", res, err, arn)
		}
		return
	}
	if err != nil || res.PrincipalID == "" || res.Context != nil || len(res.PolicyDocument.Statement) != 1 {
		t.Fatalf("got %+v, %v; want a Deny", res, err)
	}
	st := res.PolicyDocument.Statement[0]
	wantRes := arn
	if wantRes == "" {
		wantRes = "*"
	}
	if st.Effect != "Deny" || len(st.Resource) != 1 || st.Resource[0] != wantRes || res.PolicyDocument.Version != "2012-10-17" {
		t.Errorf("got %+v; want a Deny of %s", res.PolicyDocument, wantRes)
	}
}

func TestRESTRequestAuthorizerSample(t *testing.T) {
	e := newEnv(t)
	authorize := lambdaadapter.RESTRequestAuthorizer(e.app.Services())
	ctx := context.Background()

	sample := load[events.APIGatewayCustomAuthorizerRequestTypeRequest](t, "rest-request-authorizer.json")
	res, err := authorize(ctx, sample)
	checkREST(t, res, err, sample.MethodArn, "Deny") // GET /request names no service
	golden(t, "rest-request-deny-sample.json", res)

	req := sample
	req.MethodArn = "arn:aws:execute-api:us-east-1:123456789012:s4x3opwd6i/test/GET/services/iris/validate"
	req.Resource, req.Path = "/services/{service}/{proxy+}", "/services/iris/validate"
	req.PathParameters = map[string]string{"service": "iris", "proxy": "validate"}
	req.Headers = cloneMap(sample.Headers)
	req.Headers["authorization"] = bearerOf(e.iris.SecondaryKey)
	res, err = authorize(ctx, req)
	checkREST(t, res, err, req.MethodArn, "Allow")
	golden(t, "rest-request-allow.json", res)
}

func TestRESTRequestAuthorizer(t *testing.T) {
	e := newEnv(t)
	authorize := lambdaadapter.RESTRequestAuthorizer(e.app.Services())
	const irisArn = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/POST/services/iris/score"
	key := bearerOf(e.iris.PrimaryKey)
	tests := []struct {
		name    string
		arn     string
		params  map[string]string
		headers map[string]string
		multi   map[string][]string
		want    string
	}{
		{name: "from the arn", arn: irisArn, headers: map[string]string{"Authorization": key}, want: "Allow"},
		{name: "from the parameter", arn: irisArn, params: map[string]string{"service": "iris"}, headers: map[string]string{"authorization": key}, want: "Allow"},
		{name: "header in upper case", arn: irisArn, headers: map[string]string{"AUTHORIZATION": key}, want: "Allow"},
		{name: "multi-value header", arn: irisArn, headers: map[string]string{"Authorization": key}, multi: map[string][]string{"Authorization": {key}}, want: "Allow"},
		{name: "no header", arn: irisArn, want: "Unauthorized"},
		{name: "two headers", arn: irisArn, headers: map[string]string{"Authorization": key}, multi: map[string][]string{"Authorization": {key, key}}, want: "Deny"},
		{name: "two header names", arn: irisArn, headers: map[string]string{"Authorization": key, "authorization": key}, want: "Deny"},
		{name: "two multi-value header names", arn: irisArn, multi: map[string][]string{"Authorization": {key}, "authorization": {key}}, want: "Deny"},
		// The value is read from the headers, which API Gateway always sends.
		{name: "multi-value header only", arn: irisArn, multi: map[string][]string{"authorization": {key}}, want: "Unauthorized"},
		{name: "empty header", arn: irisArn, headers: map[string]string{"Authorization": ""}, want: "Unauthorized"},
		{name: "other scheme", arn: irisArn, headers: map[string]string{"Authorization": "Basic " + e.iris.PrimaryKey}, want: "Unauthorized"},
		// Two headers are malformed, not missing: a Deny, even of another scheme.
		{name: "two headers of another scheme", arn: irisArn, headers: map[string]string{"Authorization": "Basic a"}, multi: map[string][]string{"Authorization": {"Basic a", "Basic b"}}, want: "Deny"},
		{name: "malformed", arn: irisArn, headers: map[string]string{"Authorization": "Bearer a b"}, want: "Deny"},
		{name: "parameter disagrees", arn: irisArn, params: map[string]string{"service": "other"}, headers: map[string]string{"Authorization": bearerOf(e.other.PrimaryKey)}, want: "Deny"},
		{name: "parameter, arn without service", arn: "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/POST/models/iris/score", params: map[string]string{"service": "iris"}, headers: map[string]string{"Authorization": key}, want: "Deny"},
		{name: "bad parameter", arn: irisArn, params: map[string]string{"service": "IRIS"}, headers: map[string]string{"Authorization": key}, want: "Deny"},
		{name: "other's key", arn: irisArn, headers: map[string]string{"Authorization": bearerOf(e.other.PrimaryKey)}, want: "Deny"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := authorize(context.Background(), events.APIGatewayCustomAuthorizerRequestTypeRequest{
				Type: "REQUEST", MethodArn: tt.arn, PathParameters: tt.params, Headers: tt.headers, MultiValueHeaders: tt.multi,
			})
			checkREST(t, res, err, tt.arn, tt.want)
		})
	}
}

// TestStoreUnavailableDenies: with the store closed and the key cache
// expired, every authorizer refuses, with no error (HTTP API) and a Deny,
// never a 401 or an Allow (REST).
func TestStoreUnavailableDenies(t *testing.T) {
	a, err := newApp(t.TempDir(), func(s *config.Settings) {
		s.KeyCacheTTL, s.KeyRefreshMinInterval, s.KeyCacheMaxStale = time.Millisecond, time.Millisecond, 0
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keys, err := a.Keys.Get(ctx, "iris")
	if err != nil {
		t.Fatal(err)
	}
	s := a.Services()
	a.Close()
	time.Sleep(20 * time.Millisecond)
	h, err := lambdaadapter.HTTPAuthorizer(s)(ctx, events.APIGatewayV2CustomAuthorizerV2Request{
		RawPath: "/services/iris/score", Headers: map[string]string{"authorization": bearerOf(keys.PrimaryKey)},
	})
	if err != nil || h.IsAuthorized {
		t.Errorf("HTTP = %+v, %v; want denied without error", h, err)
	}
	arn := "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/POST/services/iris/score"
	r, err := lambdaadapter.RESTTokenAuthorizer(s)(ctx, events.APIGatewayCustomAuthorizerRequest{AuthorizationToken: bearerOf(keys.PrimaryKey), MethodArn: arn})
	checkREST(t, r, err, arn, "Deny")
}
