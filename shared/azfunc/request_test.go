package azfunc

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// utc is a short time.Date in UTC.
func utc(y int, mo time.Month, d, h, mi, s, ns int) Time {
	return Time{time.Date(y, mo, d, h, mi, s, ns, time.UTC)}
}

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeGolden(t testing.TB, name string) *InvokeRequest {
	t.Helper()
	req, err := DecodeInvokeRequest(bytes.NewReader(readGolden(t, name)))
	if err != nil {
		t.Fatalf("DecodeInvokeRequest(%s) error: %v", name, err)
	}
	return req
}

// bindAs returns a decode step that binds name into a new T.
func bindAs[T any](name string) func(*InvokeRequest) (any, error) {
	return func(r *InvokeRequest) (any, error) {
		var v T
		err := r.Bind(name, &v)
		return v, err
	}
}

func metadataAs[T any](name string) func(*InvokeRequest) (any, error) {
	return func(r *InvokeRequest) (any, error) {
		var v T
		err := r.BindMetadata(name, &v)
		return v, err
	}
}

func sysOf(r *InvokeRequest) (any, error) { return r.Sys() }

// eventDataAs binds the Event Grid event and decodes its data into T.
func eventDataAs[T any](name string) func(*InvokeRequest) (any, error) {
	return func(r *InvokeRequest) (any, error) {
		var ev EventGridEvent
		if err := r.Bind(name, &ev); err != nil {
			return nil, err
		}
		var v T
		err := ev.DecodeData(&v)
		return v, err
	}
}

// eventWithoutData binds the event and drops Data, which is compared
// through eventDataAs.
func eventWithoutData(r *InvokeRequest) (any, error) {
	var ev EventGridEvent
	err := r.Bind("eventGridEvent", &ev)
	ev.Data = nil
	return ev, err
}

// testHTTPRequest is the HTTP trigger's Data value when forwarding is off.
type testHTTPRequest struct {
	URL     string              `json:"Url"`
	Method  string              `json:"Method"`
	Query   map[string]string   `json:"Query"`
	Headers map[string][]string `json:"Headers"`
	Body    string              `json:"Body"`
}

var (
	monitorLast = utc(2026, 9, 24, 13, 8, 0, 9603500)
	monitorNext = utc(2026, 9, 24, 13, 9, 0, 0)
	nearExpiry  = EventGridEvent{
		ID:              "00eccf70-95a7-4e7c-8299-2eb17ee9ad64",
		Topic:           "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/modelauth-rg/providers/Microsoft.KeyVault/vaults/modelauth-kv",
		Subject:         "svc-billing-key1",
		EventType:       SecretNearExpiry,
		EventTime:       utc(2026, 9, 24, 13, 8, 33, 103673600),
		DataVersion:     "1",
		MetadataVersion: "1",
	}
	nearExpiryData = KeyVaultEventData{
		ID:         "https://modelauth-kv.vault.azure.net/secrets/svc-billing-key1/ee059b2bb5bc48398a53b168c6cdcb10",
		VaultName:  "modelauth-kv",
		ObjectType: "Secret",
		ObjectName: "svc-billing-key1",
		Version:    "ee059b2bb5bc48398a53b168c6cdcb10",
		NBF:        UnixTime{time.Unix(1788000000, 0).UTC()},
		EXP:        UnixTime{time.Unix(1792592913, 0).UTC()},
	}
)

