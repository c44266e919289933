// Command funchost is a local Azure Functions host for custom-handler
// apps. It does what `func start` does for modelauth, from the same
// host.json, function.json and local.settings.json, on machines where
// Azure Functions Core Tools cannot be installed. It is a development and
// test tool; production runs on the real Functions host.
//
// Usage:
//
//	funchost [--app DIR] [--port N] [--host ADDR]
//
// --app is the function app root (default "."), --port the port to serve
// on (default local.settings.json Host.LocalHttpPort, else 7071; 0 picks a
// free one), --host the listen address (default 127.0.0.1). Once the
// handler is ready, funchost prints exactly one line
//
//	modelauth local host listening on http://127.0.0.1:<port>
//
// followed by the functions, as func start lists them. Logs go to stdout
// (log/slog text); the handler's stdout lines are copied unchanged, its
// stderr lines are logged at error level (warning if they contain "warn").
// SIGINT or SIGTERM stops timers, the front end and the handler, and exits
// 0; a handler that fails three times less than 30 minutes apart stops the
// host with exit code 1.
//
// # Configuration
//
// host.json: version "2.0"; customHandler.description
// (defaultExecutablePath relative to the app root or on PATH, arguments
// with %VAR% expansion, workingDirectory, defaultWorkerPath,
// workerArguments); customHandler.enableForwardingHttpRequest, which must
// be true when the app has HTTP functions; customHandler.
// initializationTimeout (default 00:00:30); functionTimeout (default 30
// minutes, -1 for none); extensions.http.routePrefix (default "api").
//
// Settings: local.settings.json, else local.settings.example.json: Values
// become environment variables of the handler unless the environment
// already defines them (non-empty), and Host.LocalHttpPort. The handler
// also gets FUNCTIONS_CUSTOMHANDLER_PORT, FUNCTIONS_CUSTOMHANDLER_WORKER_ID,
// FUNCTIONS_HTTPWORKER_PORT, FUNCTIONS_HTTPWORKER_ID,
// FUNCTIONS_APP_ROOT_PATH and FUNCTIONS_CORETOOLS_ENVIRONMENT=True.
// AzureWebJobs.<name>.Disabled=true disables a function; WEBSITE_TIME_ZONE
// (an IANA name) sets the timers' time zone, else the machine's.
//
// Functions: one folder per function with a function.json. Supported
// triggers: httpTrigger with exactly one http output (forwarded: the
// handler gets the original request at its /api/... path), timerTrigger
// (NCRONTAB with 6 fields, or 5 without seconds, or a TimeSpan; %Setting%
// references; runOnStartup; useMonitor) and eventGridTrigger. Route
// templates support literals, {x}, {x?} (last) and {*x} (last); anything
// else is refused at start, naming the function.
//
// # Endpoints
//
//   - /<routePrefix>/<route>: HTTP functions; no route or method ⇒ 404,
//     handler unreachable ⇒ 502, function timeout ⇒ 500 and a handler
//     restart.
//   - POST /admin/functions/<name> {"input": "..."}: runs a timer or Event
//     Grid function once in the background ⇒ 202; unknown ⇒ 404.
//   - POST /runtime/webhooks/EventGrid?functionName=<name>, header
//     aeg-event-type: Notification (one invocation per event ⇒ 202, 500 if
//     any failed), SubscriptionValidation, Unsubscribe; otherwise 400.
//   - GET /admin/host/status, GET /.
//
// # Differences from the Functions host
//
// Schedule status is kept in memory (no storage account), so IsPastDue is
// never true and ScheduleStatus starts afresh at every start. Keys and
// authLevel are not enforced (as under func start). Only forwarded HTTP
// functions are supported, and no bindings besides the trigger (and the
// http output). Key Vault references in settings are not resolved.
package main
