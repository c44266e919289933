// Package amltest is an Azure Resource Manager test server for Azure
// Machine Learning online endpoints (api-version 2024-04-01): the
// management operations modelauth uses on an endpoint's keys, the ARM
// asynchronous-operation URLs of a key regeneration, and the endpoints'
// scoring URIs, on one 127.0.0.1 TLS port. The real azcore pipeline and
// poller use it unchanged; the bearer tokens come from a
// [keyvaulttest.Server]'s Entra endpoint. docs/azureml-rest.md gives the
// spec facts it follows, with their sources.
//
//	func TestMain(m *testing.M) { os.Exit(keyvaulttest.RunTests(m)) } // SSL_CERT_FILE
//
//	func TestRotate(t *testing.T) {
//		kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{Resources: []string{amltest.DefaultAudience}})
//		aml := amltest.NewServer(t, &amltest.Options{KV: kv})
//		scoring := aml.AddEndpoint(id, "Key")
//		// production code: azidentity credential and azcore client with
//		// ClientOptions.Cloud = aml.Cloud()
//	}
//
// # Management API
//
// Every request needs api-version 2024-04-01 (or the later stable
// 2024-10-01 or 2025-06-01) and a bearer token kv issued for Audience
// ([DefaultAudience] by default: ARM's, so a client that asks for the
// public cloud's ARM scope is served too). Under
// /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}/onlineEndpoints
// (fixed segments and names case-insensitive, as ARM's):
//
//	GET    /{name}                  OnlineEndpoints_Get: 200 OnlineEndpointTrackedResource
//	POST   /{name}/listKeys         OnlineEndpoints_ListKeys: 200 {"primaryKey","secondaryKey"} (Key endpoints)
//	POST   /{name}/regenerateKeys   OnlineEndpoints_RegenerateKeys: 202, an asynchronous operation (Key endpoints)
//	POST   /{name}/token            OnlineEndpoints_GetToken: 200 EndpointAuthToken (AMLToken endpoints)
//	GET    (the collection)         OnlineEndpoints_List: one page, no nextLink
//	PUT    /{name}                  OnlineEndpoints_CreateOrUpdate, synchronously: 201 created, 200 updated
//	DELETE /{name}                  OnlineEndpoints_Delete, synchronously: 200, or 204 if there is none
//
// A regeneration's 202 carries Location and, as the spec's example shows
// (the spec itself declares only Location and Retry-After), an
// Azure-AsyncOperation header; Options.LocationOnly leaves the latter
// out. Retry-After is sent when Options.RetryAfter is set. The
// Azure-AsyncOperation URL answers 200 with ARM's status body
// {"id","name","status","startTime","endTime","error"}; the Location URL
// answers 202 while the operation runs, then 200 with no body, or 400 with
// the error if it failed (not 500, which azcore's Location poller takes
// for "still running"). Each poll of either URL counts: an operation
// answers InProgress Options.Polls times, then ends Succeeded (the key is
// changed then, to keyValue or a random key) or, after FailOperations,
// Failed; after NeverEnd it never ends.
//
// Errors are ARM's ErrorResponse {"error":{"code","message"}} with an
// x-ms-error-code header: 401 InvalidAuthenticationToken (with
// WWW-Authenticate: Bearer authorization_uri=..., error="invalid_token")
// for a missing, unknown, expired or other-audience token; 400
// MissingApiVersionParameter, InvalidApiVersionParameter,
// InvalidRequestContent (a body that is not JSON) and BadRequest (a
// keyType other than exactly "Primary" or "Secondary", an operation the
// endpoint's authMode has not); 403 AuthorizationFailed ([Server.Deny]);
// 404 ResourceNotFound for an unknown endpoint.
//
// # Scoring
//
// An endpoint's scoring URI, https://127.0.0.1:<port>/endpoints/<slug>/score,
// answers POST with 200 and a small JSON body when the request's
// "Authorization: Bearer <credential>" is one of the endpoint's two
// current keys (compared in constant time) for a Key endpoint, a token
// from its token operation that has not expired for an AMLToken endpoint,
// or a kv token for [AADTokenAudience] for an AADToken endpoint; 401
// otherwise. With Options.ScoringLag the scoring plane learns a
// regeneration's new key that long after the operation succeeded;
// [Server.SetKey] changes a key on both planes at once.
//
// # Faults, counters and logging
//
// [Server.InjectFault] makes requests of one operation answer an error
// status (with Retry-After), wait, reset the connection or hang;
// [Server.Stats] counts requests per operation, operations and scoring
// answers. The server logs one event per request to Options.Logger: method,
// path, operation, status and duration, never a key or token.
package amltest
