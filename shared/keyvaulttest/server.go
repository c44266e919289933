package keyvaulttest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Defaults of [Options].
const (
	DefaultAddr          = "127.0.0.1:0"
	DefaultPageSize      = 2
	DefaultTokenLifetime = time.Hour
	// LocalhostVault is the vault's host name with Options.NamedVault: a
	// name under localhost (RFC 6761), which the server's certificate
	// covers and which the client must resolve to 127.0.0.1 itself.
	LocalhostVault = "vault.localhost"
	// MaxPageSize is Key Vault's largest page (maxresults).
	MaxPageSize = 25
)

// Options configure a [Server]; nil means the defaults. Every field is
// optional.
type Options struct {
	// Addr is the listen address; its host must be 127.0.0.1 or empty.
	// Default 127.0.0.1:0, a free port.
	Addr string
	// TenantID, ClientID and ClientSecret are the one application the
	// token endpoint knows. Default: random GUIDs and a random secret.
	TenantID, ClientID, ClientSecret string
	// PageSize is the number of items (versions, or secrets) per page of
	// a listing when the request has no maxresults (Key Vault's is 25). Default 2, so that
	// paging is exercised.
	PageSize int
	// ListOrder is the order a listing gives a secret's versions in; Key
	// Vault promises none. Default OldestFirst.
	ListOrder ListOrder
	// ListSeed seeds RandomOrder.
	ListSeed uint64
	// TokenLifetime is the expires_in of issued tokens, in whole seconds.
	// Default one hour.
	TokenLifetime time.Duration
	// Now is the server's clock for secret timestamps and token expiry.
	// Default time.Now.
	Now func() time.Time
	// Logger receives one event per request (never a value, token or
	// secret). Default: discard.
	Logger *slog.Logger
	// NamedVault addresses the vault by a host name, VaultURL
	// https://vault.localhost:<port> ([LocalhostVault]), and makes the
	// challenge's resource https://localhost:<port>. By default the vault
	// is https://127.0.0.1:<port> and the resource https://0.0.1:<port>,
	// which the Go SDK's challenge check accepts but no WHATWG URL parser
	// does (Node's reads 0.0.1 as the address 0.0.0.1, which 127.0.0.1 does
	// not end with): SDKs that check the resource that way, such as
	// @azure/keyvault-secrets, need NamedVault, and a client that resolves
	// vault.localhost to 127.0.0.1 (Go's resolver and glibc's do not).
	NamedVault bool
	// Resources are more resources the token endpoint issues tokens for,
	// besides the vault's own (Server.Resource), such as a test ARM
	// server's audience (package amltest): a scope <resource>/.default
	// gets a token for <resource>, which [Server.CheckToken] accepts for
	// it and the vault does not.
	Resources []string
}

// Server is an in-memory Key Vault (secrets) and Microsoft Entra token
// endpoint on one TLS port. Its exported fields must not be changed.
// Its methods are safe for concurrent use.
type Server struct {
	// VaultURL is https://127.0.0.1:<port> (https://vault.localhost:<port>
	// with Options.NamedVault), the vault's URL (KEYVAULT_URL).
	VaultURL string
	// AuthorityHost is https://127.0.0.1:<port>, the Entra authority host
	// (AZURE_AUTHORITY_HOST): the same server.
	AuthorityHost string
	// Resource is the resource the vault's challenge names, https://0.0.1:<port>
	// (https://localhost:<port> with Options.NamedVault): the azsecrets
	// client requires the vault's host to end with "." plus the resource's
	// host, and the server accepts tokens for Resource + "/.default".
	Resource string
	// TenantID, ClientID and ClientSecret are the credentials the token
	// endpoint accepts (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET).
	TenantID, ClientID, ClientSecret string

	certFile      string
	pageSize      int
	listOrder     ListOrder
	listSeed      uint64
	tokenLifetime time.Duration
	now           func() time.Time
	log           *slog.Logger
	resources     []string // Options.Resources

	tls *TLSServer

	store  store
	tokens tokens
	faults faults
	count  counters
}