func TestGoldenPayloads(t *testing.T) {
	expired := nearExpiry
	expired.EventType = SecretExpired
	newVersion := nearExpiry
	newVersion.EventType = SecretNewVersionCreated
	newVersion.Subject = "signing-key"

	tests := []struct {
		name   string
		file   string
		decode func(*InvokeRequest) (any, error)
		want   any
	}{
		{
			name:   "timer with monitor, 7 fractional digits",
			file:   "timer_monitor.json",
			decode: bindAs[TimerInfo]("myTimer"),
			want: TimerInfo{
				Schedule:       Schedule{AdjustForDST: true},
				ScheduleStatus: &ScheduleStatus{Last: monitorLast, Next: monitorNext, LastUpdated: monitorLast},
			},
		},
		{
			name:   "binding name is case-insensitive",
			file:   "timer_monitor.json",
			decode: bindAs[TimerInfo]("MYTIMER"),
			want: TimerInfo{
				Schedule:       Schedule{AdjustForDST: true},
				ScheduleStatus: &ScheduleStatus{Last: monitorLast, Next: monitorNext, LastUpdated: monitorLast},
			},
		},
		{
			name:   "sys of a timer",
			file:   "timer_monitor.json",
			decode: sysOf,
			want: Sys{
				MethodName: "rotatekeys",
				UtcNow:     utc(2026, 9, 24, 13, 9, 0, 12345600),
				RandGuid:   "0b8f5e1c-6a0c-4f3e-9a0e-1f2d3c4b5a69",
			},
		},
		{
			name:   "timer with ScheduleStatus null",
			file:   "timer_schedulestatus_null.json",
			decode: bindAs[TimerInfo]("myTimer"),
			want:   TimerInfo{Schedule: Schedule{AdjustForDST: true}},
		},
		{
			name:   "timer past due, local offset",
			file:   "timer_pastdue.json",
			decode: bindAs[TimerInfo]("myTimer"),
			want: TimerInfo{
				Schedule: Schedule{AdjustForDST: true},
				ScheduleStatus: &ScheduleStatus{
					Last:        utc(2026, 9, 24, 5, 0, 0, 1000700),
					Next:        utc(2026, 9, 24, 11, 0, 0, 0),
					LastUpdated: utc(2026, 9, 24, 5, 0, 0, 123456700),
				},
				IsPastDue: true,
			},
		},
		{
			name:   "timer timestamps without offset are UTC",
			file:   "timer_no_offset.json",
			decode: bindAs[TimerInfo]("myTimer"),
			want: TimerInfo{
				Schedule: Schedule{AdjustForDST: true},
				ScheduleStatus: &ScheduleStatus{
					Last:        monitorLast,
					Next:        monitorNext,
					LastUpdated: utc(2026, 9, 24, 13, 8, 0, 500000000),
				},
			},
		},
		{
			name:   "sys UtcNow without offset",
			file:   "timer_no_offset.json",
			decode: sysOf,
			want: Sys{
				MethodName: "rotatekeys",
				UtcNow:     utc(2026, 9, 24, 13, 9, 0, 12345600),
				RandGuid:   "0b8f5e1c-6a0c-4f3e-9a0e-1f2d3c4b5a6b",
			},
		},
		{
			name:   "timer before the first run",
			file:   "timer_first_run.json",
			decode: bindAs[TimerInfo]("myTimer"),
			want: TimerInfo{
				Schedule:       Schedule{AdjustForDST: true},
				ScheduleStatus: &ScheduleStatus{Next: monitorNext},
			},
		},
		{
			name:   "unreadable timer timestamps are zero, not errors",
			file:   "timer_odd_timestamps.json",
			decode: bindAs[TimerInfo]("myTimer"),
			want: TimerInfo{
				Schedule:       Schedule{AdjustForDST: true},
				ScheduleStatus: &ScheduleStatus{},
			},
		},
		{
			name:   "sys with empty UtcNow",
			file:   "timer_odd_timestamps.json",
			decode: sysOf,
			want:   Sys{MethodName: "rotatekeys", RandGuid: "0b8f5e1c-6a0c-4f3e-9a0e-1f2d3c4b5a6d"},
		},
		{
			name:   "http trigger with forwarding off",
			file:   "http_forwarding_off.json",
			decode: bindAs[testHTTPRequest]("req"),
			want: testHTTPRequest{
				URL:    "http://localhost:7071/api/auth/validate?tenant=contoso",
				Method: "POST",
				Query:  map[string]string{"tenant": "contoso"},
				Headers: map[string][]string{
					"Accept": {"*/*"}, "Host": {"localhost:7071"}, "User-Agent": {"curl/8.5.0"},
					"Authorization": {"Bearer eyJ.fake.fixture"}, "Content-Type": {"application/json"},
					"Content-Length": {"19"},
				},
				Body: `{"token":"abc.def"}`,
			},
		},
		{
			name:   "http trigger query metadata is a quoted string",
			file:   "http_forwarding_off.json",
			decode: metadataAs[string]("tenant"),
			want:   "contoso",
		},
		{
			name:   "http trigger body property metadata",
			file:   "http_forwarding_off.json",
			decode: metadataAs[string]("token"),
			want:   "abc.def",
		},
		{
			name:   "http trigger sys",
			file:   "http_forwarding_off.json",
			decode: sysOf,
			want: Sys{
				MethodName: "ValidateAuth",
				UtcNow:     utc(2026, 9, 24, 13, 9, 0, 12345600),
				RandGuid:   "3c9d7e2a-1b4f-4a6e-9d8c-7b6a5f4e3d2c",
			},
		},
		{
			name:   "double-encoded string binding",
			file:   "string_binding.json",
			decode: bindAs[string]("name"),
			want:   "HelloWorld",
		},
		{
			name:   "string binding into any",
			file:   "string_binding.json",
			decode: bindAs[any]("name"),
			want:   "HelloWorld",
		},
		{
			name:   "string holding quotes is unwrapped once",
			file:   "string_binding.json",
			decode: bindAs[string]("quoted"),
			want:   `"quoted"`,
		},
		{
			name:   "number binding into int",
			file:   "string_binding.json",
			decode: bindAs[int]("count"),
			want:   4,
		},
		{
			name:   "number binding into string",
			file:   "string_binding.json",
			decode: bindAs[string]("count"),
			want:   "4",
		},
		{
			name:   "bool binding",
			file:   "string_binding.json",
			decode: bindAs[bool]("flag"),
			want:   true,
		},
		{
			name:   "event grid event as object",
			file:   "eventgrid_object.json",
			decode: eventWithoutData,
			want:   nearExpiry,
		},
		{
			name:   "event grid event as JSON string",
			file:   "eventgrid_string.json",
			decode: eventWithoutData,
			want:   nearExpiry,
		},
		{
			name:   "event grid event as double-encoded string",
			file:   "eventgrid_double_string.json",
			decode: eventWithoutData,
			want:   nearExpiry,
		},
		{
			name:   "key vault data, object event",
			file:   "eventgrid_object.json",
			decode: eventDataAs[KeyVaultEventData]("eventGridEvent"),
			want:   nearExpiryData,
		},
		{
			name:   "key vault data, string event",
			file:   "eventgrid_string.json",
			decode: eventDataAs[KeyVaultEventData]("eventGridEvent"),
			want:   nearExpiryData,
		},
		{
			name:   "key vault data, double-encoded event",
			file:   "eventgrid_double_string.json",
			decode: eventDataAs[KeyVaultEventData]("eventGridEvent"),
			want:   nearExpiryData,
		},
		{
			name:   "key vault data from metadata",
			file:   "eventgrid_object.json",
			decode: metadataAs[KeyVaultEventData]("data"),
			want:   nearExpiryData,
		},
		{
			name:   "camelCase key vault event",
			file:   "eventgrid_keyvault_camelcase.json",
			decode: eventWithoutData,
			want:   expired,
		},
		{
			name:   "camelCase key vault data, NBF and EXP as strings",
			file:   "eventgrid_keyvault_camelcase.json",
			decode: eventDataAs[KeyVaultEventData]("eventGridEvent"),
			want:   nearExpiryData,
		},
		{
			name:   "key vault event without expiry",
			file:   "eventgrid_keyvault_no_expiry.json",
			decode: eventWithoutData,
			want:   newVersion,
		},
		{
			name:   "key vault data, NBF null and EXP absent",
			file:   "eventgrid_keyvault_no_expiry.json",
			decode: eventDataAs[KeyVaultEventData]("eventGridEvent"),
			want: KeyVaultEventData{
				ID:         "https://modelauth-kv.vault.azure.net/secrets/signing-key/0123456789abcdef0123456789abcdef",
				VaultName:  "modelauth-kv",
				ObjectType: "Secret",
				ObjectName: "signing-key",
				Version:    "0123456789abcdef0123456789abcdef",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := decodeGolden(t, tt.file)
			got, err := tt.decode(req)
			if err != nil {
				t.Fatalf("decode %s: %v", tt.file, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decode %s =\n%s\nwant\n%s", tt.file, mustJSON(t, got), mustJSON(t, tt.want))
			}
			// The typed value's JSON decodes to a value with the same JSON.
			first := mustJSON(t, got)
			again := reflect.New(reflect.TypeOf(got))
			if err := json.Unmarshal([]byte(first), again.Interface()); err != nil {
				t.Fatalf("re-decoding %s: %v", first, err)
			}
			if second := mustJSON(t, again.Elem().Interface()); second != first {
				t.Errorf("round trip of %s = %s", first, second)
			}
		})
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%#v): %v", v, err)
	}
	return string(b)
}

// TestGoldenRoundTrip checks that every golden envelope re-encodes to an
// envelope with the same Data and Metadata.
func TestGoldenRoundTrip(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			req, err := DecodeInvokeRequest(bytes.NewReader(readGolden(t, name)))
			if strings.Contains(name, "malformed") {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("DecodeInvokeRequest(%s) error = %v; want ErrMalformed", name, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkRoundTrip(t, req)
		})
	}
}

