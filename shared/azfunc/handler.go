package azfunc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
)

// maxLogLines bounds the lines [Logf] collects for one invocation.
const maxLogLines = 1000

// InvokeFunc handles one decoded invocation. On error, the returned
// response's Outputs and ReturnValue are still sent, so a function can
// choose them for the failure case.
type InvokeFunc func(ctx context.Context, req *InvokeRequest) (InvokeResponse, error)

// Handler returns an http.Handler for a function that receives the
// invocation envelope, at /<FunctionName>. It is the base of
// [TimerHandler] and [EventGridHandler]; use it directly for other
// triggers or bindings. A nil log means [slog.Default].
//
// The handler answers methods other than POST with 405. To every POST it
// answers 200 with Content-Type application/json and an [InvokeResponse],
// whose Logs are the lines the function passed to [Logf], then the
// response's own Logs, then, if the invocation failed, one line saying
// why. An invocation fails when the envelope is malformed or too large,
// when fn returns an error, or when fn panics; each failure is also logged
// to log at error level with the request path and the host's invocation
// id, never with Metadata or headers. Error texts reach the host's logs:
// they must not contain secrets.
//
// The handler is safe for concurrent use if fn is.
func Handler(fn InvokeFunc, log *slog.Logger) http.Handler {
	if fn == nil {
		panic("azfunc: Handler needs a function")
	}
	if log == nil {
		log = slog.Default()
	}
	return &handler{fn: fn, log: log}
}

// TimerHandler returns a [Handler] that decodes the timer trigger binding
// named binding (its name in function.json, matched case-insensitively)
// into a [TimerInfo] and calls fn. A timestamp the host wrote in an
// unexpected form is zero in the TimerInfo, never an error. It panics if
// binding is empty or fn is nil.
func TimerHandler(binding string, fn func(ctx context.Context, t TimerInfo) error, log *slog.Logger) http.Handler {
	if binding == "" || fn == nil {
		panic("azfunc: TimerHandler needs a binding name and a function")
	}
	return Handler(func(ctx context.Context, req *InvokeRequest) (InvokeResponse, error) {
		var t TimerInfo
		if err := bindRequired(req, binding, &t); err != nil {
			return InvokeResponse{}, err
		}
		return InvokeResponse{}, fn(ctx, t)
	}, log)
}

// EventGridHandler returns a [Handler] that decodes the Event Grid trigger
// binding named binding into an [EventGridEvent], whether the host sent it
// as an object or as a (doubly) JSON-encoded string, and calls fn. It
// handles one event per invocation, the default; a function with
// "cardinality": "many" gets an array and needs [Handler]. It panics if
// binding is empty or fn is nil.
func EventGridHandler(binding string, fn func(ctx context.Context, ev EventGridEvent) error, log *slog.Logger) http.Handler {
	if binding == "" || fn == nil {
		panic("azfunc: EventGridHandler needs a binding name and a function")
	}
	return Handler(func(ctx context.Context, req *InvokeRequest) (InvokeResponse, error) {
		var ev EventGridEvent
		if err := bindRequired(req, binding, &ev); err != nil {
			return InvokeResponse{}, err
		}
		return InvokeResponse{}, fn(ctx, ev)
	}, log)
}

// bindRequired is Bind that also refuses a null value.
func bindRequired(req *InvokeRequest, name string, v any) error {
	if raw, err := lookup(req.Data, name); err == nil && bytes.Equal(bytes.TrimSpace(unwrap(raw)), []byte("null")) {
		return fmt.Errorf("%w: Data has null for %q", ErrNoBinding, name)
	}
	return req.Bind(name, v)
}

// Logf formats a line into the Logs of the response to the invocation
// whose context is ctx (the context a [Handler] passes to its function),
// for the host to log at Information level. It is safe to call from
// several goroutines; it does nothing for other contexts or once the
// function has returned. At most 1000 lines are kept per invocation.
// Lines must not contain secrets.
func Logf(ctx context.Context, format string, args ...any) {
	if c, ok := ctx.Value(collectorKey{}).(*collector); ok {
		c.add(fmt.Sprintf(format, args...))
	}
}

type collectorKey struct{}

// collector gathers one invocation's Logf lines.
type collector struct {
	mu      sync.Mutex
	lines   []string
	dropped int
	closed  bool
}

func (c *collector) add(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
	case len(c.lines) >= maxLogLines:
		c.dropped++
	default:
		c.lines = append(c.lines, line)
	}
}

// close returns the lines and ignores later ones.
func (c *collector) close() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.dropped > 0 {
		c.lines = append(c.lines, fmt.Sprintf("azfunc: %d more log lines dropped", c.dropped))
	}
	return c.lines
}

type handler struct {
	fn  InvokeFunc
	log *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "invocations use POST")
		return
	}
	log := h.log.With(slog.String("path", r.URL.Path))
	if id := invocationID(r); id != "" {
		log = log.With(slog.String("invocation_id", id))
	}
	col := &collector{}
	ctx := context.WithValue(r.Context(), collectorKey{}, col)

	var resp InvokeResponse
	req, err := DecodeInvokeRequest(r.Body)
	if err != nil {
		err = fmt.Errorf("invocation rejected: %w", err)
	} else {
		start := time.Now()
		resp, err = h.call(ctx, log, req)
		if err != nil {
			err = fmt.Errorf("invocation failed: %w", err)
		} else {
			log.DebugContext(ctx, "azfunc: invocation done", slog.Duration("elapsed", time.Since(start)))
		}
	}
	resp.Logs = append(col.close(), resp.Logs...)
	if err != nil {
		log.ErrorContext(ctx, "azfunc: invocation failed", slog.Any("err", err))
		resp.Logs = append(resp.Logs, err.Error())
	}
	if err := WriteResponse(w, resp); err != nil {
		log.ErrorContext(ctx, "azfunc: response not written in full", slog.Any("err", err))
	}
}

// errPanic is the error of an invocation whose function panicked.
var errPanic = errors.New("azfunc: function panicked")

// call runs fn, turning a panic into an error logged with its stack.
func (h *handler) call(ctx context.Context, log *slog.Logger, req *InvokeRequest) (resp InvokeResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			log.ErrorContext(ctx, "azfunc: function panicked",
				slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(debug.Stack())))
			resp, err = InvokeResponse{}, errPanic
		}
	}()
	return h.fn(ctx, req)
}

// invocationID returns the host's invocation id header if it looks like
// one (a GUID), so that nothing else from the headers reaches the logs.
func invocationID(r *http.Request) string {
	id := r.Header.Get("X-Azure-Functions-InvocationId")
	if len(id) == 0 || len(id) > 64 {
		return ""
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '-') {
			return ""
		}
	}
	return id
}
