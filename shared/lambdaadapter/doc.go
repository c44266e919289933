// Package lambdaadapter maps AWS Lambda events to the modelauth core and
// back, so that the same code runs on AWS Lambda as on Azure Functions. It
// only maps fields, as the Azure custom handler does: every decision is the
// core's ([authn.Services.Authenticate] and the app's http.Handler).
//
// The entry points are plain func(ctx, Event) (Response, error) values for
// lambda.Start, one per event type of github.com/aws/aws-lambda-go/events:
//
//   - [HTTPAuthorizer]: an API Gateway HTTP API Lambda authorizer, payload
//     format 2.0 with simple responses ({"isAuthorized":..,"context":..}).
//   - [RESTTokenAuthorizer] and [RESTRequestAuthorizer]: REST API Lambda
//     authorizers of the TOKEN and REQUEST types, answering an IAM policy.
//   - [HTTPHandler] and [FunctionURLHandler]: an HTTP API Lambda proxy
//     integration (payload format 2.0) and a Lambda function URL in
//     BUFFERED invoke mode, served by the app's http.Handler.
//   - [Scheduled]: the timer functions (rotatekeys, prefetchtokens,
//     snapshot) run by EventBridge Scheduler with the target input
//     {"function":"<name>"}.
//
// # Authorizers
//
// The service comes from the route. For an HTTP API it is the "service"
// path parameter, else the one the request path names: /services/<service>
// or /services/<service>/... after the stage prefix of a named stage and
// an optional /api prefix. For REST APIs it is the one the methodArn names,
// arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/services/<service>/...,
// since the Allow policy must cover the methodArn; a REQUEST authorizer's
// "service" path parameter must agree with it. A missing, malformed or
// unknown service denies, never allows; so does a path that could be read
// two ways (a "." or ".." segment, an encoded "/", "." or "\", or a
// backslash), and a path parameter that disagrees with the path. The
// credential is the Authorization header ("Bearer <key or token>"): the
// authorizers map it to an [authn.Credential] with [authn.FromHeader], as
// the validate function maps its request's, so it is checked exactly as
// validate checks it. A repeated header (two keys that differ only in
// case, or a multi-value header with two values) is malformed and denies.
//
// An allowing REST policy grants execute-api:Invoke on
// arn:aws:execute-api:<region>:<account>:<api>/<stage>/*/services/<service>/*
// and nothing else. A request to /services/<service> itself (nothing
// below it) is therefore denied by the REST authorizers; every modelauth
// route has a path below it (validate, score, keys, token). The HTTP API
// authorizer, whose simple response names no resource, allows that path.
// An allowing policy's principalId is the caller's subject and its
// context, like the HTTP API's, carries service, subject, authType and
// keyType (keyType only for keys); a Deny has the principalId "denied" and
// no context.
//
// Authorizer result caching must be off: authorizerResultTtlInSeconds 0
// on every authorizer. An HTTP API caches a simple response by the
// identity sources alone and reuses it for every route of the API, so a
// cached answer for service A's key would let the same key through to
// service B, unless the identity sources held the service too (the route
// key, $context.routeKey, is the same for all services). For REST APIs
// the cached policy is scoped to the service, but "*" in an IAM resource
// also matches "/", so a cached Allow for A covers
// /services/B/services/A/.... And with any cache a regenerated or revoked
// key keeps working until the TTL ends, while regen_key must take effect
// at once. The core already keeps keys in
// memory for KEY_CACHE_TTL, so an uncached authorizer costs a warm Lambda
// invocation per request, not a store read.
//
// # Errors
//
// The authorizers never allow on error. [HTTPAuthorizer] answers every
// refusal with isAuthorized false and a nil error (API Gateway answers the
// client 403); a Lambda error would make API Gateway answer 500 instead.
// This includes a store that cannot be read (the core's Unavailable): the
// caller is refused rather than told to retry, and the cause is logged
// at error level for operators.
//
// The REST authorizers return the error errors.New("Unauthorized") when
// the request carries no Bearer credentials (no Authorization header, an
// empty one, or another scheme) for a service that needs them: API Gateway
// answers exactly that error string with 401, as validate does. Every other
// refusal (a wrong or malformed credential, another service's key, an
// unknown service, an unreadable store) is a Deny policy for the methodArn
// and a nil error: API Gateway answers 403. Note that API Gateway itself
// answers 401, without calling the authorizer, when the identity source
// (the Authorization header) is missing altogether.
//
// [HTTPHandler] and [FunctionURLHandler] return no errors: a request they
// cannot map (an invalid path or base64 body) is answered 400 with the
// app's JSON error body. [Scheduled] returns the timer function's error,
// so that Lambda counts the invocation as failed and EventBridge Scheduler
// retries it by its retry policy, and an error wrapping
// [ErrUnknownFunction] for a name it does not know.
//
// Refusals with a cause, and every store failure, are logged to
// [log/slog.Default] as the Azure functions log them ("authorizer_denied",
// with the code and cause). No error or log line contains a key, a token,
// an Authorization header or a request path's query.
//
// # Configuration
//
// The package reads no environment variables. The Lambda main builds the
// app (functions.NewApp) and passes app.Services(), app.Handler() or
// app.Timers() to the entry point it starts. All entry points are safe for
// concurrent use.
package lambdaadapter
