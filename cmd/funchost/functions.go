package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Trigger binding types the local host supports (compared case-insensitively).
const (
	triggerHTTP      = "httpTrigger"
	triggerTimer     = "timerTrigger"
	triggerEventGrid = "eventGridTrigger"
)

// allMethods are the methods function.json may list.
var allMethods = []string{"GET", "POST", "DELETE", "HEAD", "PATCH", "PUT", "OPTIONS", "TRACE"}

// function is one function folder.
type function struct {
	Name    string // folder name, case preserved
	Trigger string // triggerHTTP, triggerTimer or triggerEventGrid
	Binding string // the trigger binding's name

	// HTTP trigger.
	Route   string   // template without the prefix; default the name
	Methods []string // upper case; nil means all

	// Timer trigger.
	Schedule     string // as written, before %Setting% resolution
	RunOnStartup bool
	UseMonitor   bool

	// Event Grid trigger: cardinality "many" (one invocation per batch).
	Many bool
}

type functionFile struct {
	Disabled json.RawMessage `json:"disabled"`
	Bindings []bindingFile   `json:"bindings"`
}

type bindingFile struct {
	Type         string   `json:"type"`
	Direction    string   `json:"direction"`
	Name         string   `json:"name"`
	Methods      []string `json:"methods"`
	Route        *string  `json:"route"`
	Schedule     string   `json:"schedule"`
	RunOnStartup bool     `json:"runOnStartup"`
	UseMonitor   *bool    `json:"useMonitor"`
	Cardinality  string   `json:"cardinality"`
}

