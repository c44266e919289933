package gateways

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/cmd/funchost/hosttest"
	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/authn"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

func TestMain(m *testing.M) { os.Exit(keyvaulttest.RunTests(m)) }

// The addresses the recipes are written for (`make run`'s), replaced by
// free ports in the tests.
const (
	recipeModelAuth = "127.0.0.1:7071"
	recipeModel     = "127.0.0.1:5001"
	recipeGateway   = "127.0.0.1:8080"
	// recipeCacheDir is the cached nginx recipe's cache folder.
	recipeCacheDir = "/run/nginx-modelauth"
)

// gatewayDir is a folder for a gateway's files, readable by nginx's
// workers (they run as nobody); with tmpfs, on the tmpfs /dev/shm where
// there is one, as the cached recipe asks of its cache.
func gatewayDir(t *testing.T, tmpfs bool) string {
	t.Helper()
	dir := t.TempDir()
	if st, err := os.Stat("/dev/shm"); tmpfs && err == nil && st.IsDir() {
		if shm, err := os.MkdirTemp("/dev/shm", "modelauth-gateways-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(shm) })
			dir = shm
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The services every recipe serves in the tests (the names of
// modelauth.json's samples).
const testServices = `{"services":[{"name":"demo","authMode":"key"},{"name":"token-demo","authMode":"token"}]}`

// stack is what stands behind a gateway: Key Vault (the test server), the
// staged app under the local host with it as the store, and the demo
// model.
type stack struct {
	kv    *keyvaulttest.Server
	app   *hosttest.App
	model string // host:port
	key   string // demo's Primary key
	token string // a token for token-demo
	// expired is a token for token-demo, signed with the app's signing
	// key, that expired two minutes ago (past TOKEN_LEEWAY).
	expired string
}

func startStack(t *testing.T) *stack {
	t.Helper()
	kv := keyvaulttest.NewServer(t, nil)
	app := hosttest.Start(t, hosttest.Options{
		Services: testServices,
		// The outage shows once the open slot ends (2 s): no grace past it.
		Settings: map[string]string{"KEY_CACHE_TTL": "2s", "KEY_CACHE_MAX_STALENESS": "0", "KEY_READ_TIMEOUT": "1s", "LOG_LEVEL": "info"},
		Env:      kv.Env(),
	})
	s := &stack{kv: kv, app: app, model: startModel(t)}
	var keys struct{ PrimaryKey string }
	s.call(t, "GET", "/api/services/demo/keys", app.AdminKey, &keys)
	s.key = keys.PrimaryKey
	var tok struct{ AccessToken string }
	s.call(t, "POST", "/api/services/token-demo/token", app.AdminKey, &tok)
	s.token = tok.AccessToken
	s.expired = s.expire(t, s.token)
	return s
}

// call makes a management call as the administrator and decodes its 200.
func (s *stack) call(t *testing.T, method, path, key string, v any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.app.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(body, v) != nil {
		t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, body)
	}
}

// expire re-signs token's claims with exp and iat moved two hours back,
// with the app's own signing key read from the vault: a token the app
// issued, now expired.
func (s *stack) expire(t *testing.T, token string) string {
	t.Helper()
	settings := config.DefaultSettings()
	settings.KeyVaultURL, settings.AuthorityHost = s.kv.VaultURL, s.kv.AuthorityHost
	store, err := functions.OpenStore(settings)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sec, err := store.GetSecret(context.Background(), "signing-key", "")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(sec.Value))
	if block == nil {
		t.Fatal("the signing key is not PEM")
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	parsed, _, err := jwt.NewParser().ParseUnverified(token, claims)
	if err != nil {
		t.Fatal(err)
	}
	back := 2 * time.Hour
	for _, c := range []string{"exp", "iat", "nbf"} {
		if v, ok := claims[c].(float64); ok {
			claims[c] = int64(v) - int64(back/time.Second)
		}
	}
	expired := jwt.NewWithClaims(parsed.Method, claims)
	expired.Header["kid"] = parsed.Header["kid"]
	raw, err := expired.SignedString(priv.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// startModel starts the demo model (cmd/demomodel) on a free port.
func startModel(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	bin := hosttest.Build(t, "./cmd/demomodel")
	startProcess(t, "demomodel", exec.Command(bin, "--addr", addr), addr)
	return addr
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProcess starts cmd, waits until addr accepts connections, and stops
// it (SIGTERM, then SIGKILL) when the test ends, logging its output if the
// test failed.
func startProcess(t *testing.T, name string, cmd *exec.Cmd, addr string) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s ended:\n%s", name, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s:\n%s", name, addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gateway is a runnable recipe.
type gateway struct {
	name    string
	command string // the server's binary, found on PATH
	// start writes the recipe's files into dir with the stack's addresses
	// and returns the command that serves it on addr.
	start func(t *testing.T, dir string, s *stack, addr string) *exec.Cmd
	// answersItself names the cases the server refuses before it asks
	// validate (docs/gateways.md says which and why): the client gets
	// validate's status, error code and challenge (its realm and error),
	// with the gateway's own message.
	answersItself []string
	// cache is the folder, in the gateway's, where it caches validate's
	// answers ("": none), on a tmpfs.
	cache string
}

// recipe reads a recipe file and replaces the addresses it is written
// for with the stack's (and a gateway address), and more pairs of
// old, new.
func recipe(t *testing.T, name string, s *stack, addr string, more ...string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	pairs := append([]string{recipeModelAuth, strings.TrimPrefix(s.app.URL, "http://"), recipeModel, s.model, recipeGateway, addr}, more...)
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(text, pairs[i]) {
			t.Fatalf("%s does not name %q", name, pairs[i])
		}
		text = strings.ReplaceAll(text, pairs[i], pairs[i+1])
	}
	return text
}

func writeFile(t *testing.T, name, text string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

var gateways = []gateway{
	{name: "haproxy", command: "haproxy", start: func(t *testing.T, dir string, s *stack, addr string) *exec.Cmd {
		lua, err := os.ReadFile("haproxy/modelauth.lua")
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "modelauth.lua"), string(lua))
		writeFile(t, filepath.Join(dir, "haproxy.cfg"), recipe(t, "haproxy/haproxy.cfg", s, addr,
			"lua-load deploy/gateways/haproxy/modelauth.lua", "lua-load "+filepath.Join(dir, "modelauth.lua")))
		return exec.Command("haproxy", "-db", "-f", filepath.Join(dir, "haproxy.cfg"))
	}},
	// nginx refuses two Authorization headers itself.
	{name: "nginx", command: "nginx", start: startNginx("nginx/modelauth.conf"), answersItself: []string{"two headers"}},
	{name: "nginx-cached", command: "nginx", answersItself: []string{"two headers"}, cache: "cache", start: func(t *testing.T, dir string, s *stack, addr string) *exec.Cmd {
		return startNginx("nginx/modelauth-cached.conf", recipeCacheDir, filepath.Join(dir, "cache"))(t, dir, s, addr)
	}},
	{name: "caddy", command: "caddy", start: func(t *testing.T, dir string, s *stack, addr string) *exec.Cmd {
		writeFile(t, filepath.Join(dir, "Caddyfile"), recipe(t, "caddy/Caddyfile", s, addr))
		cmd := exec.Command("caddy", "run", "--adapter", "caddyfile", "--config", filepath.Join(dir, "Caddyfile"))
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
		return cmd
	}},
}

// startNginx runs an nginx recipe with deploy/gateways/nginx/nginx.conf
// as its main file, everything nginx writes in dir.
func startNginx(conf string, more ...string) func(t *testing.T, dir string, s *stack, addr string) *exec.Cmd {
	return func(t *testing.T, dir string, s *stack, addr string) *exec.Cmd {
		main, err := os.ReadFile("nginx/nginx.conf")
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "nginx.conf"), string(main))
		writeFile(t, filepath.Join(dir, "modelauth.conf"), recipe(t, conf, s, addr, more...))
		return exec.Command("nginx", "-p", dir+"/", "-c", filepath.Join(dir, "nginx.conf"))
	}
}

// running is a started gateway.
type running struct {
	gateway
	url, dir string
}

// startGateways starts every gateway whose server is installed; with
// GATEWAYTEST_REQUIRE=1 (as .ci/run sets), a missing one fails the test.
func startGateways(t *testing.T, s *stack) []running {
	t.Helper()
	var out []running
	for _, g := range gateways {
		if _, err := exec.LookPath(g.command); err != nil {
			if os.Getenv("GATEWAYTEST_REQUIRE") == "1" {
				t.Errorf("%s is not installed (GATEWAYTEST_REQUIRE=1): %v", g.command, err)
			} else {
				t.Logf("skipping %s: %s is not installed", g.name, g.command)
			}
			continue
		}
		dir := gatewayDir(t, g.cache != "")
		addr := freeAddr(t)
		startProcess(t, g.name, g.start(t, dir, s, addr), addr)
		out = append(out, running{g, "http://" + addr, dir})
	}
	if len(out) == 0 {
		t.Skip("no gateway server is installed")
	}
	return out
}

// A case is a request to a service through a gateway.
type gwCase struct {
	name    string
	service string
	auth    []string // Authorization values (none: no header)
	header  map[string]string
}

// response is an answer as the client sees it.
type response struct {
	status int
	header http.Header
	body   []byte
}

func send(t *testing.T, method, url string, c gwCase, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, a := range c.auth {
		req.Header.Add("Authorization", a)
	}
	for k, v := range c.header {
		req.Header[k] = []string{v} // as written: X_ModelAuth_… too
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, data}
}

// modelAnswer is what the demo model answers.
type modelAnswer struct {
	Caller        map[string]string
	Path          string
	Predictions   []float64
	Authorization bool
}

// check sends c through the gateway and straight to validate, and
// compares: the client sees validate's status, challenge, Retry-After and
// JSON error; on a 200, the model sees validate's identity headers and
// nothing else of modelauth's, and no Authorization.
func check(t *testing.T, s *stack, g running, c gwCase) {
	t.Helper()
	direct := send(t, "POST", s.app.URL+"/api/services/"+c.service+"/validate", c, "")
	got := send(t, "POST", g.url+"/"+c.service+"/score", c, `{"data":[[1,2,3]]}`)
	if got.status != direct.status {
		t.Fatalf("status %d %s; validate answers %d %s", got.status, got.body, direct.status, direct.body)
	}
	if direct.status != http.StatusOK && slices.Contains(g.answersItself, c.name) {
		if g, w := errorCode(got.body), errorCode(direct.body); g != w {
			t.Errorf("error code %q (%s); validate answers %q", g, got.body, w)
		}
		if g, w := challengeSansDescription(got.header), challengeSansDescription(direct.header); g != w {
			t.Errorf("WWW-Authenticate %q; validate answers %q", got.header.Values("WWW-Authenticate"), direct.header.Values("WWW-Authenticate"))
		}
		return
	}
	if direct.status != http.StatusOK {
		if !jsonEqual(got.body, direct.body) {
			t.Errorf("body %q; want validate's %q", got.body, direct.body)
		}
		if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q; want JSON", ct)
		}
		for _, name := range []string{"WWW-Authenticate", "Retry-After"} {
			if g, w := got.header.Values(name), direct.header.Values(name); !slices.Equal(g, w) {
				t.Errorf("%s = %q; validate answers %q", name, g, w)
			}
		}
		return
	}
	var m modelAnswer
	if err := json.Unmarshal(got.body, &m); err != nil || m.Path != "/score" || !slices.Equal(m.Predictions, []float64{6}) {
		t.Fatalf("the model's answer: %s (%v)", got.body, err)
	}
	if m.Authorization {
		t.Errorf("the model received the caller's Authorization header")
	}
	want := map[string]string{}
	for _, name := range []string{authn.HeaderService, authn.HeaderSubject, authn.HeaderAuthType, authn.HeaderKeyType} {
		want[strings.ToLower(name)] = direct.header.Get(name)
	}
	have := map[string]string{}
	for k, v := range m.Caller {
		have[strings.ToLower(k)] = v
	}
	if !maps.Equal(have, want) {
		t.Errorf("the model received %v; want exactly validate's identity %v", m.Caller, want)
	}
	for _, secret := range []string{s.key, s.token} {
		if bytes.Contains(got.body, []byte(secret)) {
			t.Errorf("the model's answer holds the caller's credential")
		}
	}
}

// errorCode is the code of a JSON error body, "" if it is none.
func errorCode(body []byte) string {
	var e struct{ Error struct{ Code string } }
	json.Unmarshal(body, &e)
	return e.Error.Code
}

// challengeSansDescription is h's one WWW-Authenticate without its
// error_description (the last parameter modelauth writes).
func challengeSansDescription(h http.Header) string {
	v := h.Values("WWW-Authenticate")
	if len(v) != 1 {
		return strings.Join(v, " | ")
	}
	c, _, _ := strings.Cut(v[0], `, error_description=`)
	return c
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && mustJSON(x) == mustJSON(y)
}

func mustJSON(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

// TestGateways runs the case table of docs/gateways.md against every
// runnable recipe, with the real servers, the staged app and the demo
// model.
func TestGateways(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	s := startStack(t)
	gws := startGateways(t, s)
	bearer := func(v string) []string { return []string{"Bearer " + v} }
	cases := []gwCase{
		{name: "right key", service: "demo", auth: bearer(s.key)},
		{name: "wrong key", service: "demo", auth: bearer(strings.Repeat("w", 43))},
		{name: "no header", service: "demo"},
		{name: "malformed header", service: "demo", auth: []string{"Bearer a b"}},
		{name: "empty bearer", service: "demo", auth: []string{"Bearer"}},
		{name: "two headers", service: "demo", auth: []string{"Bearer " + s.key, "Bearer " + s.key}},
		{name: "unknown service", service: "nosuch", auth: bearer(s.key)},
		{name: "key for a token service", service: "token-demo", auth: bearer(s.key)},
		{name: "right token", service: "token-demo", auth: bearer(s.token)},
		{name: "expired token", service: "token-demo", auth: bearer(s.expired)},
		{name: "X-ModelAuth-* sent by the client", service: "demo", auth: bearer(s.key), header: map[string]string{
			"X-ModelAuth-Subject": "forged", "X-Modelauth-Sneaky": "1", "x-modelauth-auth-type": "none",
			"X_ModelAuth_Sneaky": "1", "X_Modelauth_Subject": "forged",
		}},
	}
	for _, g := range gws {
		for _, c := range cases {
			t.Run(g.name+"/"+c.name, func(t *testing.T) { check(t, s, g, c) })
		}
	}

	for _, g := range gws {
		if g.cache != "" {
			t.Run(g.name+"/cache files", func(t *testing.T) { checkCacheFiles(t, filepath.Join(g.dir, g.cache)) })
		}
	}

	// A revoked key: refused by validate at once, and through a cache of
	// validate's answers once the cached 200 ends (docs/gateways.md).
	for _, g := range gws {
		if g.cache != "" {
			t.Run(g.name+"/revoked key", func(t *testing.T) { checkRevocation(t, s, g) })
		}
	}

	// The store goes down: with KEY_CACHE_MAX_STALENESS=0, validate answers
	// 503 once the open slot ends.
	s.kv.Close()
	down := gwCase{name: "store down", service: "demo", auth: bearer(strings.Repeat("d", 43))}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := send(t, "GET", s.app.URL+"/api/services/demo/validate", down, "")
		if r.status == http.StatusServiceUnavailable {
			if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
				t.Fatalf("validate's 503 has Retry-After %q", r.header.Get("Retry-After"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("validate with the store down = %d %s; want 503 within 30 s", r.status, r.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, g := range gws {
		t.Run(g.name+"/"+down.name, func(t *testing.T) { check(t, s, g, down) })
	}
}

// checkCacheFiles checks a cache of validate's answers: its folder and
// every file in it are its owner's alone (nginx writes each entry's key,
// the caller's credential, into its file), and it holds entries.
func checkCacheFiles(t *testing.T, dir string) {
	entries := 0
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v; want its owner's alone", path, perm)
		}
		if info.Mode().IsRegular() {
			entries++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if entries == 0 {
		t.Errorf("the cache in %s holds no entry", dir)
	}
}

// cachedFor is how long the cached nginx recipe keeps validate's 200s
// (proxy_cache_valid).
const cachedFor = 10 * time.Second

// checkRevocation regenerates demo's Primary key and checks that the old
// value is refused by validate at once and by the cached gateway within
// cachedFor, having worked there from the cache until then.
func checkRevocation(t *testing.T, s *stack, g running) {
	old := gwCase{name: "revoked key", service: "demo", auth: []string{"Bearer " + s.key}}
	if r := send(t, "POST", g.url+"/demo/score", old, `{"data":[[1,2,3]]}`); r.status != 200 {
		t.Fatalf("the key before regen_key = %d %s", r.status, r.body)
	}
	var keys struct{ PrimaryKey string }
	req, _ := http.NewRequest("POST", s.app.URL+"/api/services/demo/keys/regenerate", strings.NewReader(`{"keyType":"Primary"}`))
	req.Header.Set("Authorization", "Bearer "+s.app.AdminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&keys)
	resp.Body.Close()
	regen := time.Now()
	if resp.StatusCode != 200 || keys.PrimaryKey == "" {
		t.Fatalf("regen_key = %d", resp.StatusCode)
	}
	if r := send(t, "GET", s.app.URL+"/api/services/demo/validate", old, ""); r.status != 401 {
		t.Fatalf("validate of the replaced key = %d; want 401 at once", r.status)
	}
	if r := send(t, "POST", g.url+"/demo/score", old, `{"data":[[1,2,3]]}`); r.status != 200 {
		t.Errorf("the replaced key through the cache right after regen_key = %d; want the cached 200", r.status)
	}
	for {
		r := send(t, "POST", g.url+"/demo/score", old, `{"data":[[1,2,3]]}`)
		if r.status == 401 {
			t.Logf("the replaced key was refused through the cache %v after regen_key", time.Since(regen).Round(100*time.Millisecond))
			break
		}
		if time.Since(regen) > cachedFor+2*time.Second {
			t.Fatalf("the replaced key still answers %d through the cache %v after regen_key; want 401 within %v", r.status, time.Since(regen), cachedFor)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.key = keys.PrimaryKey
}
