package lambdaadapter_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/modelauth/modelauth/shared/lambdaadapter"
)

// FuzzHTTPAuthorizerPath: with iris's key, whatever the path and stage,
// the authorizer never panics and allows only a path of service iris.
func FuzzHTTPAuthorizerPath(f *testing.F) {
	for _, seed := range [][2]string{
		{"/services/iris/score", "$default"}, {"/prod/services/iris/x", "prod"}, {"/api/services/iris", ""},
		{"/services/iris/../other/x", "$default"}, {"/services/iris%2f..%2fother", ""}, {"/services/other/services/iris/x", ""},
		{"//services/iris", ""}, {"/prod", "prod"},
	} {
		f.Add(seed[0], seed[1])
	}
	app, cleanup := exampleApp()
	defer cleanup()
	keys, err := app.Keys.Get(context.Background(), "iris")
	if err != nil {
		f.Fatal(err)
	}
	authorize := lambdaadapter.HTTPAuthorizer(app.Services())
	f.Fuzz(func(t *testing.T, rawPath, stage string) {
		req := events.APIGatewayV2CustomAuthorizerV2Request{RawPath: rawPath, Headers: map[string]string{"authorization": bearerOf(keys.PrimaryKey)}}
		req.RequestContext.Stage = stage
		res, err := authorize(context.Background(), req)
		if err != nil {
			t.Fatalf("error %v", err)
		}
		if !res.IsAuthorized {
			return
		}
		p := rawPath
		if stage != "" && stage != "$default" {
			if rest, ok := strings.CutPrefix(p, "/"+stage); ok && (rest == "" || rest[0] == '/') {
				p = rest
			}
		}
		p = strings.TrimPrefix(p, "/api")
		if res.Context["service"] != "iris" || (p != "/services/iris" && !strings.HasPrefix(p, "/services/iris/")) {
			t.Errorf("path %q stage %q authorized as %v", rawPath, stage, res.Context)
		}
	})
}

// FuzzRESTMethodArn: with iris's key, whatever the methodArn, the TOKEN
// authorizer never panics, and allows only on the resource of iris.
func FuzzRESTMethodArn(f *testing.F) {
	for _, seed := range []string{
		"arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/services/iris/score",
		"arn:aws:execute-api:us-west-2:123456789012:ymy8tbxw7b/*/GET/",
		"arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/services/other/services/iris/x",
		"arn:aws:execute-api:::/a/b/services/iris/x", "arn:aws:execute-api:r:a:api/s/M/services/iris",
	} {
		f.Add(seed)
	}
	app, cleanup := exampleApp()
	defer cleanup()
	keys, err := app.Keys.Get(context.Background(), "iris")
	if err != nil {
		f.Fatal(err)
	}
	authorize := lambdaadapter.RESTTokenAuthorizer(app.Services())
	f.Fuzz(func(t *testing.T, arn string) {
		res, err := authorize(context.Background(), events.APIGatewayCustomAuthorizerRequest{AuthorizationToken: bearerOf(keys.PrimaryKey), MethodArn: arn})
		if err != nil {
			t.Fatalf("error %v", err)
		}
		if len(res.PolicyDocument.Statement) != 1 {
			t.Fatalf("policy %+v", res.PolicyDocument)
		}
		st := res.PolicyDocument.Statement[0]
		if st.Effect != "Allow" {
			return
		}
		if !allowed(res, arn) || res.Context["service"] != "iris" || !strings.HasSuffix(st.Resource[0], "/*/services/iris/*") ||
			!strings.Contains(arn, "/services/iris/") {
			t.Errorf("methodArn %q allowed with %+v", arn, res)
		}
	})
}
