package keyvaulttest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// The Entra side: what MSAL Go does for a confidential client with a
// client secret whose authority is <AuthorityHost>/<tenant>:
//
//   - GET /<tenant>/v2.0/.well-known/openid-configuration (tenant discovery),
//     which must name authorization_endpoint, token_endpoint and an issuer
//     on the authority's host, and (for MSAL for Node, which otherwise
//     rejects the document) jwks_uri, served as an empty key set at
//     /<tenant>/discovery/v2.0/keys;
//   - POST /<tenant>/oauth2/v2.0/token with grant_type=client_credentials,
//     client_id, client_secret, scope="<resource>/.default openid
//     offline_access profile" and, from azidentity, claims (the CP1 client
//     capability), answered with token_type, expires_in and access_token.
//
// With instance discovery on (azidentity's default), MSAL first asks
// https://login.microsoftonline.com/common/discovery/instance about an
// authority host that is not Entra's own, which never reaches this server;
// /common/discovery/instance is served here all the same, for a client
// routed to it.

// tokens are the access tokens issued, opaque random strings.
type tokens struct {
	mu sync.Mutex
	m  map[string]tokenInfo
}

type tokenInfo struct {
	resource string
	expires  time.Time
}

func (ts *tokens) issue(resource string, expires time.Time) string {
	b := make([]byte, 32)
	rand.Read(b)
	tok := "kvt." + base64.RawURLEncoding.EncodeToString(b)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.m == nil {
		ts.m = map[string]tokenInfo{}
	}
	for t, info := range ts.m {
		if !info.expires.After(expires.Add(-24 * time.Hour)) {
			delete(ts.m, t) // long expired
		}
	}
	ts.m[tok] = tokenInfo{resource: resource, expires: expires}
	return tok
}

func (ts *tokens) lookup(tok string) (tokenInfo, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	info, ok := ts.m[tok]
	return info, ok
}

// authenticate checks the request's bearer token. When it is missing or
// not acceptable it answers 401 with Key Vault's challenge and returns
// false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	msg := ""
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	switch info, ok := s.tokens.lookup(strings.TrimSpace(tok)); {
	case auth == "" || !strings.EqualFold(scheme, "Bearer"):
		msg = "AKV10000: Request is missing a Bearer or PoP token."
	case !ok:
		msg = "AKV10022: Invalid token: not issued by this server."
	case info.resource != s.Resource:
		msg = "AKV10022: Invalid audience."
	case !s.now().Before(info.expires):
		msg = "[TokenExpired] Error validating token: 'S2S12086'."
	default:
		return true
	}
	s.count.challenges.Add(1)
	w.Header().Set("WWW-Authenticate",
		fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, s.AuthorityHost, s.TenantID, s.Resource))
	writeKVError(w, http.StatusUnauthorized, "Unauthorized", msg)
	return false
}

// sameResource compares resource identifiers as Entra does for the v1
// resource URIs of Azure's own services: with or without one trailing
// slash (scope https://management.core.windows.net/.default and
// https://management.core.windows.net//.default name one resource).
func sameResource(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// CheckToken reports whether token is an access token this server issued
// for resource (the vault's Resource or one of Options.Resources) that has
// not expired by the server's clock: nil if so, else an error saying why
// not (which never contains the token). Another server that trusts this
// one's Entra endpoint, such as a test ARM server, checks its bearer tokens
// with it.
func (s *Server) CheckToken(token, resource string) error {
	info, ok := s.tokens.lookup(token)
	switch {
	case token == "" || !ok:
		return errors.New("keyvaulttest: the token was not issued by this server")
	case !sameResource(info.resource, resource):
		return fmt.Errorf("keyvaulttest: the token is for another resource, %q", info.resource)
	case !s.now().Before(info.expires):
		return fmt.Errorf("keyvaulttest: the token expired at %s", info.expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// discoveryGET answers, as Entra does, a discovery request that is not a
// GET, or for another tenant, and reports whether the request may go on.
func (s *Server) discoveryGET(w http.ResponseWriter, r *http.Request, tenant string) bool {
	if r.Method != http.MethodGet {
		writeEntraError(w, http.StatusMethodNotAllowed, "invalid_request", 0, "Only GET is supported.")
		return false
	}
	if !strings.EqualFold(tenant, s.TenantID) {
		writeEntraError(w, http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID.", tenant))
		return false
	}
	return true
}

// serveOpenIDConfiguration answers MSAL's tenant discovery.
func (s *Server) serveOpenIDConfiguration(w http.ResponseWriter, r *http.Request, tenant string) {
	s.count.discovery.Add(1)
	if !s.discoveryGET(w, r, tenant) {
		return
	}
	base := s.AuthorityHost + "/" + s.TenantID
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post"},
		"response_types_supported":              []string{"token"},
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"tenant_region_scope":                   "NA",
		"cloud_instance_name":                   "keyvaulttest.local",
	})
}

// serveKeys answers the discovery document's jwks_uri with an empty key
// set: the server issues opaque tokens, signed with no key. MSAL for a
// confidential client never reads it, but requires the document to name it.
func (s *Server) serveKeys(w http.ResponseWriter, r *http.Request, tenant string) {
	s.count.discovery.Add(1)
	if !s.discoveryGET(w, r, tenant) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
}

// serveInstanceDiscovery answers Entra's instance discovery for this host.
func (s *Server) serveInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	s.count.discovery.Add(1)
	if r.Method != http.MethodGet {
		writeEntraError(w, http.StatusMethodNotAllowed, "invalid_request", 0, "Only GET is supported.")
		return
	}
	host := strings.TrimPrefix(s.AuthorityHost, "https://")
	tenant := "common"
	if ae := r.URL.Query().Get("authorization_endpoint"); ae != "" {
		u, err := url.Parse(ae)
		if err != nil || !strings.EqualFold(u.Host, host) {
			writeEntraError(w, http.StatusBadRequest, "invalid_instance", 50049,
				"Unknown or invalid instance.")
			return
		}
		if p := strings.Split(strings.TrimPrefix(u.Path, "/"), "/"); p[0] != "" {
			tenant = p[0]
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": s.AuthorityHost + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host,
			"preferred_cache":   host,
			"aliases":           []string{host},
		}},
	})
}

