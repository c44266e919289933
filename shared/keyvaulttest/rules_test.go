package keyvaulttest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

func TestNames(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	tok := token(t, kv)
	ver := setRaw(t, kv, tok, "MySecret", map[string]any{"value": "v"})

	for _, name := range []string{"mysecret", "MYSECRET", "MySecret"} {
		r := do(t, kv, http.MethodGet, secretPath(name, ""), tok, nil)
		if r.status != http.StatusOK {
			t.Errorf("GET %s: %d; want 200 (names are case-insensitive)", name, r.status)
			continue
		}
		if id := r.json(t)["id"]; id != kv.VaultURL+"/secrets/MySecret/"+ver {
			t.Errorf("GET %s: id %v; want the first write's spelling", name, id)
		}
	}
	// GET /secrets/{name} without the trailing slash reads the newest too.
	if r := do(t, kv, http.MethodGet, secretPath("mysecret"), tok, nil); r.status != http.StatusOK {
		t.Errorf("GET /secrets/mysecret: %d", r.status)
	}
	// Versions are matched case-insensitively.
	if r := do(t, kv, http.MethodGet, secretPath("mysecret", strings.ToUpper(ver)), tok, nil); r.status != http.StatusOK {
		t.Errorf("GET an upper-case version: %d", r.status)
	}

	tests := []struct {
		name string
		want int
	}{
		{strings.Repeat("a", 127), http.StatusOK},
		{"a-1-B", http.StatusOK},
		{strings.Repeat("a", 128), http.StatusBadRequest},
		{"under_score", http.StatusBadRequest},
		{"dot.ted", http.StatusBadRequest},
		{"sp%20ace", http.StatusBadRequest},
	}
	for _, tt := range tests {
		r := do(t, kv, http.MethodPut, secretPath(tt.name), tok, map[string]any{"value": "v"})
		if r.status != tt.want {
			t.Errorf("PUT %q: %d; want %d", tt.name, r.status, tt.want)
		}
		if tt.want == http.StatusBadRequest && r.errorCode(t) != "BadParameter" {
			t.Errorf("PUT %q: code %q; want BadParameter", tt.name, r.errorCode(t))
		}
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	tok := token(t, kv)
	tags := func(n int) map[string]any {
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprintf("t%d", i)] = "v"
		}
		return m
	}
	tests := []struct {
		name string
		body map[string]any
		want int
	}{
		{"value 25600 bytes", map[string]any{"value": strings.Repeat("x", 25600)}, http.StatusOK},
		{"value 25601 bytes", map[string]any{"value": strings.Repeat("x", 25601)}, http.StatusBadRequest},
		{"value counted in bytes", map[string]any{"value": strings.Repeat("é", 12801)}, http.StatusBadRequest},
		{"empty value", map[string]any{"value": ""}, http.StatusOK},
		{"no value", map[string]any{"contentType": "x"}, http.StatusBadRequest},
		{"15 tags", map[string]any{"value": "v", "tags": tags(15)}, http.StatusOK},
		{"16 tags", map[string]any{"value": "v", "tags": tags(16)}, http.StatusBadRequest},
		{"tag name 512", map[string]any{"value": "v", "tags": map[string]any{strings.Repeat("n", 512): "v"}}, http.StatusOK},
		{"tag name 513", map[string]any{"value": "v", "tags": map[string]any{strings.Repeat("n", 513): "v"}}, http.StatusBadRequest},
		{"tag value 256", map[string]any{"value": "v", "tags": map[string]any{"k": strings.Repeat("é", 256)}}, http.StatusOK},
		{"tag value 257", map[string]any{"value": "v", "tags": map[string]any{"k": strings.Repeat("v", 257)}}, http.StatusBadRequest},
		{"empty tag name", map[string]any{"value": "v", "tags": map[string]any{"": "v"}}, http.StatusBadRequest},
		{"float exp", map[string]any{"value": "v", "attributes": map[string]any{"exp": 1.5}}, http.StatusBadRequest},
		{"string nbf", map[string]any{"value": "v", "attributes": map[string]any{"nbf": "2026-01-01"}}, http.StatusBadRequest},
		{"value not a string", map[string]any{"value": 5}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, kv, http.MethodPut, secretPath("limits"), tok, tt.body)
			if r.status != tt.want {
				t.Fatalf("PUT: %d %s; want %d", r.status, r.body, tt.want)
			}
			if tt.want == http.StatusBadRequest {
				if code := r.errorCode(t); code != "BadParameter" || r.header.Get("x-ms-error-code") != code {
					t.Errorf("code %q, x-ms-error-code %q; want BadParameter", code, r.header.Get("x-ms-error-code"))
				}
			}
		})
	}
	// A body that is not JSON, and none.
	for _, raw := range []string{"", "{", "[]"} {
		req, _ := http.NewRequest(http.MethodPut, kv.VaultURL+secretPath("limits"), strings.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := rawClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("PUT body %q: %d; want 400", raw, resp.StatusCode)
		}
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{Now: fakeclock.New(time.Unix(1_700_000_000, 0)).Now})
	tok := token(t, kv)
	v1 := setRaw(t, kv, tok, "upd", map[string]any{
		"value": "one", "contentType": "text/plain",
		"attributes": map[string]any{"exp": 1_800_000_000, "nbf": 1_600_000_000},
		"tags":       map[string]any{"a": "1", "b": "2"},
	})
	v2 := setRaw(t, kv, tok, "upd", map[string]any{"value": "two", "attributes": map[string]any{"enabled": false}})

	patch := func(ver string, body map[string]any) map[string]any {
		t.Helper()
		r := do(t, kv, http.MethodPatch, secretPath("upd", ver), tok, body)
		if r.status != http.StatusOK {
			t.Fatalf("PATCH %s: %d %s", ver, r.status, r.body)
		}
		m := r.json(t)
		if _, ok := m["value"]; ok {
			t.Errorf("PATCH returned the value")
		}
		return m
	}
	attrs := func(m map[string]any) map[string]any { return m["attributes"].(map[string]any) }

	// Tags replace the whole set; other fields stay.
	m := patch(v1, map[string]any{"tags": map[string]any{"c": "3"}})
	if got, _ := json.Marshal(m["tags"]); string(got) != `{"c":"3"}` {
		t.Errorf("tags after update = %s; want {\"c\":\"3\"}", got)
	}
	if m["contentType"] != "text/plain" || attrs(m)["exp"] != json.Number("1800000000") || attrs(m)["nbf"] != json.Number("1600000000") || attrs(m)["enabled"] != true {
		t.Errorf("update changed fields it was not sent: %v", m)
	}
	// Only the fields sent: no tags keeps the set; null clears exp.
	m = patch(v1, map[string]any{"contentType": "application/json", "attributes": map[string]any{"exp": nil, "enabled": false}})
	if m["contentType"] != "application/json" || attrs(m)["enabled"] != false || m["tags"] == nil {
		t.Errorf("after update: %v", m)
	}
	if _, ok := attrs(m)["exp"]; ok {
		t.Errorf("exp %v after an update with exp null; want none", attrs(m)["exp"])
	}
	if attrs(m)["nbf"] != json.Number("1600000000") {
		t.Errorf("nbf %v; want unchanged", attrs(m)["nbf"])
	}
	// An empty object removes every tag.
	if m = patch(v1, map[string]any{"tags": map[string]any{}}); m["tags"] != nil {
		t.Errorf("tags %v after an update with {}; want none", m["tags"])
	}
	// An update without a version updates the newest, a disabled one too.
	m = patch("", map[string]any{"attributes": map[string]any{"enabled": true}})
	if id, _ := m["id"].(string); !strings.HasSuffix(id, "/"+v2) || attrs(m)["enabled"] != true {
		t.Errorf("update without a version: %v; want version %s enabled", m, v2)
	}
	// Limits apply to updates; unknown versions are 404.
	tags := map[string]any{}
	for i := range 16 {
		tags[fmt.Sprint(i)] = "v"
	}
	if r := do(t, kv, http.MethodPatch, secretPath("upd", v1), tok, map[string]any{"tags": tags}); r.status != http.StatusBadRequest {
		t.Errorf("PATCH 16 tags: %d; want 400", r.status)
	}
	if r := do(t, kv, http.MethodPatch, secretPath("upd", "0123456789abcdef0123456789abcdef"), tok, map[string]any{}); r.status != http.StatusNotFound || r.errorCode(t) != "SecretNotFound" {
		t.Errorf("PATCH an unknown version: %d %s; want 404 SecretNotFound", r.status, r.body)
	}
	// created stays, updated moves.
	if a := attrs(m); a["created"] != json.Number("1700000000") {
		t.Errorf("created %v", a["created"])
	}
}

