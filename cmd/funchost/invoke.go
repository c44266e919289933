package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"
)

// hostVersion is what the local host reports as the Functions host
// version (X-Azure-Functions-HostVersion, User-Agent).
const hostVersion = "4.1037.0.0"

// Header names the host adds to requests to the handler.
const (
	headerInvocationID = "X-Azure-Functions-InvocationId"
	headerHostVersion  = "X-Azure-Functions-HostVersion"
	userAgentProduct   = "Azure-Functions-Host/" + hostVersion
)

// errFunctionTimeout is the cause of an invocation's context when it
// exceeds host.json functionTimeout.
var errFunctionTimeout = errors.New("function timeout exceeded")

// handlerEndpoint is the running custom handler, as invocations see it.
type handlerEndpoint interface {
	// Endpoint returns the handler's base URL, waiting while it starts.
	Endpoint(ctx context.Context) (string, error)
	// Restart replaces the handler serving url (after a timeout).
	Restart(url, reason string)
}

var _ handlerEndpoint = (*supervisor)(nil)

// invoker sends invocations to the handler. It is safe for concurrent use.
type invoker struct {
	handler         handlerEndpoint
	client          *http.Client // follows redirects, as the host's envelope client
	forwardClient   *http.Client // never follows redirects
	log             *slog.Logger
	now             func() time.Time
	newID           func() string
	functionTimeout time.Duration // 0: none
	startWait       time.Duration // longest wait for a (re)starting handler
}

// newHandlerTransport returns the transport to the custom handler. Its
// connections relay a response the handler sends before it has read the
// whole request body (see earlyResponseConn).
func newHandlerTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         dialHandler,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // relay bodies and Accept-Encoding untouched
	}
}

// envelope is the invocation request body (functions-protocol.md §4.2).
type envelope struct {
	Data     map[string]any `json:"Data"`
	Metadata map[string]any `json:"Metadata"`
}

type sysData struct {
	MethodName string `json:"MethodName"`
	UtcNow     string `json:"UtcNow"`
	RandGuid   string `json:"RandGuid"`
}

// invocationResult is the handler's response body (§6).
type invocationResult struct {
	Outputs     json.RawMessage   `json:"Outputs"`
	Logs        []json.RawMessage `json:"Logs"`
	ReturnValue json.RawMessage   `json:"ReturnValue"`
}

// hostValue applies the host's rule for a top-level Data or Metadata value
// (§4.2): a JSON object stays an object; anything else (string, number,
// array, null) becomes a string holding its JSON text.
func hostValue(raw json.RawMessage) any {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		t = []byte("null")
	}
	if t[0] == '{' {
		return json.RawMessage(t)
	}
	return string(t)
}

// timeoutContext applies functionTimeout to ctx.
func (iv *invoker) timeoutContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if iv.functionTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, iv.functionTimeout, errFunctionTimeout)
}

// endpoint waits for the handler, at most startWait.
func (iv *invoker) endpoint(ctx context.Context) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, iv.startWait)
	defer cancel()
	return iv.handler.Endpoint(wctx)
}

// invoke runs a non-HTTP function once: it POSTs the envelope built from
// data (Data values by binding name) and metadata (without "sys") to
// /<FunctionName> and evaluates the response. It returns nil when the
// invocation succeeded.
func (iv *invoker) invoke(ctx context.Context, fn *function, reason string, data, metadata map[string]any) error {
	id := iv.newID()
	start := iv.now()
	log := iv.log.With("function", fn.Name, "invocation", id)
	log.Info(fmt.Sprintf("Executing 'Functions.%s' (Reason='%s', Id=%s)", fn.Name, reason, id))
	err := iv.send(ctx, fn, id, data, metadata, log)
	status := "Succeeded"
	if err != nil {
		status = "Failed"
		log.Error(fmt.Sprintf("Executed 'Functions.%s' (Failed, Id=%s)", fn.Name, id), "error", err)
	}
	log.Info(fmt.Sprintf("Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)", fn.Name, status, id, iv.now().Sub(start).Milliseconds()))
	return err
}

func (iv *invoker) send(ctx context.Context, fn *function, id string, data, metadata map[string]any, log *slog.Logger) error {
	ctx, cancel := iv.timeoutContext(ctx)
	defer cancel()
	base, err := iv.endpoint(ctx)
	if err != nil {
		return err
	}
	md := map[string]any{}
	for k, v := range metadata {
		md[k] = v
	}
	md["sys"] = sysData{MethodName: fn.Name, UtcNow: newtonsoftUTC(iv.now()), RandGuid: iv.newID()}
	body, err := json.Marshal(envelope{Data: data, Metadata: md})
	if err != nil {
		return fmt.Errorf("encoding the invocation: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/"+fn.Name, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return err
	}
	req.ContentLength = -1 // the host streams an ObjectContent: chunked
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	setRawHeader(req.Header, headerInvocationID, id)
	setRawHeader(req.Header, headerHostVersion, hostVersion)
	req.Header.Set("User-Agent", userAgentProduct)
	resp, err := iv.client.Do(req)
	if err != nil {
		if errors.Is(context.Cause(ctx), errFunctionTimeout) {
			iv.timedOut(fn, id, base, log)
			return fmt.Errorf("timeout value of %v exceeded by function 'Functions.%s' (Id: '%s')", iv.functionTimeout, fn.Name, id)
		}
		return fmt.Errorf("calling the custom handler: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the custom handler's response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the custom handler answered %s; the host ignores Outputs and Logs of a non-2xx response", resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" && mt != "text/json" {
		return fmt.Errorf("the custom handler answered with Content-Type %q; the host needs application/json", resp.Header.Get("Content-Type"))
	}
	var res invocationResult
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &res); err != nil {
			return fmt.Errorf("the custom handler's response is not {\"Outputs\",\"Logs\",\"ReturnValue\"}: %w", err)
		}
	}
	for _, l := range res.Logs {
		var s string
		if json.Unmarshal(l, &s) != nil {
			s = string(l)
		}
		log.Info(s, "source", "Logs")
	}
	return nil
}

// timedOut logs a function timeout and restarts the handler, as the host
// does (there is one handler process, so every in-flight invocation fails).
func (iv *invoker) timedOut(fn *function, id, base string, log *slog.Logger) {
	log.Error(fmt.Sprintf("Timeout value of %v exceeded by function 'Functions.%s' (Id: '%s'). Initiating cancellation.", iv.functionTimeout, fn.Name, id))
	iv.handler.Restart(base, fmt.Sprintf("function %s timed out", fn.Name))
}

// setRawHeader sets key with the host's spelling on the wire (Go would
// write X-Azure-Functions-Invocationid), replacing any other spelling.
func setRawHeader(h http.Header, key, value string) {
	for k := range h {
		if strings.EqualFold(k, key) {
			delete(h, k)
		}
	}
	h[key] = []string{value}
}
