package azfunc_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/modelauth/modelauth/shared/azfunc"
)

// The host POSTs the timer's envelope to /<FunctionName>; the function
// sees only the decoded TimerInfo.
func ExampleTimerHandler() {
	rotate := func(ctx context.Context, t azfunc.TimerInfo) error {
		if t.ScheduleStatus != nil && t.ScheduleStatus.Last.IsZero() {
			azfunc.Logf(ctx, "first run")
		}
		azfunc.Logf(ctx, "past due: %t", t.IsPastDue)
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/", azfunc.Ready())
	mux.Handle("/rotatekeys", azfunc.TimerHandler("myTimer", rotate, slog.New(slog.DiscardHandler)))

	body := `{"Data":{"myTimer":{"Schedule":{"AdjustForDST":true},` +
		`"ScheduleStatus":{"Last":"0001-01-01T00:00:00","Next":"2026-09-24T13:09:00+00:00","LastUpdated":"0001-01-01T00:00:00"},` +
		`"IsPastDue":true}},"Metadata":{"sys":{"MethodName":"rotatekeys"}}}`
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/rotatekeys", strings.NewReader(body)))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	fmt.Println(rec.Body)
	// Output:
	// 200 application/json
	// {"Outputs":{},"Logs":["first run","past due: true"],"ReturnValue":null}
}

// An Event Grid event may arrive as an object or as a JSON string; the
// function gets the same EventGridEvent either way. Its error is reported
// in the response's Logs and to the logger, with status 200.
func ExampleEventGridHandler() {
	onEvent := func(ctx context.Context, ev azfunc.EventGridEvent) error {
		var kv azfunc.KeyVaultEventData
		if err := ev.DecodeData(&kv); err != nil {
			return err
		}
		if ev.EventType != azfunc.SecretNearExpiry {
			return fmt.Errorf("unexpected event type %s", ev.EventType)
		}
		azfunc.Logf(ctx, "%s of %s expires %s", ev.EventType, kv.ObjectName, kv.EXP.Format("2006-01-02"))
		return nil
	}
	h := azfunc.EventGridHandler("eventGridEvent", onEvent, slog.New(slog.DiscardHandler))

	for _, body := range []string{
		`{"Data":{"eventGridEvent":{"id":"1","eventType":"Microsoft.KeyVault.SecretNearExpiry",` +
			`"data":{"ObjectName":"svc-billing-key1","EXP":1792592913}}}}`,
		`{"Data":{"eventGridEvent":"{\"id\":\"2\",\"eventType\":\"Microsoft.KeyVault.SecretExpired\",` +
			`\"data\":{\"objectName\":\"svc-billing-key1\",\"exp\":\"1792592913\"}}"}}`,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/keyvaultevents", strings.NewReader(body)))
		fmt.Println(rec.Code, rec.Body)
	}
	// Output:
	// 200 {"Outputs":{},"Logs":["Microsoft.KeyVault.SecretNearExpiry of svc-billing-key1 expires 2026-10-21"],"ReturnValue":null}
	// 200 {"Outputs":{},"Logs":["invocation failed: unexpected event type Microsoft.KeyVault.SecretExpired"],"ReturnValue":null}
}

func ExampleInvokeRequest_Bind() {
	req, err := azfunc.DecodeInvokeRequest(strings.NewReader(`{"Data":{"name":"\"HelloWorld\"","count":"4"}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	var name string
	var count int
	if err := req.Bind("name", &name); err != nil {
		fmt.Println(err)
	}
	if err := req.Bind("Count", &count); err != nil {
		fmt.Println(err)
	}
	fmt.Println(name, count)
	// Output: HelloWorld 4
}

func ExampleListenAddr() {
	env := map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "41234"}
	addr, err := azfunc.ListenAddr(func(k string) string { return env[k] })
	fmt.Println(addr, err)
	_, err = azfunc.ListenAddr(func(k string) string { return map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "http"}[k] })
	fmt.Println(err)
	// Output:
	// 127.0.0.1:41234 <nil>
	// azfunc: bad port: FUNCTIONS_CUSTOMHANDLER_PORT="http": not a decimal number
}

func ExampleParseTime() {
	for _, s := range []string{"2026-09-24T15:08:00.0096035+02:00", "2026-09-24T13:08:00", "0001-01-01T00:00:00+00:00"} {
		t, err := azfunc.ParseTime(s)
		fmt.Println(t.Format("2006-01-02T15:04:05.9999999Z07:00"), t.IsZero(), err)
	}
	// Output:
	// 2026-09-24T13:08:00.0096035Z false <nil>
	// 2026-09-24T13:08:00Z false <nil>
	// 0001-01-01T00:00:00Z true <nil>
}
