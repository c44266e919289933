package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRouteRefuses(t *testing.T) {
	tests := []struct {
		name, template, wantInErr string
	}{
		{"constraint", "items/{id:int}", "constraint"},
		{"optional constraint", "items/{id:int?}", "constraint"},
		{"default", "items/{id=1}", "default value"},
		{"two parameters in a segment", "items/{a}{b}", "only one whole-segment parameter"},
		{"parameter with literal", "items/x{a}", "only one whole-segment parameter"},
		{"parameter and extension", "files/{name}.{ext}", "only one whole-segment parameter"},
		{"optional not last", "items/{a?}/more", "must be the last segment"},
		{"catch-all not last", "items/{*rest}/more", "must be the last segment"},
		{"optional catch-all", "items/{*rest?}", "cannot be optional"},
		{"double-star catch-all", "items/{**rest}", "invalid parameter name"},
		{"empty parameter", "items/{}", "invalid parameter name"},
		{"escaped brace", "items/{{x}}", "only one whole-segment parameter"},
		{"unbalanced", "items/{x", "only one whole-segment parameter"},
		{"empty segment", "items//x", "empty segment"},
		{"question mark literal", "items/a?b", "contains '?'"},
		{"duplicate parameter", "{id}/x/{ID}", "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRoute(tt.template)
			if !errors.Is(err, errRoute) {
				t.Fatalf("parseRoute(%q) error = %v; want errRoute", tt.template, err)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("parseRoute(%q) error = %q; want it to mention %q", tt.template, err, tt.wantInErr)
			}
		})
	}
}

func TestRouteMatch(t *testing.T) {
	tests := []struct {
		name, template, path string
		want                 map[string]string // nil: no match
	}{
		{"literal", "api/hello", "/api/hello", map[string]string{}},
		{"literal case-insensitive", "api/hello", "/API/Hello", map[string]string{}},
		{"literal trailing slash", "api/hello", "/api/hello/", map[string]string{}},
		{"literal mismatch", "api/hello", "/api/bye", nil},
		{"too long", "api/hello", "/api/hello/x", nil},
		{"too short", "api/hello", "/api", nil},
		{"param", "api/items/{id}", "/api/items/42", map[string]string{"id": "42"}},
		{"param decoded", "api/items/{id}", "/api/items/a%20b", map[string]string{"id": "a b"}},
		{"param keeps case", "api/items/{id}", "/api/ITEMS/AbC", map[string]string{"id": "AbC"}},
		{"param missing", "api/items/{id}", "/api/items", nil},
		{"param empty segment", "api/items/{id}/x", "/api/items//x", nil},
		{"optional present", "api/keys/{action?}", "/api/keys/rotate", map[string]string{"action": "rotate"}},
		{"optional absent", "api/keys/{action?}", "/api/keys", map[string]string{}},
		{"optional too long", "api/keys/{action?}", "/api/keys/a/b", nil},
		{"catch-all zero segments", "api/echo/{id}/{*rest}", "/api/echo/1", map[string]string{"id": "1", "rest": ""}},
		{"catch-all zero segments trailing slash", "api/echo/{id}/{*rest}", "/api/echo/1/", map[string]string{"id": "1", "rest": ""}},
		{"catch-all one segment", "api/echo/{id}/{*rest}", "/api/echo/1/a", map[string]string{"id": "1", "rest": "a"}},
		{"catch-all many segments", "api/echo/{id}/{*rest}", "/api/echo/1/a/b/c", map[string]string{"id": "1", "rest": "a/b/c"}},
		{"catch-all needs the param", "api/echo/{id}/{*rest}", "/api/echo", nil},
		{"catch-all only", "{*all}", "/", map[string]string{"all": ""}},
		{"bad escape", "api/items/{id}", "/api/items/%zz", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := parseRoute(tt.template)
			if err != nil {
				t.Fatalf("parseRoute(%q): %v", tt.template, err)
			}
			segs, ok := splitPath(tt.path)
			var got map[string]string
			if ok {
				got, ok = tmpl.match(segs)
			}
			if tt.want == nil {
				if ok {
					t.Fatalf("%q matched %q with %v; want no match", tt.template, tt.path, got)
				}
				return
			}
			if !ok || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("%q match %q = %v, %v; want %v, true", tt.template, tt.path, got, ok, tt.want)
			}
		})
	}
}

