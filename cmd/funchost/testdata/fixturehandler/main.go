// Command fixturehandler is the custom handler of funchost's test app. It
// records every request it gets (except readiness probes) as a JSON line
// in the file named by FIXTURE_RECORD, answers invocations with the
// envelope response, echoes forwarded HTTP requests, exits on
// /api/echo/exit/<code> so that tests can make it crash, and refuses a
// body over a cap on /api/echo/cap/<bytes> as the score function does.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
)

// record is one line of the record file.
type record struct {
	Kind             string              `json:"kind"` // "start" or "request"
	PID              int                 `json:"pid"`
	Args             []string            `json:"args,omitempty"`
	Env              map[string]string   `json:"env,omitempty"`
	Dir              string              `json:"dir,omitempty"`
	Method           string              `json:"method,omitempty"`
	Path             string              `json:"path,omitempty"`
	RawQuery         string              `json:"rawQuery,omitempty"`
	Host             string              `json:"host,omitempty"`
	Header           map[string][]string `json:"header,omitempty"`
	Body             string              `json:"body,omitempty"`
	ContentLength    int64               `json:"contentLength"`
	TransferEncoding []string            `json:"transferEncoding,omitempty"`
}

var (
	mu      sync.Mutex
	recFile *os.File
)

func write(r record) {
	r.PID = os.Getpid()
	line, _ := json.Marshal(r)
	mu.Lock()
	defer mu.Unlock()
	if recFile != nil {
		_, _ = recFile.Write(append(line, '\n'))
	}
}

func main() {
	if p := os.Getenv("FIXTURE_RECORD"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fixture: record file:", err)
			os.Exit(1)
		}
		recFile = f
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "FUNCTIONS_") || strings.HasPrefix(k, "FIXTURE_") || k == "TICK_SCHEDULE" || k == "AzureWebJobsStorage" {
			env[k] = v
		}
	}
	dir, _ := os.Getwd()
	write(record{Kind: "start", Args: os.Args[1:], Env: env, Dir: dir})
	if code := os.Getenv("FIXTURE_EXIT_AT_START"); code != "" {
		n, _ := strconv.Atoi(code)
		os.Exit(n)
	}
	if os.Getenv("FIXTURE_NO_LISTEN") != "" {
		select {}
	}
	port := os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT")
	fmt.Println("fixture handler: listening on port " + port)
	fmt.Fprintln(os.Stderr, "fixture handler: warning: this line goes to stderr")
	err := http.ListenAndServe("127.0.0.1:"+port, http.HandlerFunc(serve))
	fmt.Fprintln(os.Stderr, "fixture:", err)
	os.Exit(1)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" && r.Method == http.MethodGet {
		_, _ = io.WriteString(w, "ok")
		return
	}
	if limit, ok := strings.CutPrefix(r.URL.Path, "/api/echo/cap/"); ok {
		capped(w, r, limit)
		return
	}
	body, _ := io.ReadAll(r.Body)
	rec := record{
		Kind: "request", Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
		Host: r.Host, Header: r.Header, Body: string(body), ContentLength: r.ContentLength,
		TransferEncoding: r.TransferEncoding,
	}
	write(rec)
	if strings.HasPrefix(r.URL.Path, "/api/") {
		echo(w, r, rec)
		return
	}
	// An invocation envelope at /<FunctionName>.
	if strings.Contains(string(body), "please-fail") {
		http.Error(w, "failing as asked", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	name := strings.TrimPrefix(r.URL.Path, "/")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"Outputs":     map[string]any{},
		"Logs":        []string{"fixture handled " + name + " " + r.Header.Get("X-Azure-Functions-InvocationId")},
		"ReturnValue": nil,
	})
}

// echo answers a forwarded HTTP request with its own record. The path
// /api/echo/exit/<code> exits the process with that code instead.
func echo(w http.ResponseWriter, r *http.Request, rec record) {
	if code, ok := strings.CutPrefix(r.URL.Path, "/api/echo/exit/"); ok {
		n, _ := strconv.Atoi(code)
		os.Exit(n)
	}
	q := r.URL.Query()
	if q.Get("redirect") != "" {
		http.Redirect(w, r, "/api/echo/redirected/x", http.StatusFound)
		return
	}
	status := http.StatusOK
	if s := q.Get("status"); s != "" {
		status, _ = strconv.Atoi(s)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Fixture", "echo")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(rec)
}

// capped answers as the score function does a body over its cap of limit
// bytes: with ?early=1 it refuses a longer Content-Length without reading
// anything, with ?close=1 it does so and closes the connection at once
// itself, else it reads through http.MaxBytesReader and refuses the body
// when the reader hits the cap. Each way it answers 413 with X-Fixture:
// cap while the caller may still be sending, and the connection is then
// closed. A body within the cap is answered 200 with its length.
func capped(w http.ResponseWriter, r *http.Request, limit string) {
	n, err := strconv.ParseInt(limit, 10, 64)
	if err != nil || n < 0 {
		http.Error(w, "bad cap", http.StatusBadRequest)
		return
	}
	write(record{Kind: "request", Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, ContentLength: r.ContentLength})
	tooLarge := func() {
		w.Header().Set("X-Fixture", "cap")
		http.Error(w, fmt.Sprintf("the body is larger than %d bytes", n), http.StatusRequestEntityTooLarge)
	}
	q := r.URL.Query()
	if q.Get("early") != "" && r.ContentLength > n {
		tooLarge()
		return
	}
	if q.Get("close") != "" && r.ContentLength > n {
		// As a server without net/http's lingering close: answer and
		// close at once, with the body unread (the peer gets a reset).
		conn, bufrw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "hijack: "+err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		msg := fmt.Sprintf("the body is larger than %d bytes\n", n)
		fmt.Fprintf(bufrw, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nX-Fixture: cap\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(msg), msg)
		_ = bufrw.Flush()
		return
	}
	got, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, n))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		tooLarge()
	case err != nil:
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
	default:
		w.Header().Set("X-Fixture", "cap")
		fmt.Fprintf(w, "%d bytes\n", got)
	}
}
