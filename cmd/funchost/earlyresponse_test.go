//go:build unix

package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestEndToEndEarlyResponse sends bodies of several MiB, without
// Expect: 100-continue, to a handler route that refuses them with 413
// while the host is still uploading (as the score function does over
// SCORE_MAX_BODY_BYTES), and then closes the connection. The host must
// relay the handler's 413 every time, as the real host does, and log the
// invocation with that status rather than as failed. The race it guards
// against is lost only sometimes, hence the many rounds.
func TestEndToEndEarlyResponse(t *testing.T) {
	t.Parallel()
	p := startHost(t, fixtureApp(t, nil))
	tr := &http.Transport{Proxy: nil, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	const (
		limit = 64 << 10
		size  = 8 << 20
	)
	// The handler reads a little (up to the cap) or nothing (as the score
	// function on Content-Length) and leaves the closing to net/http, or
	// reads nothing and closes at once; the last loses the race most.
	modes := []struct {
		query  string
		rounds int
	}{
		{"", 10},
		{"?early=1", 10},
		{"?close=1", 30},
	}
	body := bytes.Repeat([]byte("x"), size)
	wantBody := fmt.Sprintf("the body is larger than %d bytes\n", limit)
	rounds := 0
	for _, m := range modes {
		var failed []string
		for i := range m.rounds {
			rounds++
			req, err := http.NewRequest("POST", fmt.Sprintf("%s/api/echo/cap/%d%s", p.url, limit, m.query), bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, err := client.Do(req)
			if err != nil {
				failed = append(failed, fmt.Sprintf("round %d: %v", i, err))
				continue
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("X-Fixture") != "cap" || string(got) != wantBody || err != nil {
				failed = append(failed, fmt.Sprintf("round %d: %d X-Fixture %q %q %v", i, resp.StatusCode, resp.Header.Get("X-Fixture"), got, err))
			}
		}
		if len(failed) > 0 {
			t.Errorf("cap%s: %d of %d rounds did not relay the handler's 413:\n%s", m.query, len(failed), m.rounds, strings.Join(failed, "\n"))
		}
	}

	// A body within the cap still goes through whole.
	resp, err := client.Post(fmt.Sprintf("%s/api/echo/cap/%d", p.url, size), "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d bytes\n", size); resp.StatusCode != http.StatusOK || string(got) != want {
		t.Errorf("a body within the cap = %d %q; want 200 %q", resp.StatusCode, got, want)
	}

	// Every invocation is logged once, with the handler's status.
	p.waitRecords(t, rounds, isPath(fmt.Sprintf("/api/echo/cap/%d", limit)))
	succeeded := regexp.MustCompile(`msg="Executed 'Functions\.echo' \(Succeeded, [^"]*" function=echo invocation=\S+ status=413\n`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := p.stdoutText()
		n := len(succeeded.FindAllString(out, -1))
		if failedLog := regexp.MustCompile(`.*'Functions\.echo' \(Failed.*`).FindAllString(out, -1); len(failedLog) > 0 {
			t.Fatalf("invocations logged as failed:\n%s", strings.Join(failedLog, "\n"))
		}
		if n >= rounds {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d invocations logged as succeeded with status=413; want %d:\n%s", n, rounds, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
