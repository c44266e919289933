package functions

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/logtest"
	"github.com/modelauth/modelauth/shared/oidctest"
)

// These tests pin the settings whose zero value means something (CONTRIBUTING.md,
// "Options and defaults"): each is read by config.LoadSettings from the
// environment and served by an app, and each differs from its default.

// zeroApp starts an app over dir (shared by instances) with the settings
// env, as the handler reads them.
func zeroApp(t *testing.T, dir, services string, env map[string]string) *App {
	t.Helper()
	cfgPath := filepath.Join(dir, "modelauth.json")
	os.WriteFile(cfgPath, []byte(services), 0o600)
	vars := map[string]string{"MODELAUTH_CONFIG": cfgPath, "MODELAUTH_DATA_DIR": filepath.Join(dir, "data")}
	for k, v := range env {
		vars[k] = v
	}
	s, err := config.LoadSettings(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	log, _ := logtest.New()
	a, err := NewApp(context.Background(), s, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// status is the answer of a's validate for cred.
func status(a *App, service, cred string) int {
	req := httptest.NewRequest("GET", "/api/services/"+service+"/validate", nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, req)
	return rec.Code
}

// TestZeroRefreshMinIntervalMeansNoLimit: with KEY_REFRESH_MIN_INTERVAL=0
// an instance re-reads the store for every unknown key, so two keys
// regenerated one after the other on another instance both work at once
// here; with a minute, the second waits.
func TestZeroRefreshMinIntervalMeansNoLimit(t *testing.T) {
	for _, tt := range []struct {
		interval string
		second   int // validate of the second regenerated key, at once
	}{{"0s", 200}, {"1m", 401}} {
		t.Run(tt.interval, func(t *testing.T) {
			dir := t.TempDir()
			env := map[string]string{"KEY_REFRESH_MIN_INTERVAL": tt.interval, "KEY_CACHE_TTL": "1h"}
			a := zeroApp(t, dir, `{"services":[{"name":"iris"}]}`, env)
			b := zeroApp(t, dir, `{"services":[{"name":"iris"}]}`, env)
			ctx := context.Background()
			if _, err := a.Keys.Get(ctx, "iris"); err != nil {
				t.Fatal(err)
			}
			regen := func() string {
				if err := b.Rotator.Regenerate(ctx, "iris", keysecret.Primary, ""); err != nil {
					t.Fatal(err)
				}
				k, err := b.Keys.Get(ctx, "iris")
				if err != nil {
					t.Fatal(err)
				}
				return k.PrimaryKey
			}
			if got := status(a, "iris", regen()); got != 200 {
				t.Fatalf("the first regenerated key = %d; want 200 (a miss refreshes)", got)
			}
			if got := status(a, "iris", regen()); got != tt.second {
				t.Fatalf("the second regenerated key at once = %d; want %d", got, tt.second)
			}
		})
	}
}

// TestZeroMaxStalenessMeansAtOnce: with KEY_CACHE_MAX_STALENESS=0 a store
// that fails once the TTL passed is a 503 at once; with the default, the
// cached keys still serve.
func TestZeroMaxStalenessMeansAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("waits a second, the shortest KEY_CACHE_TTL")
	}
	for _, tt := range []struct {
		staleness string
		want      int
	}{{"0s", 503}, {"", 200}} {
		t.Run("staleness="+tt.staleness, func(t *testing.T) {
			a := zeroApp(t, t.TempDir(), `{"services":[{"name":"iris"}]}`, map[string]string{"KEY_CACHE_MAX_STALENESS": tt.staleness, "KEY_CACHE_TTL": "1s"})
			k, err := a.Keys.Get(context.Background(), "iris")
			if err != nil {
				t.Fatal(err)
			}
			a.Store.Close() // the store is down from now on
			time.Sleep(1100 * time.Millisecond)
			if got := status(a, "iris", k.PrimaryKey); got != tt.want {
				t.Fatalf("validate past the TTL with the store down = %d; want %d", got, tt.want)
			}
		})
	}
}

// TestZeroLeewayMeansNone: with TOKEN_LEEWAY=0s a token a second past its
// exp is refused, the app's own and Microsoft Entra's alike; with the
// default 60s, both pass.
func TestZeroLeewayMeansNone(t *testing.T) {
	idp := oidctest.NewProvider(t)
	for _, tt := range []struct {
		leeway string
		want   int
	}{{"0s", 401}, {"", 200}} {
		t.Run("leeway="+tt.leeway, func(t *testing.T) {
			a := zeroApp(t, t.TempDir(), `{"services":[{"name":"tok","authMode":"token"},{"name":"ent","authMode":"entra","audience":"api://ent"}]}`,
				map[string]string{"TOKEN_LEEWAY": tt.leeway, "OIDC_ISSUERS": idp.Issuer(), "OIDC_AUDIENCES": "api://modelauth"})
			now := time.Now()
			past := jwt.MapClaims{"iat": now.Add(-time.Hour).Unix(), "nbf": now.Add(-time.Hour).Unix(), "exp": now.Add(-time.Second).Unix()}
			k, err := a.SigningKeys.Signer(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			own := jwt.MapClaims{"iss": a.Settings.Issuer, "aud": "tok", "sub": "alice", "jti": "j"}
			for c, v := range past {
				own[c] = v
			}
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, own)
			tok.Header["kid"] = k.Kid
			raw, err := tok.SignedString(k.Signer())
			if err != nil {
				t.Fatal(err)
			}
			if got := status(a, "tok", raw); got != tt.want {
				t.Errorf("own token a second past exp = %d; want %d", got, tt.want)
			}
			entra := jwt.MapClaims{"aud": "api://ent"}
			for c, v := range past {
				entra[c] = v
			}
			if got := status(a, "ent", idp.Token(t, entra)); got != tt.want {
				t.Errorf("Entra token a second past exp = %d; want %d", got, tt.want)
			}
		})
	}
}
