package azfunc

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestInvokeResponseJSON(t *testing.T) {
	tests := []struct {
		name string
		resp InvokeResponse
		want string
	}{
		{"zero", InvokeResponse{}, `{"Outputs":{},"Logs":[],"ReturnValue":null}`},
		{"empty non-nil", InvokeResponse{Outputs: map[string]any{}, Logs: []string{}}, `{"Outputs":{},"Logs":[],"ReturnValue":null}`},
		{
			"http output",
			InvokeResponse{
				Outputs: map[string]any{"res": map[string]any{
					"statusCode": 401,
					"headers":    map[string]string{"Content-Type": "application/json", "WWW-Authenticate": "Bearer"},
					"body":       `{"valid":false}`,
				}},
				Logs: []string{"token rejected: expired"},
			},
			`{"Outputs":{"res":{"body":"{\"valid\":false}","headers":{"Content-Type":"application/json","WWW-Authenticate":"Bearer"},"statusCode":401}},"Logs":["token rejected: expired"],"ReturnValue":null}`,
		},
		{"return value", InvokeResponse{ReturnValue: "done"}, `{"Outputs":{},"Logs":[],"ReturnValue":"done"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustJSON(t, tt.resp); got != tt.want {
				t.Errorf("Marshal(%+v) = %s; want %s", tt.resp, got, tt.want)
			}
		})
	}
}

func TestWriteResponse(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		rec := httptest.NewRecorder()
		if err := WriteResponse(rec, InvokeResponse{Logs: []string{"hi"}}); err != nil {
			t.Fatal(err)
		}
		if logs := envelopeResponse(t, rec); !slices.Equal(logs, []string{"hi"}) {
			t.Errorf("Logs = %q; want [hi]", logs)
		}
	})
	t.Run("unencodable output", func(t *testing.T) {
		rec := httptest.NewRecorder()
		err := WriteResponse(rec, InvokeResponse{Outputs: map[string]any{"q": make(chan int)}, Logs: []string{"before"}})
		if err == nil {
			t.Error("WriteResponse() error = nil; want the encoding error")
		}
		want := []string{"before", "azfunc: the function's outputs could not be encoded as JSON"}
		if logs := envelopeResponse(t, rec); !slices.Equal(logs, want) {
			t.Errorf("Logs = %q; want %q", logs, want)
		}
	})
	t.Run("write error", func(t *testing.T) {
		w := failingWriter{httptest.NewRecorder()}
		if err := WriteResponse(w, InvokeResponse{}); err == nil {
			t.Error("WriteResponse() error = nil; want the write error")
		}
		if w.Code != http.StatusOK {
			t.Errorf("status = %d; want 200", w.Code)
		}
	})
}

type failingWriter struct{ *httptest.ResponseRecorder }

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }
