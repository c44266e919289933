package apierror

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"testing"
)

// TestWriteLogs: a failed request is logged only with a cause or as a 5xx,
// at warn (error for a 5xx), with its code, status, message and cause; the
// answer never carries the cause.
func TestWriteLogs(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantLevel string // "" for no line
		wantCause string
	}{
		{"4xx without a cause", New(NotFound, "unknown service"), "", ""},
		{"4xx with a cause", Wrap(BadRequest, "bad body", errors.New("unexpected EOF")), "WARN", "unexpected EOF"},
		{"5xx without a cause", New(Unavailable, "store unavailable"), "ERROR", ""},
		{"5xx with a cause", Wrap(BadGateway, "upstream failed", errors.New("dial refused")), "ERROR", "dial refused"},
		{"not an *Error", errors.New("boom"), "ERROR", "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			rec := httptest.NewRecorder()
			Write(rec, slog.New(slog.NewJSONHandler(&logs, nil)), tt.err)
			if bytes.Contains(rec.Body.Bytes(), []byte("EOF")) || bytes.Contains(rec.Body.Bytes(), []byte("boom")) ||
				bytes.Contains(rec.Body.Bytes(), []byte("refused")) {
				t.Errorf("the answer %s carries the cause", rec.Body)
			}
			if tt.wantLevel == "" {
				if logs.Len() != 0 {
					t.Errorf("logged %s; want nothing", logs.String())
				}
				return
			}
			var line struct {
				Level, Msg, Code, Message, Cause string
				Status                           int
			}
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			if line.Level != tt.wantLevel || line.Msg != "request_failed" || line.Cause != tt.wantCause ||
				line.Status != rec.Code || line.Code == "" || line.Message == "" {
				t.Errorf("logged %+v (answer %d); want level %s, cause %q", line, rec.Code, tt.wantLevel, tt.wantCause)
			}
		})
	}
}
