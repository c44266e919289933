package azfunc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/modelauth/modelauth/shared/logtest"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// logRecord is one line of slog's JSON output.
type logRecord struct {
	Level        string `json:"level"`
	Msg          string `json:"msg"`
	Err          string `json:"err"`
	Path         string `json:"path"`
	InvocationID string `json:"invocation_id"`
}

func testLogger() (*slog.Logger, *logtest.Buffer) { return logtest.New() }

func records(t *testing.T, buf *logtest.Buffer) []logRecord {
	t.Helper()
	var out []logRecord
	for line := range strings.Lines(buf.String()) {
		var r logRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func errorRecords(t *testing.T, buf *logtest.Buffer) []logRecord {
	t.Helper()
	var out []logRecord
	for _, r := range records(t, buf) {
		if r.Level == "ERROR" {
			out = append(out, r)
		}
	}
	return out
}

// envelopeResponse checks the invariants of every envelope response and
// returns its Logs.
func envelopeResponse(t *testing.T, rec *httptest.ResponseRecorder) []string {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Errorf("status = %d; want 200", rec.Code)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q; want application/json", got)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", rec.Body, err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"Logs", "Outputs", "ReturnValue"}; !slices.Equal(keys, want) {
		t.Fatalf("response keys = %v; want %v", keys, want)
	}
	var outputs map[string]any
	if err := json.Unmarshal(raw["Outputs"], &outputs); err != nil || outputs == nil {
		t.Errorf("Outputs = %s; want an object", raw["Outputs"])
	}
	var logs []string
	if err := json.Unmarshal(raw["Logs"], &logs); err != nil || logs == nil {
		t.Errorf("Logs = %s; want an array of strings", raw["Logs"])
	}
	return logs
}

func post(h http.Handler, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/rotatekeys", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", "9a3c2d0e-2b7b-4b3a-9a55-4b0f3c6d2e11")
	req.Header.Set("Authorization", "Bearer header-secret")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestTimerHandler(t *testing.T) {
	errBoom := errors.New("store unavailable")
	tests := []struct {
		name       string
		body       string
		fnErr      error
		fnPanic    bool
		wantCalled bool
		wantPast   bool
		wantLogs   []string // substrings, in order
		wantError  string   // substring of the error record's err; "" means no error record
	}{
		{
			name: "success", body: string(readGolden(t, "timer_pastdue.json")),
			wantCalled: true, wantPast: true, wantLogs: []string{"rotating, past due true"},
		},
		{
			name: "schedule status null", body: string(readGolden(t, "timer_schedulestatus_null.json")),
			wantCalled: true, wantLogs: []string{"rotating, past due false"},
		},
		{
			name: "odd timestamps still run", body: string(readGolden(t, "timer_odd_timestamps.json")),
			wantCalled: true, wantLogs: []string{"rotating, past due false"},
		},
		{
			name: "function error", body: string(readGolden(t, "timer_monitor.json")), fnErr: errBoom,
			wantCalled: true,
			wantLogs:   []string{"rotating, past due false", "invocation failed: store unavailable"},
			wantError:  "store unavailable",
		},
		{
			name: "function panic", body: string(readGolden(t, "timer_monitor.json")), fnPanic: true,
			wantCalled: true,
			wantLogs:   []string{"rotating, past due false", "invocation failed: azfunc: function panicked"},
			wantError:  "function panicked",
		},
		{
			name: "malformed JSON", body: string(readGolden(t, "timer_malformed.json")),
			wantLogs:  []string{"invocation rejected: azfunc: malformed invocation"},
			wantError: "malformed invocation",
		},
		{
			name: "oversize body", body: `{"Data":{}}` + strings.Repeat(" ", MaxRequestBytes),
			wantLogs:  []string{"invocation rejected: azfunc: invocation body too large"},
			wantError: "too large",
		},
		{
			name: "missing binding", body: `{"Data":{"other":{}},"Metadata":{}}`,
			wantLogs:  []string{`invocation failed: azfunc: no such binding: Data has no value for "myTimer"`},
			wantError: "no such binding",
		},
		{
			name: "null binding", body: `{"Data":{"myTimer":null}}`,
			wantLogs:  []string{`invocation failed: azfunc: no such binding: Data has null for "myTimer"`},
			wantError: "no such binding",
		},
		{
			name: "wrong shape", body: `{"Data":{"myTimer":{"IsPastDue":"yes"}}}`,
			wantLogs:  []string{"invocation failed: binding \"myTimer\": azfunc: malformed invocation"},
			wantError: "malformed invocation",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, buf := testLogger()
			called := false
			h := TimerHandler("myTimer", func(ctx context.Context, ti TimerInfo) error {
				called = true
				if ti.IsPastDue != tt.wantPast {
					t.Errorf("IsPastDue = %t; want %t", ti.IsPastDue, tt.wantPast)
				}
				Logf(ctx, "rotating, past due %t", ti.IsPastDue)
				if tt.fnPanic {
					panic("index out of range")
				}
				return tt.fnErr
			}, log)
			rec := post(h, tt.body)
			logs := envelopeResponse(t, rec)
			if called != tt.wantCalled {
				t.Errorf("function called = %t; want %t", called, tt.wantCalled)
			}
			if len(logs) != len(tt.wantLogs) {
				t.Fatalf("Logs = %q; want %d lines like %q", logs, len(tt.wantLogs), tt.wantLogs)
			}
			for i, want := range tt.wantLogs {
				if !strings.Contains(logs[i], want) {
					t.Errorf("Logs[%d] = %q; want it to contain %q", i, logs[i], want)
				}
			}
			errs := errorRecords(t, buf)
			if tt.wantError == "" {
				if len(errs) != 0 {
					t.Errorf("error records = %+v; want none", errs)
				}
			} else {
				found := false
				for _, r := range errs {
					if strings.Contains(r.Err, tt.wantError) {
						found = true
						if r.Path != "/rotatekeys" || r.InvocationID != "9a3c2d0e-2b7b-4b3a-9a55-4b0f3c6d2e11" {
							t.Errorf("error record = %+v; want path and invocation id", r)
						}
					}
				}
				if !found {
					t.Errorf("error records = %+v; want one with err containing %q", errs, tt.wantError)
				}
			}
			if strings.Contains(buf.String(), "header-secret") || strings.Contains(rec.Body.String(), "header-secret") {
				t.Errorf("a request header reached the logs or the response")
			}
		})
	}
}

