package lambdaadapter_test

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/events"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/lambdaadapter"
	"github.com/modelauth/modelauth/shared/timer"
)

// exampleApp is an app with the services of the tests, in a temporary
// directory that cleanup removes.
func exampleApp() (app *functions.App, cleanup func()) {
	dir, err := os.MkdirTemp("", "lambdaadapter")
	if err != nil {
		panic(err)
	}
	if app, err = newApp(dir, nil); err != nil {
		panic(err)
	}
	return app, func() { app.Close(); os.RemoveAll(dir) }
}

// The Lambda main of an HTTP API authorizer is
// lambda.Start(lambdaadapter.HTTPAuthorizer(app.Services())).
func ExampleHTTPAuthorizer() {
	app, cleanup := exampleApp()
	defer cleanup()
	keys, _ := app.Keys.Get(context.Background(), "iris")
	authorize := lambdaadapter.HTTPAuthorizer(app.Services())

	req := events.APIGatewayV2CustomAuthorizerV2Request{
		Version: "2.0", Type: "REQUEST", RawPath: "/services/iris/score",
		Headers: map[string]string{"authorization": "Bearer " + keys.PrimaryKey},
	}
	res, _ := authorize(context.Background(), req)
	fmt.Println(res.IsAuthorized, res.Context["service"], res.Context["subject"])

	req.RawPath = "/services/other/score" // iris's key, another service
	res, _ = authorize(context.Background(), req)
	fmt.Println(res.IsAuthorized)
	// Output:
	// true iris key:Primary
	// false
}

func ExampleRESTTokenAuthorizer() {
	app, cleanup := exampleApp()
	defer cleanup()
	keys, _ := app.Keys.Get(context.Background(), "iris")
	authorize := lambdaadapter.RESTTokenAuthorizer(app.Services())

	res, _ := authorize(context.Background(), events.APIGatewayCustomAuthorizerRequest{
		Type: "TOKEN", AuthorizationToken: "Bearer " + keys.PrimaryKey,
		MethodArn: "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/POST/services/iris/score",
	})
	st := res.PolicyDocument.Statement[0]
	fmt.Println(res.PrincipalID, st.Effect, st.Resource[0])

	_, err := authorize(context.Background(), events.APIGatewayCustomAuthorizerRequest{
		Type:      "TOKEN",
		MethodArn: "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/POST/services/iris/score",
	})
	fmt.Println(err)
	// Output:
	// key:Primary Allow arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/*/services/iris/*
	// Unauthorized
}

// The Lambda main of a function URL is
// lambda.Start(lambdaadapter.FunctionURLHandler(app.Handler())).
func ExampleFunctionURLHandler() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "seen", Value: "1"})
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	})
	req := events.LambdaFunctionURLRequest{Version: "2.0", RawPath: "/services/iris/keys"}
	req.RequestContext.HTTP.Method = "GET"
	res, _ := lambdaadapter.FunctionURLHandler(h)(context.Background(), req)
	fmt.Println(res.StatusCode, res.Body, res.Cookies, res.IsBase64Encoded)
	// Output:
	// 200 GET /api/services/iris/keys [seen=1] false
}

func ExampleHTTPHandler() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write([]byte{0xca, 0xfe})
	})
	req := events.APIGatewayV2HTTPRequest{Version: "2.0", RawPath: "/prod/services/iris/score"}
	req.RequestContext.Stage, req.RequestContext.HTTP.Method = "prod", "POST"
	res, _ := lambdaadapter.HTTPHandler(h)(context.Background(), req)
	fmt.Println(res.StatusCode, res.Body, res.IsBase64Encoded)
	// Output:
	// 200 yv4= true
}

// The Lambda main of the timer functions is
// lambda.Start(lambdaadapter.Scheduled(app.Timers())), with EventBridge
// Scheduler's target input {"function":"rotatekeys"}.
func ExampleScheduled() {
	run := lambdaadapter.Scheduled(map[string]timer.Func{
		"rotatekeys": func(context.Context, timer.Info) error { return nil },
	})
	out, err := run(context.Background(), lambdaadapter.ScheduledEvent{Function: "rotatekeys"})
	fmt.Println(out, err)
	_, err = run(context.Background(), lambdaadapter.ScheduledEvent{Function: "keyvaultevents"})
	fmt.Println(err)
	// Output:
	// rotatekeys: done <nil>
	// lambdaadapter: unknown scheduled function "keyvaultevents" (known: rotatekeys)
}
