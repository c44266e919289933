package amltest_test

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/amltest"
)

// example is an x-ms-examples file: the request's parameters and the
// answers the operation may give, by status.
type example struct {
	Parameters map[string]any `json:"parameters"`
	Responses  map[string]struct {
		Headers map[string]string `json:"headers"`
		Body    any               `json:"body"`
	} `json:"responses"`
}

// mayOmit are example fields the server leaves out, as the service does
// for a managed endpoint with a system-assigned identity and no SKU, and
// for the last page of a listing (the fields are optional in the spec).
var mayOmit = map[string]bool{
	"sku":                             true,
	"identity.userAssignedIdentities": true,
	"value.[].sku":                    true,
	"value.[].identity.userAssignedIdentities": true,
	"nextLink": true,
}

// nullable are example fields the server answers null (x-nullable in
// the spec: EndpointPropertiesBase.description, OnlineEndpoint.compute).
var nullable = map[string]bool{
	"properties.description":          true,
	"properties.compute":              true,
	"value.[].properties.description": true,
	"value.[].properties.compute":     true,
}

// TestExamples replays the spec's OnlineEndpoint examples
// (testdata/examples): it sends each example's request to the server and
// checks that the status is one the example lists, that the headers the
// example shows are there, and that the body has the example's fields,
// with the same JSON types.
func TestExamples(t *testing.T) {
	cases := []struct {
		file, method, action, authMode string
		exists                         bool
	}{
		{"get.json", http.MethodGet, "", amltest.AuthAMLToken, true},
		{"list.json", http.MethodGet, "list", amltest.AuthAMLToken, true},
		{"getToken.json", http.MethodPost, "/token", amltest.AuthAMLToken, true},
		{"regenerateKeys.json", http.MethodPost, "/regenerateKeys", amltest.AuthKey, true},
		{"createOrUpdate.json", http.MethodPut, "", "", false},
		{"createOrUpdate.json", http.MethodPut, "", amltest.AuthKey, true},
		{"delete.json", http.MethodDelete, "", amltest.AuthAMLToken, true},
		{"delete.json", http.MethodDelete, "", "", false},
	}
	for _, c := range cases {
		t.Run(c.file+"/exists="+strconv.FormatBool(c.exists), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "examples", c.file))
			if err != nil {
				t.Fatal(err)
			}
			var ex example
			if err := json.Unmarshal(b, &ex); err != nil {
				t.Fatal(err)
			}
			p := func(k string) string { s, _ := ex.Parameters[k].(string); return s }
			ws := "/subscriptions/" + p("subscriptionId") + "/resourceGroups/" + p("resourceGroupName") +
				"/providers/Microsoft.MachineLearningServices/workspaces/" + p("workspaceName") + "/onlineEndpoints"
			id := ws + "/" + p("endpointName")
			if p("api-version") != amltest.APIVersion {
				t.Fatalf("example api-version %q", p("api-version"))
			}

			e := newEnv(t, nil, nil)
			if c.exists {
				e.aml.AddEndpoint(ws+"/testEndpointName", c.authMode)
			}
			path := id + c.action
			if c.action == "list" {
				path = ws
			}
			resp, err := e.send(t, ctxTimeout(t, 10*time.Second), c.method, path, ex.Parameters["body"])
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			want, ok := ex.Responses[strconv.Itoa(resp.StatusCode)]
			if !ok {
				t.Fatalf("status %d (%s); the example lists %v", resp.StatusCode, body, slices.Sorted(maps.Keys(ex.Responses)))
			}
			for h := range want.Headers {
				if resp.Header.Get(h) == "" {
					t.Errorf("status %d without the example's header %s", resp.StatusCode, h)
				}
			}
			if want.Body == nil {
				return
			}
			var got any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			sameShape(t, "", want.Body, got)
		})
	}
}

// sameShape checks that got has want's fields with want's JSON types. An
// object key "string" in an example stands for any key (a map).
func sameShape(t *testing.T, path string, want, got any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: %T; want an object", path, got)
			return
		}
		for k, wv := range w {
			if k == "string" { // a map's placeholder key
				for gk, gv := range g {
					sameShape(t, join(path, gk), wv, gv)
				}
				continue
			}
			gv, ok := g[k]
			switch {
			case !ok && mayOmit[join(path, k)]:
			case !ok:
				t.Errorf("%s: missing", join(path, k))
			case gv == nil && nullable[join(path, k)]:
			default:
				sameShape(t, join(path, k), wv, gv)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			t.Errorf("%s: %T; want an array", path, got)
			return
		}
		if len(g) == 0 {
			t.Errorf("%s: empty; the example has items", path)
			return
		}
		for _, gv := range g {
			sameShape(t, join(path, "[]"), w[0], gv)
		}
	default:
		if got == nil || (want != nil && typeName(want) != typeName(got)) {
			t.Errorf("%s: %v (%T); want a %T like %v", path, got, got, want, want)
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	}
	return "other"
}
