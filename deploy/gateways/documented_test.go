package gateways

// This file checks the documented gateway configurations, Envoy
// (envoy/envoy.yaml) and Azure API Management (apim/*.xml), which cannot
// run here: it parses them and checks what they name against the app,
// built in-process from the repository's modelauth.json. Each check
// returns its problems, so that TestDocumented*Mutations can show that a
// wrong edit of each file is caught.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/authn"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keysecret"
)

// The APIM policies name the function app through the named value
// {{modelauth-function-app}}; the test app's issuer uses docFunctionApp.
const (
	docNamedValue  = "{{modelauth-function-app}}"
	docFunctionApp = "modelauth-doc"
	docHost        = docFunctionApp + ".azurewebsites.net"
)

// docIdentityHeaders are the identity headers validate sets.
var docIdentityHeaders = []string{authn.HeaderService, authn.HeaderSubject, authn.HeaderAuthType, authn.HeaderKeyType}

// docApp is the app in-process, configured with the repository's
// modelauth.json and an issuer on docHost.
type docApp struct {
	h        http.Handler
	admin    string
	services map[string]string // name -> authMode
}

func docNewApp(t *testing.T) *docApp {
	t.Helper()
	cfgPath, err := filepath.Abs(filepath.Join("..", "..", "modelauth.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir = cfgPath, t.TempDir()
	s.Issuer = "https://" + docHost + "/api"
	a, err := functions.NewApp(context.Background(), s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	select {
	case <-a.StoreReady():
	case <-time.After(10 * time.Second):
		t.Fatal("the app's store did not become ready")
	}
	adm, err := a.Store.GetSecret(context.Background(), keysecret.AdminKeySecret, "")
	if err != nil {
		t.Fatal(err)
	}
	app := &docApp{h: a.Handler(), admin: adm.Value, services: map[string]string{}}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Services []struct{ Name, AuthMode string }
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, svc := range cfg.Services {
		app.services[svc.Name] = cmpOr(svc.AuthMode, "key")
	}
	return app
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (a *docApp) do(method, path, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	return rec
}

// key returns the primary key of a key-mode service.
func (a *docApp) key(t *testing.T, service string) string {
	t.Helper()
	rec := a.do("GET", "/api/services/"+service+"/keys", a.admin)
	var keys struct{ PrimaryKey string }
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &keys) != nil || keys.PrimaryKey == "" {
		t.Fatalf("get_keys %s = %d %s", service, rec.Code, rec.Body)
	}
	return keys.PrimaryKey
}

// token returns a token of a token-mode service, its header and claims.
func (a *docApp) token(service string) (raw string, header, claims map[string]any, err error) {
	rec := a.do("POST", "/api/services/"+service+"/token", a.admin)
	var tok struct{ AccessToken string }
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &tok) != nil {
		return "", nil, nil, fmt.Errorf("get_token %s = %d %s", service, rec.Code, rec.Body)
	}
	parts := strings.Split(tok.AccessToken, ".")
	if len(parts) != 3 {
		return "", nil, nil, fmt.Errorf("get_token %s: not a JWS", service)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			return "", nil, nil, fmt.Errorf("get_token %s: bad JWS part %d", service, i)
		}
	}
	return tok.AccessToken, header, claims, nil
}

// docServiceOf returns the {service} of an /api/services/{service}/... path.
func docServiceOf(path string) string {
	rest, ok := strings.CutPrefix(path, functions.RoutePrefix+"/services/")
	if !ok {
		return ""
	}
	service, _, _ := strings.Cut(rest, "/")
	return service
}

// docCheckValidate checks that path reaches validate for a key-mode
// service: the service is in modelauth.json as key mode, a key is
// accepted with the identity headers, and no credential is refused with a
// challenge. It returns validate's 200 and 401 answers.
func (a *docApp) docCheckValidate(t *testing.T, path string, problem func(string, ...any)) (ok, refused *httptest.ResponseRecorder) {
	t.Helper()
	service := docServiceOf(path)
	if mode, found := a.services[service]; !found || mode != "key" {
		problem("%s names service %q, authMode %q in modelauth.json; want a key-mode service", path, service, mode)
		return nil, nil
	}
	ok = a.do("GET", path, a.key(t, service))
	if ok.Code != 200 || ok.Header().Get(authn.HeaderAuthType) != authn.TypeKey {
		problem("GET %s with %s's key = %d (auth type %q); want validate's 200", path, service, ok.Code, ok.Header().Get(authn.HeaderAuthType))
		return nil, nil
	}
	refused = a.do("GET", path, "")
	if refused.Code != 401 || refused.Header().Get("WWW-Authenticate") == "" {
		problem("GET %s without credentials = %d; want 401 with WWW-Authenticate", path, refused.Code)
		return nil, nil
	}
	return ok, refused
}

// docSameNames reports whether got and want hold the same header names,
// compared without regard to case.
func docSameNames(got, want []string) bool {
	norm := func(s []string) []string {
		out := make([]string, len(s))
		for i, v := range s {
			out[i] = strings.ToLower(v)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(got), norm(want)) && len(got) == len(want)
}

func docContainsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(v string) bool { return strings.EqualFold(v, s) })
}

