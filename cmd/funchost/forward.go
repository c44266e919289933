package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// contentHeaders are .NET content headers. The host copies request headers
// with HttpRequestHeaders.TryAddWithoutValidation, which refuses these, and
// sets only Content-Type and Content-Length, on the body, when there is
// one; so the others never reach the handler.
var contentHeaders = map[string]bool{
	"Allow":               true,
	"Content-Disposition": true,
	"Content-Encoding":    true,
	"Content-Language":    true,
	"Content-Length":      true,
	"Content-Location":    true,
	"Content-Md5":         true,
	"Content-Range":       true,
	"Content-Type":        true,
	"Expires":             true,
	"Last-Modified":       true,
}

// hopHeaders are not relayed from the handler's response.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer"}

// forward sends r to the handler as the host does for an HTTP function
// with enableForwardingHttpRequest (functions-protocol.md §5) and relays
// the response.
func (iv *invoker) forward(w http.ResponseWriter, r *http.Request, fn *function) {
	id := iv.newID()
	start := iv.now()
	log := iv.log.With("function", fn.Name, "invocation", id)
	log.Info(fmt.Sprintf("Executing 'Functions.%s' (Reason='This function was programmatically called via the host APIs.', Id=%s)", fn.Name, id))
	status, err := iv.forwardOnce(w, r, fn, id)
	if err != nil {
		log.Error(fmt.Sprintf("Executed 'Functions.%s' (Failed, Id=%s)", fn.Name, id), "error", err, "status", status)
		return
	}
	log.Info(fmt.Sprintf("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", fn.Name, id, iv.now().Sub(start).Milliseconds()), "status", status)
}

// forwardOnce returns the status sent to the caller and an error if the
// invocation failed.
func (iv *invoker) forwardOnce(w http.ResponseWriter, r *http.Request, fn *function, id string) (int, error) {
	ctx, cancel := iv.timeoutContext(r.Context())
	defer cancel()
	base, err := iv.endpoint(ctx)
	if err != nil {
		http.Error(w, "the custom handler is not available", http.StatusBadGateway)
		return http.StatusBadGateway, err
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, base+r.URL.EscapedPath()+rebuildQuery(r.URL.RawQuery), nil)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return http.StatusBadRequest, err
	}
	out.Host = r.Host
	for k, vs := range r.Header {
		if !contentHeaders[http.CanonicalHeaderKey(k)] {
			out.Header[k] = append([]string(nil), vs...)
		}
	}
	if r.ContentLength > 0 {
		out.Body, out.ContentLength = r.Body, r.ContentLength
		if ct := r.Header.Values("Content-Type"); len(ct) > 0 {
			out.Header["Content-Type"] = append([]string(nil), ct...)
		}
	}
	setRawHeader(out.Header, headerInvocationID, id)
	setRawHeader(out.Header, headerHostVersion, hostVersion)
	ua := userAgentProduct
	if in := strings.Join(r.Header.Values("User-Agent"), " "); in != "" {
		ua = in + " " + ua
	}
	out.Header.Set("User-Agent", ua)

	// A response the handler sends before it has read the whole body
	// (413 over a cap, say) is returned here even if the handler then
	// closed the connection under the upload: the transport's
	// connections hold back a write error until the response is read
	// (earlyResponseConn).
	resp, err := iv.forwardClient.Do(out)
	if err != nil {
		switch {
		case errors.Is(context.Cause(ctx), errFunctionTimeout):
			iv.timedOut(fn, id, base, iv.log.With("function", fn.Name, "invocation", id))
			http.Error(w, "function timed out", http.StatusInternalServerError)
			return http.StatusInternalServerError, errFunctionTimeout
		case r.Context().Err() != nil:
			return 499, fmt.Errorf("the caller went away: %w", err)
		}
		http.Error(w, "the custom handler is not reachable", http.StatusBadGateway)
		return http.StatusBadGateway, fmt.Errorf("calling the custom handler: %w", err)
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = append([]string(nil), vs...)
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	w.WriteHeader(resp.StatusCode)
	if err := copyFlush(w, resp.Body); err != nil {
		if errors.Is(context.Cause(ctx), errFunctionTimeout) {
			iv.timedOut(fn, id, base, iv.log.With("function", fn.Name, "invocation", id))
		}
		return resp.StatusCode, fmt.Errorf("relaying the response body: %w", err)
	}
	return resp.StatusCode, nil
}

// copyFlush copies src to w, flushing after every read so that streamed
// responses stream.
func copyFlush(w http.ResponseWriter, src io.Reader) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			_ = rc.Flush()
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// rebuildQuery rebuilds a raw query string as the host does before
// forwarding (ASP.NET QueryCollection, then QueryHelpers.AddQueryString):
// parameters are split on "&", decoded ("+" is a space), grouped by name
// case-insensitively in order of first appearance with their values
// joined by ",", and re-encoded with .NET's default UrlEncoder. It returns
// "" or a string starting with "?".
func rebuildQuery(raw string) string {
	type param struct {
		name   string
		values []string
	}
	var params []*param
	index := map[string]*param{}
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		name, value = lenientUnescape(name), lenientUnescape(value)
		key := strings.ToLower(name)
		p, ok := index[key]
		if !ok {
			p = &param{name: name}
			index[key] = p
			params = append(params, p)
		}
		p.values = append(p.values, value)
	}
	if len(params) == 0 {
		return ""
	}
	var b strings.Builder
	for i, p := range params {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(dotnetURLEncode(p.name))
		b.WriteByte('=')
		b.WriteString(dotnetURLEncode(strings.Join(p.values, ",")))
	}
	return b.String()
}

// lenientUnescape decodes "+" and valid %XX escapes, leaving invalid ones
// as they are (as Uri.UnescapeDataString does).
func lenientUnescape(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	if !strings.Contains(s, "%") {
		return s
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// dotnetURLEncode encodes s as .NET's UrlEncoder.Default: it keeps ASCII
// letters, digits and - . _ ~ ! $ ( ) * , ; @, and percent-encodes every
// other UTF-8 byte with upper-case hex.
func dotnetURLEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~!$()*,;@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
