package lambdaadapter

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/modelauth/modelauth/shared/apierror"
)

// RoutePrefix is the path prefix of the app's HTTP functions
// (host.json's routePrefix on Azure), added to request paths that lack it.
const RoutePrefix = "/api"

// HTTPHandler returns the handler of an API Gateway HTTP API Lambda proxy
// integration with payload format 2.0, served by h. See [FunctionURLHandler]
// for the mapping; an HTTP API adds a stage: for a stage other than
// $default, the /<stage> prefix that rawPath then carries is removed.
func HTTPHandler(h http.Handler) func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		res := serve(ctx, h, httpEvent{
			method: req.RequestContext.HTTP.Method, rawPath: req.RawPath, rawQuery: req.RawQueryString,
			headers: req.Headers, cookies: req.Cookies, body: req.Body, base64: req.IsBase64Encoded,
			stage: req.RequestContext.Stage, domainName: req.RequestContext.DomainName,
			sourceIP: req.RequestContext.HTTP.SourceIP, protocol: req.RequestContext.HTTP.Protocol,
		})
		return events.APIGatewayV2HTTPResponse{StatusCode: res.status, Headers: res.headers, Cookies: res.cookies,
			Body: res.body, IsBase64Encoded: res.base64}, nil
	}
}

// FunctionURLHandler returns the handler of a Lambda function URL in
// BUFFERED invoke mode, served by h.
//
// The request h sees has the event's method, its rawPath under
// [RoutePrefix] (/services/iris/keys becomes /api/services/iris/keys; a
// path already under /api stays as it is, so that nothing outside /api,
// such as the timer functions' envelope endpoints, can be reached), its
// rawQueryString, its headers with one value each (API Gateway and Lambda
// join repeated headers with commas, and that joined value is kept), its
// cookies as one Cookie header, its body (base64-decoded when
// isBase64Encoded), Host from the host header or the domain name,
// RemoteAddr from the source IP, and the Lambda context.
//
// The response carries h's status (200 if none was written), each header
// as one value (repeated values joined with ", "), each Set-Cookie in
// Cookies, and the body: as text, or base64-encoded with IsBase64Encoded
// when it is not UTF-8 or its Content-Type is not textual. A missing
// Content-Type is sniffed, as net/http does. A request that cannot be
// mapped is answered 400 with the app's JSON error; a handler aborted by
// [http.ErrAbortHandler] (an upstream failing mid-body) is answered 502.
func FunctionURLHandler(h http.Handler) func(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	return func(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
		res := serve(ctx, h, httpEvent{
			method: req.RequestContext.HTTP.Method, rawPath: req.RawPath, rawQuery: req.RawQueryString,
			headers: req.Headers, cookies: req.Cookies, body: req.Body, base64: req.IsBase64Encoded,
			domainName: req.RequestContext.DomainName,
			sourceIP:   req.RequestContext.HTTP.SourceIP, protocol: req.RequestContext.HTTP.Protocol,
		})
		return events.LambdaFunctionURLResponse{StatusCode: res.status, Headers: res.headers, Cookies: res.cookies,
			Body: res.body, IsBase64Encoded: res.base64}, nil
	}
}

// httpEvent is what the payload 2.0 events share.
type httpEvent struct {
	method, rawPath, rawQuery string
	headers                   map[string]string
	cookies                   []string
	body                      string
	base64                    bool
	stage                     string // "" for function URLs
	domainName                string
	sourceIP                  string
	protocol                  string
}

// httpResult is what the payload 2.0 responses share.
type httpResult struct {
	status  int
	headers map[string]string
	cookies []string
	body    string
	base64  bool
}

// serve maps ev to a request, serves it with h and maps the response.
func serve(ctx context.Context, h http.Handler, ev httpEvent) httpResult {
	w := &responseWriter{header: http.Header{}}
	r, err := newRequest(ctx, ev)
	if err != nil {
		apierror.Write(w, nil, apierror.New(apierror.BadRequest, err.Error()))
	} else {
		serveHTTP(h, w, r)
	}
	return w.result(r != nil && r.Method == http.MethodHead)
}

// serveHTTP runs h, answering 502 when it aborts with
// http.ErrAbortHandler, as ReverseProxy does when an upstream's body
// fails: on a buffered response nothing has reached the client yet.
func serveHTTP(h http.Handler, w *responseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			*w = responseWriter{header: http.Header{}}
			apierror.Write(w, nil, apierror.New(apierror.BadGateway, "the upstream response failed"))
		}
	}()
	h.ServeHTTP(w, r)
}

