package keyvaulttest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// TestListSecretsRealClient lists the vault's secrets with the real
// client's NewListSecretPropertiesPager: one item per secret, with the id
// without a version and the newest version's attributes, tags and content
// type, over pages of DefaultPageSize.
func TestListSecretsRealClient(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	client := newClient(t, kv, newCredential(t, kv, -1), nil)
	ctx := ctxTimeout(t, 15*time.Second)
	exp := time.Unix(2_000_000_000, 0).UTC()
	for _, s := range []struct {
		name  string
		param azsecrets.SetSecretParameters
	}{
		{"Svc-B", azsecrets.SetSecretParameters{Value: ptr("b1"), Tags: map[string]*string{"state": ptr("old")}}},
		{"svc-a", azsecrets.SetSecretParameters{Value: ptr("a1")}},
		{"SVC-B", azsecrets.SetSecretParameters{Value: ptr("b2"), ContentType: ptr("text/plain"),
			SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}, Tags: map[string]*string{"state": ptr("current")}}},
		{"svc-c", azsecrets.SetSecretParameters{Value: ptr("c1"), SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(false)}}},
	} {
		if _, err := client.SetSecret(ctx, s.name, s.param, nil); err != nil {
			t.Fatalf("SetSecret %s: %v", s.name, err)
		}
	}

	before := kv.Stats()
	var got []*azsecrets.SecretProperties
	pager := client.NewListSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("NextPage: %v", err)
		}
		got = append(got, page.Value...)
	}
	st := kv.Stats()
	if n := st.ListSecrets - before.ListSecrets; n != 2 {
		t.Errorf("listing took %d requests; want 2 pages of %d", n, keyvaulttest.DefaultPageSize)
	}
	if st.List != before.List {
		t.Errorf("listing secrets counted as listing versions: %s", describe(st))
	}
	var names []string
	for _, p := range got {
		names = append(names, p.ID.Name())
		if p.ID.Version() != "" || string(*p.ID) != kv.VaultURL+"/secrets/"+p.ID.Name() {
			t.Errorf("id %s; want %s/secrets/<name> without a version", *p.ID, kv.VaultURL)
		}
		if a := p.Attributes; a == nil || a.Enabled == nil || a.Created == nil || a.Updated == nil || a.RecoveryLevel == nil {
			t.Errorf("%s: attributes %+v", p.ID.Name(), a)
		}
	}
	if fmt.Sprint(names) != "[svc-a Svc-B svc-c]" {
		t.Fatalf("listed %v; want [svc-a Svc-B svc-c]: by name, each once, in the spelling of its first write", names)
	}
	b := got[1]
	if b.ContentType == nil || *b.ContentType != "text/plain" || len(b.Tags) != 1 || b.Tags["state"] == nil || *b.Tags["state"] != "current" ||
		b.Attributes.Expires == nil || !b.Attributes.Expires.Equal(exp) {
		t.Errorf("Svc-B: %+v, tags %v; want the newest version's content type, expiry and tags", b, b.Tags)
	}
	if got[0].ContentType != nil || len(got[0].Tags) != 0 {
		t.Errorf("svc-a: content type %v, tags %v; want none", got[0].ContentType, got[0].Tags)
	}
	if *got[2].Attributes.Enabled {
		t.Errorf("svc-c listed enabled; want disabled")
	}
}

// TestListSecretsRaw checks GET /secrets on the wire: the paging
// parameters, the nextLink, an empty vault, and the errors.
func TestListSecretsRaw(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	tok := token(t, kv)
	list := "/secrets?api-version=" + apiVersion

	r := do(t, kv, http.MethodGet, list, tok, nil)
	if r.status != http.StatusOK || string(r.body) != `{"value":[],"nextLink":null}` {
		t.Errorf("empty vault: %d %s", r.status, r.body)
	}
	for i := range 5 {
		setRaw(t, kv, tok, fmt.Sprintf("s%d", i), map[string]any{"value": "x", "tags": map[string]string{"i": fmt.Sprint(i)}})
	}
	setRaw(t, kv, tok, "s0", map[string]any{"value": "y"}) // a second version: still one item

	r = do(t, kv, http.MethodGet, list+"&maxresults=3", tok, nil)
	m := r.json(t)
	items, _ := m["value"].([]any)
	next, _ := m["nextLink"].(string)
	if r.status != http.StatusOK || len(items) != 3 {
		t.Fatalf("first page of 3: %d %s", r.status, r.body)
	}
	first := items[0].(map[string]any)
	if first["id"] != kv.VaultURL+"/secrets/s0" || first["value"] != nil || first["tags"] != nil {
		t.Errorf("first item %v; want id %s/secrets/s0, no value, the newest version's (no) tags", first, kv.VaultURL)
	}
	if a, _ := first["attributes"].(map[string]any); a["enabled"] != true || a["created"] == nil || a["recoveryLevel"] == nil {
		t.Errorf("first item's attributes %v", a)
	}
	if tags, _ := items[1].(map[string]any)["tags"].(map[string]any); tags["i"] != "1" {
		t.Errorf("second item's tags %v; want i=1", tags)
	}
	u, err := url.Parse(next)
	if err != nil || !strings.HasPrefix(next, kv.VaultURL+"/secrets?") || u.Query().Get("api-version") != apiVersion ||
		u.Query().Get("maxresults") != "3" || u.Query().Get("$skiptoken") == "" {
		t.Fatalf("nextLink %q; want an absolute URL with api-version, maxresults and $skiptoken", next)
	}
	r = do(t, kv, http.MethodGet, next, tok, nil)
	m = r.json(t)
	items, _ = m["value"].([]any)
	if r.status != http.StatusOK || len(items) != 2 || m["nextLink"] != nil {
		t.Errorf("last page: %d %s", r.status, r.body)
	}

	for _, tt := range []struct {
		method, path string
		token        string
		status       int
	}{
		{http.MethodGet, "/secrets", tok, http.StatusBadRequest},
		{http.MethodGet, list + "&maxresults=26", tok, http.StatusBadRequest},
		{http.MethodGet, list + "&$skiptoken=bogus", tok, http.StatusBadRequest},
		{http.MethodPost, list, tok, http.StatusMethodNotAllowed},
		{http.MethodGet, list, "", http.StatusUnauthorized},
	} {
		if r := do(t, kv, tt.method, tt.path, tt.token, nil); r.status != tt.status {
			t.Errorf("%s %s: %d %s; want %d", tt.method, tt.path, r.status, r.body, tt.status)
		}
	}
}
