package azfunc

import (
	"bytes"
	"testing"
	"time"
)

func FuzzDecodeInvokeRequest(f *testing.F) {
	// Small seeds of every shape in testdata (TestGoldenRoundTrip checks
	// the full files): the fuzzer minimizes each new input, and
	// minimizing kilobyte-sized inputs would take a short run's whole time.
	for _, s := range []string{
		`{}`, `null`, `{"Data":null}`, `{"data":{"a":1},"DATA":{"b":2}}`,
		`{"Data":{"t":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2026-09-24T13:08:00.0096035+00:00","Next":"2026-09-24T13:09:00","LastUpdated":"0001-01-01T00:00:00"},"IsPastDue":true}},"Metadata":{"sys":{"MethodName":"f","UtcNow":"2026-09-24T13:09:00Z"}}}`,
		`{"Data":{"t":{"ScheduleStatus":null}}}`,
		`{"Data":{"e":{"id":"1","eventType":"Microsoft.KeyVault.SecretNearExpiry","eventTime":"2026-09-24T13:08:33.1036736Z","data":{"Id":"x","NBF":1559081980,"EXP":"1559082102"}}}}`,
		`{"Data":{"e":"{\"id\":\"1\",\"data\":{\"nbf\":\"1\",\"exp\":null}}"}}`,
		`{"Data":{"e":"\"{\\\"id\\\":\\\"1\\\"}\""}}`,
		`{"Data":{"t":"\"\\\"x\\\"\""}}`, `{"Data":{"name":"\"HelloWorld\"","count":"4"}}`,
		`{"Data":{"req":{"Url":"http://h/api/x?a=b","Method":"POST","Query":{"a":"b"},"Headers":{"A":["b"]}}},"Metadata":{"a":"\"b\"","Headers":{"A":"b"}}}`,
		`{"Metadata":{"sys":"{}"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeInvokeRequest(bytes.NewReader(body))
		if err != nil {
			return
		}
		checkRoundTrip(t, req)
		// Binding any value into any target must not panic.
		for name := range req.Data {
			var timer TimerInfo
			var ev EventGridEvent
			var kv KeyVaultEventData
			var s string
			var v any
			_ = req.Bind(name, &timer)
			if req.Bind(name, &ev) == nil {
				_ = ev.DecodeData(&kv)
			}
			_ = req.Bind(name, &s)
			_ = req.Bind(name, &v)
		}
		_, _ = req.Sys()
	})
}

func FuzzTime(f *testing.F) {
	for _, s := range []string{
		"2026-09-24T13:08:00.0096035+00:00", "2026-09-24T13:08:00", "0001-01-01T00:00:00",
		"0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59.9999999", "2026-09-24T13:08:00.123456789-23:59",
		"0001-01-01T00:30:00-01:00", "", "9/24/2026 1:08:00 PM",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s)
		if err != nil {
			if !got.IsZero() {
				t.Fatalf("ParseTime(%q) = %v with error %v; want zero", s, got, err)
			}
			return
		}
		var fromJSON Time
		if err := fromJSON.UnmarshalJSON([]byte(mustJSON(t, s))); err != nil || !fromJSON.Time.Equal(got) {
			t.Fatalf("Time.UnmarshalJSON(%q) = %v, %v; want %v", s, fromJSON.Time, err, got)
		}
		if got.IsZero() {
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("ParseTime(%q) location = %v; want UTC", s, got.Location())
		}
		formatted := got.Format(time.RFC3339Nano)
		again, err := ParseTime(formatted)
		if err != nil || !again.Equal(got) {
			t.Fatalf("ParseTime(%q) = %v; reparsing %q = %v, %v", s, got, formatted, again, err)
		}
		if b, err := fromJSON.MarshalJSON(); err != nil {
			t.Fatalf("Time(%v).MarshalJSON() error: %v", got, err)
		} else {
			var back Time
			if err := back.UnmarshalJSON(b); err != nil || !back.Time.Equal(got) {
				t.Fatalf("Time JSON round trip of %v via %s = %v", got, b, back.Time)
			}
		}
	})
}
