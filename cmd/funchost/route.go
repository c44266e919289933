package main

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// errRoute is wrapped by every route template refusal.
var errRoute = errors.New("unsupported route template")

type segmentKind int

const (
	segLiteral  segmentKind = iota // text, compared case-insensitively
	segParam                       // {x}: one non-empty segment
	segOptional                    // {x?}: an optional last segment
	segCatchAll                    // {*x}: zero or more segments, last
)

// segment is one "/"-separated part of a route template.
type segment struct {
	kind segmentKind
	text string // the literal text or the parameter name
}

// routeTemplate is a parsed ASP.NET route template restricted to the subset
// the local host supports: literals, {x}, {x?} and {*x}.
type routeTemplate struct {
	raw  string
	segs []segment
}

// parseRoute parses template (without a leading "/"). It refuses, wrapping
// errRoute, every syntax outside the supported subset: constraints
// ({x:int}), defaults ({x=1}), several parts in one segment ({a}.{b},
// a{b}), optional or catch-all parameters that are not last, duplicate
// parameter names and empty segments.
func parseRoute(template string) (*routeTemplate, error) {
	t := &routeTemplate{raw: template}
	if template == "" {
		return t, nil
	}
	parts := strings.Split(template, "/")
	seen := map[string]bool{}
	for i, p := range parts {
		last := i == len(parts)-1
		seg, err := parseSegment(p)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", errRoute, template, err)
		}
		switch {
		case seg.kind == segOptional && !last:
			return nil, fmt.Errorf("%w %q: optional parameter {%s?} must be the last segment", errRoute, template, seg.text)
		case seg.kind == segCatchAll && !last:
			return nil, fmt.Errorf("%w %q: catch-all parameter {*%s} must be the last segment", errRoute, template, seg.text)
		}
		if seg.kind != segLiteral {
			key := strings.ToLower(seg.text)
			if seen[key] {
				return nil, fmt.Errorf("%w %q: parameter %q appears twice", errRoute, template, seg.text)
			}
			seen[key] = true
		}
		t.segs = append(t.segs, seg)
	}
	return t, nil
}

func parseSegment(p string) (segment, error) {
	if p == "" {
		return segment{}, errors.New("empty segment")
	}
	nOpen, nClose := strings.Count(p, "{"), strings.Count(p, "}")
	if nOpen == 0 && nClose == 0 {
		if strings.Contains(p, "?") {
			return segment{}, fmt.Errorf("literal %q contains '?'", p)
		}
		return segment{kind: segLiteral, text: p}, nil
	}
	if nOpen != 1 || nClose != 1 || p[0] != '{' || p[len(p)-1] != '}' {
		return segment{}, fmt.Errorf("segment %q: only one whole-segment parameter {x}, {x?} or {*x} is supported", p)
	}
	inner := p[1 : len(p)-1]
	kind := segParam
	switch {
	case strings.HasPrefix(inner, "*"):
		kind, inner = segCatchAll, inner[1:]
		if strings.HasSuffix(inner, "?") {
			return segment{}, fmt.Errorf("segment %q: a catch-all parameter cannot be optional", p)
		}
	case strings.HasSuffix(inner, "?"):
		kind, inner = segOptional, inner[:len(inner)-1]
	}
	if i := strings.IndexAny(inner, ":="); i >= 0 {
		what := "constraint"
		if inner[i] == '=' {
			what = "default value"
		}
		return segment{}, fmt.Errorf("segment %q: route %ss are not supported", p, what)
	}
	if inner == "" || strings.ContainsAny(inner, "*?{}/ \t") {
		return segment{}, fmt.Errorf("segment %q: invalid parameter name", p)
	}
	return segment{kind: kind, text: inner}, nil
}

// splitPath splits an escaped URL path into decoded segments, ignoring the
// leading "/" and one trailing "/". ok is false if a segment does not
// decode.
func splitPath(escaped string) (segs []string, ok bool) {
	p := strings.TrimPrefix(escaped, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil, true
	}
	raw := strings.Split(p, "/")
	segs = make([]string, len(raw))
	for i, s := range raw {
		d, err := url.PathUnescape(s)
		if err != nil {
			return nil, false
		}
		segs[i] = d
	}
	return segs, true
}

