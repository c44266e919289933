//go:build unix

package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/azfunc"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func decodeEnvelope(t *testing.T, body string) *azfunc.InvokeRequest {
	t.Helper()
	inv, err := azfunc.DecodeInvokeRequest(strings.NewReader(body))
	if err != nil {
		t.Fatalf("DecodeInvokeRequest: %v\n%s", err, body)
	}
	return inv
}

func checkInvocationHeaders(t *testing.T, r fixtureRecord) {
	t.Helper()
	h := r.Header
	if got := h.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := h.Get("X-Azure-Functions-InvocationId"); !uuidRE.MatchString(got) {
		t.Errorf("X-Azure-Functions-InvocationId = %q; want a UUID", got)
	}
	if got := h.Get("X-Azure-Functions-HostVersion"); got == "" {
		t.Error("X-Azure-Functions-HostVersion missing")
	}
	if got := h.Get("User-Agent"); !strings.HasPrefix(got, "Azure-Functions-Host/") {
		t.Errorf("User-Agent = %q; want Azure-Functions-Host/<ver>", got)
	}
}

// TestEndToEnd runs funchost as a subprocess on the fixture app.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	dir := fixtureApp(t, nil)
	p := startHost(t, dir, "FIXTURE_OVERRIDE=from-env")

	t.Run("banner", func(t *testing.T) {
		p.waitStdout(t, "\tyearly: timerTrigger\n")
		out := p.stdoutText()
		if n := strings.Count(out, listenPrefix); n != 1 {
			t.Errorf("the URL line appears %d times; want once", n)
		}
		if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+$`).MatchString(p.url) {
			t.Errorf("URL = %q", p.url)
		}
		for _, want := range []string{
			"\techo: [GET,POST] " + p.url + "/api/echo/{id}/{*rest}\n",
			"\tevents: eventGridTrigger\n",
			"\ttick: timerTrigger\n",
			"\tyearly: timerTrigger\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("handler process and environment", func(t *testing.T) {
		starts := p.waitRecords(t, 1, isStart)
		s := starts[0]
		port := s.Env["FUNCTIONS_CUSTOMHANDLER_PORT"]
		for k, want := range map[string]string{
			"FIXTURE_GREETING":                "hello-from-settings", // from local.settings.example.json
			"FIXTURE_OVERRIDE":                "from-env",            // the environment wins
			"TICK_SCHEDULE":                   "*/1 * * * * *",
			"AzureWebJobsStorage":             "UseDevelopmentStorage=true",
			"FUNCTIONS_HTTPWORKER_PORT":       port,
			"FUNCTIONS_APP_ROOT_PATH":         dir,
			"FUNCTIONS_CORETOOLS_ENVIRONMENT": "True",
			"FUNCTIONS_HTTPWORKER_ID":         s.Env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"],
		} {
			if got := s.Env[k]; got != want {
				t.Errorf("handler env %s = %q; want %q", k, got, want)
			}
		}
		if !uuidRE.MatchString(s.Env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"]) || port == "" || strings.HasSuffix(p.url, ":"+port) {
			t.Errorf("worker id %q port %q (host %s)", s.Env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"], port, p.url)
		}
		wantArgs := []string{"--greeting=hello-from-settings", "--port=" + port, "--gone="}
		if strings.Join(s.Args, " ") != strings.Join(wantArgs, " ") {
			t.Errorf("handler args = %q; want %q", s.Args, wantArgs)
		}
		if d, _ := filepath.EvalSymlinks(s.Dir); d != mustEval(t, dir) {
			t.Errorf("handler CWD = %q; want the app root %q", s.Dir, dir)
		}
		for _, want := range []string{
			"Skipping 'FIXTURE_OVERRIDE' from local settings as it's already defined in current environment variables.",
			"\nfixture handler: listening on port " + port + "\n", // handler stdout copied unchanged
			`level=WARN msg="fixture handler: warning: this line goes to stderr"`,
		} {
			p.waitStdout(t, want)
		}
	})

	t.Run("HTTP function is forwarded", func(t *testing.T) {
		req := newRequest(t, "POST", p.url+"/api/echo/42/a/b?x=1&y=two%20words", strings.NewReader(`{"hello":"world"}`))
		req.Host = "modelauth.example:7071"
		req.Header.Set("Authorization", "Bearer secret-token")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "e2e/1.0")
		resp, body := do(t, req)
		if resp.StatusCode != 200 || resp.Header.Get("X-Fixture") != "echo" {
			t.Fatalf("POST = %d %v %s; want the handler's 200 relayed", resp.StatusCode, resp.Header, body)
		}
		var echoed fixtureRecord
		if err := json.Unmarshal([]byte(body), &echoed); err != nil {
			t.Fatal(err)
		}
		recs := p.waitRecords(t, 1, isPath("/api/echo/42/a/b"))
		r := recs[len(recs)-1]
		if r.Method != "POST" || r.RawQuery != "x=1&y=two%20words" || r.Body != `{"hello":"world"}` || r.ContentLength != 17 {
			t.Errorf("forwarded %s ?%s body %q length %d", r.Method, r.RawQuery, r.Body, r.ContentLength)
		}
		if r.Host != "modelauth.example:7071" {
			t.Errorf("Host = %q; want the caller's", r.Host)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer secret-token" {
			t.Errorf("Authorization = %q", got)
		}
		if got := r.Header.Get("User-Agent"); !regexp.MustCompile(`^e2e/1\.0 Azure-Functions-Host/\S+$`).MatchString(got) {
			t.Errorf("User-Agent = %q; want the caller's plus Azure-Functions-Host/<ver>", got)
		}
		if !uuidRE.MatchString(r.Header.Get("X-Azure-Functions-InvocationId")) || r.Header.Get("X-Azure-Functions-HostVersion") == "" {
			t.Errorf("invocation headers missing: %v", r.Header)
		}
		if echoed.Header.Get("X-Azure-Functions-InvocationId") != r.Header.Get("X-Azure-Functions-InvocationId") {
			t.Errorf("the relayed body is not the handler's echo")
		}
	})

	t.Run("chunked body is dropped", func(t *testing.T) {
		req := newRequest(t, "POST", p.url+"/api/echo/chunked", io.MultiReader(strings.NewReader("no length")))
		req.ContentLength = -1
		resp, _ := do(t, req)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		r := p.waitRecords(t, 1, isPath("/api/echo/chunked"))[0]
		if r.Body != "" || r.ContentLength != 0 || len(r.TransferEncoding) != 0 {
			t.Errorf("handler got body %q length %d transfer %v; want no body", r.Body, r.ContentLength, r.TransferEncoding)
		}
	})

	t.Run("routing", func(t *testing.T) {
		tests := []struct {
			method, path string
			want         int
		}{
			{"GET", "/API/ECHO/7", 200},            // literals are case-insensitive, catch-all empty
			{"GET", "/api/echo/7/a/b/c", 200},      // catch-all many
			{"GET", "/api/echo/7?status=418", 418}, // status relayed
			{"DELETE", "/api/echo/7", 404},         // method not in function.json
			{"PUT", "/api/echo/7", 404},
			{"GET", "/api/echo", 404}, // {id} is required
			{"GET", "/api/nothing", 404},
		}
		for _, tt := range tests {
			resp, _ := do(t, newRequest(t, tt.method, p.url+tt.path, nil))
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s = %d; want %d", tt.method, tt.path, resp.StatusCode, tt.want)
			}
		}
		resp, _ := do(t, newRequest(t, "GET", p.url+"/api/echo/7?redirect=1", nil))
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/api/echo/redirected/x" {
			t.Errorf("redirect = %d %q; want the handler's 302 relayed", resp.StatusCode, resp.Header.Get("Location"))
		}
		for _, r := range p.records(t) {
			if r.Path == "/api/echo/redirected/x" {
				t.Error("the host followed the handler's redirect")
			}
		}
	})

	t.Run("admin endpoint runs a timer", func(t *testing.T) {
		resp, _ := do(t, newRequest(t, "POST", p.url+"/admin/functions/yearly", strings.NewReader(`{"input":""}`)))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("admin = %d; want 202", resp.StatusCode)
		}
		r := p.waitRecords(t, 1, isPath("/yearly"))[0]
		if r.Method != "POST" {
			t.Errorf("method %s", r.Method)
		}
		checkInvocationHeaders(t, r)
		inv := decodeEnvelope(t, r.Body)
		var ti azfunc.TimerInfo
		if err := inv.Bind("myTimer", &ti); err != nil {
			t.Fatal(err)
		}
		if ti.IsPastDue || !ti.Schedule.AdjustForDST || ti.ScheduleStatus == nil || !ti.ScheduleStatus.Last.IsZero() || ti.ScheduleStatus.Next.Month() != time.January {
			t.Errorf("TimerInfo = %+v; want a fresh status with Next on January 1", ti)
		}
		if !strings.Contains(r.Body, `"Last":"0001-01-01T00:00:00+00:00"`) || !strings.Contains(r.Body, `"Schedule":{"AdjustForDST":true}`) {
			t.Errorf("raw envelope lacks the host's shapes: %s", r.Body)
		}
		sys, err := inv.Sys()
		if err != nil || sys.MethodName != "yearly" || !uuidRE.MatchString(sys.RandGuid) || time.Since(sys.UtcNow.Time) > time.Minute {
			t.Errorf("sys = %+v, %v", sys, err)
		}
		if !regexp.MustCompile(`"UtcNow":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z"`).MatchString(r.Body) {
			t.Errorf("UtcNow is not a Newtonsoft UTC timestamp: %s", r.Body)
		}
		resp, _ = do(t, newRequest(t, "POST", p.url+"/admin/functions/nope", strings.NewReader(`{"input":""}`)))
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("admin unknown = %d; want 404", resp.StatusCode)
		}
		p.waitStdout(t, "fixture handled yearly "+r.Header.Get("X-Azure-Functions-InvocationId"))
	})

	t.Run("fast schedule fires", func(t *testing.T) {
		recs := p.waitRecords(t, 2, isPath("/tick"))
		for _, r := range recs[:2] {
			checkInvocationHeaders(t, r)
			inv := decodeEnvelope(t, r.Body)
			var ti azfunc.TimerInfo
			if err := inv.Bind("myTimer", &ti); err != nil {
				t.Fatal(err)
			}
			if ti.ScheduleStatus != nil || ti.IsPastDue || !strings.Contains(r.Body, `"ScheduleStatus":null`) {
				t.Errorf("tick TimerInfo = %+v; want ScheduleStatus null (sub-minute schedule)", ti)
			}
			if sys, _ := inv.Sys(); sys.MethodName != "tick" {
				t.Errorf("MethodName = %q", sys.MethodName)
			}
		}
	})

	t.Run("Event Grid webhook", func(t *testing.T) {
		events := `[
		  {"id":"ev-1","topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv","subject":"svc-a-primary",
		   "eventType":"Microsoft.KeyVault.SecretNearExpiry","eventTime":"2026-09-24T13:09:00.1036736Z",
		   "data":{"Id":"https://kv.vault.azure.net/secrets/svc-a-primary/v1","VaultName":"kv","ObjectType":"Secret","ObjectName":"svc-a-primary","Version":"v1","NBF":1559081980,"EXP":"1559082102"},
		   "dataVersion":"1","metadataVersion":"1"},
		  {"id":"ev-2","subject":"signing-key","eventType":"Microsoft.KeyVault.SecretExpired","eventTime":"2026-09-24T13:09:01Z",
		   "data":{"ObjectName":"signing-key","VaultName":"kv"},"dataVersion":"1","metadataVersion":"1"}]`
		url := p.url + "/runtime/webhooks/EventGrid?functionName=events"
		req := newRequest(t, "POST", url, strings.NewReader(events))
		req.Header.Set("aeg-event-type", "Notification")
		req.Header.Set("Content-Type", "application/json")
		if resp, body := do(t, req); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("notification = %d %s; want 202", resp.StatusCode, body)
		}
		recs := p.waitRecords(t, 2, isPath("/events"))
		seen := map[string]bool{}
		for _, r := range recs {
			checkInvocationHeaders(t, r)
			inv := decodeEnvelope(t, r.Body)
			var ev azfunc.EventGridEvent
			if err := inv.Bind("eventGridEvent", &ev); err != nil {
				t.Fatal(err)
			}
			seen[ev.ID] = true
			var data azfunc.KeyVaultEventData
			if err := inv.BindMetadata("data", &data); err != nil || data.ObjectName != ev.Subject || data.VaultName != "kv" {
				t.Errorf("Metadata.data = %+v, %v; want the event's data", data, err)
			}
			if ev.ID == "ev-1" && (ev.EventType != azfunc.SecretNearExpiry || data.EXP.Unix() != 1559082102) {
				t.Errorf("event ev-1 = %+v data %+v", ev, data)
			}
		}
		if len(recs) != 2 || !seen["ev-1"] || !seen["ev-2"] {
			t.Errorf("invocations for %v; want one per event", seen)
		}

		req = newRequest(t, "POST", url, strings.NewReader(`[{"id":"v","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{"validationCode":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}}]`))
		req.Header.Set("aeg-event-type", "SubscriptionValidation")
		resp, body := do(t, req)
		var v struct {
			ValidationResponse string `json:"validationResponse"`
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &v) != nil || v.ValidationResponse != "512d38b6-c7b8-40c8-89fe-f46f9e9622b6" {
			t.Errorf("validation = %d %s", resp.StatusCode, body)
		}

		if resp, _ := do(t, newRequest(t, "POST", url, strings.NewReader(events))); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("missing aeg-event-type = %d; want 400", resp.StatusCode)
		}
		req = newRequest(t, "POST", p.url+"/runtime/webhooks/EventGrid?functionName=tick", strings.NewReader(events))
		req.Header.Set("aeg-event-type", "Notification")
		if resp, _ := do(t, req); resp.StatusCode != http.StatusNotFound {
			t.Errorf("non-eventGrid function = %d; want 404", resp.StatusCode)
		}
		if n := len(p.records(t)); n == 0 || len(p.waitRecords(t, 2, isPath("/events"))) != 2 {
			t.Errorf("rejected deliveries reached the handler")
		}
	})

	t.Run("SIGTERM stops the host and the handler", func(t *testing.T) {
		pid := p.waitRecords(t, 1, isStart)[0].PID
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, 15*time.Second); code != 0 {
			t.Errorf("exit code %d after SIGTERM; want 0:\n%s", code, p.output())
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("the handler (pid %d) still runs after the host stopped: %v", pid, err)
		}
	})
}