func TestHandlerNeverLogsMetadata(t *testing.T) {
	log, buf := testLogger()
	h := Handler(func(ctx context.Context, req *InvokeRequest) (InvokeResponse, error) {
		return InvokeResponse{}, errors.New("rejected")
	}, log)
	rec := post(h, string(readGolden(t, "http_forwarding_off.json")))
	envelopeResponse(t, rec)
	for _, secret := range []string{"eyJ.fake.fixture", "abc.def", "contoso"} {
		if strings.Contains(buf.String(), secret) || strings.Contains(rec.Body.String(), secret) {
			t.Errorf("%q from the envelope reached the logs or the response:\n%s\n%s", secret, buf, rec.Body)
		}
	}
}

func TestHandlerOutputsOnError(t *testing.T) {
	h := Handler(func(ctx context.Context, req *InvokeRequest) (InvokeResponse, error) {
		return InvokeResponse{
			Outputs: map[string]any{"res": map[string]any{"statusCode": 500}},
			Logs:    []string{"own line"},
		}, errors.New("failed")
	}, slog.New(slog.DiscardHandler))
	rec := post(h, `{}`)
	logs := envelopeResponse(t, rec)
	if want := []string{"own line", "invocation failed: failed"}; !slices.Equal(logs, want) {
		t.Errorf("Logs = %q; want %q", logs, want)
	}
	if want := `"Outputs":{"res":{"statusCode":500}}`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("body = %s; want it to contain %s", rec.Body, want)
	}
}

func TestEventGridHandler(t *testing.T) {
	for _, file := range []string{"eventgrid_object.json", "eventgrid_string.json", "eventgrid_double_string.json"} {
		t.Run(file, func(t *testing.T) {
			log, buf := testLogger()
			var got KeyVaultEventData
			var gotType string
			h := EventGridHandler("eventGridEvent", func(ctx context.Context, ev EventGridEvent) error {
				gotType = ev.EventType
				return ev.DecodeData(&got)
			}, log)
			logs := envelopeResponse(t, post(h, string(readGolden(t, file))))
			if len(logs) != 0 {
				t.Errorf("Logs = %q; want none", logs)
			}
			if gotType != SecretNearExpiry || got != nearExpiryData {
				t.Errorf("event = %s %+v; want %s %+v", gotType, got, SecretNearExpiry, nearExpiryData)
			}
			if errs := errorRecords(t, buf); len(errs) != 0 {
				t.Errorf("error records = %+v", errs)
			}
		})
	}
	t.Run("array is refused", func(t *testing.T) {
		called := false
		h := EventGridHandler("eventGridEvent", func(ctx context.Context, ev EventGridEvent) error {
			called = true
			return nil
		}, slog.New(slog.DiscardHandler))
		logs := envelopeResponse(t, post(h, `{"Data":{"eventGridEvent":"[{\"id\":\"1\"}]"}}`))
		if called || len(logs) != 1 || !strings.Contains(logs[0], "malformed") {
			t.Errorf("called = %t, Logs = %q; want not called and a malformed line", called, logs)
		}
	})
}

