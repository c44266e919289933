// Command lambda is modelauth's AWS Lambda bootstrap: one binary for the
// provided.al2023 runtime (arm64 or x86_64) that serves every modelauth
// function on Lambda. `make lambda` builds it, with -tags lambda.norpc,
// into build/lambda/<arch>/bootstrap and build/lambda/modelauth-<arch>.zip.
//
// # Handler switch
//
// Each Lambda function that is deployed from the zip picks what it is with
// the environment variable MODELAUTH_LAMBDA_HANDLER:
//
//	http-authorizer          API Gateway HTTP API Lambda authorizer (payload format 2.0, simple responses)
//	rest-token-authorizer    API Gateway REST API Lambda authorizer, TOKEN type (token source: Authorization)
//	rest-request-authorizer  API Gateway REST API Lambda authorizer, REQUEST type
//	http                     API Gateway HTTP API proxy integration (payload format 2.0): keys, token, jwks, signingkeys, score
//	function-url             Lambda function URL in BUFFERED invoke mode: the same HTTP functions
//	scheduled                EventBridge Scheduler target, input {"function":"rotatekeys"}, {"function":"prefetchtokens"} or {"function":"snapshot"}
//
// Any other value, or none, refuses the start. The mapping of events to the
// core is package shared/lambdaadapter's.
//
// # Configuration
//
// The app settings are the Azure function app's (shared/config), read from
// the environment; MODELAUTH_CONFIG defaults to modelauth.json in
// LAMBDA_TASK_ROOT (the zip's root). MODELAUTH_DATA_DIR is not read: the
// store is always Key Vault.
// On Lambda the secret store must be Azure Key Vault: KEYVAULT_URL is
// required, since the embedded file store would live on a disk that does
// not outlast the execution environment and is not shared between
// instances. The vault is reached with a client-secret credential:
// AZURE_TENANT_ID and AZURE_CLIENT_ID name the application, and its secret
// is read once per cold start from the SSM Parameter Store SecureString
// named by AZURE_CLIENT_SECRET_PARAMETER (GetParameter with decryption,
// with the function's own AWS credentials and AWS_REGION). An
// AZURE_CLIENT_SECRET in the environment is refused: a secret in plain
// environment text is visible to anyone who can read the function's
// configuration. AWS_ENDPOINT_URL_SSM (or AWS_ENDPOINT_URL) overrides the
// SSM endpoint, as in every AWS SDK. AZURE_AUTHORITY_HOST names another
// Microsoft Entra authority host.
//
// Logs are JSON lines on stdout, which Lambda sends to CloudWatch Logs.
// A failed cold start writes its reason to stderr and exits with status 1:
// bad settings, a bad modelauth.json, or a client secret that cannot be
// read from SSM. A vault that cannot be reached, or that refuses the
// credential, does not fail it: the app answers 503 with Retry-After (the
// authorizers deny) while the administrator key and the first signing key
// are retried in the background (store_init_failed events), during the
// invocations that thaw the execution environment.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/lambdaadapter"
)

func main() {
	if err := run(context.Background(), os.Getenv); err != nil {
		fmt.Fprintf(os.Stderr, "modelauth: %v\n", err)
		os.Exit(1)
	}
}

// run builds the app and the handler that MODELAUTH_LAMBDA_HANDLER names,
// then serves Lambda invocations until the runtime ends the process. It
// returns only a cold start's failure.
func run(ctx context.Context, getenv func(string) string) error {
	h, _, err := newHandler(ctx, getenv, os.Stdout)
	if err != nil {
		return err
	}
	lambda.StartWithOptions(h, lambda.WithContext(ctx))
	return nil
}

// HandlerSetting is the environment variable that selects the handler.
const HandlerSetting = "MODELAUTH_LAMBDA_HANDLER"

// handlers are the handler kinds: each returns the lambda.Start handler
// that maps its event type to the app.
var handlers = map[string]func(*functions.App) any{
	"http-authorizer":         func(a *functions.App) any { return lambdaadapter.HTTPAuthorizer(a.Services()) },
	"rest-token-authorizer":   func(a *functions.App) any { return lambdaadapter.RESTTokenAuthorizer(a.Services()) },
	"rest-request-authorizer": func(a *functions.App) any { return lambdaadapter.RESTRequestAuthorizer(a.Services()) },
	"http":                    func(a *functions.App) any { return lambdaadapter.HTTPHandler(a.Handler()) },
	"function-url":            func(a *functions.App) any { return lambdaadapter.FunctionURLHandler(a.Handler()) },
	"scheduled":               func(a *functions.App) any { return lambdaadapter.Scheduled(a.Timers()) },
}

// handlerKinds returns the valid values of MODELAUTH_LAMBDA_HANDLER.
func handlerKinds() []string {
	kinds := make([]string, 0, len(handlers))
	for k := range handlers {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}

// newHandler is the cold start: it checks the handler kind, wires the app
// for AWS (aws.go) and returns the handler for lambda.Start with the app,
// which the caller closes when it no longer serves.
func newHandler(ctx context.Context, getenv func(string) string, stdout io.Writer) (any, *functions.App, error) {
	kind := strings.TrimSpace(getenv(HandlerSetting))
	pick, ok := handlers[kind]
	if !ok {
		return nil, nil, fmt.Errorf("%s=%q: want one of %s", HandlerSetting, kind, strings.Join(handlerKinds(), ", "))
	}
	app, err := newApp(ctx, getenv, stdout, kind)
	if err != nil {
		return nil, nil, err
	}
	return pick(app), app, nil
}
