package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(`{"services":[
		{"name":"iris","scoringUri":"http://10.0.0.4:5001/score"},
		{"name":"open","authMode":"none"},
		{"name":"tok","authMode":"token"},
		{"name":"aml-key","authEnabled":true},
		{"name":"aml-token","authEnabled":false,"tokenAuthEnabled":true},
		{"name":"aml-none","authEnabled":false},
		{"name":"agree","authMode":"key","authEnabled":true}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]AuthMode{"iris": AuthKey, "open": AuthNone, "tok": AuthToken,
		"aml-key": AuthKey, "aml-token": AuthToken, "aml-none": AuthNone, "agree": AuthKey}
	for name, mode := range want {
		s, ok := c.Service(name)
		if !ok || s.AuthMode != mode {
			t.Errorf("Service(%q) = %+v, %v; want mode %q", name, s, ok, mode)
		}
	}
	if s, _ := c.Service("iris"); s.ScoringURI == nil || s.ScoringURI.String() != "http://10.0.0.4:5001/score" {
		t.Errorf("iris scoringUri = %v", s.ScoringURI)
	}
	if _, ok := c.Service("missing"); ok {
		t.Error("Service(missing) found")
	}
	if len(c.Services) != 7 {
		t.Errorf("len(Services) = %d; want 7", len(c.Services))
	}
}

func TestParseTokenAndEntra(t *testing.T) {
	c, err := Parse([]byte(`{"services":[
		{"name":"t1","authMode":"token"},
		{"name":"t2","tokenAuthEnabled":true,"tokenLifetime":"2h","tokenRefreshAfter":"90m"},
		{"name":"e","authMode":"entra","audience":" api://e ","requiredRole":"Score"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	t1, _ := c.Service("t1")
	if t1.AuthMode != AuthToken || t1.TokenLifetime != time.Hour || t1.TokenRefreshAfter != 30*time.Minute {
		t.Errorf("t1 = %s %v %v; want token 1h 30m", t1.AuthMode, t1.TokenLifetime, t1.TokenRefreshAfter)
	}
	t2, _ := c.Service("t2")
	if t2.AuthMode != AuthToken || t2.TokenLifetime != 2*time.Hour || t2.TokenRefreshAfter != 90*time.Minute {
		t.Errorf("t2 = %s %v %v; want token 2h 90m", t2.AuthMode, t2.TokenLifetime, t2.TokenRefreshAfter)
	}
	e, _ := c.Service("e")
	if e.AuthMode != AuthEntra || e.Audience != "api://e" || e.RequiredRole != "Score" {
		t.Errorf("e = %+v", e)
	}
	if got := c.MaxTokenLifetime(); got != 2*time.Hour {
		t.Errorf("MaxTokenLifetime = %v; want 2h", got)
	}
}

func TestParseRefused(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // every fragment must appear in the error
	}{
		{"not json", `{`, []string{"invalid configuration"}},
		{"unknown top field", `{"servicez":[]}`, []string{`unknown field "servicez"`}},
		{"unknown service field", `{"services":[{"name":"a","mode":"key"}]}`, []string{`unknown field "mode"`}},
		{"trailing data", `{"services":[]} {}`, []string{"trailing data"}},
		{"upper case name", `{"services":[{"name":"Iris"}]}`, []string{`"Iris"`, "must match"}},
		{"empty name", `{"services":[{"name":""}]}`, []string{`services[0]`, "must match"}},
		{"name too long", `{"services":[{"name":"` + strings.Repeat("a", 41) + `"}]}`, []string{"must match"}},
		{"leading dash", `{"services":[{"name":"-a"}]}`, []string{`"-a"`}},
		{"underscore", `{"services":[{"name":"a_b"}]}`, []string{`"a_b"`}},
		{"duplicate", `{"services":[{"name":"a"},{"name":"b"},{"name":"a"}]}`, []string{`service "a" is listed twice`}},
		{"key and token", `{"services":[{"name":"both","authEnabled":true,"tokenAuthEnabled":true}]}`, []string{`service "both"`, "key auth and token auth cannot both be enabled"}},
		{"mode contradicts switches", `{"services":[{"name":"c","authMode":"key","tokenAuthEnabled":true}]}`, []string{`service "c"`, "contradicts"}},
		{"unknown mode", `{"services":[{"name":"m","authMode":"oauth"}]}`, []string{`service "m"`, `authMode "oauth"`}},
		{"entra without audience", `{"services":[{"name":"e","authMode":"entra"}]}`, []string{`service "e"`, "needs an audience"}},
		{"audience on a key service", `{"services":[{"name":"k","audience":"api://k"}]}`, []string{`service "k"`, "audience applies to entra mode"}},
		{"token lifetime on a key service", `{"services":[{"name":"k","tokenLifetime":"1h"}]}`, []string{"tokenLifetime applies to token mode"}},
		{"rotation period on a token service", `{"services":[{"name":"t","authMode":"token","rotationPeriod":"720h"}]}`, []string{"rotationPeriod applies to key mode"}},
		{"token lifetime too long", `{"services":[{"name":"t","authMode":"token","tokenLifetime":"25h"}]}`, []string{`service "t"`, "want 1m to 24h"}},
		{"refresh after the lifetime", `{"services":[{"name":"t","authMode":"token","tokenLifetime":"1h","tokenRefreshAfter":"1h"}]}`, []string{"must be less than tokenLifetime"}},
		{"bad token duration", `{"services":[{"name":"t","authMode":"token","tokenLifetime":"soon"}]}`, []string{`tokenLifetime "soon"`}},
		{"relative url", `{"services":[{"name":"u","scoringUri":"/score"}]}`, []string{`service "u"`, "absolute http or https"}},
		{"ftp url", `{"services":[{"name":"u","scoringUri":"ftp://h/x"}]}`, []string{"absolute http or https"}},
		{"no host", `{"services":[{"name":"u","scoringUri":"http:///x"}]}`, []string{"has no host"}},
		{"credentials", `{"services":[{"name":"u","scoringUri":"http://user:pw@h/x"}]}`, []string{"must not carry credentials"}},
		{"query", `{"services":[{"name":"u","scoringUri":"http://h/x?a=1"}]}`, []string{"query or fragment"}},
		{"bad escape", `{"services":[{"name":"u","scoringUri":"http://h/%zz"}]}`, []string{"not a URL"}},
		{"two problems", `{"services":[{"name":"A"},{"name":"b","authMode":"x"}]}`, []string{`"A"`, `service "b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted %s: %+v", tt.doc, c)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			for _, frag := range tt.want {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error %q does not mention %q", err, frag)
				}
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Errorf("error repeats credentials: %v", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"services":[{"name":"a"}]}`), 0o600)
	if _, err := Load(good); err != nil {
		t.Fatalf("Load(good) = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Fatalf("Load(missing) = %v; want an error naming the file", err)
	}
	big := filepath.Join(dir, "big.json")
	os.WriteFile(big, []byte(`{"services":[]}`+strings.Repeat(" ", MaxFileBytes)), 0o600)
	if _, err := Load(big); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Load(big) = %v; want ErrInvalid", err)
	}
}

func TestLoadSettings(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	s, err := LoadSettings(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.Getenv == nil {
		t.Error("Getenv not kept")
	}
	s.Getenv = nil
	if !reflect.DeepEqual(s, func() Settings { d := DefaultSettings(); d.ConfigPath = "modelauth.json"; return d }()) {
		t.Errorf("defaults = %+v", s)
	}
	s, err = LoadSettings(env(map[string]string{
		"FUNCTIONS_APP_ROOT_PATH": "/app", "KEY_CACHE_TTL": "5s", "SCORE_MAX_BODY_BYTES": "100", "LOG_LEVEL": "debug",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s.ConfigPath != filepath.Join("/app", "modelauth.json") || s.KeyCacheTTL != 5*time.Second || s.ScoreMaxBodyBytes != 100 || s.LogLevel.String() != "DEBUG" {
		t.Errorf("settings = %+v", s)
	}
	// KEY_READ_TIMEOUT=0 is no bound (cache.Bounds.ReadTimeout), not the
	// default.
	if s, err := LoadSettings(env(map[string]string{"KEY_READ_TIMEOUT": "0"})); err != nil || s.KeyReadTimeout != 0 || s.KeyCache().ReadTimeout != 0 {
		t.Errorf("KEY_READ_TIMEOUT=0: %v, %v", s.KeyReadTimeout, err)
	}
	if s, err := LoadSettings(env(map[string]string{"KEY_READ_TIMEOUT": "500ms"})); err != nil || s.KeyCache().ReadTimeout != 500*time.Millisecond {
		t.Errorf("KEY_READ_TIMEOUT=500ms: %v, %v", s.KeyReadTimeout, err)
	}
	s, err = LoadSettings(env(map[string]string{
		"WEBSITE_HOSTNAME": "app.azurewebsites.net", "TOKEN_SIGNING_ALG": "ES256", "TOKEN_LEEWAY": "0s",
		"ADMIN_KEY_ENABLED": "false", "OIDC_ISSUERS": " https://login.microsoftonline.com/t/v2.0 , https://sts.windows.net/t/ ,",
		"OIDC_AUDIENCES": "api://modelauth",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Issuer != "https://app.azurewebsites.net/api" || s.TokenSigningAlg != "ES256" || s.TokenLeeway != 0 || s.AdminKeyEnabled ||
		!reflect.DeepEqual(s.OIDCIssuers, []string{"https://login.microsoftonline.com/t/v2.0", "https://sts.windows.net/t/"}) ||
		!reflect.DeepEqual(s.OIDCAudiences, []string{"api://modelauth"}) {
		t.Errorf("token settings = %+v", s)
	}
	if s, _ := LoadSettings(env(map[string]string{"WEBSITE_HOSTNAME": "a.net", "MODELAUTH_ISSUER": "https://auth.example.com/api"})); s.Issuer != "https://auth.example.com/api" {
		t.Errorf("MODELAUTH_ISSUER does not win over WEBSITE_HOSTNAME: %q", s.Issuer)
	}
	s, _ = LoadSettings(env(map[string]string{"FUNCTIONS_APP_ROOT_PATH": "/app", "MODELAUTH_CONFIG": "/etc/m.json"}))
	if s.ConfigPath != "/etc/m.json" {
		t.Errorf("MODELAUTH_CONFIG ignored: %q", s.ConfigPath)
	}

	bad := []struct{ name, value, want string }{
		{"KEY_CACHE_TTL", "soon", "KEY_CACHE_TTL"},
		{"KEY_CACHE_TTL", "0s", "KEY_CACHE_TTL"},
		{"KEY_CACHE_TTL", "2h", "KEY_CACHE_TTL"},
		{"KEY_REFRESH_MIN_INTERVAL", "-1s", "KEY_REFRESH_MIN_INTERVAL"},
		{"KEY_CACHE_MAX_STALENESS", "25h", "KEY_CACHE_MAX_STALENESS"},
		{"KEY_READ_TIMEOUT", "2m", "KEY_READ_TIMEOUT"},
		{"KEY_READ_TIMEOUT", "-1s", "KEY_READ_TIMEOUT"},
		{"SCORE_TIMEOUT", "11m", "SCORE_TIMEOUT"},
		{"SCORE_MAX_BODY_BYTES", "ten", "SCORE_MAX_BODY_BYTES"},
		{"SCORE_MAX_BODY_BYTES", "0", "SCORE_MAX_BODY_BYTES"},
		{"LOG_LEVEL", "loud", "LOG_LEVEL"},
		{"KEYVAULT_URL", "http://v.vault.azure.net", "KEYVAULT_URL"},
		{"KEYVAULT_URL", "v.vault.azure.net", "KEYVAULT_URL"},
		{"MODELAUTH_ISSUER", "http://localhost:7071/api/", "no trailing slash"},
		{"MODELAUTH_ISSUER", "localhost:7071", "MODELAUTH_ISSUER"},
		{"TOKEN_SIGNING_ALG", "HS256", "want RS256 or ES256"},
		{"TOKEN_SIGNING_ALG", "none", "TOKEN_SIGNING_ALG"},
		{"TOKEN_LEEWAY", "10m", "TOKEN_LEEWAY"},
		{"TOKEN_MAX_BYTES", "100", "TOKEN_MAX_BYTES"},
		{"TOKEN_CACHE_SIZE", "0", "TOKEN_CACHE_SIZE"},
		{"SIGNING_KEY_ROTATION_PERIOD", "1h", "SIGNING_KEY_ROTATION_PERIOD"},
		{"ADMIN_KEY_ENABLED", "maybe", "ADMIN_KEY_ENABLED"},
		{"ADMIN_KEY_ENABLED", "false", "needs OIDC_ISSUERS and OIDC_AUDIENCES"},
		{"PREFETCH_SCHEDULE", "*/5 * * * *", "PREFETCH_SCHEDULE"},
		{"PREFETCH_LEAD", "10s", "PREFETCH_LEAD"},
	}
	for _, tt := range bad {
		_, err := LoadSettings(env(map[string]string{tt.name: tt.value}))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadSettings(%s=%q) = %v; want an ErrInvalid naming %s", tt.name, tt.value, err, tt.want)
		}
	}
}

func TestSettingNamesAreRead(t *testing.T) {
	read := map[string]bool{}
	LoadSettings(func(k string) string { read[k] = true; return "" })
	for _, n := range SettingNames {
		if !read[n] {
			t.Errorf("SettingNames lists %s, which LoadSettings does not read", n)
		}
		delete(read, n)
	}
	for n := range read {
		t.Errorf("LoadSettings reads %s, which SettingNames lacks", n)
	}
}

func TestConsumers(t *testing.T) {
	base := `{"services":[{"name":"tok","authMode":"token"},{"name":"key"}],"consumers":[%s]}`
	c, err := Parse([]byte(fmt.Sprintf(base, `
		{"name":"batch","service":"tok"},
		{"name":"remote","service":"iris","source":"modelauth","url":"https://other.example/api","credentialSetting":"REMOTE_KEY"},
		{"name":"aml","source":"azureml","endpoint":"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/onlineEndpoints/ep"}`)))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Consumers) != 3 || c.Consumers[0].Source != SourceSelf || c.Consumers[1].CredentialSetting != "REMOTE_KEY" {
		t.Fatalf("consumers = %+v", c.Consumers)
	}
	if got, ok := c.Consumer("aml"); !ok || got.Source != SourceAzureML {
		t.Fatalf("Consumer(aml) = %+v, %v", got, ok)
	}
	bad := []struct{ doc, want string }{
		{`{"name":"Bad","service":"tok"}`, `consumers[0]: name "Bad"`},
		{`{"name":"b","service":"tok"},{"name":"b","service":"tok"}`, `consumer "b" is listed twice`},
		{`{"name":"b","service":"nope"}`, `service "nope" is not configured`},
		{`{"name":"b","service":"key"}`, `uses key auth`},
		{`{"name":"b","service":"tok","url":"https://x/api"}`, "source self takes no url"},
		{`{"name":"b","service":"iris","source":"modelauth","url":"ftp://x","credentialSetting":"K"}`, "url"},
		{`{"name":"b","service":"iris","source":"modelauth","url":"https://x/api"}`, "credentialSetting"},
		{`{"name":"b","source":"azureml","endpoint":"/subscriptions/s/resourceGroups/rg"}`, "endpoint"},
		{`{"name":"b","source":"vault"}`, `source "vault" is not one of`},
		{`{"name":"b","service":"tok","lead":"5m"}`, `unknown field "lead"`},
	}
	for _, tt := range bad {
		_, err := Parse([]byte(fmt.Sprintf(base, tt.doc)))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%s) = %v; want ErrInvalid mentioning %q", tt.doc, err, tt.want)
		}
	}
}

func TestPrefetchLead(t *testing.T) {
	for _, tt := range []struct {
		schedule string
		lead     time.Duration
	}{
		{"0 */5 * * * *", 10 * time.Minute},
		{"0 * * * * *", 5 * time.Minute}, // every minute: the 5-minute floor
		{"0 0 * * * *", 2 * time.Hour},
		{"0 0,10 * * * *", 100 * time.Minute}, // uneven: the longest gap, 50 min
	} {
		s, err := LoadSettings(func(k string) string {
			if k == "PREFETCH_SCHEDULE" {
				return tt.schedule
			}
			return ""
		})
		if err != nil || s.PrefetchLead != tt.lead {
			t.Errorf("PREFETCH_SCHEDULE=%q: lead %v (%v); want %v", tt.schedule, s.PrefetchLead, err, tt.lead)
		}
	}
	s, _ := LoadSettings(func(k string) string {
		if k == "PREFETCH_LEAD" {
			return "20m"
		}
		return ""
	})
	if s.PrefetchLead != 20*time.Minute {
		t.Errorf("PREFETCH_LEAD ignored: %v", s.PrefetchLead)
	}
}