// checkRoundTrip fails t unless req re-encodes and decodes to the same
// Data and Metadata, compared as JSON values.
func checkRoundTrip(t testing.TB, req *InvokeRequest) {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("json.Marshal(request): %v", err)
	}
	again, err := DecodeInvokeRequest(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decoding re-encoded request: %v", err)
	}
	for _, part := range []struct {
		name      string
		got, want map[string]json.RawMessage
	}{{"Data", again.Data, req.Data}, {"Metadata", again.Metadata, req.Metadata}} {
		if len(part.got) != len(part.want) || (part.got == nil) != (part.want == nil) {
			t.Fatalf("%s after round trip has %d keys (nil %t); want %d (nil %t)",
				part.name, len(part.got), part.got == nil, len(part.want), part.want == nil)
		}
		for k, w := range part.want {
			g, ok := part.got[k]
			if !ok {
				t.Fatalf("%s[%q] lost in round trip", part.name, k)
			}
			if !jsonEqual(t, g, w) {
				t.Fatalf("%s[%q] = %s after round trip; want %s", part.name, k, g, w)
			}
		}
	}
}

// jsonEqual compares two JSON texts as values.
func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	decode := func(b []byte) any {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("invalid JSON %q: %v", b, err)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

func TestDecodeInvokeRequestErrors(t *testing.T) {
	atLimit := `{"Data":{}}` + strings.Repeat(" ", MaxRequestBytes-len(`{"Data":{}}`))
	tests := []struct {
		name    string
		body    string
		wantErr error // nil: must succeed
	}{
		{name: "empty object", body: `{}`},
		{name: "null data", body: `{"Data":null,"Metadata":null}`},
		{name: "exactly the limit", body: atLimit},
		{name: "one byte over the limit", body: atLimit + " ", wantErr: ErrTooLarge},
		{name: "empty body", body: ``, wantErr: ErrMalformed},
		{name: "null", body: `null`, wantErr: ErrMalformed},
		{name: "array", body: `[]`, wantErr: ErrMalformed},
		{name: "string", body: `"{}"`, wantErr: ErrMalformed},
		{name: "truncated", body: `{"Data":{"a":1}`, wantErr: ErrMalformed},
		{name: "trailing data", body: `{"Data":{}} {}`, wantErr: ErrMalformed},
		{name: "data is an array", body: `{"Data":[]}`, wantErr: ErrMalformed},
		{name: "metadata is a string", body: `{"Metadata":"x"}`, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeInvokeRequest(strings.NewReader(tt.body))
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("DecodeInvokeRequest() error = %v; want nil", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("DecodeInvokeRequest() error = %v; want %v", err, tt.wantErr)
			}
		})
	}
	t.Run("read error", func(t *testing.T) {
		readErr := errors.New("connection reset")
		_, err := DecodeInvokeRequest(iotest.ErrReader(readErr))
		if !errors.Is(err, readErr) || errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeInvokeRequest() error = %v; want the read error only", err)
		}
	})
	t.Run("errors do not quote the body", func(t *testing.T) {
		_, err := DecodeInvokeRequest(strings.NewReader(`{"Metadata":{"Headers":{"Authorization":"Bearer sekrit"}},"Data":`))
		if err == nil || strings.Contains(err.Error(), "sekrit") {
			t.Errorf("DecodeInvokeRequest() error = %v; want an error without the body", err)
		}
	})
}

