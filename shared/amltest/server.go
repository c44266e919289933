package amltest

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// APIVersion is the api-version of the REST spec this server follows.
const APIVersion = "2024-04-01"

// apiVersions are the api-versions accepted: APIVersion and the later
// stable versions of Microsoft.MachineLearningServices in
// azure-rest-api-specs (docs/azureml-rest.md).
var apiVersions = []string{APIVersion, "2024-10-01", "2025-06-01"}

// DefaultAudience is the token audience of Azure Resource Manager in the
// public cloud (azcore's arm/runtime cloud.AzurePublic), which the server
// accepts by default: a kv created with Resources:
// []string{amltest.DefaultAudience} issues tokens for it.
const DefaultAudience = "https://management.core.windows.net/"

// AADTokenAudience is the resource whose kv tokens the scoring URI of an
// AADToken endpoint accepts (Azure ML's data plane, https://ml.azure.com).
const AADTokenAudience = "https://ml.azure.com"

// Options configure a [Server]. KV is required; every other field is
// optional.
type Options struct {
	// KV issues the bearer tokens the server accepts: create it with
	// keyvaulttest.Options{Resources: []string{amltest.DefaultAudience}}
	// (or Options.Audience), or its tokens for the server are refused by
	// its token endpoint (400 invalid_scope).
	KV *keyvaulttest.Server
	// Audience is the token audience the server accepts (Server.Audience).
	// Default DefaultAudience.
	Audience string
	// Now is the server's clock (operation times, token expiry, ScoringLag).
	// Default time.Now.
	Now func() time.Time
	// Logger receives one event per request (never a key or token).
	// Default: discard.
	Logger *slog.Logger
	// Polls is the number of status polls an operation answers InProgress
	// before it ends. Default (0) 1; a negative number: none, the first
	// poll sees it ended.
	Polls int
	// RetryAfter is the Retry-After, in seconds, of a 202 Accepted and of
	// the polls of an operation in progress. 0: the header is omitted (a
	// legal answer, on which azcore polls at its own frequency).
	RetryAfter int
	// ScoringLag is how long after an operation succeeded the scoring
	// plane learns the key change: until then the old key keeps working
	// and the new one is refused. Default 0.
	ScoringLag time.Duration
	// LocationOnly makes a 202 Accepted carry only the headers the spec
	// declares (Location and Retry-After), without the
	// Azure-AsyncOperation header its example shows: azcore then polls the
	// Location URL.
	LocationOnly bool
}

// Server is an Azure Resource Manager test server for Azure ML online
// endpoints on one 127.0.0.1 TLS port. Its exported fields must not be
// changed. Its methods are safe for concurrent use.
type Server struct {
	// URL is https://127.0.0.1:<port>, the resourceManager endpoint of a
	// cloud.Configuration ([Server.Cloud]).
	URL string
	// Audience is the token audience the server accepts: clients ask kv
	// for the scope Audience + "/.default".
	Audience string

	kv           *keyvaulttest.Server
	now          func() time.Time
	log          *slog.Logger
	polls        int
	retryAfter   int
	scoringLag   time.Duration
	locationOnly bool

	tls *keyvaulttest.TLSServer

	mu        sync.Mutex
	endpoints map[string]*endpoint   // by lowercase resource id
	byScoring map[string]*endpoint   // by scoring slug
	ops       map[string]*operation  // by operation id
	denied    map[string]bool        // lowercase actions
	failNext  []failure              // FailOperations, in order
	neverNext int                    // NeverEnd
	aml       map[string]amlTokenRec // AMLToken scoring tokens

	faults faults
	count  counters
}

