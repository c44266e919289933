package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/azfunc"
)

// fakeEndpoint is a handlerEndpoint whose handler is an httptest server.
type fakeEndpoint struct {
	url string
	err error

	mu       sync.Mutex
	restarts []string
}

func (f *fakeEndpoint) Endpoint(ctx context.Context) (string, error) { return f.url, f.err }

func (f *fakeEndpoint) Restart(url, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restarts = append(f.restarts, url)
}

func (f *fakeEndpoint) restartCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.restarts)
}

// captured is a request as the fake handler received it.
type captured struct {
	Method, Path, RawQuery, Host string
	Header                       http.Header
	Body                         []byte
	ContentLength                int64
	TransferEncoding             []string
}

// fakeHandler is an httptest server that records requests and answers
// with respond.
type fakeHandler struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []captured
}

func newFakeHandler(t *testing.T, respond http.HandlerFunc) *fakeHandler {
	t.Helper()
	f := &fakeHandler{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.got = append(f.got, captured{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Host, r.Header.Clone(), body, r.ContentLength, r.TransferEncoding})
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		respond(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeHandler) requests() []captured {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]captured(nil), f.got...)
}

func okEnvelope(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"Outputs":{},"Logs":["done"],"ReturnValue":null}`)
}

var discardLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// testApp is the fixture app's functions, in memory.
func testApp() *app {
	return &app{
		Root: "/app", RoutePrefix: "api", Forwarding: true, FunctionTimeout: 30 * time.Minute, InitTimeout: time.Second,
		Functions: []*function{
			{Name: "echo", Trigger: triggerHTTP, Binding: "req", Route: "echo/{id}/{*rest}", Methods: []string{"GET", "POST"}},
			{Name: "events", Trigger: triggerEventGrid, Binding: "eventGridEvent"},
			{Name: "tick", Trigger: triggerTimer, Binding: "myTimer", Schedule: "*/1 * * * * *", UseMonitor: true},
			{Name: "yearly", Trigger: triggerTimer, Binding: "myTimer", Schedule: "0 0 0 1 1 *", UseMonitor: true},
		},
	}
}

// newTestHost builds the host front end over ep, without processes.
func newTestHost(t *testing.T, a *app, ep handlerEndpoint) *host {
	t.Helper()
	rt, err := a.buildRouter()
	if err != nil {
		t.Fatal(err)
	}
	states, err := newTimers(a.Functions, func(string) (string, bool) { return "", false }, time.UTC, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tr := newHandlerTransport()
	t.Cleanup(tr.CloseIdleConnections)
	iv := &invoker{
		handler: ep, log: discardLog, now: time.Now, newID: newUUID,
		client:          &http.Client{Transport: tr},
		forwardClient:   &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		functionTimeout: a.FunctionTimeout, startWait: time.Second,
	}
	h := &host{app: a, router: rt, iv: iv, log: discardLog, invocationCtx: context.Background()}
	h.timers = &timers{iv: iv, log: discardLog, now: time.Now, loc: time.UTC, states: states, async: h.async}
	t.Cleanup(h.background.Wait)
	return h
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestForwardRequest(t *testing.T) {
	fh := newFakeHandler(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Fixture", "yes")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "short and stout")
	})
	h := newTestHost(t, testApp(), &fakeEndpoint{url: fh.srv.URL})

	tests := []struct {
		name          string
		method, url   string
		body          string
		chunked       bool
		header        map[string]string
		wantPath      string
		wantQuery     string
		wantBody      string
		wantCT        string
		wantLength    int64
		wantUserAgent string
	}{
		{
			name: "post with body", method: "POST", url: "http://example.test:7071/api/echo/42/a/b?x=1&y=two%20words",
			body:     `{"k":"v"}`,
			header:   map[string]string{"Authorization": "Bearer abc", "Content-Type": "application/json", "User-Agent": "curl/8.5.0", "X-Functions-Key": "k"},
			wantPath: "/api/echo/42/a/b", wantQuery: "x=1&y=two%20words", wantBody: `{"k":"v"}`, wantCT: "application/json", wantLength: 9,
			wantUserAgent: "curl/8.5.0 " + userAgentProduct,
		},
		{
			name: "chunked body is dropped", method: "POST", url: "http://example.test:7071/api/echo/42",
			body: "dropped", chunked: true,
			header:   map[string]string{"Content-Type": "text/plain", "Content-Encoding": "identity"},
			wantPath: "/api/echo/42", wantBody: "", wantCT: "", wantLength: 0, wantUserAgent: userAgentProduct,
		},
		{
			name: "get keeps path case and repeated query keys join", method: "GET", url: "http://example.test:7071/API/Echo/X?a=1&A=2&b",
			wantPath: "/API/Echo/X", wantQuery: "a=1,2&b=", wantUserAgent: userAgentProduct,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(fh.requests())
			req := httptest.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
			if tt.chunked {
				req.ContentLength = -1
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			w := serve(h, req)
			if w.Code != http.StatusTeapot || w.Body.String() != "short and stout" || w.Header().Get("X-Fixture") != "yes" || len(w.Header().Values("Set-Cookie")) != 2 {
				t.Fatalf("response = %d %v %q; want the handler's 418 relayed", w.Code, w.Header(), w.Body)
			}
			reqs := fh.requests()
			if len(reqs) != before+1 {
				t.Fatalf("handler got %d requests; want 1", len(reqs)-before)
			}
			got := reqs[len(reqs)-1]
			if got.Method != tt.method || got.Path != tt.wantPath || got.RawQuery != tt.wantQuery {
				t.Errorf("forwarded %s %s?%s; want %s %s?%s", got.Method, got.Path, got.RawQuery, tt.method, tt.wantPath, tt.wantQuery)
			}
			if got.Host != "example.test:7071" {
				t.Errorf("Host = %q; want the caller's example.test:7071", got.Host)
			}
			if string(got.Body) != tt.wantBody || got.ContentLength != tt.wantLength || got.Header.Get("Content-Type") != tt.wantCT {
				t.Errorf("body %q length %d type %q; want %q %d %q", got.Body, got.ContentLength, got.Header.Get("Content-Type"), tt.wantBody, tt.wantLength, tt.wantCT)
			}
			if got.Header.Get("Content-Encoding") != "" {
				t.Errorf("Content-Encoding forwarded; the host drops content headers other than Content-Type/Length")
			}
			for k, v := range tt.header {
				if k == "User-Agent" || contentHeaders[http.CanonicalHeaderKey(k)] {
					continue
				}
				if got.Header.Get(k) != v {
					t.Errorf("header %s = %q; want %q", k, got.Header.Get(k), v)
				}
			}
			if ua := got.Header.Get("User-Agent"); ua != tt.wantUserAgent {
				t.Errorf("User-Agent = %q; want %q", ua, tt.wantUserAgent)
			}
			if id := got.Header.Get(headerInvocationID); len(id) != 36 {
				t.Errorf("%s = %q; want a UUID", headerInvocationID, id)
			}
			if v := got.Header.Get(headerHostVersion); v != hostVersion {
				t.Errorf("%s = %q; want %q", headerHostVersion, v, hostVersion)
			}
		})
	}
}

func TestForwardDoesNotFollowRedirects(t *testing.T) {
	fh := newFakeHandler(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/api/echo/elsewhere/x", http.StatusFound)
	})
	h := newTestHost(t, testApp(), &fakeEndpoint{url: fh.srv.URL})
	w := serve(h, httptest.NewRequest("GET", "/api/echo/1", nil))
	if w.Code != http.StatusFound || w.Header().Get("Location") != "/api/echo/elsewhere/x" || len(fh.requests()) != 1 {
		t.Fatalf("got %d Location %q after %d handler requests; want the 302 relayed, not followed", w.Code, w.Header().Get("Location"), len(fh.requests()))
	}
}

func TestForwardFailures(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	slow := newFakeHandler(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	tests := []struct {
		name        string
		ep          *fakeEndpoint
		timeout     time.Duration
		wantStatus  int
		wantRestart bool
	}{
		{"unreachable", &fakeEndpoint{url: closed.URL}, time.Minute, http.StatusBadGateway, false},
		{"exited with code 0", &fakeEndpoint{err: errHandlerExited}, time.Minute, http.StatusBadGateway, false},
		{"function timeout restarts the handler", &fakeEndpoint{url: slow.srv.URL}, 100 * time.Millisecond, http.StatusInternalServerError, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testApp()
			a.FunctionTimeout = tt.timeout
			h := newTestHost(t, a, tt.ep)
			w := serve(h, httptest.NewRequest("GET", "/api/echo/1", nil))
			if w.Code != tt.wantStatus {
				t.Errorf("status = %d; want %d", w.Code, tt.wantStatus)
			}
			if got := tt.ep.restartCount() > 0; got != tt.wantRestart {
				t.Errorf("restarted = %v; want %v", got, tt.wantRestart)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	fh := newFakeHandler(t, okEnvelope)
	h := newTestHost(t, testApp(), &fakeEndpoint{url: fh.srv.URL})
	for _, r := range []*http.Request{
		httptest.NewRequest("DELETE", "/api/echo/1", nil), // wrong method
		httptest.NewRequest("GET", "/api/echo", nil),      // {id} missing
		httptest.NewRequest("GET", "/api/nothing", nil),
		httptest.NewRequest("GET", "/echo/1", nil), // no prefix
	} {
		if w := serve(h, r); w.Code != http.StatusNotFound {
			t.Errorf("%s %s = %d; want 404", r.Method, r.URL, w.Code)
		}
	}
	if n := len(fh.requests()); n != 0 {
		t.Errorf("handler got %d requests; want none", n)
	}
}

func TestRebuildQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a=1", "?a=1"},
		{"a=1&b=2", "?a=1&b=2"},
		{"a=1&a=2", "?a=1,2"},
		{"Name=x&name=y&other=z", "?Name=x,y&other=z"},
		{"flag", "?flag="},
		{"q=two+words&r=a%2Fb", "?q=two%20words&r=a%2Fb"},
		{"code=abc%3D%3D", "?code=abc%3D%3D"},
		{"s=%E2%82%AC&t=!$()*,;@-._~", "?s=%E2%82%AC&t=!$()*,;@-._~"},
		{"bad=%zz", "?bad=%25zz"},
		{"&&a=1&", "?a=1"},
	}
	for _, tt := range tests {
		if got := rebuildQuery(tt.in); got != tt.want {
			t.Errorf("rebuildQuery(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestHostValue(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{`{"a":1}`, json.RawMessage(`{"a":1}`)},
		{`"HelloWorld"`, `"HelloWorld"`},
		{`4`, `4`},
		{`[1,2]`, `[1,2]`},
		{``, `null`},
	}
	for _, tt := range tests {
		got, _ := json.Marshal(hostValue(json.RawMessage(tt.in)))
		want, _ := json.Marshal(tt.want)
		if !bytes.Equal(got, want) {
			t.Errorf("hostValue(%s) = %s; want %s", tt.in, got, want)
		}
	}
}

func TestInvokeEvaluatesResponse(t *testing.T) {
	tests := []struct {
		name    string
		respond http.HandlerFunc
		wantErr bool
	}{
		{"200 json", okEnvelope, false},
		{"200 text/json empty body", func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Content-Type", "text/json") }, false},
		{"500 json", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(500)
			_, _ = io.WriteString(w, `{"Logs":["lost"]}`)
		}, true},
		{"200 sniffed text/plain", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"Outputs":{}}`) }, true},
		{"200 json not an object", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `[1]`)
		}, true},
		{"404", http.NotFound, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fh := newFakeHandler(t, tt.respond)
			h := newTestHost(t, testApp(), &fakeEndpoint{url: fh.srv.URL})
			err := h.iv.invoke(context.Background(), h.app.function("tick"), "test", map[string]any{"myTimer": timerInfo{}}, nil)
			if (err != nil) != tt.wantErr {
				t.Errorf("invoke error = %v; want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestInvokeEnvelope(t *testing.T) {
	fh := newFakeHandler(t, okEnvelope)
	h := newTestHost(t, testApp(), &fakeEndpoint{url: fh.srv.URL})
	st := h.timers.state(h.app.function("yearly"))
	h.timers.runNow(context.Background(), st)
	reqs := fh.requests()
	if len(reqs) != 1 {
		t.Fatalf("handler got %d requests; want 1", len(reqs))
	}
	got := reqs[0]
	if got.Method != "POST" || got.Path != "/yearly" {
		t.Errorf("invocation %s %s; want POST /yearly", got.Method, got.Path)
	}
	if got.ContentLength != -1 || len(got.TransferEncoding) != 1 || got.TransferEncoding[0] != "chunked" {
		t.Errorf("length %d transfer %v; want chunked as the host's ObjectContent", got.ContentLength, got.TransferEncoding)
	}
	for k, want := range map[string]string{
		"Content-Type":    "application/json; charset=utf-8",
		headerHostVersion: hostVersion,
		"User-Agent":      userAgentProduct,
	} {
		if v := got.Header.Get(k); v != want {
			t.Errorf("%s = %q; want %q", k, v, want)
		}
	}
	inv, err := azfunc.DecodeInvokeRequest(bytes.NewReader(got.Body))
	if err != nil {
		t.Fatal(err)
	}
	var ti azfunc.TimerInfo
	if err := inv.Bind("myTimer", &ti); err != nil {
		t.Fatal(err)
	}
	if ti.ScheduleStatus == nil || !ti.ScheduleStatus.Last.IsZero() || ti.ScheduleStatus.Next.IsZero() || ti.IsPastDue || !ti.Schedule.AdjustForDST {
		t.Errorf("TimerInfo = %+v; want a fresh status (Last never, Next set), not past due", ti)
	}
	sys, err := inv.Sys()
	if err != nil || sys.MethodName != "yearly" || len(sys.RandGuid) != 36 || time.Since(sys.UtcNow.Time) > time.Minute {
		t.Errorf("sys = %+v, %v; want MethodName yearly, a RandGuid and UtcNow now", sys, err)
	}
	if st.snapshot().Last.IsZero() == false {
		t.Errorf("an admin run updated the schedule status")
	}
}

func TestEventGridWebhook(t *testing.T) {
	events := `[{"id":"e1","subject":"svc-a-primary","eventType":"Microsoft.KeyVault.SecretNearExpiry","data":{"ObjectName":"svc-a-primary","EXP":"1559082102"}},
	            {"id":"e2","subject":"signing-key","eventType":"Microsoft.KeyVault.SecretExpired","data":{"ObjectName":"signing-key"}}]`
	tests := []struct {
		name, url, eventType, body string
		wantStatus                 int
		wantBody                   string
		wantInvocations            int
	}{
		{"notification array", "/runtime/webhooks/EventGrid?functionName=events", "Notification", events, 202, "", 2},
		{"notification one object", "/runtime/webhooks/eventgrid?functionName=EVENTS", "notification", `{"id":"e3","data":{}}`, 202, "", 1},
		{"notification fails", "/runtime/webhooks/EventGrid?functionName=events", "Notification", `[{"id":"ok"},{"id":"x","data":{"please-fail":true}}]`, 500, "", 2},
		{"notification not json", "/runtime/webhooks/EventGrid?functionName=events", "Notification", `nope`, 400, "", 0},
		{"validation", "/runtime/webhooks/EventGrid?functionName=events", "SubscriptionValidation", `[{"id":"v","data":{"validationCode":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}}]`, 200, `{"validationResponse":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}`, 0},
		{"unsubscribe", "/runtime/webhooks/EventGrid?functionName=events", "Unsubscribe", ``, 202, "", 0},
		{"missing header", "/runtime/webhooks/EventGrid?functionName=events", "", events, 400, "", 0},
		{"unknown header", "/runtime/webhooks/EventGrid?functionName=events", "Other", events, 400, "", 0},
		{"unknown function", "/runtime/webhooks/EventGrid?functionName=nope", "Notification", events, 404, "", 0},
		{"not an eventGrid function", "/runtime/webhooks/EventGrid?functionName=tick", "Notification", events, 404, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fh := newFakeHandler(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if bytes.Contains(body, []byte("please-fail")) {
					http.Error(w, "no", 500)
					return
				}
				okEnvelope(w, r)
			})
			h := newTestHost(t, testApp(), &fakeEndpoint{url: fh.srv.URL})
			req := httptest.NewRequest("POST", tt.url, strings.NewReader(tt.body))
			if tt.eventType != "" {
				req.Header.Set("aeg-event-type", tt.eventType)
			}
			w := serve(h, req)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d (%s); want %d", w.Code, w.Body, tt.wantStatus)
			}
			if tt.wantBody != "" && strings.TrimSpace(w.Body.String()) != tt.wantBody {
				t.Errorf("body = %s; want %s", w.Body, tt.wantBody)
			}
			reqs := fh.requests()
			if len(reqs) != tt.wantInvocations {
				t.Fatalf("handler got %d invocations; want %d", len(reqs), tt.wantInvocations)
			}
			for _, r := range reqs {
				if r.Path != "/events" {
					t.Errorf("invocation path %q; want /events", r.Path)
				}
				inv, err := azfunc.DecodeInvokeRequest(bytes.NewReader(r.Body))
				if err != nil {
					t.Fatal(err)
				}
				var ev azfunc.EventGridEvent
				if err := inv.Bind("eventGridEvent", &ev); err != nil || ev.ID == "" {
					t.Errorf("Bind event = %+v, %v; want the event", ev, err)
				}
				var data, metaData map[string]any
				_ = ev.DecodeData(&data)
				_ = inv.BindMetadata("data", &metaData)
				if a, b := mustJSON(data), mustJSON(metaData); a != b {
					t.Errorf("Metadata.data = %s; want the event's data %s", b, a)
				}
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAdminEndpoint(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantPath                 string // of the invocation, "" for none
	}{
		{"timer", "POST", "/admin/functions/yearly", `{"input":""}`, 202, "/yearly"},
		{"timer name case-insensitive, empty body", "POST", "/admin/functions/YEARLY", ``, 202, "/yearly"},
		{"event grid", "POST", "/admin/functions/events", `{"input":"{\"id\":\"m1\",\"data\":{}}"}`, 202, "/events"},
		{"event grid bad input", "POST", "/admin/functions/events", `{"input":"x"}`, 400, ""},
		{"unknown", "POST", "/admin/functions/nope", `{"input":""}`, 404, ""},
		{"http function", "POST", "/admin/functions/echo", `{"input":""}`, 400, ""},
		{"bad body", "POST", "/admin/functions/yearly", `{`, 400, ""},
		{"get", "GET", "/admin/functions/yearly", ``, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fh := newFakeHandler(t, okEnvelope)
			h := newTestHost(t, testApp(), &fakeEndpoint{url: fh.srv.URL})
			w := serve(h, httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body)))
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d (%s); want %d", w.Code, w.Body, tt.wantStatus)
			}
			h.background.Wait()
			reqs := fh.requests()
			switch {
			case tt.wantPath == "" && len(reqs) != 0:
				t.Errorf("handler got %d invocations; want none", len(reqs))
			case tt.wantPath != "" && (len(reqs) != 1 || reqs[0].Path != tt.wantPath):
				t.Errorf("handler got %+v; want one invocation at %s", reqs, tt.wantPath)
			}
		})
	}
}