// newRequest maps ev to the request a server would hand h.
func newRequest(ctx context.Context, ev httpEvent) (*http.Request, error) {
	p := stripStage(ev.rawPath, ev.stage)
	switch {
	case p == "":
		p = "/"
	case p[0] != '/':
		return nil, fmt.Errorf("the request path must start with /")
	}
	if p != RoutePrefix && !strings.HasPrefix(p, RoutePrefix+"/") {
		p = RoutePrefix + p
	}
	uri := p
	if ev.rawQuery != "" {
		uri += "?" + ev.rawQuery
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, fmt.Errorf("the request path or query is not valid")
	}
	method := ev.method
	if method == "" {
		method = http.MethodGet
	}
	r, err := http.NewRequestWithContext(ctx, method, "/", nil)
	if err != nil {
		return nil, fmt.Errorf("the request method is not valid")
	}
	r.URL, r.RequestURI = u, uri
	body := []byte(ev.body)
	if ev.base64 {
		if body, err = base64.StdEncoding.DecodeString(ev.body); err != nil {
			return nil, fmt.Errorf("the request body is not valid base64")
		}
	}
	r.ContentLength = int64(len(body))
	r.Body = http.NoBody
	if len(body) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if ev.protocol != "" {
		if major, minor, ok := http.ParseHTTPVersion(ev.protocol); ok {
			r.Proto, r.ProtoMajor, r.ProtoMinor = ev.protocol, major, minor
		}
	}
	r.Host = ev.domainName
	for k, v := range ev.headers {
		switch k = http.CanonicalHeaderKey(k); k {
		case "Host":
			r.Host = v
		case "Content-Length", "Transfer-Encoding": // the body is complete: ContentLength
		default:
			r.Header.Add(k, v)
		}
	}
	if len(ev.cookies) > 0 {
		r.Header["Cookie"] = []string{strings.Join(ev.cookies, "; ")}
	}
	if ev.sourceIP != "" {
		r.RemoteAddr = net.JoinHostPort(ev.sourceIP, "0")
	}
	return r, nil
}

// responseWriter buffers a response, as a Lambda BUFFERED response is.
// Like net/http, it takes the headers as they are at WriteHeader.
type responseWriter struct {
	header http.Header
	sent   http.Header // nil until WriteHeader
	status int
	body   bytes.Buffer
}

var _ http.Flusher = (*responseWriter)(nil)

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.sent != nil || code < 200 && code != http.StatusSwitchingProtocols {
		return // already written, or an informational response
	}
	w.status, w.sent = code, w.header.Clone()
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	return w.body.Write(p)
}

// Flush commits the headers; the body is sent when the handler returns.
func (w *responseWriter) Flush() { w.WriteHeader(http.StatusOK) }

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// result maps the response; head drops the body, as for a HEAD request.
func (w *responseWriter) result(head bool) httpResult {
	w.WriteHeader(http.StatusOK)
	body := w.body.Bytes()
	if head {
		body = nil
	}
	res := httpResult{status: w.status, headers: make(map[string]string, len(w.sent))}
	if _, ok := w.sent["Content-Type"]; !ok && len(w.body.Bytes()) > 0 {
		w.sent["Content-Type"] = []string{http.DetectContentType(w.body.Bytes())}
	}
	for k, vs := range w.sent {
		if k == "Set-Cookie" {
			res.cookies = append(res.cookies, vs...)
			continue
		}
		if len(vs) > 0 {
			res.headers[k] = strings.Join(vs, ", ")
		}
	}
	if isText(w.sent.Get("Content-Type"), body) {
		res.body = string(body)
	} else {
		res.body, res.base64 = base64.StdEncoding.EncodeToString(body), true
	}
	return res
}

// isText reports whether a body can travel as JSON text: UTF-8, with no
// Content-Type or a textual one (text/*, JSON, XML, JavaScript, forms).
func isText(contentType string, body []byte) bool {
	if !utf8.Valid(body) {
		return false
	}
	if contentType == "" || len(body) == 0 {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"), strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	switch mt {
	case "application/json", "application/xml", "application/javascript", "application/x-www-form-urlencoded",
		"application/x-ndjson":
		return true
	}
	return false
}
