package keyvaulttest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// restExample is an x-ms-examples file of azure-rest-api-specs.
type restExample struct {
	Parameters map[string]json.RawMessage `json:"parameters"`
	Responses  map[string]struct {
		Body json.RawMessage `json:"body"`
	} `json:"responses"`
}

func (e restExample) param(t *testing.T, name string) string {
	t.Helper()
	raw, ok := e.Parameters[name]
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(raw) // a number, e.g. maxresults
}

// extraKeys are the optional fields of SecretBundle, SecretItem and
// SecretAttributes that a response may have beyond an example's.
var extraKeys = []string{"recoverableDays", "recoveryLevel", "contentType", "tags"}

// TestRESTReferenceExamples replays the Key Vault REST reference examples
// in testdata/rest-examples and compares the shapes of the responses.
func TestRESTReferenceExamples(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	tok := token(t, kv)

	cases := []struct {
		file string
		// request builds the example's request, after any setup.
		method string
		setup  int // versions to write first
		path   func(e restExample, versions []string) string
	}{
		{"SetSecret-example.json", http.MethodPut, 0, func(e restExample, _ []string) string {
			return "/secrets/" + e.param(t, "secret-name")
		}},
		{"GetSecret-example.json", http.MethodGet, 1, func(e restExample, v []string) string {
			return "/secrets/" + e.param(t, "secret-name") + "/" + v[0]
		}},
		{"GetSecretVersions-example.json", http.MethodGet, 2, func(e restExample, _ []string) string {
			return "/secrets/" + e.param(t, "secret-name") + "/versions"
		}},
		{"UpdateSecret-example.json", http.MethodPatch, 1, func(e restExample, v []string) string {
			return "/secrets/" + e.param(t, "secret-name") + "/" + v[0]
		}},
	}
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.file, "-example.json"), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "rest-examples", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var ex restExample
			if err := json.Unmarshal(raw, &ex); err != nil {
				t.Fatal(err)
			}
			want := decodeJSON(t, ex.Responses["200"].Body)
			name := ex.param(t, "secret-name")

			var versions []string
			for range tc.setup {
				value := "mysecretvalue"
				if v, ok := want.(map[string]any)["value"].(string); ok {
					value = v
				}
				versions = append(versions, setRaw(t, kv, tok, name, map[string]any{"value": value}))
			}

			q := url.Values{"api-version": {ex.param(t, "api-version")}}
			if m := ex.param(t, "maxresults"); m != "" {
				q.Set("maxresults", m)
			}
			var body any
			if b, ok := ex.Parameters["parameters"]; ok {
				body = decodeJSON(t, b)
			}
			r := do(t, kv, tc.method, tc.path(ex, versions)+"?"+q.Encode(), tok, body)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q; want application/json", ct)
			}
			got := decodeJSON(t, r.body)
			compareShape(t, kv, "$", want, got)
		})
	}
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %q: %v", b, err)
	}
	return v
}

var idRE = regexp.MustCompile(`^https://[^/]+/secrets/[0-9A-Za-z-]{1,127}/[0-9a-f]{32}$`)

// compareShape checks that got has want's keys, with the same JSON types,
// and no keys but documented optional ones beyond them. Values that the
// request determines (value, contentType, tags, enabled) must be equal.
func compareShape(t *testing.T, kv *keyvaulttest.Server, path string, want, got any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: got %T; want an object", path, got)
			return
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				t.Errorf("%s: no key %q", path, k)
				continue
			}
			compareShape(t, kv, path+"."+k, wv, gv)
			switch k {
			case "value", "contentType", "tags", "enabled":
				if _, isList := wv.([]any); !isList && !reflect.DeepEqual(wv, gv) {
					t.Errorf("%s.%s = %v; want %v", path, k, gv, wv)
				}
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok && !slices.Contains(extraKeys, k) {
				t.Errorf("%s: unexpected key %q", path, k)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			t.Errorf("%s: got %T; want an array", path, got)
			return
		}
		if len(w) > 0 && len(g) != len(w) {
			t.Errorf("%s: %d items; want %d", path, len(g), len(w))
		}
		for i := range min(len(w), len(g)) {
			compareShape(t, kv, path+"[]", w[i], g[i])
		}
	case json.Number:
		g, ok := got.(json.Number)
		if !ok {
			t.Errorf("%s: got %T; want a number", path, got)
			return
		}
		if _, err := w.Int64(); err == nil {
			if _, err := g.Int64(); err != nil {
				t.Errorf("%s = %s; want an integer", path, g)
			}
		}
	case string:
		g, ok := got.(string)
		if !ok {
			t.Errorf("%s: got %T; want a string", path, got)
			return
		}
		switch {
		case strings.HasSuffix(path, ".id"):
			if !idRE.MatchString(w) {
				t.Fatalf("the example's %s %q does not have the id form this test expects", path, w)
			}
			if !idRE.MatchString(g) || !strings.HasPrefix(g, kv.VaultURL+"/secrets/") {
				t.Errorf("%s = %q; want %s/secrets/<name>/<32 hex>", path, g, kv.VaultURL)
			}
		case strings.HasSuffix(path, ".nextLink"):
			compareLink(t, kv, path, w, g)
		}
	case bool:
		if _, ok := got.(bool); !ok {
			t.Errorf("%s: got %T; want a bool", path, got)
		}
	case nil:
		if got != nil {
			t.Errorf("%s: got %v; want null", path, got)
		}
	default:
		t.Fatalf("%s: unexpected type %T in the example", path, want)
	}
}

// compareLink checks a nextLink: an absolute URL of the vault with the
// example's path and query parameters.
func compareLink(t *testing.T, kv *keyvaulttest.Server, path, want, got string) {
	t.Helper()
	wu, err := url.Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	gu, err := url.Parse(got)
	if err != nil || !gu.IsAbs() || "https://"+gu.Host != kv.VaultURL {
		t.Errorf("%s = %q; want an absolute URL of %s", path, got, kv.VaultURL)
		return
	}
	if gu.Path != wu.Path {
		t.Errorf("%s path = %q; want %q", path, gu.Path, wu.Path)
	}
	keys := func(u *url.URL) []string {
		var ks []string
		for k := range u.Query() {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	if g, w := keys(gu), keys(wu); !slices.Equal(g, w) {
		t.Errorf("%s query keys = %v; want %v", path, g, w)
	}
}