// docIdentityOf returns the X-ModelAuth-* header names of an answer.
func docIdentityOf(h http.Header) []string {
	var out []string
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), authn.HeaderPrefix) {
			out = append(out, k)
		}
	}
	return out
}

// --- Envoy ---

// docAt walks a YAML document: string keys for mappings, ints for
// sequences; nil when the path is absent.
func docAt(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func docList(v any) []any { s, _ := v.([]any); return s }
func docStr(v any) string { s, _ := v.(string); return s }

// envoyExact returns the exact names of a ListStringMatcher, reporting
// any pattern Envoy would not match against its lower-case header names.
func envoyExact(m any, what string, problem func(string, ...any)) []string {
	var out []string
	for _, p := range docList(docAt(m, "patterns")) {
		exact := docStr(docAt(p, "exact"))
		if exact == "" {
			problem("%s: pattern %v is not an exact name", what, p)
			continue
		}
		if exact != strings.ToLower(exact) && docAt(p, "ignore_case") != true {
			problem("%s: %q is not lower case: Envoy's header names are, so it never matches", what, exact)
		}
		out = append(out, exact)
	}
	return out
}

// envoyEndpoint returns host:port of a static cluster's first endpoint.
func envoyEndpoint(doc any, cluster string) string {
	for _, c := range docList(docAt(doc, "static_resources", "clusters")) {
		if docStr(docAt(c, "name")) != cluster {
			continue
		}
		sa := docAt(c, "load_assignment", "endpoints", 0, "lb_endpoints", 0, "endpoint", "address", "socket_address")
		return fmt.Sprintf("%v:%v", docAt(sa, "address"), docAt(sa, "port_value"))
	}
	return ""
}

func envoyProblems(t *testing.T, data []byte, app *docApp) []string {
	t.Helper()
	var problems []string
	problem := func(f string, args ...any) { problems = append(problems, fmt.Sprintf(f, args...)) }
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return []string{"envoy.yaml: " + err.Error()}
	}
	var hcm any
	for _, l := range docList(docAt(doc, "static_resources", "listeners")) {
		if docAt(l, "address", "socket_address", "port_value") == 8080 {
			hcm = docAt(l, "filter_chains", 0, "filters", 0, "typed_config")
		}
	}
	if hcm == nil {
		return []string{"no listener on port 8080 with an HTTP connection manager"}
	}

	// Filter order: strip forged headers, then ext_authz, then the router.
	index := map[string]int{}
	filters := docList(docAt(hcm, "http_filters"))
	for i, f := range filters {
		index[docStr(docAt(f, "name"))] = i
	}
	lua, luaOK := index["envoy.filters.http.lua"]
	authz, authzOK := index["envoy.filters.http.ext_authz"]
	router, routerOK := index["envoy.filters.http.router"]
	if !luaOK || !authzOK || !routerOK || lua > authz || authz > router || router != len(filters)-1 {
		problem("http_filters %v; want lua, then ext_authz, then router last", index)
	}
	if luaOK {
		code := docStr(docAt(filters[lua], "typed_config", "default_source_code", "inline_string"))
		for _, want := range []string{"envoy_on_request", "string.lower(name)", `"_", "-"`, `"` + authn.HeaderPrefix + `"`, fmt.Sprint(len(authn.HeaderPrefix)), "headers:remove(name)"} {
			if !strings.Contains(code, want) {
				problem("the Lua filter does not contain %q: it must remove every %s* header, any case, also with '_'", want, authn.HeaderPrefix)
			}
		}
	}
	if !authzOK {
		return problems
	}
	ea := docAt(filters[authz], "typed_config")
	hs := docAt(ea, "http_service")

	// validate, through the route Envoy calls: path_prefix + original path.
	prefix := docStr(docAt(hs, "path_prefix"))
	ok, refused := app.docCheckValidate(t, prefix+"/demo/score", problem)
	if got := envoyEndpoint(doc, docStr(docAt(hs, "server_uri", "cluster"))); got != "127.0.0.1:7071" {
		problem("ext_authz cluster %q is at %q; want modelauth's local host 127.0.0.1:7071", docAt(hs, "server_uri", "cluster"), got)
	}
	if d, err := time.ParseDuration(docStr(docAt(hs, "server_uri", "timeout"))); err != nil || d <= 0 || d > 30*time.Second {
		problem("ext_authz server_uri.timeout %v; want a timeout of at most 30s", docAt(hs, "server_uri", "timeout"))
	}
	if v, set := docAt(ea, "failure_mode_allow").(bool); !set || v {
		problem("failure_mode_allow %v; want false, written out", docAt(ea, "failure_mode_allow"))
	}
	if c := docAt(ea, "status_on_error", "code"); c != "ServiceUnavailable" && c != 503 {
		problem("status_on_error %v; want ServiceUnavailable", c)
	}

	// Headers: the credential to validate, the identity to the model, the
	// refusal's headers to the client.
	sent := envoyExact(docAt(ea, "allowed_headers"), "allowed_headers", problem)
	sent = append(sent, envoyExact(docAt(hs, "authorization_request", "allowed_headers"), "authorization_request.allowed_headers", problem)...)
	if !docContainsFold(sent, "authorization") {
		problem("allowed_headers %v lack authorization", sent)
	}
	upstream := envoyExact(docAt(hs, "authorization_response", "allowed_upstream_headers"), "allowed_upstream_headers", problem)
	if !docSameNames(upstream, docIdentityHeaders) {
		problem("allowed_upstream_headers %v; want exactly authn's %v", upstream, docIdentityHeaders)
	}
	if ok != nil && !docSameNames(docIdentityOf(ok.Header()), upstream) {
		problem("validate answers identity headers %v; allowed_upstream_headers copy %v", docIdentityOf(ok.Header()), upstream)
	}
	client := envoyExact(docAt(hs, "authorization_response", "allowed_client_headers"), "allowed_client_headers", problem)
	for _, h := range []string{"WWW-Authenticate", "Retry-After", "Content-Type", "Cache-Control"} {
		if !docContainsFold(client, h) {
			problem("allowed_client_headers %v lack %s", client, h)
		}
	}
	if refused != nil {
		for h := range refused.Header() {
			if !docContainsFold(client, h) {
				problem("validate's 401 carries %s, which allowed_client_headers %v drop", h, client)
			}
		}
	}

	// The route to the model: /demo/ -> /, without the credential.
	var routed bool
	rc := docAt(hcm, "route_config")
	removed := docList(docAt(rc, "request_headers_to_remove"))
	for _, vh := range docList(docAt(rc, "virtual_hosts")) {
		for _, r := range docList(docAt(vh, "routes")) {
			if docAt(r, "match", "prefix") != "/demo/" {
				continue
			}
			routed = docAt(r, "route", "prefix_rewrite") == "/" && envoyEndpoint(doc, docStr(docAt(r, "route", "cluster"))) == "127.0.0.1:5001"
			removed = slices.Concat(removed, docList(docAt(vh, "request_headers_to_remove")), docList(docAt(r, "request_headers_to_remove")))
		}
	}
	if !routed {
		problem("no route sends /demo/ to the model at 127.0.0.1:5001 with prefix_rewrite /")
	}
	if !slices.ContainsFunc(removed, func(v any) bool { return strings.EqualFold(docStr(v), "authorization") }) {
		problem("request_headers_to_remove %v: the model would receive the caller's Authorization", removed)
	}

	// ext_authz's own 503 gets Retry-After and the error body.
	var mapped bool
	for _, m := range docList(docAt(hcm, "local_reply_config", "mappers")) {
		f := docAt(m, "filter", "and_filter", "filters")
		if docAt(f, 0, "status_code_filter", "comparison", "value", "default_value") != 503 ||
			!slices.Contains(docList(docAt(f, 1, "response_flag_filter", "flags")), any("UAEX")) {
			continue
		}
		var retry bool
		for _, h := range docList(docAt(m, "headers_to_add")) {
			if n, err := strconv.Atoi(docStr(docAt(h, "header", "value"))); strings.EqualFold(docStr(docAt(h, "header", "key")), "Retry-After") && err == nil && n > 0 {
				retry = true
			}
		}
		code := docAt(m, "body_format_override", "json_format", "error", "code")
		mapped = retry && code == string(apierror.Unavailable) && docAt(m, "body_format_override", "json_format", "error", "message") != nil
	}
	if !mapped {
		problem("no local_reply_config mapper gives ext_authz's 503 (UAEX) a Retry-After and a %s error body", apierror.Unavailable)
	}
	return problems
}