func TestBindErrors(t *testing.T) {
	req, err := DecodeInvokeRequest(strings.NewReader(
		`{"Data":{"myTimer":{"ScheduleStatus":"soon"},"ab":1,"AB":2,"n":null,"obj":{"a":1}},"Metadata":{"sys":[1]}}`))
	if err != nil {
		t.Fatal(err)
	}
	var timer TimerInfo
	var n int
	var s string
	tests := []struct {
		name    string
		err     error
		wantErr error
	}{
		{"missing binding", req.Bind("other", &n), ErrNoBinding},
		{"ambiguous binding", req.Bind("Ab", &n), ErrNoBinding},
		{"missing metadata", req.BindMetadata("other", &n), ErrNoBinding},
		{"wrong shape", req.Bind("myTimer", &timer), ErrMalformed},
		{"object into string", req.Bind("obj", &s), ErrMalformed},
		{"sys not an object", func() error { _, err := req.Sys(); return err }(), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.wantErr) {
				t.Errorf("error = %v; want %v", tt.err, tt.wantErr)
			}
		})
	}

	t.Run("exact match wins", func(t *testing.T) {
		var got int
		if err := req.Bind("AB", &got); err != nil || got != 2 {
			t.Errorf(`Bind("AB") = %d, %v; want 2, nil`, got, err)
		}
	})
	t.Run("null leaves the value", func(t *testing.T) {
		got := 7
		if err := req.Bind("n", &got); err != nil || got != 7 {
			t.Errorf(`Bind("n") = %d, %v; want 7, nil`, got, err)
		}
	})
	t.Run("non-pointer", func(t *testing.T) {
		for _, v := range []any{nil, 3, (*int)(nil)} {
			if err := req.Bind("ab", v); err == nil || errors.Is(err, ErrMalformed) {
				t.Errorf("Bind(%#v) error = %v; want a usage error", v, err)
			}
		}
	})
	t.Run("no sys", func(t *testing.T) {
		got, err := (&InvokeRequest{}).Sys()
		if err != nil || got != (Sys{}) {
			t.Errorf("Sys() = %+v, %v; want zero, nil", got, err)
		}
	})
}

