package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestScoreStaysUnderScoringURI sends, through the local host and with a
// valid key, the path tails that would lead an upstream out of the
// service's scoringUri (Azure ML's layout: several models on one host,
// /api/v1/service/<name>/score), written on the wire exactly as an
// attacker would write them. Each is answered 400 and never reaches the
// model, which records every path it receives; a plain tail does reach it,
// under the scoringUri.
func TestScoreStaysUnderScoringURI(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.RequestURI)
		mu.Unlock()
	}))
	defer model.Close()
	a := startApp(t, `{"services":[{"name":"a","scoringUri":"`+model.URL+`/api/v1/service/a/score"}]}`, nil)
	var keys keysBody
	a.do(t, "GET", "/api/services/a/keys", "Bearer "+a.adminKey, "").json(t, &keys)
	host := strings.TrimPrefix(a.url, "http://")
	raw := func(t *testing.T, target string) (int, string) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: "+host+"\r\nAuthorization: Bearer "+keys.PrimaryKey+"\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		s := seen
		seen = nil
		return s
	}

	if code, body := raw(t, "/api/services/a/score/v1/predict"); code != 200 {
		t.Fatalf("control: %d %s", code, body)
	}
	if got := taken(); len(got) != 1 || got[0] != "/api/v1/service/a/score/v1/predict" {
		t.Fatalf("control reached the model at %q; want /api/v1/service/a/score/v1/predict", got)
	}
	for _, tail := range []string{
		"..%2f..%2fb%2fscore", "..%2F..%2Fb", "%2e%2e/%2e%2e/b/score", "%2E%2E/b", ".%2e/b", "../../b/score", "./x",
		"..%5c..%5cb", `..\..\b`, "%252e%252e/b", "..%252f..%252fb", "..;/b", "%c0%ae%c0%ae/b", "%EF%BC%8E%EF%BC%8E/b",
		"..%EF%BC%8F..%EF%BC%8Fb", "..%20/b", "..%00/b",
	} {
		t.Run(url.PathEscape(tail), func(t *testing.T) {
			code, body := raw(t, "/api/services/a/score/"+tail)
			if code != 400 {
				t.Errorf("%q: %d %s; want 400", tail, code, body)
			}
			if got := taken(); len(got) != 0 {
				t.Errorf("%q reached the model at %q", tail, got)
			}
		})
	}
	if strings.Contains(a.logs.String(), keys.PrimaryKey) {
		t.Error("the log holds the key")
	}
}
