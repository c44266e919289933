package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/logtest"
	"github.com/modelauth/modelauth/shared/secretstore/azurekeyvault"
)

// riePackage is the AWS Lambda Runtime Interface Emulator at the version
// docs/design.md (section 6) pins (.ci/run installs the same).
const riePackage = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"

var rie struct {
	once sync.Once
	path string
	err  error
}

// rieBinary returns the emulator: on PATH, in the Go bin folder, or
// installed there now with `go install`. The test is skipped only if it
// can be neither found nor installed.
func rieBinary(t *testing.T) string {
	t.Helper()
	rie.once.Do(func() {
		if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
			rie.path = p
			return
		}
		bin, err := goBin()
		if err != nil {
			rie.err = err
			return
		}
		p := filepath.Join(bin, "aws-lambda-rie")
		if _, err := os.Stat(p); err == nil {
			rie.path = p
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "go", "install", riePackage).CombinedOutput(); err != nil {
			rie.err = fmt.Errorf("go install %s: %v\n%s", riePackage, err, out)
			return
		}
		if _, err := os.Stat(p); err != nil {
			rie.err = fmt.Errorf("go install %s did not write %s: %v", riePackage, p, err)
			return
		}
		rie.path = p
	})
	if rie.err != nil {
		t.Skipf("the AWS Lambda Runtime Interface Emulator is not on PATH and could not be installed (.ci/run installs it): %v", rie.err)
	}
	return rie.path
}

// goBin is where `go install` writes: GOBIN, else GOPATH's first entry's bin.
func goBin() (string, error) {
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) >= 1 && strings.TrimSpace(lines[0]) != "" {
		return strings.TrimSpace(lines[0]), nil
	}
	if len(lines) == 2 && lines[1] != "" {
		return filepath.Join(filepath.SplitList(lines[1])[0], "bin"), nil
	}
	return "", fmt.Errorf("go env: no GOBIN or GOPATH")
}

// buildBootstrap builds this command for this machine, as `make lambda`
// builds it for Lambda, into dir.
func buildBootstrap(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// emulator is a running Runtime Interface Emulator with the bootstrap.
type emulator struct {
	kind string
	url  string // the invocations URL
	logs *logtest.Buffer
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// startEmulator starts the emulator on free 127.0.0.1 ports with the
// bootstrap and env as the function's whole environment (plus PATH), and
// stops it, with the bootstrap, when the test ends.
func startEmulator(t *testing.T, rieBin, bootstrap string, env lambdaEnv) *emulator {
	t.Helper()
	kind := env[HandlerSetting]
	addr := "127.0.0.1:" + freePort(t)
	cmd := exec.Command(rieBin, "--runtime-interface-emulator-address", addr,
		"--runtime-api-address", "127.0.0.1:"+freePort(t), bootstrap)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env.list()...)
	e := &emulator{kind: kind, url: "http://" + addr + "/2015-03-31/functions/function/invocations", logs: &logtest.Buffer{}}
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	// Its own process group, so that the bootstrap it runs stops with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("%s emulator output:\n%s", kind, e.logs.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return e
		}
		select {
		case <-exited:
			t.Fatalf("the %s emulator exited:\n%s", kind, e.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s emulator does not listen on %s:\n%s", kind, addr, e.logs.String())
		}
	}
}

// invoke invokes the function with event as JSON and returns the raw
// response payload.
func (e *emulator) invoke(t *testing.T, event any) []byte {
	t.Helper()
	body, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Post(e.url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("invoking the %s function: %v", e.kind, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("invoking the %s function: %s %s %v", e.kind, resp.Status, out, err)
	}
	return out
}

// invokeJSON invokes the function and decodes its response into a T.
func invokeJSON[T any](t *testing.T, e *emulator, event any) T {
	t.Helper()
	out := e.invoke(t, event)
	var v T
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("the %s function's response %s: %v", e.kind, out, err)
	}
	return v
}

// events returns the JSON log events of the bootstrap with msg.
func (e *emulator) events(msg string) []map[string]any {
	var evs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(e.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev["msg"] == msg {
			evs = append(evs, ev)
		}
	}
	return evs
}

// awaitEvents waits until the bootstrap has logged at least n events with
// msg and returns them. The emulator relays the bootstrap's output through
// its own pipe, so a line can still be on its way when the invocation's
// answer has arrived.
func (e *emulator) awaitEvents(t *testing.T, msg string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := e.events(msg)
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s function logged %d %s events in 10s; want %d", e.kind, len(evs), msg, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const (
	testAPIARN = "arn:aws:execute-api:" + testRegion + ":123456789012:abcdef123"
)

