// Package azfunc implements the Azure Functions custom-handler protocol:
// it decodes the invocation envelope that the Functions host POSTs to
// /<FunctionName>, binds its values to typed structs ([TimerInfo],
// [EventGridEvent], [KeyVaultEventData]), writes the envelope response the
// host expects, and provides the readiness endpoint and listen address the
// host relies on. It is the one place in modelauth that touches the
// envelope: function code is a plain func(ctx, In) error wrapped by
// [TimerHandler] or [EventGridHandler].
//
// HTTP functions that use enableForwardingHttpRequest receive the original
// request instead of an envelope and do not need this package.
//
// # Protocol
//
// The host sends {"Data":{<binding>:<value>},"Metadata":{...,"sys":{...}}}.
// Top-level strings and numbers arrive JSON-encoded a second time (the
// string HelloWorld arrives as "\"HelloWorld\"", the number 4 as "4"), and
// an Event Grid event may arrive as an object, as a JSON string holding the
// object, or as a string of such a string. [InvokeRequest.Bind] undoes all
// of these. Timestamps written by the host's serializer have up to seven
// fractional digits and sometimes no offset; [Time] accepts them, and a
// timestamp it cannot read becomes the zero time rather than an error, so
// that the host's timestamps never stop a key rotation.
//
// The host reads Outputs and Logs only from a 2xx response with a JSON
// content type, so every envelope response written here is 200 with
// Content-Type application/json, even when the envelope was malformed or
// the function failed. Such a failure is reported in the response's Logs
// (which the host logs at Information level) and as an error-level event on
// the handler's [log/slog.Logger]. Note that the host then counts the
// invocation as succeeded: an Event Grid event is not redelivered and a
// timer is not retried.
//
// # Errors
//
// Decoding errors wrap one of the sentinel errors [ErrTooLarge],
// [ErrMalformed] and [ErrNoBinding]; test them with [errors.Is].
// [ParseTime] returns errors wrapping [ErrBadTime], and [ListenAddr] errors
// wrapping [ErrBadPort]. No error returned or logged by this package
// contains envelope values, Metadata or request headers, which may carry
// an Authorization header.
//
// # Configuration
//
// The package reads no environment variables itself. The program's main
// passes [os.Getenv] to [ListenAddr], which reads FUNCTIONS_CUSTOMHANDLER_PORT
// (set by the host), then FUNCTIONS_HTTPWORKER_PORT, and defaults to 8080.
//
// All functions and handlers are safe for concurrent use: the host sends
// concurrent invocations to the one handler process.
package azfunc
