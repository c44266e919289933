package keyvaulttest_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// TestResources checks Options.Resources and CheckToken: the token
// endpoint issues tokens for the extra resources, CheckToken accepts a
// token only for the resource it was issued for and only while it lives,
// and the vault refuses a token for another resource.
func TestResources(t *testing.T) {
	const arm = "https://management.core.windows.net/"
	now := time.Unix(1_900_000_000, 0)
	kv := keyvaulttest.NewServer(t, &keyvaulttest.Options{
		Resources: []string{arm},
		Now:       func() time.Time { return now },
	})
	tokenFor := func(resource string) rawResponse {
		return postForm(t, kv, kv.TenantID, url.Values{
			"grant_type":    {"client_credentials"},
			"client_id":     {kv.ClientID},
			"client_secret": {kv.ClientSecret},
			"scope":         {resource + "/.default openid offline_access profile"},
		})
	}

	r := tokenFor(arm)
	if r.status != http.StatusOK {
		t.Fatalf("token for %s: status %d: %s", arm, r.status, r.body)
	}
	armTok, _ := r.json(t)["access_token"].(string)
	if err := kv.CheckToken(armTok, arm); err != nil {
		t.Errorf("CheckToken(arm token, arm) = %v; want nil", err)
	}
	if err := kv.CheckToken(armTok, kv.Resource); err == nil {
		t.Error("CheckToken(arm token, vault resource) = nil; want an error")
	}
	vaultTok := token(t, kv)
	if err := kv.CheckToken(vaultTok, kv.Resource); err != nil {
		t.Errorf("CheckToken(vault token, vault) = %v; want nil", err)
	}
	if err := kv.CheckToken(vaultTok, arm); err == nil {
		t.Error("CheckToken(vault token, arm) = nil; want an error")
	}
	for _, tok := range []string{"", "kvt.not-issued"} {
		if err := kv.CheckToken(tok, arm); err == nil {
			t.Errorf("CheckToken(%q, arm) = nil; want an error", tok)
		}
	}
	if r := tokenFor("https://other.example/"); r.status != http.StatusBadRequest || r.errorEntra(t) != "invalid_scope" {
		t.Errorf("token for an unknown resource: status %d %s; want 400 invalid_scope", r.status, r.body)
	}

	// The vault takes only its own tokens.
	if r := do(t, kv, http.MethodGet, secretPath("s"), armTok, nil); r.status != http.StatusUnauthorized {
		t.Errorf("vault with an ARM token: status %d; want 401", r.status)
	}

	now = now.Add(keyvaulttest.DefaultTokenLifetime)
	if err := kv.CheckToken(armTok, arm); err == nil {
		t.Error("CheckToken of an expired token = nil; want an error")
	}
}

// errorEntra is the error of an Entra error body.
func (r rawResponse) errorEntra(t testing.TB) string {
	s, _ := r.json(t)["error"].(string)
	return s
}