// functionURLEvent is a Lambda function URL request (payload 2.0).
func functionURLEvent(method, path, auth string) events.LambdaFunctionURLRequest {
	ev := events.LambdaFunctionURLRequest{
		Version: "2.0", RawPath: path, Headers: map[string]string{"accept": "application/json"},
		RequestContext: events.LambdaFunctionURLRequestContext{
			AccountID: "123456789012", RequestID: "e2e", DomainName: "abcdefgh.lambda-url." + testRegion + ".on.aws",
			APIID: "abcdefgh", Time: "29/Nov/2025:08:00:00 +0000", TimeEpoch: 1764403200000,
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: method, Path: path, Protocol: "HTTP/1.1", SourceIP: "203.0.113.7", UserAgent: "e2e"},
		},
	}
	if auth != "" {
		ev.Headers["authorization"] = auth
	}
	return ev
}

// httpAuthorizerEvent is an HTTP API Lambda authorizer request (payload
// 2.0) for POST path on the $default stage.
func httpAuthorizerEvent(path, auth string) events.APIGatewayV2CustomAuthorizerV2Request {
	ev := events.APIGatewayV2CustomAuthorizerV2Request{
		Version: "2.0", Type: "REQUEST", RouteArn: testAPIARN + "/$default/POST" + path,
		RouteKey: "ANY /services/{service}/{proxy+}", RawPath: path, Headers: map[string]string{"content-type": "application/json"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			AccountID: "123456789012", APIID: "abcdef123", Stage: "$default", RequestID: "e2e",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: path, Protocol: "HTTP/1.1", SourceIP: "203.0.113.7"},
		},
	}
	if auth != "" {
		ev.Headers["authorization"] = auth
		ev.IdentitySource = []string{auth}
	}
	return ev
}

