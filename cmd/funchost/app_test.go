package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeApp writes files (path relative to the app root: content) into a
// new app root with a placeholder handler executable.
func writeApp(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	all := map[string]string{
		"handler":   "#!/bin/sh\n",
		"host.json": `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"},"enableForwardingHttpRequest":true}}`,
	}
	for k, v := range files {
		all[k] = v
	}
	for name, content := range all {
		if content == "" {
			continue // "" deletes a default file
		}
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const (
	httpFn  = `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"route":"items/{id}"},{"type":"http","direction":"out","name":"res"}]}`
	timerFn = `{"bindings":[{"type":"timerTrigger","direction":"in","name":"myTimer","schedule":"0 0 * * * *"}]}`
)

func TestLoadAppRefuses(t *testing.T) {
	tests := []struct {
		name      string
		files     map[string]string
		wantInErr []string
	}{
		{"no host.json", map[string]string{"host.json": "", "f/function.json": timerFn}, []string{"no host.json"}},
		{"version", map[string]string{"host.json": `{"version":"1.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`, "f/function.json": timerFn}, []string{`version must be "2.0"`}},
		{"not a custom handler", map[string]string{"host.json": `{"version":"2.0"}`, "f/function.json": timerFn}, []string{"customHandler"}},
		{"missing executable", map[string]string{"handler": "", "f/function.json": timerFn}, []string{"defaultExecutablePath", "not found"}},
		{"forwarding off", map[string]string{
			"host.json":           `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"},"enableForwardingHttpRequest":false}}`,
			"items/function.json": httpFn,
		}, []string{"enableForwardingHttpRequest"}},
		{"bad function name", map[string]string{"bad.name/function.json": timerFn}, []string{`"bad.name"`}},
		{"function named host", map[string]string{"Host/function.json": timerFn}, []string{`"Host"`}},
		{"route constraint", map[string]string{"items/function.json": strings.Replace(httpFn, "{id}", "{id:int}", 1)}, []string{`function "items"`, "constraint"}},
		{"route conflict", map[string]string{"a/function.json": httpFn, "b/function.json": httpFn}, []string{`"a"`, `"b"`, "conflicts"}},
		{"built-in route", map[string]string{
			"host.json":       `{"version":"2.0","extensions":{"http":{"routePrefix":""}},"customHandler":{"description":{"defaultExecutablePath":"handler"},"enableForwardingHttpRequest":true}}`,
			"a/function.json": strings.Replace(httpFn, "items/{id}", "admin/x", 1),
		}, []string{`function "a"`, "built-in"}},
		{"bad schedule", map[string]string{"rotatekeys/function.json": strings.Replace(timerFn, "0 0 * * * *", "0 0 99 * * *", 1)}, []string{`function "rotatekeys"`, "0 0 99 * * *"}},
		{"unresolved schedule setting", map[string]string{"rotatekeys/function.json": strings.Replace(timerFn, "0 0 * * * *", "%NOPE_SCHEDULE%", 1)}, []string{`function "rotatekeys"`, "%NOPE_SCHEDULE%"}},
		{"unsupported trigger", map[string]string{"q/function.json": `{"bindings":[{"type":"queueTrigger","direction":"in","name":"msg"}]}`}, []string{`function "q"`, "queueTrigger"}},
		{"extra binding", map[string]string{"t/function.json": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"myTimer","schedule":"0 0 * * * *"},{"type":"queue","direction":"out","name":"out"}]}`}, []string{`function "t"`, "queue"}},
		{"http without http output", map[string]string{"h/function.json": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"}]}`}, []string{`function "h"`, "one http output"}},
		{"bad binding name", map[string]string{"t/function.json": strings.Replace(timerFn, "myTimer", "my_timer", 1)}, []string{`function "t"`, "my_timer"}},
		{"bad method", map[string]string{"h/function.json": strings.Replace(httpFn, `"get"`, `"fetch"`, 1)}, []string{`function "h"`, "fetch"}},
		{"no functions", map[string]string{}, []string{"no functions"}},
		{"bad functionTimeout", map[string]string{
			"host.json":       `{"version":"2.0","functionTimeout":"5 minutes","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`,
			"f/function.json": timerFn,
		}, []string{"functionTimeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeApp(t, tt.files)
			_, err := loadApp(root, func(string) string { return "" }, time.Now(), discardLog)
			if !errors.Is(err, errConfig) {
				t.Fatalf("loadApp error = %v; want errConfig", err)
			}
			for _, want := range tt.wantInErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("loadApp error = %q; want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestLoadApp(t *testing.T) {
	root := writeApp(t, map[string]string{
		"host.json": `{"version":"2.0","functionTimeout":"00:05:00","extensions":{"http":{"routePrefix":"v1"}},
			"customHandler":{"description":{"defaultExecutablePath":"handler","arguments":["-x"],"workingDirectory":"work"},
			"enableForwardingHttpRequest":true,"initializationTimeout":"00:01:00"}}`,
		"work/.keep":                  "x",
		"items/function.json":         httpFn,
		"Tick/function.json":          strings.Replace(timerFn, "0 0 * * * *", "%TICK%", 1),
		"off/function.json":           timerFn,
		"local.settings.example.json": `{"Values":{"TICK":"*/5 * * * * *","AzureWebJobs.off.Disabled":"true"}}`,
	})
	l, err := loadApp(root, func(string) string { return "" }, time.Now(), discardLog)
	if err != nil {
		t.Fatal(err)
	}
	a := l.app
	if a.Exe != filepath.Join(root, "handler") || a.WorkDir != filepath.Join(root, "work") || a.RoutePrefix != "v1" ||
		a.FunctionTimeout != 5*time.Minute || a.InitTimeout != time.Minute || len(a.Args) != 1 {
		t.Errorf("app = %+v", a)
	}
	var names []string
	for _, fn := range a.Functions {
		names = append(names, fn.Name)
	}
	if got := strings.Join(names, ","); got != "Tick,items" {
		t.Errorf("functions = %s; want Tick,items (off is disabled)", got)
	}
	if r, _ := l.router.find("GET", "/v1/items/1"); r == nil || r.fn.Name != "items" {
		t.Errorf("GET /v1/items/1 does not reach items")
	}
	if len(l.timers) != 1 || l.timers[0].sched.expr != "*/5 * * * * *" {
		t.Errorf("timers = %+v; want Tick with the TICK setting", l.timers)
	}
	if a.function("tick") == nil {
		t.Errorf("function lookup is not case-insensitive")
	}
}

func TestForwardingOffWithoutHTTPFunctions(t *testing.T) {
	root := writeApp(t, map[string]string{
		"host.json":       `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`,
		"t/function.json": timerFn,
	})
	if _, err := loadApp(root, func(string) string { return "" }, time.Now(), discardLog); err != nil {
		t.Errorf("loadApp = %v; forwarding matters only for HTTP functions", err)
	}
}