func TestHandlerMethodNotAllowed(t *testing.T) {
	h := TimerHandler("myTimer", func(context.Context, TimerInfo) error {
		t.Error("function called")
		return nil
	}, slog.New(slog.DiscardHandler))
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodHead} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/rotatekeys", nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "POST" ||
			rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: status %d, headers %v; want 405 JSON with Allow: POST", method, rec.Code, rec.Header())
		}
	}
}

func TestLogfOutsideInvocation(t *testing.T) {
	Logf(context.Background(), "nowhere %d", 1) // must not panic

	var late context.Context
	h := Handler(func(ctx context.Context, req *InvokeRequest) (InvokeResponse, error) {
		late = ctx
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() { Logf(ctx, "line %d", i) })
		}
		wg.Wait()
		return InvokeResponse{}, nil
	}, slog.New(slog.DiscardHandler))
	rec := post(h, `{}`)
	if logs := envelopeResponse(t, rec); len(logs) != 10 {
		t.Errorf("Logs = %q; want 10 lines", logs)
	}
	Logf(late, "after return") // ignored, must not race
}

func TestLogfCap(t *testing.T) {
	h := Handler(func(ctx context.Context, req *InvokeRequest) (InvokeResponse, error) {
		for i := range maxLogLines + 5 {
			Logf(ctx, "line %d", i)
		}
		return InvokeResponse{}, nil
	}, slog.New(slog.DiscardHandler))
	logs := envelopeResponse(t, post(h, `{}`))
	if len(logs) != maxLogLines+1 || logs[maxLogLines] != "azfunc: 5 more log lines dropped" {
		t.Errorf("got %d lines ending %q; want %d ending with the dropped count", len(logs), logs[len(logs)-1], maxLogLines+1)
	}
}

// TestServerConcurrent runs invocations, readiness probes and unknown
// paths through a real server, as the host does.
func TestServerConcurrent(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	mux := http.NewServeMux()
	mux.Handle("/", Ready())
	mux.Handle("/keyvaultevents", EventGridHandler("eventGridEvent", func(ctx context.Context, ev EventGridEvent) error {
		mu.Lock()
		defer mu.Unlock()
		seen[ev.ID] = true
		Logf(ctx, "event %s", ev.ID)
		return nil
	}, slog.New(slog.DiscardHandler)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf(`{"Data":{"eventGridEvent":%q}}`, fmt.Sprintf(`{"id":"ev-%d"}`, i))
			resp, err := srv.Client().Post(srv.URL+"/keyvaultevents", "application/json; charset=utf-8", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			want := fmt.Sprintf(`{"Outputs":{},"Logs":["event ev-%d"],"ReturnValue":null}`, i)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(b) != want {
				t.Errorf("response %d %q %s; want 200 JSON %s", resp.StatusCode, resp.Header.Get("Content-Type"), b, want)
			}
		})
		wg.Go(func() {
			resp, err := srv.Client().Get(srv.URL + "/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("GET / = %d; want 200", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("saw %d distinct events; want %d", len(seen), n)
	}

	resp, err := srv.Client().Post(srv.URL+"/unknownfunction", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /unknownfunction = %d; want 404, not a 200 the host would take for success", resp.StatusCode)
	}
}

func TestConstructorsPanic(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"Handler nil", func() { Handler(nil, nil) }},
		{"TimerHandler no binding", func() { TimerHandler("", func(context.Context, TimerInfo) error { return nil }, nil) }},
		{"TimerHandler nil fn", func() { TimerHandler("t", nil, nil) }},
		{"EventGridHandler no binding", func() { EventGridHandler("", func(context.Context, EventGridEvent) error { return nil }, nil) }},
		{"EventGridHandler nil fn", func() { EventGridHandler("e", nil, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", tt.name)
				}
			}()
			tt.f()
		})
	}
}

func TestInvocationID(t *testing.T) {
	tests := []struct{ header, want string }{
		{"9a3c2d0e-2b7b-4b3a-9a55-4b0f3c6d2e11", "9a3c2d0e-2b7b-4b3a-9a55-4b0f3c6d2e11"},
		{"", ""},
		{"Bearer abc", ""},
		{strings.Repeat("a", 65), ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "/f", nil)
		r.Header.Set("X-Azure-Functions-InvocationId", tt.header)
		if got := invocationID(r); got != tt.want {
			t.Errorf("invocationID(%q) = %q; want %q", tt.header, got, tt.want)
		}
	}
}