func TestEndpointErrorsAreSentinels(t *testing.T) {
	h := newTestHost(t, testApp(), &fakeEndpoint{err: errHandlerStopped})
	err := h.iv.invoke(context.Background(), h.app.function("tick"), "test", nil, nil)
	if !errors.Is(err, errHandlerStopped) {
		t.Errorf("invoke error = %v; want errHandlerStopped", err)
	}
}

func TestRunOnStartup(t *testing.T) {
	fh := newFakeHandler(t, okEnvelope)
	a := testApp()
	a.Functions = append(a.Functions, &function{Name: "boot", Trigger: triggerTimer, Binding: "myTimer", Schedule: "0 0 0 1 1 *", RunOnStartup: true, UseMonitor: true})
	h := newTestHost(t, a, &fakeEndpoint{url: fh.srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	h.timers.start(ctx)
	t.Cleanup(func() { cancel(); <-h.timers.stop().Done() })
	h.background.Wait()
	var boots []captured
	for _, r := range fh.requests() {
		if r.Path == "/boot" {
			boots = append(boots, r)
		}
	}
	if len(boots) != 1 {
		t.Fatalf("boot ran %d times at start; want once", len(boots))
	}
	inv, err := azfunc.DecodeInvokeRequest(bytes.NewReader(boots[0].Body))
	if err != nil {
		t.Fatal(err)
	}
	var ti azfunc.TimerInfo
	if err := inv.Bind("myTimer", &ti); err != nil || ti.ScheduleStatus == nil || !ti.ScheduleStatus.Last.IsZero() {
		t.Errorf("startup TimerInfo = %+v, %v; want the initial status", ti, err)
	}
	if st := h.timers.state(h.app.function("boot")).snapshot(); st.Last.IsZero() || time.Since(st.Last) > time.Minute {
		t.Errorf("status after the startup run = %+v; want Last = now", st)
	}
}