func mustEval(t *testing.T, p string) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestEndToEndCrashes: a crashing handler is restarted, and the third
// crash within 30 minutes stops the host with an error.
func TestEndToEndCrashes(t *testing.T) {
	t.Parallel()
	p := startHost(t, fixtureApp(t, nil))
	for i := 1; i <= 3; i++ {
		p.waitRecords(t, i, isStart)
		if resp, _ := do(t, newRequest(t, "GET", p.url+"/api/echo/1", nil)); resp.StatusCode != 200 {
			t.Fatalf("before crash %d: status %d; want the handler up", i, resp.StatusCode)
		}
		resp, err := noRedirect.Do(newRequest(t, "GET", p.url+"/api/echo/exit/3", nil))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("crash %d: status %d; want 502", i, resp.StatusCode)
			}
		} else if i < 3 {
			t.Fatalf("crash %d: %v", i, err)
		}
	}
	if code := p.wait(t, 15*time.Second); code == 0 {
		t.Fatalf("exit code 0 after three crashes; want non-zero:\n%s", p.output())
	}
	out := p.output()
	for _, want := range []string{"failed too often", "exited with code 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	starts := p.records(t)
	ids := map[string]bool{}
	for _, r := range starts {
		if r.Kind == "start" {
			ids[r.Env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"]] = true
		}
	}
	if len(ids) != 3 {
		t.Errorf("%d distinct worker ids; want 3 handler starts", len(ids))
	}
}

// TestEndToEndExitZero: a handler that exits with code 0 is not restarted
// and HTTP calls then fail with 502, but the host keeps running.
func TestEndToEndExitZero(t *testing.T) {
	t.Parallel()
	p := startHost(t, fixtureApp(t, nil))
	resp, err := noRedirect.Do(newRequest(t, "GET", p.url+"/api/echo/exit/0", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	start := time.Now()
	deadline := start.Add(5 * time.Second)
	for {
		resp, _ := do(t, newRequest(t, "GET", p.url+"/api/echo/1", nil))
		if resp.StatusCode == http.StatusBadGateway {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %d after the handler exited; want 502", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-p.done:
		t.Fatalf("the host stopped after a clean handler exit:\n%s", p.output())
	default:
	}
	if n := len(p.waitRecords(t, 1, isStart)); n != 1 {
		t.Errorf("%d handler starts; want 1 (no restart after exit code 0)", n)
	}
	p.waitStdout(t, "exited with code 0")
}

// TestEndToEndInitTimeout: a handler that never listens is restarted after
// the initialization timeout, and the host stops after three.
func TestEndToEndInitTimeout(t *testing.T) {
	t.Parallel()
	hostJSON := `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"},
	  "enableForwardingHttpRequest":true,"initializationTimeout":"00:00:00.3"}}`
	p := launchHost(t, fixtureApp(t, map[string]string{"host.json": hostJSON}), "FIXTURE_NO_LISTEN=1")
	if p.url != "" {
		t.Fatalf("the host printed its URL though the handler never listened")
	}
	if code := p.wait(t, 15*time.Second); code == 0 {
		t.Fatalf("exit code 0; want non-zero:\n%s", p.output())
	}
	if out := p.output(); !strings.Contains(out, "timed out") || strings.Count(out, `msg="starting the custom handler"`) != 3 {
		t.Errorf("want three starts and a timeout error:\n%s", out)
	}
}

// TestEndToEndStdoutIsNotStderr: the host writes nothing to stderr while
// it runs normally (the Functions host logs stderr lines as errors).
func TestEndToEndQuietStderr(t *testing.T) {
	t.Parallel()
	p := startHost(t, fixtureApp(t, nil))
	p.waitRecords(t, 1, isPath("/tick"))
	p.stop(t)
	if stderr := p.stderr.String(); stderr != "" || !strings.Contains(p.stdout.String(), "level=INFO") {
		t.Errorf("stderr = %q; want logs on stdout only", stderr)
	}
}
