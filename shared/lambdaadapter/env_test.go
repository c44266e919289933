package lambdaadapter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
)

var update = flag.Bool("update", false, "rewrite testdata/golden")

// services: two key services, a token service and an open one.
const services = `{"services":[
	{"name":"iris"},
	{"name":"other"},
	{"name":"tok","authMode":"token"},
	{"name":"open","authMode":"none"}]}`

// env is a real App with its keys.
type env struct {
	app         *functions.App
	handler     http.Handler
	iris, other keyring.Keys
	admin       string
}

func newApp(dir string, edit func(*config.Settings)) (*functions.App, error) {
	cfgPath := filepath.Join(dir, "modelauth.json")
	if err := os.WriteFile(cfgPath, []byte(services), 0o600); err != nil {
		return nil, err
	}
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir = cfgPath, filepath.Join(dir, "data")
	if edit != nil {
		edit(&s)
	}
	return functions.NewApp(context.Background(), s, slog.New(slog.DiscardHandler))
}

func newEnv(t *testing.T) *env {
	t.Helper()
	a, err := newApp(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ctx := context.Background()
	e := &env{app: a, handler: a.Handler()}
	if e.iris, err = a.Keys.Get(ctx, "iris"); err != nil {
		t.Fatal(err)
	}
	if e.other, err = a.Keys.Get(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	adm, err := a.Store.GetSecret(ctx, keysecret.AdminKeySecret, "")
	if err != nil {
		t.Fatal(err)
	}
	e.admin = adm.Value
	return e
}

// load decodes a sample event of testdata into a value of type T.
func load[T any](t *testing.T, name string) T {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// golden compares v, as indented JSON, with testdata/golden/name.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what was answered:\n got: %s\nwant: %s", name, got, want)
	}
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	ca, _ := json.Marshal(va)
	cb, _ := json.Marshal(vb)
	return bytes.Equal(ca, cb)
}

// iamMatch reports whether resource matches pattern with IAM's wildcards:
// "*" any run of characters (including "/"), "?" any one character.
func iamMatch(pattern, resource string) bool {
	if pattern == "" {
		return resource == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(resource); i++ {
			if iamMatch(pattern[1:], resource[i:]) {
				return true
			}
		}
		return false
	case '?':
		return resource != "" && iamMatch(pattern[1:], resource[1:])
	}
	return resource != "" && pattern[0] == resource[0] && iamMatch(pattern[1:], resource[1:])
}

func bearerOf(key string) string { return "Bearer " + key }

func cloneMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func trimNL(s string) string { return strings.TrimRight(s, "\n") }