func testRouter(t *testing.T, defs ...[3]string) *router {
	t.Helper()
	var routes []*httpRoute
	for _, d := range defs { // name, template, methods (comma-separated or "")
		tmpl, err := parseRoute(d[1])
		if err != nil {
			t.Fatalf("parseRoute(%q): %v", d[1], err)
		}
		r := &httpRoute{fn: &function{Name: d[0], Trigger: triggerHTTP}, tmpl: tmpl}
		if d[2] != "" {
			r.methods = map[string]bool{}
			for _, m := range strings.Split(d[2], ",") {
				r.methods[m] = true
			}
		}
		routes = append(routes, r)
	}
	rt, err := newRouter(routes)
	if err != nil {
		t.Fatalf("newRouter: %v", err)
	}
	return rt
}

func TestRouterPrecedence(t *testing.T) {
	rt := testRouter(t,
		[3]string{"byid", "api/items/{id}", ""},
		[3]string{"one", "api/one/{id}", ""},
		[3]string{"oneopt", "api/one/{id?}", ""},
		[3]string{"special", "api/items/special", ""},
		[3]string{"tail", "api/items/{id}/{*rest}", ""},
		[3]string{"opt", "api/items/{id}/x/{action?}", ""},
		[3]string{"anything", "api/{*all}", ""},
		[3]string{"getonly", "api/things/{id}", "GET"},
		[3]string{"postonly", "api/things/{id}", "POST"},
	)
	tests := []struct {
		method, path, want string
	}{
		{"GET", "/api/items/special", "special"}, // literal beats parameter
		{"GET", "/api/ITEMS/SPECIAL", "special"},
		// As in the host's WebJobsRouteBuilder, the longer template is tried
		// first, and its catch-all matches zero segments (ASP.NET proper
		// would pick byid here).
		{"GET", "/api/items/42", "tail"},
		{"GET", "/api/items/42/x", "opt"},      // the longer, more literal template first
		{"GET", "/api/items/42/x/do", "opt"},   // optional present
		{"GET", "/api/items/42/y/z", "tail"},   // catch-all many
		{"GET", "/api/other/path", "anything"}, // literal prefix then catch-all
		{"GET", "/api/one/1", "one"},           // a plain parameter before an optional one
		{"POST", "/api/one", "oneopt"},
		{"GET", "/api/things/1", "getonly"},
		{"POST", "/api/things/1", "postonly"},
		{"DELETE", "/api/things/1", "anything"}, // method mismatch falls through to the next route
		{"GET", "/other", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r, _ := rt.find(tt.method, tt.path)
			got := ""
			if r != nil {
				got = r.fn.Name
			}
			if got != tt.want {
				t.Errorf("find(%s %s) = %q; want %q", tt.method, tt.path, got, tt.want)
			}
		})
	}
}

func TestRouterWrongMethodIsNotFound(t *testing.T) {
	rt := testRouter(t, [3]string{"echo", "api/echo/{id}/{*rest}", "GET,POST"})
	if r, _ := rt.find("DELETE", "/api/echo/1"); r != nil {
		t.Errorf("find(DELETE) = %q; want no route", r.fn.Name)
	}
	if r, _ := rt.find("POST", "/api/echo/1"); r == nil {
		t.Error("find(POST) = nil; want echo")
	}
}

func TestRouterRefusesConflicts(t *testing.T) {
	mk := func(name, tmpl string, methods ...string) *httpRoute {
		p, err := parseRoute(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		r := &httpRoute{fn: &function{Name: name}, tmpl: p}
		if methods != nil {
			r.methods = map[string]bool{}
			for _, m := range methods {
				r.methods[m] = true
			}
		}
		return r
	}
	tests := []struct {
		name    string
		routes  []*httpRoute
		wantErr bool
	}{
		{"same template all methods", []*httpRoute{mk("a", "api/x/{id}"), mk("b", "api/X/{other}")}, true},
		{"same template common method", []*httpRoute{mk("a", "api/x", "GET", "POST"), mk("b", "api/x", "POST")}, true},
		{"same template disjoint methods", []*httpRoute{mk("a", "api/x", "GET"), mk("b", "api/x", "POST")}, false},
		{"different templates", []*httpRoute{mk("a", "api/x/{id}"), mk("b", "api/x/{id}/{*rest}")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newRouter(tt.routes)
			if (err != nil) != tt.wantErr {
				t.Errorf("newRouter error = %v; want error %v", err, tt.wantErr)
			}
		})
	}
}