// TestEmulator runs the bootstrap in the real AWS Lambda Runtime
// Interface Emulator, one emulator per handler kind, against the Key Vault
// test server, with the Azure client secret served by the SSM test
// endpoint.
func TestEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	rieBin := rieBinary(t)
	f := newFixture(t)
	bootstrap := buildBootstrap(t, t.TempDir())
	start := func(kind string) *emulator {
		return startEmulator(t, rieBin, bootstrap, f.env.with(HandlerSetting+"="+kind))
	}
	fnURL, httpAuthz, restAuthz, sched := start("function-url"), start("http-authorizer"), start("rest-token-authorizer"), start("scheduled")
	ctx := context.Background()
	store, err := azurekeyvault.Open(f.kv.VaultURL, f.kv.Credential(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	var admin string
	getKeys := func(t *testing.T, service string) keysBody {
		t.Helper()
		res := invokeJSON[events.LambdaFunctionURLResponse](t, fnURL, functionURLEvent("GET", "/api/services/"+service+"/keys", "Bearer "+admin))
		var k keysBody
		if res.StatusCode != 200 || res.IsBase64Encoded || json.Unmarshal([]byte(res.Body), &k) != nil || k.PrimaryKey == "" || k.SecondaryKey == "" {
			t.Fatalf("get_keys %s = %d %q (base64 %v); want 200 with the keys", service, res.StatusCode, res.Body, res.IsBase64Encoded)
		}
		if cc := res.Headers["Cache-Control"]; cc != "no-store" {
			t.Errorf("get_keys %s: Cache-Control %q; want no-store", service, cc)
		}
		return k
	}
	keys := map[string]keysBody{}
	var fastCreated time.Time

	t.Run("function URL get_keys", func(t *testing.T) {
		calls := f.ssm.Calls()
		// The first invocation is the cold start, which creates the
		// administrator key in the vault.
		res := invokeJSON[events.LambdaFunctionURLResponse](t, fnURL, functionURLEvent("GET", "/api/services/iris/keys", ""))
		if res.StatusCode != 401 || !strings.HasPrefix(res.Headers["Www-Authenticate"], "Bearer") {
			t.Errorf("get_keys without credentials = %d %v %s; want 401 with a Bearer challenge", res.StatusCode, res.Headers, res.Body)
		}
		if got := f.ssm.Calls() - calls; got != 1 {
			t.Errorf("the cold start made %d SSM calls; want 1", got)
		}
		adm, err := store.GetSecret(ctx, keysecret.AdminKeySecret, "")
		if err != nil {
			t.Fatal(err)
		}
		admin = adm.Value
		if res := invokeJSON[events.LambdaFunctionURLResponse](t, fnURL, functionURLEvent("GET", "/api/services/iris/keys", "Bearer wrong-"+admin)); res.StatusCode != 401 {
			t.Errorf("get_keys with a wrong administrator key = %d; want 401", res.StatusCode)
		}
		for _, svc := range []string{"iris", "other", "fast"} {
			k := getKeys(t, svc)
			if k.ActiveKeyType != "Primary" {
				t.Errorf("%s: active key %q; want Primary", svc, k.ActiveKeyType)
			}
			if cp, err := store.GetSecret(ctx, keysecret.ActiveSecret(svc), ""); err != nil || cp.Value != k.PrimaryKey {
				t.Errorf("%s: the vault's active copy is not get_keys' Primary (%v)", svc, err)
			}
			keys[svc] = k
		}
		fastCreated = time.Now()
		if keys["iris"].PrimaryKey == keys["other"].PrimaryKey {
			t.Fatal("two services share a key")
		}
	})
	// The steps run in order, each on the state the ones before left.
	if t.Failed() || admin == "" {
		t.Skip("the later steps need the function URL step's keys")
	}

	t.Run("scheduled cold start", func(t *testing.T) {
		calls := f.ssm.Calls()
		out := sched.invoke(t, map[string]string{"function": "rotatekeys"})
		early := time.Since(fastCreated) < 3*time.Second
		if string(out) != `"rotatekeys: done"` {
			t.Errorf("rotatekeys = %s; want \"rotatekeys: done\"", out)
		}
		if got := f.ssm.Calls() - calls; got != 1 {
			t.Errorf("the cold start made %d SSM calls; want 1", got)
		}
		// rotatekeys_run is each run's last line: once it is in, so are the
		// run's rotation events.
		sched.awaitEvents(t, "rotatekeys_run", 1)
		if early && len(sched.events("rotation_started")) != 0 {
			t.Errorf("a rotation started before any key was due")
		}
		out = sched.invoke(t, map[string]string{"function": "nosuchtimer"})
		var fnErr struct{ ErrorMessage, ErrorType string }
		if json.Unmarshal(out, &fnErr) != nil || !strings.Contains(fnErr.ErrorMessage, "unknown scheduled function") {
			t.Errorf("an unknown function = %s; want a function error", out)
		}
	})

	t.Run("HTTP API authorizer", func(t *testing.T) {
		iris, other := keys["iris"], keys["other"]
		for _, tt := range []struct {
			name, path, auth string
			want             map[string]any // nil: denied
		}{
			{"iris Primary", "/services/iris/score", "Bearer " + iris.PrimaryKey,
				map[string]any{"service": "iris", "subject": "key:Primary", "authType": "key", "keyType": "Primary"}},
			{"iris Secondary", "/services/iris/validate/x", "Bearer " + iris.SecondaryKey,
				map[string]any{"service": "iris", "subject": "key:Secondary", "authType": "key", "keyType": "Secondary"}},
			{"wrong key", "/services/iris/score", "Bearer " + iris.PrimaryKey[:len(iris.PrimaryKey)-2] + "xx", nil},
			{"another service's key", "/services/iris/score", "Bearer " + other.PrimaryKey, nil},
			{"iris key for another service", "/services/other/score", "Bearer " + iris.PrimaryKey, nil},
			{"unknown service", "/services/nosuch/score", "Bearer " + iris.PrimaryKey, nil},
			{"no service in the route", "/score", "Bearer " + iris.PrimaryKey, nil},
			{"no credentials", "/services/iris/score", "", nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				res := invokeJSON[events.APIGatewayV2CustomAuthorizerSimpleResponse](t, httpAuthz, httpAuthorizerEvent(tt.path, tt.auth))
				if res.IsAuthorized != (tt.want != nil) {
					t.Fatalf("isAuthorized = %v; want %v", res.IsAuthorized, tt.want != nil)
				}
				for k, v := range tt.want {
					if res.Context[k] != v {
						t.Errorf("context[%s] = %v; want %v (context %v)", k, res.Context[k], v, res.Context)
					}
				}
			})
		}
	})

	t.Run("REST TOKEN authorizer", func(t *testing.T) {
		iris, other := keys["iris"], keys["other"]
		methodArn := testAPIARN + "/prod/POST/services/iris/score"
		allow := invokeJSON[events.APIGatewayCustomAuthorizerResponse](t, restAuthz,
			events.APIGatewayCustomAuthorizerRequest{Type: "TOKEN", AuthorizationToken: "Bearer " + iris.PrimaryKey, MethodArn: methodArn})
		st := allow.PolicyDocument.Statement
		if allow.PrincipalID != "key:Primary" || len(st) != 1 || st[0].Effect != "Allow" ||
			strings.Join(st[0].Action, ",") != "execute-api:Invoke" ||
			strings.Join(st[0].Resource, ",") != testAPIARN+"/prod/*/services/iris/*" || allow.Context["service"] != "iris" {
			t.Errorf("iris key = %+v; want an Allow of execute-api:Invoke on %s/prod/*/services/iris/*", allow, testAPIARN)
		}
		for name, auth := range map[string]string{
			"another service's key": "Bearer " + other.PrimaryKey,
			"wrong key":             "Bearer " + iris.PrimaryKey + "x",
		} {
			deny := invokeJSON[events.APIGatewayCustomAuthorizerResponse](t, restAuthz,
				events.APIGatewayCustomAuthorizerRequest{Type: "TOKEN", AuthorizationToken: auth, MethodArn: methodArn})
			st := deny.PolicyDocument.Statement
			if len(st) != 1 || st[0].Effect != "Deny" || strings.Join(st[0].Resource, ",") != methodArn || deny.Context != nil {
				t.Errorf("%s = %+v; want a Deny of the methodArn", name, deny)
			}
		}
		// No credentials: the error "Unauthorized", which API Gateway
		// answers with 401.
		out := restAuthz.invoke(t, events.APIGatewayCustomAuthorizerRequest{Type: "TOKEN", MethodArn: methodArn})
		var fnErr struct{ ErrorMessage string }
		if json.Unmarshal(out, &fnErr) != nil || fnErr.ErrorMessage != "Unauthorized" {
			t.Errorf("no token = %s; want the error Unauthorized", out)
		}
	})

	t.Run("scheduled rotation", func(t *testing.T) {
		before := keys["fast"]
		// fast's keys are due 4 s after they were created.
		if wait := time.Until(fastCreated.Add(5 * time.Second)); wait > 0 {
			time.Sleep(wait)
		}
		if out := sched.invoke(t, map[string]string{"function": "rotatekeys"}); string(out) != `"rotatekeys: done"` {
			t.Fatalf("rotatekeys = %s; want \"rotatekeys: done\"", out)
		}
		sched.awaitEvents(t, "rotatekeys_run", 2)
		var done []map[string]any
		for _, ev := range sched.events("rotation_completed") {
			if ev["service"] == "fast" {
				done = append(done, ev)
			}
		}
		if len(done) != 1 || done[0]["keyType"] != "Secondary" {
			t.Fatalf("rotation_completed events for fast: %v; want one, of the Secondary", done)
		}
		// The function URL instance sees it within one KEY_CACHE_TTL.
		var after keysBody
		deadline := time.Now().Add(10 * time.Second)
		for after = getKeys(t, "fast"); after.ActiveKeyType != "Secondary" && time.Now().Before(deadline); after = getKeys(t, "fast") {
			time.Sleep(200 * time.Millisecond)
		}
		if after.ActiveKeyType != "Secondary" || after.PrimaryKey != before.PrimaryKey || after.SecondaryKey == before.SecondaryKey {
			t.Fatalf("get_keys after the rotation: active %s, Primary unchanged %v, Secondary new %v; want the new Secondary active",
				after.ActiveKeyType, after.PrimaryKey == before.PrimaryKey, after.SecondaryKey != before.SecondaryKey)
		}
		if cp, err := store.GetSecret(ctx, keysecret.ActiveSecret("fast"), ""); err != nil || cp.Value != after.SecondaryKey {
			t.Errorf("the vault's active copy is not the new Secondary (%v)", err)
		}
		// The authorizer instance accepts the new key and the previous one.
		for name, k := range map[string]string{"new Secondary": after.SecondaryKey, "Primary": before.PrimaryKey} {
			res := invokeJSON[events.APIGatewayV2CustomAuthorizerSimpleResponse](t, httpAuthz, httpAuthorizerEvent("/services/fast/score", "Bearer "+k))
			if !res.IsAuthorized {
				t.Errorf("the HTTP API authorizer denies fast's %s key after the rotation", name)
			}
		}
		keys["fast-rotated"] = after
	})

	// No key or secret reaches any function's logs.
	secrets := map[string]string{"admin key": admin, "client secret": f.kv.ClientSecret, "AWS secret key": testSecretAccessKey}
	for svc, k := range keys {
		secrets[svc+" Primary"], secrets[svc+" Secondary"] = k.PrimaryKey, k.SecondaryKey
	}
	for _, e := range []*emulator{fnURL, httpAuthz, restAuthz, sched} {
		logs := e.logs.String()
		for name, s := range secrets {
			if s != "" && strings.Contains(logs, s) {
				t.Errorf("the %s is in the %s function's logs", name, e.kind)
			}
		}
		if len(e.events("lambda_started")) != 1 {
			t.Errorf("the %s function started %d times; want one cold start", e.kind, len(e.events("lambda_started")))
		}
	}
	if f.ssm.Calls() != 4 {
		t.Errorf("%d SSM calls; want 4, one per cold start", f.ssm.Calls())
	}
}

// keysBody is get_keys' answer.
type keysBody struct {
	PrimaryKey, SecondaryKey, ActiveKeyType string
}
