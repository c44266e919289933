package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/client"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/oidctest"
)

// app is a modelauth app served over HTTP, with its administrator key.
type app struct {
	url   string
	admin string
	idp   *oidctest.Provider
}

const appServices = `{"services":[
	{"name":"svc"},
	{"name":"tok","authMode":"token","tokenLifetime":"10m","tokenRefreshAfter":"6m"}]}`

// newApp starts the function app as the custom handler runs it, with a
// key-mode service svc and a token-mode service tok, and an external OIDC
// provider whose tokens callers may present.
func newApp(t testing.TB) *app {
	t.Helper()
	idp := oidctest.NewProvider(t, oidctest.WithIssuerPath("/tenant-1/v2.0"))
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "modelauth.json")
	if err := os.WriteFile(cfgPath, []byte(appServices), 0o600); err != nil {
		t.Fatal(err)
	}
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir = cfgPath, filepath.Join(dir, "data")
	s.KeyCacheTTL = time.Second // rotate waits one TTL
	s.OIDCIssuers, s.OIDCAudiences = []string{idp.Issuer()}, []string{"api://modelauth"}
	a, err := functions.NewApp(context.Background(), s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	adm, err := a.Store.GetSecret(context.Background(), keysecret.AdminKeySecret, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &app{url: srv.URL + "/api", admin: adm.Value, idp: idp}
}

// caller returns an Entra-style caller token with roles.
func (a *app) caller(t *testing.T, roles ...string) string {
	return a.idp.Token(t, jwt.MapClaims{"aud": "api://modelauth", "sub": "caller", "roles": roles})
}

// TestClientEndToEnd calls every method against a real app and checks the
// refusals' status and code, and that no error text holds a secret.
func TestClientEndToEnd(t *testing.T) {
	a := newApp(t)
	ctx := context.Background()
	c := &client.Client{BaseURL: a.url, Credential: client.Static(a.admin)}
	secrets := []string{a.admin}
	var errs []error

	keys, err := c.GetKeys(ctx, "svc")
	if err != nil || len(keys.PrimaryKey) != 43 || len(keys.SecondaryKey) != 43 || keys.Active() == "" {
		t.Fatalf("GetKeys = %+v, %v", keys.ActiveKeyType, err)
	}
	secrets = append(secrets, keys.PrimaryKey, keys.SecondaryKey)
	id, err := c.Validate(ctx, "svc", keys.Active())
	if err != nil || id.Service != "svc" || id.AuthType != "key" || id.KeyType != keys.ActiveKeyType {
		t.Fatalf("Validate(active key) = %+v, %v", id, err)
	}

	// RegenKey: the old primary stops working at once.
	regen, err := c.RegenKey(ctx, "svc", "Primary", "")
	if err != nil || regen.PrimaryKey == keys.PrimaryKey || regen.SecondaryKey != keys.SecondaryKey {
		t.Fatalf("RegenKey(Primary) = %v; want a new primary, the same secondary", err)
	}
	secrets = append(secrets, regen.PrimaryKey)
	_, err = c.Validate(ctx, "svc", keys.PrimaryKey)
	wantError(t, "Validate(old primary)", err, 401, "Unauthorized")
	errs = append(errs, err)
	if _, err := c.Validate(ctx, "svc", regen.PrimaryKey); err != nil {
		t.Fatalf("Validate(new primary) = %v", err)
	}
	supplied := strings.Repeat("k", 40)
	secrets = append(secrets, supplied)
	if k, err := c.RegenKey(ctx, "svc", "Secondary", supplied); err != nil || k.SecondaryKey != supplied {
		t.Fatalf("RegenKey(Secondary, supplied) = %v", err)
	}
	_, err = c.RegenKey(ctx, "svc", "Tertiary", "")
	wantError(t, "RegenKey(Tertiary)", err, 400, "BadRequest")
	errs = append(errs, err)

	// Rotate takes one KEY_CACHE_TTL (1 s here).
	rot, err := c.Rotate(ctx, "svc")
	if err != nil || rot.Rotation.Outcome == "" {
		t.Fatalf("Rotate = %+v, %v", rot.Rotation, err)
	}
	secrets = append(secrets, rot.PrimaryKey, rot.SecondaryKey)
	if _, err := c.Validate(ctx, "svc", rot.Active()); err != nil {
		t.Fatalf("Validate(key active after rotation) = %v", err)
	}

	// Tokens for the token-mode service, also through a RefreshingSource.
	before := time.Now()
	tok, err := c.GetToken(ctx, "tok")
	if err != nil || tok.TokenType != "Bearer" || tok.ExpiresOn.Before(before.Add(9*time.Minute)) || !tok.RefreshAfter.Before(tok.ExpiresOn) {
		t.Fatalf("GetToken = %v; expiry in %v", err, tok.ExpiresOn.Sub(before))
	}
	secrets = append(secrets, tok.AccessToken)
	if id, err := c.Validate(ctx, "tok", tok.AccessToken); err != nil || id.Service != "tok" || id.AuthType != "token" {
		t.Fatalf("Validate(token) = %+v, %v", id, err)
	}
	src := client.NewRefreshingSource(c.TokenSource("tok"), nil)
	if st, err := src.Token(ctx); err != nil || st.AccessToken == "" {
		t.Fatalf("RefreshingSource over the app: %v", err)
	} else if _, err := c.Validate(ctx, "tok", st.AccessToken); err != nil {
		t.Fatalf("Validate(the source's token) = %v", err)
	} else {
		secrets = append(secrets, st.AccessToken)
	}
	_, err = c.Validate(ctx, "svc", tok.AccessToken)
	wantError(t, "Validate(token for tok, at svc)", err, 401, "Unauthorized")
	errs = append(errs, err)

	// Refusals.
	bad := &client.Client{BaseURL: a.url, Credential: client.Static(strings.Repeat("x", 43))}
	_, err = bad.GetKeys(ctx, "svc")
	wantError(t, "GetKeys with a wrong key", err, 401, "Unauthorized")
	errs = append(errs, err)
	_, err = (&client.Client{BaseURL: a.url}).GetToken(ctx, "tok")
	wantError(t, "GetToken without a credential", err, 401, "Unauthorized")
	errs = append(errs, err)
	reader := &client.Client{BaseURL: a.url, Credential: client.Static(a.caller(t, "Keys.Read.svc"))}
	if _, err := reader.GetKeys(ctx, "svc"); err != nil {
		t.Fatalf("GetKeys as Keys.Read.svc = %v", err)
	}
	_, err = reader.RegenKey(ctx, "svc", "Primary", "")
	wantError(t, "RegenKey as Keys.Read.svc", err, 403, "Forbidden")
	errs = append(errs, err)
	_, err = reader.GetToken(ctx, "tok")
	wantError(t, "GetToken as Keys.Read.svc", err, 403, "Forbidden")
	errs = append(errs, err)
	_, err = c.GetKeys(ctx, "nosuch")
	wantError(t, "GetKeys(nosuch)", err, 404, "NotFound")
	errs = append(errs, err)
	_, err = c.GetToken(ctx, "svc")
	wantError(t, "GetToken(key-mode svc)", err, 409, "Conflict")
	errs = append(errs, err)
	_, err = c.GetKeys(ctx, "tok")
	wantError(t, "GetKeys(token-mode tok)", err, 409, "Conflict")
	errs = append(errs, err)
	_, err = (&client.Client{BaseURL: "http://127.0.0.1:1/api", Credential: client.Static(a.admin)}).GetKeys(ctx, "svc")
	if err == nil {
		t.Fatal("a call to a closed port succeeded")
	}
	errs = append(errs, err)

	for _, err := range errs {
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("the error %q holds a key or token", err)
			}
		}
	}
}

func wantError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Errorf("%s: error %v; want *client.Error %d %s", what, err, status, code)
		return
	}
	if status == 401 && !strings.HasPrefix(e.Challenge, "Bearer") {
		t.Errorf("%s: 401 without a Bearer challenge (%q)", what, e.Challenge)
	}
}
