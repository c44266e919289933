package apierror

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
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

// challenged is a Challenger, as authn's failures are.
type challenged struct {
	err       *Error
	challenge string
}

func (c challenged) Error() string           { return c.err.Error() }
func (c challenged) Unwrap() error           { return c.err }
func (c challenged) WWWAuthenticate() string { return c.challenge }

var _ Challenger = challenged{}

func TestWriteChallenge(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		want   []string // WWW-Authenticate values
	}{
		{"challenger", challenged{New(Unauthorized, "no"), `Bearer realm="x"`}, http.StatusUnauthorized, []string{`Bearer realm="x"`}},
		{"wrapped challenger", fmt.Errorf("ctx: %w", challenged{New(BadRequest, "bad"), `Bearer realm="x", error="invalid_request"`}), http.StatusBadRequest, []string{`Bearer realm="x", error="invalid_request"`}},
		{"challenger without a challenge", challenged{New(Unavailable, "down"), ""}, http.StatusServiceUnavailable, nil},
		{"plain error", New(Unauthorized, "no"), http.StatusUnauthorized, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Write(rec, nil, tt.err)
			if got := rec.Header().Values("WWW-Authenticate"); rec.Code != tt.status || !slices.Equal(got, tt.want) {
				t.Errorf("Write(%v): %d with WWW-Authenticate %q; want %d %q", tt.err, rec.Code, got, tt.status, tt.want)
			}
		})
	}
}

func TestServeNoStore(t *testing.T) {
	tests := []struct {
		name      string
		serve     func(http.ResponseWriter, *http.Request) error
		status    int
		challenge string
	}{
		{"answer", func(w http.ResponseWriter, _ *http.Request) error { WriteJSON(w, http.StatusOK, "ok"); return nil }, http.StatusOK, ""},
		{"error", func(http.ResponseWriter, *http.Request) error { return New(NotFound, "unknown service") }, http.StatusNotFound, ""},
		{"challenge", func(http.ResponseWriter, *http.Request) error {
			return challenged{New(Forbidden, "lacks the role"), `Bearer realm="modelauth", error="insufficient_scope"`}
		}, http.StatusForbidden, `Bearer realm="modelauth", error="insufficient_scope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			ServeNoStore(rec, httptest.NewRequest("GET", "/", nil), nil, tt.serve)
			if rec.Code != tt.status || rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("WWW-Authenticate") != tt.challenge {
				t.Errorf("ServeNoStore = %d %v; want %d, no-store, challenge %q", rec.Code, rec.Header(), tt.status, tt.challenge)
			}
		})
	}
}

// TestRetryAfter: every 503 carries Retry-After (the error's, rounded up
// to whole seconds, else the default), a header already set wins, and no
// other status gets one.
func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		preset string
		want   string
	}{
		{"default", New(Unavailable, "store down"), "", "5"},
		{"the error's", &Error{Code: Unavailable, Message: "starting", RetryAfter: 1500 * time.Millisecond}, "", "2"},
		{"under a second", &Error{Code: Unavailable, Message: "starting", RetryAfter: time.Millisecond}, "", "1"},
		{"wrapped", fmt.Errorf("outer: %w", Wrap(Unavailable, "store down", errors.New("dial"))), "", "5"},
		{"already set", New(Unavailable, "throttled"), "7", "7"},
		{"the cause's hint", Wrap(Unavailable, "throttled", fmt.Errorf("keys: %w", hint(12500*time.Millisecond))), "", "13"},
		{"a hint of 0", Wrap(Unavailable, "throttled", hint(0)), "", "5"},
		{"the error's over the hint", &Error{Code: Unavailable, Message: "throttled", Err: hint(time.Minute), RetryAfter: 2 * time.Second}, "", "2"},
		{"not a 503", &Error{Code: BadGateway, Message: "upstream", RetryAfter: time.Second}, "", ""},
		{"a 500", errors.New("boom"), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if tt.preset != "" {
				rec.Header().Set("Retry-After", tt.preset)
			}
			Write(rec, nil, tt.err)
			if got := rec.Header().Get("Retry-After"); got != tt.want {
				t.Errorf("Retry-After = %q (status %d); want %q", got, rec.Code, tt.want)
			}
		})
	}
}

// hint is a cause that knows its Retry-After (as cache.HeldError).
type hint time.Duration

func (h hint) Error() string                 { return "held" }
func (h hint) RetryAfterHint() time.Duration { return time.Duration(h) }
