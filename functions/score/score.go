// Package score is the score function: it authenticates a request for a
// service as validate does, then proxies it to the service's scoringUri
// plus the route's tail.
//
// The upstream never sees the caller's credentials: Authorization,
// x-functions-key and every incoming X-ModelAuth-* header are removed, and
// X-ModelAuth-* headers describing the authenticated caller are set. The
// proxy follows no redirects (an upstream redirect is answered 502, so no
// internal address leaks), caps the request and response bodies, and bounds
// the whole exchange in time. An upstream failure is answered 502 (504 on
// timeout) with a fixed message; the cause goes only to the log.
package score

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/authn"
)

// Limits bound the proxy: the app's SCORE_TIMEOUT and SCORE_MAX_BODY_BYTES.
// Both are required, and positive.
type Limits struct {
	Timeout      time.Duration // the whole upstream exchange
	MaxBodyBytes int64         // the request's body, and the response's
}

// Options tune the proxy; nil means none.
type Options struct {
	// Transport sends upstream requests; nil: a dedicated http.Transport.
	Transport http.RoundTripper
}

// Function serves the score function.
type Function struct {
	services *authn.Services
	log      *slog.Logger
	opts     Options
	limits   Limits
	proxy    *httputil.ReverseProxy
}

var _ http.Handler = (*Function)(nil)

type ctxKey struct{}

type target struct {
	url *url.URL
	id  authn.Identity
}

// New returns the score function within limits, which must be positive
// (it panics otherwise: the settings were checked at start). log may be
// nil.
func New(services *authn.Services, limits Limits, log *slog.Logger, opts *Options) *Function {
	if limits.Timeout <= 0 || limits.MaxBodyBytes <= 0 {
		panic(fmt.Sprintf("score: limits %+v are not positive", limits))
	}
	f := &Function{services: services, log: log, limits: limits}
	if log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if opts != nil {
		f.opts = *opts
	}
	if f.opts.Transport == nil {
		f.opts.Transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: f.limits.Timeout,
			ForceAttemptHTTP2:     true,
		}
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		Transport:      informational{f.opts.Transport},
		ModifyResponse: f.modifyResponse,
		ErrorHandler:   f.upstreamError,
		ErrorLog:       slog.NewLogLogger(f.log.Handler(), slog.LevelWarn),
	}
	return f
}

// ServeHTTP scores for the service in the route's {service}.
func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.Serve(w, r, r.PathValue("service"))
}

// Serve authenticates r for service and proxies it to the service's
// scoringUri plus the tail of r's path after /api/services/<service>/score
// (see [Tail]).
func (f *Function) Serve(w http.ResponseWriter, r *http.Request, service string) {
	id, fail := f.services.Authenticate(r.Context(), service, authn.FromHeader(r.Header["Authorization"]))
	if fail != nil {
		fail.Write(w, f.log)
		return
	}
	svc, _ := f.services.Config.Service(service)
	if svc.ScoringURI == nil {
		apierror.Write(w, f.log, apierror.New(apierror.NotFound, "service "+svc.Name+" has no scoringUri"))
		return
	}
	if r.ContentLength > f.limits.MaxBodyBytes {
		apierror.Write(w, f.log, apierror.New(apierror.TooLarge, fmt.Sprintf("the body is larger than %d bytes", f.limits.MaxBodyBytes)))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, f.limits.MaxBodyBytes)
	ctx, cancel := context.WithTimeout(r.Context(), f.limits.Timeout)
	defer cancel()
	rest, err := Tail(r.URL.EscapedPath())
	if err != nil {
		apierror.Write(w, f.log, apierror.Wrap(apierror.BadRequest, "the path after score/ may not hold dot segments, backslashes or encoded slashes, backslashes or percent signs", err))
		return
	}
	t := target{url: joinTail(svc.ScoringURI, rest), id: id}
	f.proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, ctxKey{}, t)))
}

// joinTail appends the route's tail, decoded, to the scoring URI's path.
func joinTail(base *url.URL, rest string) *url.URL {
	u := *base
	if rest != "" {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + rest
		u.RawPath = ""
	}
	return &u
}

func (f *Function) rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(ctxKey{}).(target)
	out := pr.Out
	out.URL.Scheme = t.url.Scheme
	out.URL.Host = t.url.Host
	out.URL.Path = t.url.Path
	out.URL.RawPath = ""
	out.URL.RawQuery = withoutCode(pr.In.URL)
	out.Host = t.url.Host
	stripHeaders(out.Header, "authorization", "x-functions-key")
	authn.SetHeaders(out.Header, t.id)
	pr.SetXForwarded()
}

// withoutCode returns u's query without "code", the Functions key's query
// form, which must not reach the upstream any more than x-functions-key.
func withoutCode(u *url.URL) string {
	if !strings.Contains(u.RawQuery, "code") {
		return u.RawQuery
	}
	q := u.Query()
	q.Del("code")
	return q.Encode()
}

var (
	errRedirect = errors.New("upstream answered with a redirect")
	errTooLong  = errors.New("upstream response body exceeds the cap")
)

// stripHeaders deletes from h every X-ModelAuth-* header and those named
// in also (lower case). Servers behind CGI or WSGI read '_' as '-', and
// some gateways do too: both spellings go.
func stripHeaders(h http.Header, also ...string) {
	for name := range h {
		n := strings.ReplaceAll(strings.ToLower(name), "_", "-")
		if strings.HasPrefix(n, authn.HeaderPrefix) || slices.Contains(also, n) {
			delete(h, name)
		}
	}
}

// modifyResponse refuses redirects and bodies over the cap, and strips the
// upstream's X-ModelAuth-* headers and trailers: identity headers come from
// modelauth alone, and a gateway in front of score may trust them.
func (f *Function) modifyResponse(resp *http.Response) error {
	stripHeaders(resp.Header)
	stripHeaders(resp.Trailer)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.StatusCode != http.StatusNotModified {
		return errRedirect
	}
	if resp.ContentLength > f.limits.MaxBodyBytes {
		return fmt.Errorf("upstream body of %d bytes exceeds %d", resp.ContentLength, f.limits.MaxBodyBytes)
	}
	resp.Body = &cappedBody{rc: resp.Body, left: f.limits.MaxBodyBytes, trailer: &resp.Trailer}
	return nil
}

func (f *Function) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	code, msg := apierror.BadGateway, "the scoring service failed"
	switch {
	case errors.As(err, &tooBig):
		code, msg = apierror.TooLarge, fmt.Sprintf("the body is larger than %d bytes", f.limits.MaxBodyBytes)
	case errors.Is(err, context.DeadlineExceeded):
		code, msg = apierror.GatewayTimeout, "the scoring service did not answer in time"
	case errors.Is(err, context.Canceled):
		return // the caller went away
	}
	t, _ := r.Context().Value(ctxKey{}).(target)
	f.log.Warn("score_upstream_failed", "service", t.id.Service, "status", apierror.Status(code), "error", err.Error())
	apierror.Write(w, nil, apierror.New(code, msg))
}

// cappedBody fails a response body that grows past its cap, which makes the
// proxy abort the response rather than pass on an unbounded body. At the
// end of the body, when the transport has filled in the trailers and
// before the proxy copies them, it strips their X-ModelAuth-* names.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
	// trailer is the response's Trailer field: the transport sets a new
	// map there for trailers the upstream did not announce.
	trailer *http.Header
}

func (c *cappedBody) Read(p []byte) (int, error) {
	n, err := c.read(p)
	if err == io.EOF {
		stripHeaders(*c.trailer)
	}
	return n, err
}

func (c *cappedBody) read(p []byte) (int, error) {
	if c.left <= 0 {
		// At the cap: only the end of the body may follow.
		var probe [1]byte
		n, err := c.rc.Read(probe[:])
		if n > 0 {
			return 0, errTooLong
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cappedBody) Close() error { return c.rc.Close() }

// informational strips X-ModelAuth-* headers from the upstream's 1xx
// responses (103 Early Hints), which the proxy relays as they come, before
// modifyResponse sees the final one. The hooks of the trace added here run
// before the proxy's own, on the same header map.
type informational struct{ rt http.RoundTripper }

func (t informational) RoundTrip(r *http.Request) (*http.Response, error) {
	trace := &httptrace.ClientTrace{Got1xxResponse: func(_ int, h textproto.MIMEHeader) error {
		stripHeaders(http.Header(h))
		return nil
	}}
	return t.rt.RoundTrip(r.WithContext(httptrace.WithClientTrace(r.Context(), trace)))
}