func TestDisabledAndNotFound(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	tok := token(t, kv)
	v1 := setRaw(t, kv, tok, "dis", map[string]any{"value": "a"})
	v2 := setRaw(t, kv, tok, "dis", map[string]any{"value": "b", "attributes": map[string]any{"enabled": false}})

	for _, ver := range []string{v2, ""} {
		r := do(t, kv, http.MethodGet, secretPath("dis", ver), tok, nil)
		if r.status != http.StatusForbidden || r.errorCode(t) != "Forbidden" {
			t.Errorf("GET disabled %q: %d %s; want 403 Forbidden", ver, r.status, r.body)
			continue
		}
		e := r.json(t)["error"].(map[string]any)
		if e["message"] != "Operation get is not allowed on a disabled secret." {
			t.Errorf("message %q", e["message"])
		}
		if strings.Contains(string(r.body), `"b"`) {
			t.Errorf("the 403 carries the value: %s", r.body)
		}
	}
	if r := do(t, kv, http.MethodGet, secretPath("dis", v1), tok, nil); r.status != http.StatusOK {
		t.Errorf("GET the enabled version: %d", r.status)
	}
	for _, p := range []string{secretPath("nope", ""), secretPath("dis", "0123456789abcdef0123456789abcdef"), secretPath("dis", "not-a-version")} {
		r := do(t, kv, http.MethodGet, p, tok, nil)
		if r.status != http.StatusNotFound || r.errorCode(t) != "SecretNotFound" || r.header.Get("x-ms-error-code") != "SecretNotFound" {
			t.Errorf("GET %s: %d %s; want 404 SecretNotFound", p, r.status, r.body)
		}
	}
	// Listing the versions of an unknown secret: an empty page.
	r := do(t, kv, http.MethodGet, secretPath("nope", "versions"), tok, nil)
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"value":[],"nextLink":null}` {
		t.Errorf("list unknown: %d %s", r.status, r.body)
	}
}

func TestPaging(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	tok := token(t, kv)
	var versions []string
	for i := range 5 {
		versions = append(versions, setRaw(t, kv, tok, "paged", map[string]any{"value": fmt.Sprint(i)}))
	}

	// list follows nextLinks as the client does: unchanged, adding nothing.
	list := func(first string) (pages [][]string) {
		t.Helper()
		link := first
		for link != "" {
			r := do(t, kv, http.MethodGet, link, tok, nil)
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", link, r.status, r.body)
			}
			m := r.json(t)
			var page []string
			for _, it := range m["value"].([]any) {
				item := it.(map[string]any)
				if _, ok := item["value"]; ok {
					t.Errorf("a listed item has its value")
				}
				id := item["id"].(string)
				page = append(page, id[strings.LastIndex(id, "/")+1:])
			}
			pages = append(pages, page)
			link = ""
			if nl, ok := m["nextLink"].(string); ok {
				u, err := url.Parse(nl)
				if err != nil || !u.IsAbs() || "https://"+u.Host != kv.VaultURL || u.Query().Get("api-version") != apiVersion {
					t.Fatalf("nextLink %q: want an absolute URL of the vault with api-version=%s", nl, apiVersion)
				}
				link = nl
			} else if m["nextLink"] != nil {
				t.Fatalf("nextLink %v", m["nextLink"])
			}
		}
		return pages
	}
	pages := list(secretPath("paged", "versions"))
	if got := fmt.Sprint(pages); got != fmt.Sprint([][]string{versions[0:2], versions[2:4], versions[4:5]}) {
		t.Errorf("pages %v; want pages of 2, oldest first: %v", got, versions)
	}
	pages = list(secretPath("paged", "versions") + "&maxresults=4")
	if len(pages) != 2 || len(pages[0]) != 4 || len(pages[1]) != 1 {
		t.Errorf("maxresults=4: pages %v", pages)
	}
	for _, m := range []string{"0", "26", "x"} {
		if r := do(t, kv, http.MethodGet, secretPath("paged", "versions")+"&maxresults="+m, tok, nil); r.status != http.StatusBadRequest {
			t.Errorf("maxresults=%s: %d; want 400", m, r.status)
		}
	}
	if r := do(t, kv, http.MethodGet, secretPath("paged", "versions")+"&$skiptoken=bogus", tok, nil); r.status != http.StatusBadRequest {
		t.Errorf("bad $skiptoken: %d; want 400", r.status)
	}
	// A larger default page size.
	kv10 := keyvaulttest.NewServer(t, &keyvaulttest.Options{PageSize: 10})
	tok10 := token(t, kv10)
	for range 3 {
		setRaw(t, kv10, tok10, "p", map[string]any{"value": "v"})
	}
	r := do(t, kv10, http.MethodGet, secretPath("p", "versions"), tok10, nil)
	if m := r.json(t); len(m["value"].([]any)) != 3 || m["nextLink"] != nil {
		t.Errorf("page size 10: %s", r.body)
	}
}

func TestAPIVersionRequired(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	tok := token(t, kv)
	setRaw(t, kv, tok, "av", map[string]any{"value": "v"})
	for _, p := range []string{"/secrets/av/", "/secrets/av/versions", "/secrets/av/?api-version=latest"} {
		r := do(t, kv, http.MethodGet, p, tok, nil)
		if r.status != http.StatusBadRequest || r.errorCode(t) != "BadParameter" {
			t.Errorf("GET %s: %d %s; want 400 BadParameter", p, r.status, r.body)
		}
	}
	for _, v := range []string{"7.5", "7.6-preview.1", "2025-07-01", "2026-04-01"} {
		if r := do(t, kv, http.MethodGet, "/secrets/av/?api-version="+v, tok, nil); r.status != http.StatusOK {
			t.Errorf("api-version %s: %d", v, r.status)
		}
	}
}

func TestChallenge(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New(time.Unix(1_700_000_000, 0))
	kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{Now: clock.Now, TokenLifetime: time.Hour})
	wantChallenge := fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, kv.AuthorityHost, kv.TenantID, kv.Resource)
	if want := "https://0.0.1:" + strings.TrimPrefix(kv.VaultURL, "https://127.0.0.1:"); kv.Resource != want {
		t.Fatalf("Resource = %q; want %q", kv.Resource, want)
	}
	check := func(what, tok string) {
		t.Helper()
		r := do(t, kv, http.MethodPut, secretPath("c"), tok, map[string]any{"value": "v"})
		if r.status != http.StatusUnauthorized || r.errorCode(t) != "Unauthorized" {
			t.Errorf("%s: %d %s; want 401 Unauthorized", what, r.status, r.body)
		}
		if got := r.header.Get("WWW-Authenticate"); got != wantChallenge {
			t.Errorf("%s: WWW-Authenticate %q; want %q", what, got, wantChallenge)
		}
	}
	check("no token", "")
	check("unknown token", "kvt.not-issued")
	tok := token(t, kv)
	if r := do(t, kv, http.MethodPut, secretPath("c"), tok, map[string]any{"value": "v"}); r.status != http.StatusOK {
		t.Fatalf("with a token: %d %s", r.status, r.body)
	}
	clock.Advance(time.Hour)
	check("expired token", tok)
	// Another server's token is not accepted.
	other := keyvaulttest.NewServer(t, nil)
	check("another server's token", token(t, other))
	if st := kv.Stats(); st.Challenges != 4 || st.Set != 1 {
		t.Errorf("stats %s; want 4 challenges, 1 set", describe(st))
	}
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{TokenLifetime: 90 * time.Minute})
	good := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {kv.ClientID},
		"client_secret": {kv.ClientSecret},
		"scope":         {kv.Resource + "/.default openid offline_access profile"},
		"claims":        {`{"access_token":{"xms_cc":{"values":["CP1"]}}}`},
	}
	r := postForm(t, kv, kv.TenantID, good)
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["token_type"] != "Bearer" || m["expires_in"] != json.Number("5400") || m["access_token"] == "" {
		t.Errorf("token response %v", m)
	}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, vals := range good {
			f[key] = vals
		}
		f.Set(k, v)
		return f
	}
	tests := []struct {
		name   string
		tenant string
		form   url.Values
		status int
		err    string
		code   json.Number
	}{
		{"wrong secret", kv.TenantID, with("client_secret", "wrong"), 401, "invalid_client", "7000215"},
		{"no secret", kv.TenantID, with("client_secret", ""), 401, "invalid_client", "7000218"},
		{"unknown client", kv.TenantID, with("client_id", "nobody"), 400, "unauthorized_client", "700016"},
		{"wrong grant", kv.TenantID, with("grant_type", "password"), 400, "unsupported_grant_type", "70003"},
		{"another resource", kv.TenantID, with("scope", "https://vault.azure.net/.default"), 400, "invalid_scope", "500011"},
		{"no .default", kv.TenantID, with("scope", kv.Resource), 400, "invalid_scope", "1002012"},
		{"unknown tenant", "other-tenant", good, 400, "invalid_request", "90002"},
	}
	for _, tt := range tests {
		r := postForm(t, kv, tt.tenant, tt.form)
		m := r.json(t)
		codes, _ := m["error_codes"].([]any)
		if r.status != tt.status || m["error"] != tt.err || len(codes) != 1 || codes[0] != tt.code {
			t.Errorf("%s: %d %s; want %d %s %s", tt.name, r.status, r.body, tt.status, tt.err, tt.code)
		}
		if desc, _ := m["error_description"].(string); !strings.HasPrefix(desc, "AADSTS"+tt.code.String()+":") || strings.Contains(desc, kv.ClientSecret) {
			t.Errorf("%s: error_description %q", tt.name, desc)
		}
	}
	if st := kv.Stats(); st.TokensIssued != 1 || st.TokenRequests != int64(1+len(tests)) {
		t.Errorf("stats %s", describe(st))
	}
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	r := do(t, kv, http.MethodGet, kv.AuthorityHost+"/"+kv.TenantID+"/v2.0/.well-known/openid-configuration", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("openid-configuration: %d %s", r.status, r.body)
	}
	m := r.json(t)
	m0 := m
	base := kv.AuthorityHost + "/" + kv.TenantID
	if m["token_endpoint"] != base+"/oauth2/v2.0/token" || m["issuer"] != base+"/v2.0" || m["authorization_endpoint"] != base+"/oauth2/v2.0/authorize" {
		t.Errorf("openid-configuration %v", m)
	}
	if r := do(t, kv, http.MethodGet, kv.AuthorityHost+"/other/v2.0/.well-known/openid-configuration", "", nil); r.status != http.StatusBadRequest {
		t.Errorf("openid-configuration of another tenant: %d", r.status)
	}
	host := strings.TrimPrefix(kv.AuthorityHost, "https://")
	q := url.Values{"api-version": {"1.1"}, "authorization_endpoint": {base + "/oauth2/v2.0/authorize"}}
	r = do(t, kv, http.MethodGet, kv.AuthorityHost+"/common/discovery/instance?"+q.Encode(), "", nil)
	m = r.json(t)
	md, _ := m["metadata"].([]any)
	if r.status != http.StatusOK || m["tenant_discovery_endpoint"] != base+"/v2.0/.well-known/openid-configuration" || len(md) != 1 {
		t.Fatalf("instance discovery: %d %s", r.status, r.body)
	}
	if aliases := md[0].(map[string]any)["aliases"].([]any); len(aliases) != 1 || aliases[0] != host {
		t.Errorf("aliases %v; want [%s]", aliases, host)
	}
	q.Set("authorization_endpoint", "https://elsewhere.example/t/oauth2/v2.0/authorize")
	if r := do(t, kv, http.MethodGet, kv.AuthorityHost+"/common/discovery/instance?"+q.Encode(), "", nil); r.status != http.StatusBadRequest {
		t.Errorf("instance discovery of another host: %d", r.status)
	}
	// MSAL for Node requires jwks_uri; it names an (empty) key set here.
	jwks, _ := m0["jwks_uri"].(string)
	if jwks != base+"/discovery/v2.0/keys" {
		t.Errorf("jwks_uri %q; want %s", jwks, base+"/discovery/v2.0/keys")
	}
	if r := do(t, kv, http.MethodGet, jwks, "", nil); r.status != http.StatusOK || string(r.body) != `{"keys":[]}` {
		t.Errorf("jwks_uri: %d %s", r.status, r.body)
	}
	if r := do(t, kv, http.MethodGet, kv.AuthorityHost+"/other/discovery/v2.0/keys", "", nil); r.status != http.StatusBadRequest {
		t.Errorf("keys of another tenant: %d", r.status)
	}
	if st := kv.Stats(); st.Discovery != 6 {
		t.Errorf("stats %s; want 6 discovery requests", describe(st))
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []keyvaulttest.Options{
		{Addr: "0.0.0.0:0"},
		{Addr: "localhost:0"},
		{Addr: "nonsense"},
		{PageSize: 26},
		{TenantID: "bad/tenant"},
	} {
		if s, err := keyvaulttest.Start(&o); err == nil {
			s.Close()
			t.Errorf("Start(%+v) succeeded; want an error", o)
		}
	}
	kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{TenantID: "Contoso-Tenant", ClientID: "app", ClientSecret: "s3cret"})
	env := strings.Join(kv.Env(), "\n")
	for _, want := range []string{
		"KEYVAULT_URL=" + kv.VaultURL, "AZURE_AUTHORITY_HOST=" + kv.AuthorityHost,
		"AZURE_TENANT_ID=contoso-tenant", "AZURE_CLIENT_ID=app", "AZURE_CLIENT_SECRET=s3cret", "SSL_CERT_FILE=",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("Env() lacks %q:\n%s", want, env)
		}
	}
	kv.Close()
	kv.Close() // twice is fine
}