// serveToken is the client-credentials grant of the v2.0 token endpoint.
func (s *Server) serveToken(w *statusRecorder, r *http.Request, tenant string) {
	s.count.tokenRequests.Add(1)
	if s.applyFault(w, r, OpToken, "") {
		return
	}
	if r.Method != http.MethodPost {
		writeEntraError(w, http.StatusMethodNotAllowed, "invalid_request", 900561,
			"The endpoint only accepts POST requests.")
		return
	}
	if !strings.EqualFold(tenant, s.TenantID) {
		writeEntraError(w, http.StatusBadRequest, "invalid_request", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID.", tenant))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeEntraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded.")
		return
	}
	f := r.PostForm
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if id, sec, ok := r.BasicAuth(); ok && clientID == "" {
		clientID, secret = id, sec
	}
	if gt := f.Get("grant_type"); gt != "client_credentials" {
		writeEntraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt))
		return
	}
	if clientID == "" {
		writeEntraError(w, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'client_id'.")
		return
	}
	if clientID != s.ClientID {
		writeEntraError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, s.TenantID))
		return
	}
	if secret == "" {
		writeEntraError(w, http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(s.ClientSecret)) != 1 {
		writeEntraError(w, http.StatusUnauthorized, "invalid_client", 7000215,
			fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", s.ClientID))
		return
	}
	resource := ""
	for _, sc := range strings.Fields(f.Get("scope")) {
		switch sc {
		case "openid", "offline_access", "profile":
			continue
		}
		res, ok := strings.CutSuffix(sc, "/.default")
		if !ok || resource != "" {
			writeEntraError(w, http.StatusBadRequest, "invalid_scope", 1002012,
				fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", sc))
			return
		}
		resource = res
	}
	if !sameResource(resource, s.Resource) && !slices.ContainsFunc(s.resources, func(r string) bool { return sameResource(r, resource) }) {
		writeEntraError(w, http.StatusBadRequest, "invalid_scope", 500011,
			fmt.Sprintf("The resource principal named %s was not found in the tenant named %s.", resource, s.TenantID))
		return
	}
	secs := int64(s.tokenLifetime / time.Second)
	tok := s.tokens.issue(resource, s.now().Add(s.tokenLifetime))
	s.count.tokensIssued.Add(1)
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   tok,
	})
}

// writeEntraError writes an OAuth error as Entra does: error,
// error_description starting with the AADSTS code, error_codes, timestamp,
// trace_id, correlation_id and error_uri.
func writeEntraError(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	now := time.Now().UTC()
	trace, corr := newGUID(), newGUID()
	body := map[string]any{
		"error":          code,
		"timestamp":      now.Format("2006-01-02 15:04:05Z"),
		"trace_id":       trace,
		"correlation_id": corr,
	}
	if aadsts != 0 {
		desc = fmt.Sprintf("AADSTS%d: %s", aadsts, desc)
		body["error_codes"] = []int{aadsts}
		body["error_uri"] = fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts)
	}
	body["error_description"] = fmt.Sprintf("%s Trace ID: %s Correlation ID: %s Timestamp: %s",
		desc, trace, corr, now.Format("2006-01-02 15:04:05Z"))
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, status, body)
}