// Start starts a server on Options.Addr, with a certificate from the
// process's test CA ([CertFile]), and returns it serving. Close it when
// done.
func Start(opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if _, err := listenPort(o.Addr); err != nil {
		return nil, err
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	if o.PageSize < 1 || o.PageSize > MaxPageSize {
		return nil, fmt.Errorf("keyvaulttest: page size %d is not within 1..%d", o.PageSize, MaxPageSize)
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = DefaultTokenLifetime
	}
	o.TokenLifetime = max(o.TokenLifetime.Round(time.Second), time.Second) // expires_in is in seconds
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.TenantID == "" {
		o.TenantID = newGUID()
	}
	if !validTenant(o.TenantID) {
		return nil, fmt.Errorf("keyvaulttest: tenant ID %q: use letters, digits, '-' and '.'", o.TenantID)
	}
	if o.ClientID == "" {
		o.ClientID = newGUID()
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "kvt~" + randomHex(20)
	}

	certFile, err := CertFile()
	if err != nil {
		return nil, err
	}
	ts, err := ListenTLS(o.Addr, o.Logger)
	if err != nil {
		return nil, err
	}
	port := strconv.Itoa(ts.Port)
	vaultURL, resource := "https://127.0.0.1:"+port, "https://0.0.1:"+port
	if o.NamedVault {
		vaultURL, resource = "https://"+LocalhostVault+":"+port, "https://localhost:"+port
	}
	s := &Server{
		VaultURL:      vaultURL,
		AuthorityHost: "https://127.0.0.1:" + port,
		Resource:      resource,
		TenantID:      strings.ToLower(o.TenantID),
		ClientID:      o.ClientID,
		ClientSecret:  o.ClientSecret,
		certFile:      certFile,
		pageSize:      o.PageSize,
		listOrder:     o.ListOrder,
		listSeed:      o.ListSeed,
		tokenLifetime: o.TokenLifetime,
		now:           o.Now,
		log:           o.Logger,
		resources:     slices.Clone(o.Resources),
		tls:           ts,
	}
	ts.Start(s)
	s.log.Info("keyvaulttest_started", "vault_url", s.VaultURL, "tenant_id", s.TenantID, "client_id", s.ClientID)
	return s, nil
}

// NewServer starts a server for a test or benchmark and closes it when the
// test ends; it fails the test if the server cannot start.
func NewServer(t testing.TB, opts *Options) *Server {
	t.Helper()
	return StartForTest(t, Start, opts)
}

// Close stops the server: it ends delayed and hanging requests, closes
// every connection and waits for the handlers to return. The stored
// secrets are lost. Close may be called more than once.
func (s *Server) Close() {
	if !s.tls.Close() {
		return
	}
	s.log.Info("keyvaulttest_stopped", "vault_url", s.VaultURL)
}

// Env returns the environment that points the production code at this
// server, as KEY=value lines: KEYVAULT_URL, SSL_CERT_FILE, AZURE_AUTHORITY_HOST,
// AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.
//
// A process reads SSL_CERT_FILE once: set it before its first TLS
// connection. azidentity's credentials also need instance discovery off
// (DisableInstanceDiscovery) for an authority host that is not Entra's,
// or MSAL asks login.microsoftonline.com about it first.
func (s *Server) Env() []string {
	return []string{
		"KEYVAULT_URL=" + s.VaultURL,
		"SSL_CERT_FILE=" + s.certFile,
		"AZURE_AUTHORITY_HOST=" + s.AuthorityHost,
		"AZURE_TENANT_ID=" + s.TenantID,
		"AZURE_CLIENT_ID=" + s.ClientID,
		"AZURE_CLIENT_SECRET=" + s.ClientSecret,
	}
}

// InjectFault queues f for requests of op: a request meets the first fault
// queued for its operation, which applies to f.Times requests (0: to every
// request until ClearFaults) before the next queued fault applies.
func (s *Server) InjectFault(op Op, f Fault) { s.faults.add(op, f) }

// ClearFaults removes every queued fault.
func (s *Server) ClearFaults() { s.faults.clear() }

// Stats returns the request counters.
func (s *Server) Stats() Stats { return s.count.stats() }

var _ http.Handler = (*Server)(nil)

// ServeHTTP routes a request to the vault or to the token endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.tls.Enter() {
		abort() // closing
	}
	defer s.tls.Leave()

	start := time.Now()
	rec := &statusRecorder{StatusRecorder: StatusRecorder{ResponseWriter: w}}
	defer func() {
		// status 0: the connection was reset or dropped without a response.
		s.log.Info("keyvaulttest_request", "method", r.Method, "path", r.URL.Path,
			"op", string(rec.op), "status", rec.Status, "duration_ms", time.Since(start).Milliseconds())
	}()
	s.route(rec, r)
}