var (
	functionNameRE = regexp.MustCompile(`(?i)^[a-z][a-z0-9_\-]{0,127}$`)
	bindingNameRE  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9]{0,127}$`)
)

// loadFunctions reads every root/*/function.json. isDisabled reports
// whether the setting AzureWebJobs.<name>.Disabled disables a function.
func loadFunctions(root string, isDisabled func(name string) bool) (fns []*function, disabled []string, err error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(root, e.Name(), "function.json")
		var ff functionFile
		if err := readJSON(path, &ff); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, nil, err
		}
		name := e.Name()
		if !functionNameRE.MatchString(name) || strings.EqualFold(name, "host") {
			return nil, nil, fmt.Errorf("%w: function folder %q: a function name must match ^[a-z][a-z0-9_-]{0,127}$ and not be \"host\"", errConfig, name)
		}
		if other, ok := seen[strings.ToLower(name)]; ok {
			return nil, nil, fmt.Errorf("%w: functions %q and %q differ only in case", errConfig, other, name)
		}
		seen[strings.ToLower(name)] = name
		if isTrue(string(ff.Disabled)) || isDisabled(name) {
			disabled = append(disabled, name)
			continue
		}
		fn, err := parseFunction(name, ff)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: function %q (%s): %w", errConfig, name, path, err)
		}
		fns = append(fns, fn)
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].Name < fns[j].Name })
	return fns, disabled, nil
}

func isTrue(s string) bool {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	return strings.EqualFold(s, "true") || s == "1"
}

// parseFunction validates one function.json.
func parseFunction(name string, ff functionFile) (*function, error) {
	if len(ff.Bindings) == 0 {
		return nil, errors.New("no bindings")
	}
	var trig *bindingFile
	var others []bindingFile
	for i := range ff.Bindings {
		b := &ff.Bindings[i]
		if b.Name != "$return" && !bindingNameRE.MatchString(b.Name) {
			return nil, fmt.Errorf("binding name %q must match ^[a-zA-Z][a-zA-Z0-9]{0,127}$ or be $return", b.Name)
		}
		switch strings.ToLower(b.Direction) {
		case "in", "out", "inout":
		default:
			return nil, fmt.Errorf("binding %q: direction %q must be in, out or inout", b.Name, b.Direction)
		}
		if strings.HasSuffix(strings.ToLower(b.Type), "trigger") {
			if trig != nil {
				return nil, fmt.Errorf("more than one trigger (%q and %q)", trig.Name, b.Name)
			}
			if !strings.EqualFold(b.Direction, "in") {
				return nil, fmt.Errorf("trigger %q must have direction in", b.Name)
			}
			trig = b
			continue
		}
		others = append(others, *b)
	}
	if trig == nil {
		return nil, errors.New("no trigger binding")
	}
	fn := &function{Name: name, Binding: trig.Name}
	switch {
	case strings.EqualFold(trig.Type, triggerHTTP):
		fn.Trigger = triggerHTTP
		if len(others) != 1 || !strings.EqualFold(others[0].Type, "http") || !strings.EqualFold(others[0].Direction, "out") {
			return nil, errors.New("an HTTP function must have exactly one httpTrigger input and one http output: the local host supports forwarded HTTP functions only")
		}
		fn.Route = name
		if trig.Route != nil && strings.Trim(*trig.Route, "/") != "" {
			fn.Route = strings.Trim(*trig.Route, "/")
		}
		for _, m := range trig.Methods {
			u := strings.ToUpper(strings.TrimSpace(m))
			if !containsString(allMethods, u) {
				return nil, fmt.Errorf("method %q: must be one of get, post, delete, head, patch, put, options, trace", m)
			}
			if !containsString(fn.Methods, u) {
				fn.Methods = append(fn.Methods, u)
			}
		}
	case strings.EqualFold(trig.Type, triggerTimer):
		fn.Trigger = triggerTimer
		fn.Schedule = trig.Schedule
		fn.RunOnStartup = trig.RunOnStartup
		fn.UseMonitor = trig.UseMonitor == nil || *trig.UseMonitor
	case strings.EqualFold(trig.Type, triggerEventGrid):
		fn.Trigger = triggerEventGrid
		fn.Many = strings.EqualFold(trig.Cardinality, "many")
	default:
		return nil, fmt.Errorf("trigger type %q is not supported by the local host (httpTrigger, timerTrigger and eventGridTrigger are)", trig.Type)
	}
	if fn.Trigger != triggerHTTP && len(others) > 0 {
		return nil, fmt.Errorf("binding %q of type %q is not supported by the local host: timer and Event Grid functions may have only their trigger", others[0].Name, others[0].Type)
	}
	return fn, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fullRoute is the route template including the route prefix.
func (a *app) fullRoute(fn *function) string {
	if a.RoutePrefix == "" {
		return fn.Route
	}
	return a.RoutePrefix + "/" + fn.Route
}

// buildRouter parses every HTTP function's route and refuses, naming the
// function, unsupported templates, routes that shadow the host's own
// /admin and /runtime paths, and conflicting routes.
func (a *app) buildRouter() (*router, error) {
	var routes []*httpRoute
	for _, fn := range a.Functions {
		if fn.Trigger != triggerHTTP {
			continue
		}
		tmpl, err := parseRoute(a.fullRoute(fn))
		if err != nil {
			return nil, fmt.Errorf("%w: function %q: %w", errConfig, fn.Name, err)
		}
		if len(tmpl.segs) > 0 && tmpl.segs[0].kind == segLiteral &&
			(strings.EqualFold(tmpl.segs[0].text, "admin") || strings.EqualFold(tmpl.segs[0].text, "runtime")) {
			return nil, fmt.Errorf("%w: function %q: the route %q conflicts with the host's built-in /admin and /runtime routes", errConfig, fn.Name, tmpl.raw)
		}
		r := &httpRoute{fn: fn, tmpl: tmpl}
		if fn.Methods != nil {
			r.methods = map[string]bool{}
			for _, m := range fn.Methods {
				r.methods[m] = true
			}
		}
		routes = append(routes, r)
	}
	rt, err := newRouter(routes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errConfig, err)
	}
	return rt, nil
}

// hasTrigger reports whether any function has the trigger type.
func (a *app) hasTrigger(t string) bool {
	for _, fn := range a.Functions {
		if fn.Trigger == t {
			return true
		}
	}
	return false
}

// function returns the function named name, case-insensitively, as the
// host's admin and webhook endpoints look it up.
func (a *app) function(name string) *function {
	for _, fn := range a.Functions {
		if strings.EqualFold(fn.Name, name) {
			return fn
		}
	}
	return nil
}
