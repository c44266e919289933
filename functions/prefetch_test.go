package functions

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelauth/modelauth/shared/client"
	"github.com/modelauth/modelauth/shared/config"
)

// TestPrefetchTokensTimer: the timer writes each consumer's token into the
// store, where the consumer reads it, and validate takes it.
func TestPrefetchTokensTimer(t *testing.T) {
	e := newRotEnv(t, `{"services":[{"name":"tok","authMode":"token"}],
		"consumers":[{"name":"batch","service":"tok"},{"name":"nightly","service":"tok"}]}`)
	timer := map[string]any{"Schedule": map[string]any{"AdjustForDST": true}, "IsPastDue": false}
	logs, failed := e.invoke("prefetchtokens", "timer", timer)
	if failed || len(logs) != 2 || !strings.Contains(strings.Join(logs, "\n"), "prefetchtokens: batch: fetched") {
		t.Fatalf("first run: failed %v, logs %q", failed, logs)
	}
	src := client.NewStoreSource(e.a.Store, "batch")
	tok, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rec := e.do("GET", "/api/services/tok/validate", tok.AccessToken, "")
	if rec.Code != 200 || rec.Header().Get("X-Modelauth-Subject") != "consumer:batch" {
		t.Fatalf("validate with the prefetched token = %d, subject %q", rec.Code, rec.Header().Get("X-Modelauth-Subject"))
	}
	if logs, _ := e.invoke("prefetchtokens", "timer", timer); !strings.Contains(strings.Join(logs, "\n"), "prefetchtokens: batch: fresh") {
		t.Fatalf("second run: logs %q; want fresh", logs)
	}
	if strings.Contains(e.log.String(), tok.AccessToken) {
		t.Error("the log holds the prefetched token")
	}
	if !strings.Contains(e.log.String(), `"subject":"consumer:batch"`) {
		t.Error("no audit event for the prefetched token")
	}
}

func TestPrefetchRemoteCredentialRequired(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "modelauth.json")
	os.WriteFile(cfgPath, []byte(`{"services":[],"consumers":[
		{"name":"remote","service":"iris","source":"modelauth","url":"https://other.example/api","credentialSetting":"REMOTE_KEY"}]}`), 0o600)
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir = cfgPath, filepath.Join(dir, "data")
	s.Getenv = func(string) string { return "" }
	_, err := NewApp(context.Background(), s, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "REMOTE_KEY") {
		t.Fatalf("NewApp with the credential setting empty = %v; want a refusal naming REMOTE_KEY", err)
	}
}
