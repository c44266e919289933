package azfunc

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestListenAddr(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{name: "custom handler port", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "41234"}, want: "127.0.0.1:41234"},
		{name: "custom handler port wins", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "41234", "FUNCTIONS_HTTPWORKER_PORT": "5000"}, want: "127.0.0.1:41234"},
		{name: "legacy port", env: map[string]string{"FUNCTIONS_HTTPWORKER_PORT": "5000"}, want: "127.0.0.1:5000"},
		{name: "empty counts as unset", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "", "FUNCTIONS_HTTPWORKER_PORT": "5000"}, want: "127.0.0.1:5000"},
		{name: "default", env: nil, want: "127.0.0.1:8080"},
		{name: "lowest", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "1"}, want: "127.0.0.1:1"},
		{name: "highest", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "65535"}, want: "127.0.0.1:65535"},
		{name: "leading zero", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "08080"}, want: "127.0.0.1:8080"},
		{name: "zero", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "0"}, wantErr: true},
		{name: "too large", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "65536"}, wantErr: true},
		{name: "huge", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "99999999999999999999"}, wantErr: true},
		{name: "negative", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "-1"}, wantErr: true},
		{name: "plus sign", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "+80"}, wantErr: true},
		{name: "not a number", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "http"}, wantErr: true},
		{name: "spaces", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": " 80"}, wantErr: true},
		{name: "bad does not fall back", env: map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "x", "FUNCTIONS_HTTPWORKER_PORT": "5000"}, wantErr: true},
		{name: "bad legacy", env: map[string]string{"FUNCTIONS_HTTPWORKER_PORT": "70000"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ListenAddr(func(k string) string { return tt.env[k] })
			if tt.wantErr {
				if !errors.Is(err, ErrBadPort) || got != "" {
					t.Errorf("ListenAddr(%v) = %q, %v; want ErrBadPort", tt.env, got, err)
				}
				if err != nil && !strings.Contains(err.Error(), "FUNCTIONS_") {
					t.Errorf("error %q does not name the variable", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ListenAddr(%v) = %q, %v; want %q", tt.env, got, err, tt.want)
			}
		})
	}
}

func TestReady(t *testing.T) {
	tests := []struct {
		method, path string
		wantStatus   int
		wantBody     string
	}{
		{http.MethodGet, "/", 200, `{"status":"ready"}`},
		{http.MethodHead, "/", 200, `{"status":"ready"}`}, // the server drops it; the recorder keeps it
		{http.MethodPost, "/", 405, `{"error":{"code":"method_not_allowed","message":"use GET"}}`},
		{http.MethodGet, "/rotatekeys", 404, `{"error":{"code":"not_found","message":"no function at this path"}}`},
		{http.MethodPost, "/unknown", 404, `{"error":{"code":"not_found","message":"no function at this path"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Ready().ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody || rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("%s %s = %d %q %s; want %d application/json %s", tt.method, tt.path,
					rec.Code, rec.Header().Get("Content-Type"), rec.Body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}