// --- Azure API Management ---

// docNode is any XML element.
type docNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []docNode  `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n *docNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// children returns n's child elements called name.
func (n *docNode) children(name string) []*docNode {
	var out []*docNode
	for i := range n.Nodes {
		if n.Nodes[i].XMLName.Local == name {
			out = append(out, &n.Nodes[i])
		}
	}
	return out
}

func (n *docNode) child(name string) *docNode {
	if c := n.children(name); len(c) > 0 {
		return c[0]
	}
	return &docNode{}
}

// all returns every element called name below n.
func (n *docNode) all(name string) []*docNode {
	var out []*docNode
	for i := range n.Nodes {
		c := &n.Nodes[i]
		if c.XMLName.Local == name {
			out = append(out, c)
		}
		out = append(out, c.all(name)...)
	}
	return out
}

func (n *docNode) text() string { return strings.TrimSpace(n.Text) }

// docURL resolves the named value and parses an APIM URL on docHost.
func docURL(s, what string, problem func(string, ...any)) *url.URL {
	u, err := url.Parse(strings.ReplaceAll(s, docNamedValue, docFunctionApp))
	if err != nil || u.Scheme != "https" || u.Host != docHost {
		problem("%s %q; want https://%s.azurewebsites.net/...", what, s, docNamedValue)
		return &url.URL{}
	}
	return u
}

// apimCommonProblems checks what both policies share: the identity headers
// they set (returned by name) and the credential and forged headers kept
// from the model.
func apimCommonProblems(inbound *docNode, problem func(string, ...any)) map[string]string {
	values := map[string]string{}
	var names []string
	deleted := false
	for _, h := range inbound.children("set-header") {
		name := h.attr("name")
		switch {
		case strings.EqualFold(name, "Authorization"):
			deleted = deleted || h.attr("exists-action") == "delete"
		case strings.HasPrefix(strings.ToLower(name), authn.HeaderPrefix):
			if h.attr("exists-action") != "override" {
				problem("set-header %s: exists-action %q; want override, so a client's value never survives", name, h.attr("exists-action"))
			}
			names = append(names, name)
			values[strings.ToLower(name)] = h.child("value").text()
		}
	}
	if !docSameNames(names, docIdentityHeaders) {
		problem("the policy sets identity headers %v; want exactly authn's %v", names, docIdentityHeaders)
	}
	if !deleted {
		problem("no set-header name=\"Authorization\" exists-action=\"delete\" in inbound: the model would receive the credential")
	}
	var guarded bool
	for _, w := range inbound.all("when") {
		c := w.attr("condition")
		if strings.Contains(c, "Replace('_', '-')") && strings.Contains(c, `StartsWith("X-ModelAuth-", StringComparison.OrdinalIgnoreCase)`) &&
			w.child("return-response").child("set-status").attr("code") == "400" {
			guarded = true
		}
	}
	if !guarded {
		problem("no choose refuses other X-ModelAuth-* headers (any case, also with '_'): APIM cannot delete by prefix")
	}
	return values
}

// apimInbound parses an APIM policy document and returns its inbound
// section and the one element named name in it.
func apimInbound(data []byte, name string) (inbound, elem *docNode, err error) {
	var doc docNode
	if err := xml.Unmarshal(data, &doc); err != nil || doc.XMLName.Local != "policies" {
		return nil, nil, fmt.Errorf("not a <policies> document: %v", err)
	}
	inbound = doc.child("inbound")
	if n := inbound.children(name); len(n) != 1 {
		return nil, nil, fmt.Errorf("inbound has %d %s; want 1", len(n), name)
	}
	return inbound, inbound.children(name)[0], nil
}

func apimKeyProblems(t *testing.T, data []byte, app *docApp) []string {
	t.Helper()
	var problems []string
	problem := func(f string, args ...any) { problems = append(problems, fmt.Sprintf(f, args...)) }
	inbound, sr, err := apimInbound(data, "send-request")
	if err != nil {
		return []string{err.Error()}
	}
	v := sr.attr("response-variable-name")
	if sr.attr("mode") != "new" || v == "" {
		problem("send-request mode %q, response-variable-name %q; want mode new and a variable", sr.attr("mode"), v)
	}
	if n, err := strconv.Atoi(sr.attr("timeout")); err != nil || n <= 0 || n > 30 {
		problem("send-request timeout %q; want at most 30 seconds", sr.attr("timeout"))
	}
	if sr.child("set-method").text() == "" {
		problem("send-request has no set-method (required with mode new)")
	}
	var copied bool
	for _, h := range sr.children("set-header") {
		copied = copied || strings.EqualFold(h.attr("name"), "Authorization") &&
			strings.Contains(h.child("value").text(), `context.Request.Headers.GetValueOrDefault("Authorization"`)
	}
	if !copied {
		problem("send-request does not copy the client's Authorization header")
	}
	u := docURL(sr.child("set-url").text(), "send-request set-url", problem)
	ok, _ := app.docCheckValidate(t, u.Path, problem)

	// Refusals: validate's answer returned whole; no answer at all: 503
	// with Retry-After.
	var passed, unavailable bool
	for _, w := range inbound.all("when") {
		c, rr := w.attr("condition"), w.child("return-response")
		if strings.Contains(c, `"`+v+`"`) && strings.Contains(c, ".StatusCode != 200") && rr.attr("response-variable-name") == v {
			passed = true
		}
		if strings.Contains(c, `"`+v+`"`) && strings.Contains(c, "== null") && rr.child("set-status").attr("code") == "503" {
			var body struct {
				Error struct{ Code, Message string }
			}
			json.Unmarshal([]byte(rr.child("set-body").text()), &body)
			for _, h := range rr.children("set-header") {
				n, err := strconv.Atoi(h.child("value").text())
				unavailable = unavailable || strings.EqualFold(h.attr("name"), "Retry-After") && err == nil && n > 0 &&
					body.Error.Code == string(apierror.Unavailable) && body.Error.Message != ""
			}
		}
	}
	if !passed {
		problem("no when returns validate's answer (return-response response-variable-name=%q) when its StatusCode != 200", v)
	}
	if !unavailable {
		problem("no when answers 503 with Retry-After and a %s body when %q is null (validate unreachable)", apierror.Unavailable, v)
	}

	values := apimCommonProblems(inbound, problem)
	for _, name := range docIdentityHeaders {
		want := fmt.Sprintf(`((IResponse)context.Variables["%s"]).Headers.GetValueOrDefault("%s"`, v, name)
		if got := values[strings.ToLower(name)]; !strings.Contains(strings.ToLower(got), strings.ToLower(want)) {
			problem("set-header %s = %q; want it copied from validate's answer: %s...", name, got, want)
		}
	}
	if ok != nil && !docSameNames(docIdentityOf(ok.Header()), docIdentityHeaders) {
		problem("validate answers identity headers %v; the policy copies %v", docIdentityOf(ok.Header()), docIdentityHeaders)
	}
	return problems
}

func apimTokenProblems(t *testing.T, data []byte, app *docApp) []string {
	t.Helper()
	var problems []string
	problem := func(f string, args ...any) { problems = append(problems, fmt.Sprintf(f, args...)) }
	inbound, vj, err := apimInbound(data, "validate-jwt")
	if err != nil {
		return []string{err.Error()}
	}
	jv := vj.attr("output-token-variable-name")
	if vj.attr("header-name") != "Authorization" || vj.attr("require-scheme") != "Bearer" || jv == "" {
		problem("validate-jwt header-name %q, require-scheme %q, output-token-variable-name %q; want Authorization, Bearer and a variable",
			vj.attr("header-name"), vj.attr("require-scheme"), jv)
	}
	if vj.attr("require-expiration-time") != "true" || vj.attr("require-signed-tokens") == "false" {
		problem("validate-jwt require-expiration-time %q, require-signed-tokens %q; want true and not false",
			vj.attr("require-expiration-time"), vj.attr("require-signed-tokens"))
	}

	// The service and the discovery document.
	var audiences, issuers []string
	for _, a := range vj.child("audiences").children("audience") {
		audiences = append(audiences, a.text())
	}
	for _, i := range vj.child("issuers").children("issuer") {
		issuers = append(issuers, strings.ReplaceAll(i.text(), docNamedValue, docFunctionApp))
	}
	if len(audiences) != 1 || len(issuers) != 1 {
		return append(problems, fmt.Sprintf("audiences %v, issuers %v; want one of each", audiences, issuers))
	}
	service := audiences[0]
	if mode := app.services[service]; mode != "token" {
		problem("audience %q is a service of authMode %q in modelauth.json; want a token-mode service", service, mode)
	}
	oc := docURL(vj.child("openid-config").attr("url"), "openid-config url", problem)
	rec := app.do("GET", oc.Path, "")
	var disco struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &disco) != nil || disco.Issuer == "" {
		problem("GET %s = %d; want the app's openid-configuration", oc.Path, rec.Code)
	} else if disco.Issuer != issuers[0] {
		problem("the discovery document's issuer %q; the policy's %q", disco.Issuer, issuers[0])
	}

	// A real token: its iss, aud and alg are what the policy accepts.
	raw, header, claims, err := app.token(service)
	if err != nil {
		problem("%v", err)
		return problems
	}
	if claims["iss"] != issuers[0] || claims["aud"] != service {
		problem("the app's token for %s has iss %v, aud %v; the policy accepts issuer %q, audience %q", service, claims["iss"], claims["aud"], issuers[0], service)
	}
	var pinned string
	for _, w := range inbound.all("when") {
		m := regexp.MustCompile(`\(\(Jwt\)context\.Variables\["` + regexp.QuoteMeta(jv) + `"\]\)\.Algorithm != "(\w+)"`).FindStringSubmatch(w.attr("condition"))
		if m != nil && w.child("return-response").child("set-status").attr("code") == "401" {
			pinned = m[1]
		}
	}
	if pinned == "" || pinned != header["alg"] || !slices.Contains(disco.Algs, pinned) {
		problem("the policy pins algorithm %q (refusing others with 401); the app signs with %v and publishes %v", pinned, header["alg"], disco.Algs)
	}

	// The identity: what validate itself answers for that token.
	values := apimCommonProblems(inbound, problem)
	id := app.do("GET", "/api/services/"+service+"/validate", raw)
	if id.Code != 200 {
		problem("validate of the app's own token = %d", id.Code)
		return problems
	}
	for _, name := range []string{authn.HeaderService, authn.HeaderAuthType, authn.HeaderKeyType} {
		if got, want := values[strings.ToLower(name)], id.Header().Get(name); got != want {
			problem("set-header %s = %q; validate answers %q for the service's tokens", name, got, want)
		}
	}
	if got, want := values[strings.ToLower(authn.HeaderSubject)], fmt.Sprintf(`@(((Jwt)context.Variables["%s"]).Subject)`, jv); got != want ||
		id.Header().Get(authn.HeaderSubject) != claims["sub"] {
		problem("set-header %s = %q; want %s, the token's sub, as validate answers (%q)", authn.HeaderSubject, got, want, id.Header().Get(authn.HeaderSubject))
	}
	return problems
}

// --- Tests ---

type docMutation struct{ name, old, new string }

// docRun checks a file and each mutation of it: the file must pass, every
// mutation must be caught.
func docRun(t *testing.T, path string, check func(*testing.T, []byte, *docApp) []string, mutations []docMutation) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	app := docNewApp(t)
	for _, p := range check(t, data, app) {
		t.Errorf("%s: %s", path, p)
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			if !strings.Contains(string(data), m.old) {
				t.Fatalf("%s does not contain %q: update the mutation", path, m.old)
			}
			mutated := strings.Replace(string(data), m.old, m.new, 1)
			if problems := check(t, []byte(mutated), app); len(problems) == 0 {
				t.Errorf("replacing %q with %q in %s went unnoticed", m.old, m.new, path)
			} else {
				t.Logf("caught: %s", problems[0])
			}
		})
	}
}

func TestDocumentedEnvoy(t *testing.T) {
	docRun(t, filepath.Join("envoy", "envoy.yaml"), envoyProblems, []docMutation{
		{"path prefix not validate", "path_prefix: /api/services/demo/validate", "path_prefix: /api/services/demo/score"},
		{"unknown service", "path_prefix: /api/services/demo/validate", "path_prefix: /api/services/nosuch/validate"},
		{"token service", "path_prefix: /api/services/demo/validate", "path_prefix: /api/services/token-demo/validate"},
		{"identity header missing", "\n                    - exact: x-modelauth-key-type", ""},
		{"identity header misspelt", "exact: x-modelauth-auth-type", "exact: x-modelauth-authtype"},
		{"identity header upper case", "exact: x-modelauth-subject", "exact: X-ModelAuth-Subject"},
		{"retry-after dropped", "\n                    - exact: retry-after", ""},
		{"cache-control dropped", "exact: cache-control", "exact: cache-controls"},
		{"authorization kept", "request_headers_to_remove: [authorization]", "request_headers_to_remove: []"},
		{"fail open", "failure_mode_allow: false", "failure_mode_allow: true"},
		{"status on error 403", "status_on_error: { code: ServiceUnavailable }", "status_on_error: { code: Forbidden }"},
		{"lua prefix", `== "x-modelauth-"`, `== "x-modelauth"`},
		{"lua underscores", `string.gsub(string.lower(name), "_", "-")`, `string.lower(name)`},
		{"no retry-after on 503", `key: retry-after, value: "5"`, `key: retry-after, value: "soon"`},
		{"model port", "port_value: 5001", "port_value: 5002"},
		{"no prefix rewrite", "prefix_rewrite: /", "prefix_rewrite: /demo/"},
		{"modelauth port", "port_value: 7071", "port_value: 7072"},
	})
}

func TestDocumentedAPIMKeyMode(t *testing.T) {
	docRun(t, filepath.Join("apim", "key-mode-policy.xml"), apimKeyProblems, []docMutation{
		{"url not validate", "/api/services/demo/validate</set-url>", "/api/services/demo/score</set-url>"},
		{"url token service", "/api/services/demo/validate</set-url>", "/api/services/token-demo/validate</set-url>"},
		{"url unknown service", "/api/services/demo/validate</set-url>", "/api/services/nosuch/validate</set-url>"},
		{"url host", docNamedValue + ".azurewebsites.net/api/services/demo", "example.net/api/services/demo"},
		{"mode copy", `mode="new"`, `mode="copy"`},
		{"credential not copied", `GetValueOrDefault("Authorization", "")`, `GetValueOrDefault("Ocp-Apim-Subscription-Key", "")`},
		{"header copied from the wrong one", `GetValueOrDefault("X-ModelAuth-Service", "none")`, `GetValueOrDefault("X-ModelAuth-Subject", "none")`},
		{"identity header misspelt", `<set-header name="X-ModelAuth-Key-Type"`, `<set-header name="X-ModelAuth-KeyType"`},
		{"identity header appended", `<set-header name="X-ModelAuth-Subject" exists-action="override">`, `<set-header name="X-ModelAuth-Subject" exists-action="append">`},
		{"authorization kept", `<set-header name="Authorization" exists-action="delete" />`, `<set-header name="Authorization" exists-action="skip" />`},
		{"refusal not passed on", `<return-response response-variable-name="modelauthValidate" />`, `<return-response />`},
		{"no retry-after when unreachable", "<value>5</value>", "<value>later</value>"},
		{"forged headers case-sensitive", `StartsWith(&quot;X-ModelAuth-&quot;, StringComparison.OrdinalIgnoreCase)`, `StartsWith(&quot;X-ModelAuth-&quot;)`},
	})
}

func TestDocumentedAPIMTokenMode(t *testing.T) {
	docRun(t, filepath.Join("apim", "token-mode-policy.xml"), apimTokenProblems, []docMutation{
		{"audience key service", "<audience>token-demo</audience>", "<audience>demo</audience>"},
		{"audience unknown", "<audience>token-demo</audience>", "<audience>api://token-demo</audience>"},
		{"issuer without /api", ".azurewebsites.net/api</issuer>", ".azurewebsites.net</issuer>"},
		{"issuer http", "<issuer>https://", "<issuer>http://"},
		{"discovery path", "/api/.well-known/openid-configuration", "/.well-known/openid-configuration"},
		{"discovery jwks", "/api/.well-known/openid-configuration", "/api/.well-known/jwks.json"},
		{"expiry not required", `require-expiration-time="true"`, `require-expiration-time="false"`},
		{"other algorithm", `Algorithm != &quot;RS256&quot;`, `Algorithm != &quot;ES256&quot;`},
		{"auth type key", "<value>token</value>", "<value>key</value>"},
		{"key type empty", "<value>none</value>", "<value></value>"},
		{"service other", "<value>token-demo</value>", "<value>demo</value>"},
		{"subject from audience", `context.Variables["modelauthToken"]).Subject)`, `context.Variables["modelauthToken"]).Audiences.First())`},
		{"authorization kept", `<set-header name="Authorization" exists-action="delete" />`, ``},
		{"forged underscores", `k.Replace('_', '-').StartsWith(&quot;X-ModelAuth-&quot;`, `k.StartsWith(&quot;X-ModelAuth-&quot;`},
	})
}