func TestBindUnwrap(t *testing.T) {
	type point struct{ X, Y int }
	tests := []struct {
		name string
		raw  string
		into func(json.RawMessage) (any, error)
		want any
	}{
		{"string not double-encoded", `"HelloWorld"`, into[string], "HelloWorld"},
		{"double-encoded string", `"\"HelloWorld\""`, into[string], "HelloWorld"},
		{"string holding JSON number stays", `"4"`, into[string], "4"},
		{"string holding object stays for string target", `"{\"X\":1}"`, into[string], `{"X":1}`},
		{"named string type", `"\"x\""`, into[customString], customString("x")},
		{"pointer to string", `"\"x\""`, into[*string], ptr("x")},
		{"bytes from base64 that looks like a number", `"1234"`, into[[]byte], []byte{0xd7, 0x6d, 0xf8}},
		{"object", `{"X":1,"Y":2}`, into[point], point{1, 2}},
		{"string of object", `"{\"X\":1,\"Y\":2}"`, into[point], point{1, 2}},
		{"string of string of object", `"\"{\\\"X\\\":1,\\\"Y\\\":2}\""`, into[point], point{1, 2}},
		{"number string", `"4"`, into[int], 4},
		{"double-encoded number string", `"\"4\""`, into[int], 4},
		{"raw message unwrapped", `"[1,2]"`, into[json.RawMessage], json.RawMessage(`[1,2]`)},
		{"any keeps plain text", `"not json"`, into[any], "not json"},
		{"time target", `"\"2026-09-24T13:08:00Z\""`, into[Time], utc(2026, 9, 24, 13, 8, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.into(json.RawMessage(tt.raw))
			if err != nil {
				t.Fatalf("Bind(%s) error: %v", tt.raw, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Bind(%s) = %#v; want %#v", tt.raw, got, tt.want)
			}
		})
	}
	t.Run("depth is bounded", func(t *testing.T) {
		raw := `{"X":1}`
		for range maxUnwrap + 1 {
			raw = mustJSON(t, raw)
		}
		if _, err := into[point](json.RawMessage(raw)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Bind(%d levels) error = %v; want ErrMalformed", maxUnwrap+1, err)
		}
	})
}

type customString string

func ptr[T any](v T) *T { return &v }

// into binds raw as the Data value "v" into a new T.
func into[T any](raw json.RawMessage) (any, error) {
	req := &InvokeRequest{Data: map[string]json.RawMessage{"v": raw}}
	var v T
	err := req.Bind("v", &v)
	return v, err
}