// route serves r.
func (s *Server) route(w *statusRecorder, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/secrets" || strings.HasPrefix(path, "/secrets/"):
		s.serveVault(w, r)
		return
	case path == "/common/discovery/instance":
		s.serveInstanceDiscovery(w, r)
		return
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case len(parts) == 4 && parts[1] == "v2.0" && parts[2] == ".well-known" && parts[3] == "openid-configuration":
		s.serveOpenIDConfiguration(w, r, parts[0])
	case len(parts) == 4 && parts[1] == "discovery" && parts[2] == "v2.0" && parts[3] == "keys":
		s.serveKeys(w, r, parts[0])
	case len(parts) == 4 && parts[1] == "oauth2" && parts[2] == "v2.0" && parts[3] == "token":
		w.op = OpToken
		s.serveToken(w, r, parts[0])
	default:
		writeKVError(w, http.StatusNotFound, "NotFound", "keyvaulttest: no such endpoint")
	}
}

// applyFault applies the next fault queued for op that applies to the
// secret name ("" for requests of no secret). It reports whether the
// request has been dealt with (reset, hung or answered).
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, op Op, name string) bool {
	f, ok := s.faults.take(op, name)
	if !ok {
		return false
	}
	if s.tls.Disrupt(w, r, f.Delay, f.Reset, f.Hang) {
		return true
	}
	if f.Status != 0 {
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
		}
		if op == OpToken {
			writeEntraError(w, f.Status, faultEntraError(f.Status), 0, "keyvaulttest: injected fault")
		} else {
			writeKVError(w, f.Status, faultKVCode(f.Status), "keyvaulttest: injected fault")
		}
		return true
	}
	return false
}

// faultKVCode is Key Vault's error code for status: Throttled for 429,
// otherwise its text without spaces (InternalServerError,
// ServiceUnavailable, ...).
func faultKVCode(status int) string {
	if status == http.StatusTooManyRequests {
		return "Throttled"
	}
	return strings.ReplaceAll(http.StatusText(status), " ", "")
}

func faultEntraError(status int) string {
	if status == http.StatusTooManyRequests || status >= 500 {
		return "temporarily_unavailable"
	}
	return "invalid_request"
}

// kvError is Key Vault's error body.
type kvError struct {
	Error kvErrorDetail `json:"error"`
}

type kvErrorDetail struct {
	Code       string         `json:"code"`
	Message    string         `json:"message"`
	InnerError *kvErrorDetail `json:"innererror,omitempty"`
}

func writeKVError(w http.ResponseWriter, status int, code, msg string) {
	writeKVErrorInner(w, status, code, msg, "")
}

func writeKVErrorInner(w http.ResponseWriter, status int, code, msg, inner string) {
	body := kvError{Error: kvErrorDetail{Code: code, Message: msg}}
	if inner != "" {
		body.Error.InnerError = &kvErrorDetail{Code: inner}
	}
	w.Header().Set("x-ms-error-code", code)
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) { WriteJSON(w, status, v) }

// statusRecorder remembers the operation and the status written, for the
// request log.
type statusRecorder struct {
	StatusRecorder
	op Op // the request's operation, "" for others
}

// listenPort checks a listen address, whose host must be 127.0.0.1 or
// empty, and returns its port ("0" for none).
func listenPort(addr string) (string, error) {
	if addr == "" {
		return "0", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("keyvaulttest: address %q: %w", addr, err)
	}
	if host != "" && host != "127.0.0.1" {
		return "", fmt.Errorf("keyvaulttest: address %q: the host must be 127.0.0.1", addr)
	}
	if port == "" {
		return "0", nil
	}
	return port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newGUID() string { return NewGUID() }

// validTenant is azidentity's rule for tenant IDs.
func validTenant(t string) bool {
	if t == "" {
		return false
	}
	for _, r := range t {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}
