package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The recipes, from this package's folder.
const testNginxDir = "../../deploy/gateways/nginx"

// Addresses of the test's servers, none of them the recipes'.
const (
	testHandler = "127.0.0.1:40001"
	testBare    = "127.0.0.1:40002"
	testModel   = "127.0.0.1:40003"
	testGateway = "127.0.0.1:40004"
)

// renderAll renders every setup as the group does, with cacheDir as the
// cache folder.
func renderAll(t *testing.T, cacheDir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, s := range gatewaySetups(testHandler, testBare) {
		conf, err := s.read(testNginxDir)
		if err != nil {
			t.Fatal(err)
		}
		text, err := s.render(conf, testModel, testGateway, cacheDir)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		out[s.name] = text
	}
	return out
}

// Every setup's configuration names the test's servers and none of the
// recipes' addresses, the modelauth upstream being the setup's own.
func TestRenderSetups(t *testing.T) {
	cache := "/dev/shm/benchvalidate-test/cache"
	texts := renderAll(t, cache)
	for _, s := range gatewaySetups(testHandler, testBare) {
		text := texts[s.name]
		for _, old := range []string{recipeModelAuth, recipeModel, recipeGateway, recipeCacheDir} {
			if strings.Contains(text, old) {
				t.Errorf("%s still names %s", s.name, old)
			}
		}
		for _, want := range []string{"server " + testModel + ";", "listen " + testGateway + ";"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", s.name, want)
			}
		}
		if s.auth != "" && !strings.Contains(text, "server "+s.auth+";") {
			t.Errorf("%s does not send auth_request to %s", s.name, s.auth)
		}
		other := map[string]string{testHandler: testBare, testBare: testHandler}[s.auth]
		if s.auth == "" && strings.Contains(directives(text), "auth_request") || other != "" && strings.Contains(text, other) {
			t.Errorf("%s names the wrong authorizer", s.name)
		}
		if s.cached != strings.Contains(text, "proxy_cache_path "+cache+" ") {
			t.Errorf("%s: cache in %s = %v; want %v", s.name, cache, !s.cached, s.cached)
		}
	}
}

// render fails on an address the file lacks, and on one in a directive
// that it does not replace; an address in a comment is no directive.
func TestRenderRefuses(t *testing.T) {
	conf := "# make run's 127.0.0.1:9999\nupstream model { server 127.0.0.1:5001; }\nserver { listen 127.0.0.1:8080; }\n"
	if _, err := render("ok", conf, recipeModel, testModel, recipeGateway, testGateway); err != nil {
		t.Errorf("render: %v", err)
	}
	if _, err := render("missing", conf, recipeModel, testModel, recipeGateway, testGateway, recipeModelAuth, testHandler); err == nil {
		t.Error("render replaced an address the file does not name")
	}
	extra := conf + "upstream modelauth { server 127.0.0.1:7072; }\n"
	if _, err := render("extra", extra, recipeModel, testModel, recipeGateway, testGateway); err == nil {
		t.Error("render left 127.0.0.1:7072 in a directive")
	}
	if _, err := render("localhost", conf+"upstream m2 { server localhost:5001; }\n", recipeModel, testModel, recipeGateway, testGateway); err == nil {
		t.Error("render left localhost:5001 in a directive")
	}
}

// directives is conf without its comments.
func directives(conf string) string {
	var b strings.Builder
	for _, line := range strings.Split(conf, "\n") {
		d, _, _ := strings.Cut(line, "#")
		b.WriteString(d + "\n")
	}
	return b.String()
}

// block is the lines of conf from the first one starting with start to
// the first after it that is end, trimmed, blank lines and comments left
// out.
func block(t *testing.T, conf, start, end string) []string {
	t.Helper()
	var out []string
	in := false
	for _, line := range strings.Split(conf, "\n") {
		if !in && strings.HasPrefix(line, start) {
			in = true
		}
		if !in {
			continue
		}
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
		if line == end {
			return out
		}
	}
	t.Fatalf("no block %q ... %q", start, end)
	return nil
}

// The baseline is the recipe without authentication: the same model
// upstream, and in the same location the same proxy settings but the
// identity headers auth_request gives it.
func TestAloneMatchesRecipe(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testNginxDir, "modelauth.conf"))
	if err != nil {
		t.Fatal(err)
	}
	recipe := string(data)
	if r, a := block(t, recipe, "upstream model ", "}"), block(t, aloneConf, "upstream model ", "}"); !slices.Equal(r, a) {
		t.Errorf("the model upstream is\n%s\nin the recipe, and\n%s\nin the baseline", strings.Join(r, "\n"), strings.Join(a, "\n"))
	}
	proxy := func(conf string) []string {
		var out []string
		for _, l := range block(t, conf, "    location ~ ", "    }") {
			if (strings.HasPrefix(l, "proxy_") || strings.HasPrefix(l, "location ")) && !strings.Contains(l, "X-ModelAuth-") {
				out = append(out, l)
			}
		}
		return out
	}
	if r, a := proxy(recipe), proxy(aloneConf); !slices.Equal(r, a) {
		t.Errorf("the location's proxy settings are\n%s\nin the recipe, and\n%s\nin the baseline", strings.Join(r, "\n"), strings.Join(a, "\n"))
	}
	if strings.Contains(directives(aloneConf), "auth_request") {
		t.Error("the baseline asks an authorizer")
	}
}

// nginx accepts every rendered setup with the recipes' main file.
func TestNginxAcceptsSetups(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx is not installed")
	}
	main, err := os.ReadFile(filepath.Join(testNginxDir, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, text := range renderAll(t, filepath.Join(dir, "cache")) {
		d := filepath.Join(dir, strings.NewReplacer(" ", "-", "→", "-", "+", "-").Replace(name))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for file, data := range map[string]string{"nginx.conf": string(main), "modelauth.conf": text} {
			if err := os.WriteFile(filepath.Join(d, file), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command("nginx", "-t", "-q", "-p", d+"/", "-c", filepath.Join(d, "nginx.conf")).CombinedOutput(); err != nil {
			t.Errorf("%s: nginx -t: %v\n%s", name, err, out)
		}
	}
}

// complaints counts the lines at warn or above and keeps the first.
func TestComplaints(t *testing.T) {
	log := filepath.Join(t.TempDir(), "stderr.log")
	text := "2025/01/01 00:00:00 [notice] 1#1: start worker processes\n" +
		"2025/01/01 00:00:01 [error] 2#2: *1 upstream timed out\n" +
		"2025/01/01 00:00:02 [warn] 2#2: *2 an upstream response is buffered\n" +
		"2025/01/01 00:00:03 [alert] 2#2: *3 socket() failed\n"
	if err := os.WriteFile(log, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	n, lines := (&nginxInstance{errLog: log}).complaints(2)
	if n != 3 || len(lines) != 2 || !strings.Contains(lines[0], "[error]") || !strings.Contains(lines[1], "[warn]") {
		t.Errorf("complaints = %d %q", n, lines)
	}
}