// Start starts a server with a certificate from keyvaulttest's process CA
// ([keyvaulttest.CertFile]: clients trust it through SSL_CERT_FILE) and
// returns it serving. Close it when done.
func Start(opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.KV == nil {
		return nil, errors.New("amltest: Options.KV is required")
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.Polls == 0:
		o.Polls = 1
	case o.Polls < 0:
		o.Polls = 0
	}
	ts, err := keyvaulttest.ListenTLS("127.0.0.1:0", o.Logger)
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL:          ts.URL,
		Audience:     o.Audience,
		kv:           o.KV,
		now:          o.Now,
		log:          o.Logger,
		polls:        o.Polls,
		retryAfter:   max(o.RetryAfter, 0),
		scoringLag:   max(o.ScoringLag, 0),
		locationOnly: o.LocationOnly,
		tls:          ts,
		endpoints:    map[string]*endpoint{},
		byScoring:    map[string]*endpoint{},
		ops:          map[string]*operation{},
		denied:       map[string]bool{},
		aml:          map[string]amlTokenRec{},
	}
	ts.Start(s)
	s.log.Info("amltest_started", "url", s.URL, "audience", s.Audience)
	return s, nil
}

// NewServer starts a server for a test and closes it when the test ends;
// it fails the test if the server cannot start. opts.KV is required.
func NewServer(t testing.TB, opts *Options) *Server {
	t.Helper()
	return keyvaulttest.StartForTest(t, Start, opts)
}

// Close stops the server: it ends delayed and hanging requests, closes
// every connection and waits for the handlers to return. Close may be
// called more than once.
func (s *Server) Close() {
	if !s.tls.Close() {
		return
	}
	s.log.Info("amltest_stopped", "url", s.URL)
}

// Cloud returns the azcore cloud.Configuration whose ResourceManager is
// this server (Endpoint URL, Audience) and whose authority host is kv's.
func (s *Server) Cloud() cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: s.kv.AuthorityHost,
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: s.URL, Audience: s.Audience},
		},
	}
}

// InjectFault queues f for requests of op: a request meets the first fault
// queued for its operation, which applies to f.Times requests before the
// next queued fault applies.
func (s *Server) InjectFault(op Op, f Fault) { s.faults.add(op, f) }

// ClearFaults removes every queued fault.
func (s *Server) ClearFaults() { s.faults.clear() }

// Deny makes the server refuse requests that need action, as ARM does
// when the caller's role lacks it: 403 AuthorizationFailed. The actions
// are Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read,
// .../write, .../delete, .../listKeys/action, .../regenerateKeys/action
// and .../token/action (case-insensitive).
func (s *Server) Deny(action string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[strings.ToLower(action)] = true
}

// Stats returns the counters.
func (s *Server) Stats() Stats { return s.count.stats() }

var _ http.Handler = (*Server)(nil)

// ServeHTTP serves the management API, the operation URLs and the scoring
// URIs.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.tls.Enter() {
		panic(http.ErrAbortHandler) // closing: no response
	}
	defer s.tls.Leave()

	start := time.Now()
	rec := &statusRecorder{StatusRecorder: keyvaulttest.StatusRecorder{ResponseWriter: w}}
	defer func() {
		// status 0: the connection was reset or dropped without a response.
		s.log.Info("amltest_request", "method", r.Method, "path", r.URL.Path,
			"op", string(rec.op), "status", rec.Status, "duration_ms", time.Since(start).Milliseconds())
	}()
	if id := r.Header.Get("x-ms-correlation-request-id"); id != "" {
		rec.Header().Set("x-ms-correlation-request-id", id)
	} else {
		rec.Header().Set("x-ms-correlation-request-id", newGUID())
	}
	s.route(rec, r)
}

// route serves r.
func (s *Server) route(w *statusRecorder, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) == 3 && parts[0] == "endpoints" && parts[2] == "score" {
		w.op = OpScore
		s.serveScore(w, r, parts[1])
		return
	}
	if id, ok := parseEndpointID(r.URL.Path); ok {
		s.serveEndpoint(w, r, id)
		return
	}
	if ws, ok := parseWorkspacePath(r.URL.Path); ok {
		w.op = OpGet
		if !s.manage(w, r, OpGet, http.MethodGet) {
			return
		}
		s.serveList(w, r, ws)
		return
	}
	if kind, opID, ok := parseOperationPath(r.URL.Path); ok {
		w.op = OpPoll
		if !s.manage(w, r, OpPoll, http.MethodGet) {
			return
		}
		s.servePoll(w, r, kind, opID)
		return
	}
	writeARMError(w, http.StatusNotFound, "NotFound",
		fmt.Sprintf("No HTTP resource was found that matches the request URI '%s%s'.", s.URL, r.URL.Path))
}

// manage runs the checks every management request passes, in ARM's order:
// the method, the bearer token (401), the api-version (400), then the
// request's fault. It counts the request and reports whether it may go on.
func (s *Server) manage(w http.ResponseWriter, r *http.Request, op Op, methods ...string) bool {
	if !slices.Contains(methods, r.Method) {
		writeARMError(w, http.StatusMethodNotAllowed, "MethodNotAllowed",
			fmt.Sprintf("The requested resource does not support http method '%s'.", r.Method))
		return false
	}
	if !s.authenticate(w, r) {
		return false
	}
	if c := s.count.op(op); c != nil {
		c.Add(1)
	}
	if !checkAPIVersion(w, r) {
		return false
	}
	return !s.applyFault(w, r, op)
}

// authenticate checks the request's bearer token with kv. When it is
// missing or not acceptable it answers 401 as ARM does and returns false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	tok = strings.TrimSpace(tok)
	msg := ""
	switch {
	case auth == "" || !strings.EqualFold(scheme, "Bearer") || tok == "":
		msg = "Authentication failed. The 'Authorization' header is missing or is not a Bearer token."
	case s.kv.CheckToken(tok, s.Audience) != nil:
		msg = "The access token is invalid."
	default:
		return true
	}
	s.count.challenges.Add(1)
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(
		`Bearer authorization_uri="%s/%s", error="invalid_token", error_description="%s"`,
		s.kv.AuthorityHost, s.kv.TenantID, msg))
	writeARMError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
	return false
}

// checkAPIVersion answers a missing or unsupported api-version as ARM
// does and reports whether the request may go on.
func checkAPIVersion(w http.ResponseWriter, r *http.Request) bool {
	v := r.URL.Query().Get("api-version")
	switch {
	case v == "":
		writeARMError(w, http.StatusBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.")
		return false
	case !slices.Contains(apiVersions, v):
		writeARMError(w, http.StatusBadRequest, "InvalidApiVersionParameter",
			fmt.Sprintf("The api-version '%s' is invalid. The supported versions are '%s'.", v, strings.Join(apiVersions, ",")))
		return false
	}
	return true
}

// authorize answers 403 AuthorizationFailed if the caller was denied
// action (Server.Deny) over scope, and reports whether it may go on.
func (s *Server) authorize(w http.ResponseWriter, action, scope string) bool {
	s.mu.Lock()
	denied := s.denied[strings.ToLower(action)]
	s.mu.Unlock()
	if !denied {
		return true
	}
	writeARMError(w, http.StatusForbidden, "AuthorizationFailed", fmt.Sprintf(
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
		s.kv.ClientID, s.kv.ClientID, action, scope))
	return false
}

// applyFault applies the next fault queued for op. It reports whether the
// request has been dealt with (reset, hung or answered).
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, op Op) bool {
	f, ok := s.faults.take(op)
	if !ok {
		return false
	}
	if s.tls.Disrupt(w, r, f.Delay, f.Reset, f.Hang) {
		return true
	}
	if f.Status != 0 {
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		code := f.Code
		if code == "" {
			code = faultCode(f.Status)
		}
		writeARMError(w, f.Status, code, "amltest: injected fault")
		return true
	}
	return false
}

// faultCode is ARM's error code for status: its text without spaces
// (TooManyRequests, InternalServerError, ServiceUnavailable, ...).
func faultCode(status int) string {
	return strings.ReplaceAll(http.StatusText(status), " ", "")
}

// armError is ARM's ErrorResponse (common-types v3).
type armError struct {
	Error armErrorDetail `json:"error"`
}

type armErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeARMError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("x-ms-error-code", code)
	writeJSON(w, status, armError{Error: armErrorDetail{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) { keyvaulttest.WriteJSON(w, status, v) }

// writeEmpty answers status with no body.
func writeEmpty(w http.ResponseWriter, status int) {
	w.Header().Set("x-ms-request-id", newGUID())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

// statusRecorder remembers the operation and the status written, for the
// request log.
type statusRecorder struct {
	keyvaulttest.StatusRecorder
	op Op
}

// newKey returns a random endpoint key: 32 characters of base64url.
func newKey() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newGUID() string { return keyvaulttest.NewGUID() }
