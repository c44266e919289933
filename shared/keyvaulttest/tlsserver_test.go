package keyvaulttest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// TestTLSServer covers the shared lifecycle: the URL and port, a request
// served between Enter and Leave, Close ending a hung request and waiting
// for it, Close called twice, and requests refused once closed.
func TestTLSServer(t *testing.T) {
	ts, err := keyvaulttest.ListenTLS("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Port == 0 || ts.URL != "https://127.0.0.1:"+strconv.Itoa(ts.Port) {
		t.Fatalf("URL %q, port %d", ts.URL, ts.Port)
	}
	hung := make(chan struct{})
	var returned atomic.Bool
	ts.Start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ts.Enter() {
			panic(http.ErrAbortHandler)
		}
		defer ts.Leave()
		defer returned.Store(true)
		if r.URL.Path == "/hang" {
			close(hung)
			ts.Disrupt(w, r, 0, false, true) // does not return
		}
		keyvaulttest.WriteJSON(w, http.StatusOK, map[string]string{"ok": "yes"})
	}))

	resp, err := rawClient.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != `{"ok":"yes"}` || resp.Header.Get("x-ms-request-id") == "" {
		t.Fatalf("GET /: %d %s %v", resp.StatusCode, b, resp.Header)
	}

	errc := make(chan error, 1)
	go func() {
		resp, err := rawClient.Get(ts.URL + "/hang")
		if err == nil {
			resp.Body.Close()
			err = errors.New("a response: " + resp.Status)
		}
		errc <- err
	}()
	<-hung
	returned.Store(false)
	if !ts.Close() {
		t.Error("first Close: false")
	}
	if !returned.Load() {
		t.Error("Close returned before the hung handler")
	}
	select {
	case <-ts.Done():
	default:
		t.Error("Done not closed")
	}
	if ts.Close() {
		t.Error("second Close: true")
	}
	if ts.Enter() {
		t.Error("Enter after Close: true")
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Error("hung request: no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hung request not ended by Close")
	}
}

// TestTLSServerDelay: Disrupt's delay ends early, with no response, when
// the client gives up.
func TestTLSServerDelay(t *testing.T) {
	ts, err := keyvaulttest.ListenTLS("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	ts.Start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ts.Enter() {
			panic(http.ErrAbortHandler)
		}
		defer ts.Leave()
		ts.Disrupt(w, r, time.Hour, false, false)
		w.WriteHeader(http.StatusTeapot)
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL, nil)
	start := time.Now()
	if resp, err := rawClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a response: %s", resp.Status)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestTLSServerCloseUnstarted: Close before Start frees the port.
func TestTLSServerCloseUnstarted(t *testing.T) {
	ts, err := keyvaulttest.ListenTLS("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !ts.Close() {
		t.Fatal("Close: false")
	}
	again, err := keyvaulttest.ListenTLS("127.0.0.1:"+strconv.Itoa(ts.Port), nil)
	if err != nil {
		t.Fatalf("port not freed: %v", err)
	}
	again.Close()
}

func TestListenTLSAddress(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "localhost:0", "nonsense"} {
		if _, err := keyvaulttest.ListenTLS(addr, nil); err == nil || !strings.HasPrefix(err.Error(), "keyvaulttest: address") {
			t.Errorf("ListenTLS(%q): %v; want an address error", addr, err)
		}
	}
}
