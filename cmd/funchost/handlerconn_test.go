package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/logtest"
)

// tooLargeHandler answers every request 413 without reading its body,
// as the score function does a Content-Length over its cap. With close,
// it then closes the connection at once, as a server without net/http's
// lingering close would; else net/http closes it.
func tooLargeHandler(close bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		const msg = "too large\n"
		if !close {
			w.Header().Set("X-Fixture", "cap")
			http.Error(w, strings.TrimSuffix(msg, "\n"), http.StatusRequestEntityTooLarge)
			return
		}
		conn, bufrw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		fmt.Fprintf(bufrw, "HTTP/1.1 413 Request Entity Too Large\r\nX-Fixture: cap\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(msg), msg)
		_ = bufrw.Flush()
	}
}

// TestForwardEarlyResponse is TestEndToEndEarlyResponse in process, over
// loopback: the host must relay a handler's 413 sent while it was still
// uploading a large body, log the invocation as succeeded with status
// 413, and leave no transport goroutine behind once the requests are
// done.
func TestForwardEarlyResponse(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 8<<20)
	for _, tt := range []struct {
		name   string
		close  bool
		rounds int
	}{
		{"net/http closes", false, 10},
		{"handler closes at once", true, 30},
	} {
		t.Run(tt.name, func(t *testing.T) {
			handler := httptest.NewServer(tooLargeHandler(tt.close))
			defer handler.Close()
			h := newTestHost(t, testApp(), &fakeEndpoint{url: handler.URL})
			var logs logtest.Buffer
			h.iv.log = slog.New(slog.NewTextHandler(&logs, nil))
			front := httptest.NewServer(h)
			clientTransport := &http.Transport{Proxy: nil}
			client := &http.Client{Transport: clientTransport}

			var failed []string
			for i := range tt.rounds {
				resp, err := client.Post(front.URL+"/api/echo/1/upload", "application/octet-stream", bytes.NewReader(body))
				if err != nil {
					failed = append(failed, fmt.Sprintf("round %d: %v", i, err))
					continue
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("X-Fixture") != "cap" || string(got) != "too large\n" || err != nil {
					failed = append(failed, fmt.Sprintf("round %d: %d X-Fixture %q %q %v", i, resp.StatusCode, resp.Header.Get("X-Fixture"), got, err))
				}
			}
			if len(failed) > 0 {
				t.Errorf("%d of %d rounds did not relay the handler's 413:\n%s", len(failed), tt.rounds, strings.Join(failed, "\n"))
			}

			front.Close() // waits for the host's handlers to return
			clientTransport.CloseIdleConnections()
			h.iv.forwardClient.Transport.(*http.Transport).CloseIdleConnections()
			out := logs.String()
			if bad := regexp.MustCompile(`.*\(Failed.*`).FindAllString(out, -1); len(bad) > 0 {
				t.Errorf("invocations logged as failed:\n%s", strings.Join(bad, "\n"))
			}
			if n := strings.Count(out, "(Succeeded, "); n != tt.rounds || strings.Count(out, " status=413\n") != tt.rounds {
				t.Errorf("%d invocations logged as succeeded, %d with status=413; want %d:\n%s", n, strings.Count(out, " status=413\n"), tt.rounds, out)
			}
			waitNoTransportGoroutines(t)
		})
	}
}

// waitNoTransportGoroutines waits until no goroutine runs an HTTP/1
// client connection (its read or write loop) or an earlyResponseConn
// method. It polls because a closed connection's goroutines end just
// after the close returns.
func waitNoTransportGoroutines(t *testing.T) {
	t.Helper()
	leaked := func() []string {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var found []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "net/http.(*persistConn)") || strings.Contains(g, "earlyResponseConn") {
				found = append(found, g)
			}
		}
		return found
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := leaked()
		if len(g) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d transport goroutines still run after 10s:\n%s", len(g), strings.Join(g, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
