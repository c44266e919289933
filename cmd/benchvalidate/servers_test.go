package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/config"
)

// TestBareAnswersAsValidate checks that the bare server's answer is
// validate's, status, headers (but Date) and body, over real HTTP, for
// both of the benchmark's identities: the ratios compare like with like.
func TestBareAnswersAsValidate(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "modelauth.json")
	services := `{"services":[{"name":"` + keyService + `"},{"name":"` + tokenService + `","authMode":"token"}]}`
	if err := os.WriteFile(cfg, []byte(services), 0o600); err != nil {
		t.Fatal(err)
	}
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir = cfg, filepath.Join(dir, "data")
	app, err := functions.NewApp(context.Background(), s, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	keys, err := app.Keys.Get(t.Context(), keyService)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := app.Tokens.Issue(t.Context(), tokenService, identities["token"].Subject, time.Hour, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	validate := httptest.NewServer(app.Handler())
	defer validate.Close()
	for kind, c := range map[string]struct{ service, credential string }{
		"key":   {keyService, keys.PrimaryKey},
		"token": {tokenService, tok.AccessToken},
	} {
		bare := httptest.NewServer(bareHandler(identities[kind]))
		want := fetchAnswer(t, validate.URL+"/api/services/"+c.service+"/validate", c.credential)
		got := fetchAnswer(t, bare.URL+"/api/services/"+c.service+"/validate", c.credential)
		bare.Close()
		if want.StatusCode != http.StatusOK || got.StatusCode != want.StatusCode {
			t.Errorf("%s: bare %d, validate %d", kind, got.StatusCode, want.StatusCode)
		}
		want.Header.Del("Date")
		got.Header.Del("Date")
		for name := range mergeKeys(want.Header, got.Header) {
			if g, w := got.Header.Values(name), want.Header.Values(name); !slices.Equal(g, w) {
				t.Errorf("%s: %s: bare %q, validate %q", kind, name, g, w)
			}
		}
		if got.body != want.body {
			t.Errorf("%s: bare body %q, validate %q", kind, got.body, want.body)
		}
	}
}

type answer struct {
	*http.Response
	body string
}

func fetchAnswer(t *testing.T, url, credential string) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+credential)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp, string(body)}
}

func mergeKeys(a, b http.Header) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}