// match reports whether path (decoded segments) matches t, and the
// parameter values. An absent optional parameter has no entry; a catch-all
// that matched zero segments has the value "".
func (t *routeTemplate) match(path []string) (map[string]string, bool) {
	params := map[string]string{}
	for i, seg := range t.segs {
		switch seg.kind {
		case segLiteral:
			if i >= len(path) || !strings.EqualFold(path[i], seg.text) {
				return nil, false
			}
		case segParam:
			if i >= len(path) || path[i] == "" {
				return nil, false
			}
			params[seg.text] = path[i]
		case segOptional:
			if i >= len(path) {
				return params, true
			}
			if path[i] == "" {
				return nil, false
			}
			params[seg.text] = path[i]
		case segCatchAll:
			if i < len(path) {
				params[seg.text] = strings.Join(path[i:], "/")
			} else {
				params[seg.text] = ""
			}
			return params, true
		}
	}
	if len(path) != len(t.segs) {
		return nil, false
	}
	return params, true
}

// compareRoutes orders templates as the Functions host's WebJobsRouteBuilder
// does (literal segments before parameters, left to right; literals
// alphabetically, case-insensitively; a longer template before its prefix)
// and breaks its ties ASP.NET-style: a plain parameter before an optional
// one before a catch-all. It returns <0 when a must be tried first.
func compareRoutes(a, b *routeTemplate) int {
	for i, x := range a.segs {
		if i >= len(b.segs) {
			return -1
		}
		y := b.segs[i]
		xl, yl := x.kind == segLiteral, y.kind == segLiteral
		switch {
		case xl && !yl:
			return -1
		case !xl && yl:
			return 1
		case xl && yl:
			if c := strings.Compare(strings.ToLower(x.text), strings.ToLower(y.text)); c != 0 {
				return c
			}
		}
	}
	if len(b.segs) > len(a.segs) {
		return 1
	}
	for i, x := range a.segs {
		if d := int(x.kind) - int(b.segs[i].kind); d != 0 {
			return d
		}
	}
	return 0
}

// httpRoute is one HTTP function's route in the router.
type httpRoute struct {
	fn      *function
	tmpl    *routeTemplate
	methods map[string]bool // upper case; nil means every method
}

func (r *httpRoute) allows(method string) bool {
	return r.methods == nil || r.methods[method]
}

// router finds the HTTP function for a request. It is immutable after
// newRouter and safe for concurrent use.
type router struct {
	routes []*httpRoute
}

// newRouter sorts routes by precedence (see compareRoutes; then by function
// name) and refuses two functions with the same template and a common
// method, as the host does.
func newRouter(routes []*httpRoute) (*router, error) {
	sorted := append([]*httpRoute(nil), routes...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if c := compareRoutes(sorted[i].tmpl, sorted[j].tmpl); c != 0 {
			return c < 0
		}
		return sorted[i].fn.Name < sorted[j].fn.Name
	})
	for i := 1; i < len(sorted); i++ {
		a, b := sorted[i-1], sorted[i]
		if compareRoutes(a.tmpl, b.tmpl) == 0 && sameShape(a.tmpl, b.tmpl) && overlap(a, b) {
			return nil, fmt.Errorf("functions %q and %q: the route %q conflicts with the route %q for a common method", a.fn.Name, b.fn.Name, b.tmpl.raw, a.tmpl.raw)
		}
	}
	return &router{routes: sorted}, nil
}

// sameShape reports whether two templates match exactly the same paths.
func sameShape(a, b *routeTemplate) bool {
	if len(a.segs) != len(b.segs) {
		return false
	}
	for i := range a.segs {
		x, y := a.segs[i], b.segs[i]
		if x.kind != y.kind || (x.kind == segLiteral && !strings.EqualFold(x.text, y.text)) {
			return false
		}
	}
	return true
}

func overlap(a, b *httpRoute) bool {
	if a.methods == nil || b.methods == nil {
		return true
	}
	for m := range a.methods {
		if b.methods[m] {
			return true
		}
	}
	return false
}

// find returns the first route, in precedence order, whose template
// matches the escaped path and which allows method.
func (rt *router) find(method, escapedPath string) (*httpRoute, map[string]string) {
	segs, ok := splitPath(escapedPath)
	if !ok {
		return nil, nil
	}
	for _, r := range rt.routes {
		if !r.allows(method) {
			continue
		}
		if params, ok := r.tmpl.match(segs); ok {
			return r, params
		}
	}
	return nil, nil
}
