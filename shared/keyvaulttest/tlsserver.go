package keyvaulttest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TLSServer is the transport and lifecycle of a test HTTPS server of the
// process, shared by [Server] and by other test servers whose clients
// trust the same SSL_CERT_FILE (such as package amltest's): a 127.0.0.1
// port with the certificate of the process's test CA
// ([ServerCertificate]), HTTP/1.1 only, so that a fault can take over
// (and reset) a connection, and a Close that ends delayed and hanging
// requests and waits for every handler.
//
// Make it with [ListenTLS], then [TLSServer.Start] it with the handler. The
// handler brackets each request with [TLSServer.Enter] and
// [TLSServer.Leave], so that Close waits for it, and waits on
// [TLSServer.Done] (or uses [TLSServer.Disrupt]) wherever it delays or
// hangs. Its exported fields must not be changed; its methods are safe
// for concurrent use.
type TLSServer struct {
	// URL is https://127.0.0.1:<port>.
	URL string
	// Port is the port the server listens on.
	Port int

	listener net.Listener
	srv      *http.Server
	done     chan struct{} // closed by Close: ends delays and hangs

	// closing guards inflight against Add after Close has started waiting.
	closing  sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
}

// ListenTLS listens on addr, whose host must be 127.0.0.1 or empty (a
// port of 0 or none: a free port), with the certificate of the process's
// test CA, and returns the server not yet serving. log receives
// net/http's own errors (at debug level); nil discards them. Its errors
// are the test CA's (see [ServerCertificate]) or the listener's, prefixed
// "keyvaulttest: ".
func ListenTLS(addr string, log *slog.Logger) (*TLSServer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	port, err := listenPort(addr)
	if err != nil {
		return nil, err
	}
	cert, err := serverCertificate()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return nil, fmt.Errorf("keyvaulttest: %w", err)
	}
	t := &TLSServer{
		Port: ln.Addr().(*net.TCPAddr).Port,
		done: make(chan struct{}),
	}
	t.URL = "https://127.0.0.1:" + strconv.Itoa(t.Port)
	// HTTP/1.1 only, so that a fault can take over (and reset) a connection.
	t.listener = tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"},
		MinVersion:   tls.VersionTLS12,
	})
	t.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return t, nil
}

// StartForTest starts a test server with start(opts) for a test or
// benchmark, and closes it when t ends; it fails t if the server cannot
// start. It is the NewServer of [Server] and of other test servers:
// return keyvaulttest.StartForTest(t, Start, opts).
func StartForTest[O any, S interface{ Close() }](t testing.TB, start func(O) (S, error), opts O) S {
	t.Helper()
	s, err := start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start serves h on the server's port, in the background, until Close.
// Call it once.
func (t *TLSServer) Start(h http.Handler) {
	t.srv.Handler = h
	go t.srv.Serve(t.listener) // returns http.ErrServerClosed on Close
}

// Done returns a channel that Close closes: a handler that delays or
// hangs a request waits on it too, so that Close ends the wait.
func (t *TLSServer) Done() <-chan struct{} { return t.done }

// Enter registers a request that a handler starts serving, so that Close
// waits for it, and reports whether it may be served: false once Close
// has started, when the handler must end the request without a response
// (panic(http.ErrAbortHandler)) and not call Leave. After true, the
// handler calls Leave when it returns.
func (t *TLSServer) Enter() bool {
	t.closing.RLock()
	defer t.closing.RUnlock()
	if t.closed {
		return false
	}
	t.inflight.Add(1)
	return true
}

// Leave ends a request that Enter let in.
func (t *TLSServer) Leave() { t.inflight.Done() }

// Close stops the server: it closes Done (ending delayed and hanging
// requests), closes the listener and every connection, and waits for the
// handlers that Enter let in to return. It reports whether this call
// closed the server: Close may be called more than once, and only the
// first call does anything.
func (t *TLSServer) Close() bool {
	t.closing.Lock()
	already := t.closed
	t.closed = true
	t.closing.Unlock()
	if already {
		return false
	}
	close(t.done)
	t.srv.Close()
	t.listener.Close() // if Start never served it
	t.inflight.Wait()
	return true
}

// Disrupt does the transport part of an injected fault to the request
// r: it waits delay, then resets the connection if reset, or else, if
// hang, blocks until the client gives up (r's context ends) or the server
// closes. A request whose client gives up during the delay, whose server
// closes, or that has hung is ended without a response
// (panic(http.ErrAbortHandler)). Disrupt reports whether the request has
// been dealt with (reset); when it returns false, the request goes on,
// with the fault's answer if it has one.
func (t *TLSServer) Disrupt(w http.ResponseWriter, r *http.Request, delay time.Duration, reset, hang bool) bool {
	if delay > 0 && t.wait(r.Context(), delay) != nil {
		abort()
	}
	switch {
	case reset:
		resetConnection(w)
		return true
	case hang:
		select {
		case <-r.Context().Done():
		case <-t.done:
		}
		abort()
	}
	return false
}

// wait blocks for d, or until the request or the server ends.
func (t *TLSServer) wait(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.done:
		return http.ErrServerClosed
	}
}

// abort ends the request without a response: the client gave up, or the
// server is closing and must not answer a hung request.
func abort() { panic(http.ErrAbortHandler) }

// resetConnection closes the request's connection with a TCP RST.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		abort()
	}
	if tc, ok := conn.(*tls.Conn); ok {
		if tcp, ok := tc.NetConn().(*net.TCPConn); ok {
			tcp.SetLinger(0)
		}
	}
	conn.Close()
}

// StatusRecorder is an http.ResponseWriter that remembers the status a
// handler wrote, for a request log: 0 if it wrote none (the connection
// was reset or dropped without a response). http.ResponseController
// reaches the connection through it (Unwrap).
type StatusRecorder struct {
	http.ResponseWriter
	// Status is the status written first, http.StatusOK for a Write
	// without WriteHeader.
	Status int
}

// WriteHeader records code, if it is the first status, and writes it.
func (r *StatusRecorder) WriteHeader(code int) {
	if r.Status == 0 {
		r.Status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write records http.StatusOK if no status was written, and writes b.
func (r *StatusRecorder) Write(b []byte) (int, error) {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Hijack).
func (r *StatusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// WriteJSON answers status with v as JSON, as an Azure service does:
// Content-Type application/json; charset=utf-8, Cache-Control no-cache
// and a new x-ms-request-id ([NewGUID]). If v cannot be marshalled it
// answers 500 with the error as text.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "keyvaulttest: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("x-ms-request-id", NewGUID())
	w.WriteHeader(status)
	w.Write(b)
}

// NewGUID returns a random version-4 GUID in lowercase, such as Azure's
// request and correlation ids.
func NewGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
