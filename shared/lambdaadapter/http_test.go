package lambdaadapter_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/lambdaadapter"
)

// coreRequest is what a handler sees of a request: the golden form of a
// mapped sample event.
type coreRequest struct {
	Method        string              `json:"method"`
	RequestURI    string              `json:"requestURI"`
	Path          string              `json:"path"`
	Query         string              `json:"query"`
	Proto         string              `json:"proto"`
	Host          string              `json:"host"`
	RemoteAddr    string              `json:"remoteAddr"`
	Header        map[string][]string `json:"header"`
	Cookies       []string            `json:"cookies"`
	ContentLength int64               `json:"contentLength"`
	Body          string              `json:"body"`
}

// recorder records the request it serves and answers with respond.
type recorder struct {
	got     coreRequest
	body    []byte
	respond func(w http.ResponseWriter, r *http.Request)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.body, _ = io.ReadAll(r.Body)
	var cookies []string
	for _, c := range r.Cookies() {
		cookies = append(cookies, c.String())
	}
	rec.got = coreRequest{Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.Path, Query: r.URL.RawQuery, Proto: r.Proto,
		Host: r.Host, RemoteAddr: r.RemoteAddr, Header: r.Header, Cookies: cookies, ContentLength: r.ContentLength, Body: string(rec.body)}
	if r.Context().Err() != nil {
		panic("the request lacks the invocation's context")
	}
	if rec.respond != nil {
		rec.respond(w, r)
	}
}

func TestSampleRequests(t *testing.T) {
	tests := []struct{ sample, golden string }{
		{"httpapi-proxy-v2.json", "request-httpapi-proxy-v2.json"},
		{"httpapi-proxy-v2-no-authorizer.json", "request-httpapi-proxy-v2-no-authorizer.json"},
		{"function-url-request.json", "request-function-url.json"},
	}
	for _, tt := range tests {
		t.Run(tt.sample, func(t *testing.T) {
			rec := &recorder{}
			var status int
			if strings.HasPrefix(tt.sample, "function-url") {
				res, err := lambdaadapter.FunctionURLHandler(rec)(context.Background(), load[events.LambdaFunctionURLRequest](t, tt.sample))
				if err != nil {
					t.Fatal(err)
				}
				status = res.StatusCode
			} else {
				res, err := lambdaadapter.HTTPHandler(rec)(context.Background(), load[events.APIGatewayV2HTTPRequest](t, tt.sample))
				if err != nil {
					t.Fatal(err)
				}
				status = res.StatusCode
			}
			if status != 200 {
				t.Errorf("status %d; want 200 (nothing written)", status)
			}
			golden(t, tt.golden, rec.got)
		})
	}
}

// TestSamplePaths checks the samples' details that the golden requests
// hold, so that a careless -update cannot lose them.
func TestSamplePaths(t *testing.T) {
	rec := &recorder{}
	ctx := context.Background()
	ev := load[events.APIGatewayV2HTTPRequest](t, "httpapi-proxy-v2.json")
	lambdaadapter.HTTPHandler(rec)(ctx, ev)
	g := rec.got
	if g.Method != "POST" || g.Path != "/api/my/path" || g.Query != ev.RawQueryString || g.Body != "Hello from Lambda" ||
		g.ContentLength != int64(len("Hello from Lambda")) || g.Host != "id.execute-api.us-east-1.amazonaws.com" {
		t.Errorf("mapped %+v", g)
	}
	// A header API Gateway joined with commas stays one value.
	if v := g.Header["Header2"]; !slices.Equal(v, []string{"value1,value2"}) {
		t.Errorf("Header2 = %q; want the one value API Gateway gave", v)
	}
	if v := g.Header["Cookie"]; !slices.Equal(v, []string{"cookie1; cookie2"}) {
		t.Errorf("Cookie = %q", v)
	}

	lambdaadapter.HTTPHandler(rec)(ctx, load[events.APIGatewayV2HTTPRequest](t, "httpapi-proxy-v2-no-authorizer.json"))
	g = rec.got
	if g.Path != "/api/" || g.Host != "aaaaaaaaaa.execute-api.us-west-2.amazonaws.com" || g.RemoteAddr != "1.2.3.4:0" ||
		g.Header["Content-Length"] != nil || g.Header["Host"] != nil || g.Header["X-Forwarded-For"][0] != "1.2.3.4" {
		t.Errorf("mapped %+v", g)
	}
}

func TestPathMapping(t *testing.T) {
	tests := []struct {
		name, stage, rawPath, query string
		wantURI                     string
	}{
		{"service route", "$default", "/services/iris/keys", "", "/api/services/iris/keys"},
		{"already under /api", "$default", "/api/services/iris/keys", "", "/api/services/iris/keys"},
		{"root", "$default", "/", "", "/api/"},
		{"empty", "$default", "", "", "/api/"},
		{"named stage", "prod", "/prod/services/iris/keys", "", "/api/services/iris/keys"},
		{"named stage and /api", "prod", "/prod/api/.well-known/jwks.json", "", "/api/.well-known/jwks.json"},
		{"stage-like prefix kept", "prod", "/production/x", "", "/api/production/x"},
		{"stage alone", "prod", "/prod", "", "/api/"},
		{"timer endpoint stays out of reach", "$default", "/rotatekeys", "", "/api/rotatekeys"},
		{"api-like prefix", "$default", "/apis/x", "", "/api/apis/x"},
		{"query", "$default", "/services/iris/validate", "a=1&a=2&b=%20", "/api/services/iris/validate?a=1&a=2&b=%20"},
		{"escaped path", "$default", "/services/iris/validate/a%20b", "", "/api/services/iris/validate/a%20b"},
		{"double slash is a path", "$default", "//evil.example/x", "", "/api//evil.example/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			ev := events.APIGatewayV2HTTPRequest{RawPath: tt.rawPath, RawQueryString: tt.query}
			ev.RequestContext.Stage = tt.stage
			ev.RequestContext.HTTP.Method = "GET"
			lambdaadapter.HTTPHandler(rec)(context.Background(), ev)
			if rec.got.RequestURI != tt.wantURI {
				t.Errorf("RequestURI = %q; want %q", rec.got.RequestURI, tt.wantURI)
			}
			if rec.got.Host != "" {
				t.Errorf("Host = %q; want none (no header, no domain)", rec.got.Host)
			}
		})
	}
}

func TestBase64RoundTrip(t *testing.T) {
	payload := []byte{0, 1, 2, 0xff, 0xfe, 'a', '\n', 0x80}
	echo := &recorder{respond: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		b, _ := io.ReadAll(r.Body) // already read by the recorder: empty
		w.Write(append(b, payload...))
	}}
	ev := events.LambdaFunctionURLRequest{RawPath: "/services/iris/score", Body: base64.StdEncoding.EncodeToString(payload), IsBase64Encoded: true,
		Headers: map[string]string{"content-type": "application/octet-stream"}}
	ev.RequestContext.HTTP.Method = "POST"
	res, _ := lambdaadapter.FunctionURLHandler(echo)(context.Background(), ev)
	if !bytes.Equal(echo.body, payload) || echo.got.ContentLength != int64(len(payload)) {
		t.Errorf("handler read %x (length %d); want %x", echo.body, echo.got.ContentLength, payload)
	}
	got, err := base64.StdEncoding.DecodeString(res.Body)
	if !res.IsBase64Encoded || err != nil || !bytes.Equal(got, payload) {
		t.Errorf("response body %q (base64 %t); want %x base64-encoded", res.Body, res.IsBase64Encoded, payload)
	}

	bad := ev
	bad.Body = "not base64!"
	res, _ = lambdaadapter.FunctionURLHandler(echo)(context.Background(), bad)
	if res.StatusCode != 400 || !strings.Contains(res.Body, `"BadRequest"`) || res.IsBase64Encoded {
		t.Errorf("invalid base64 = %d %s; want 400 with a JSON error", res.StatusCode, res.Body)
	}
}

func TestResponseBodies(t *testing.T) {
	tests := []struct {
		name        string
		contentType string // "-": none set
		body        []byte
		wantBase64  bool
		wantType    string
	}{
		{"json", "application/json; charset=utf-8", []byte(`{"a":"é"}`), false, "application/json; charset=utf-8"},
		{"jwk-set", "application/jwk-set+json", []byte(`{"keys":[]}`), false, "application/jwk-set+json"},
		{"text", "text/plain", []byte("hello"), false, "text/plain"},
		{"octet-stream that is UTF-8", "application/octet-stream", []byte("hello"), true, "application/octet-stream"},
		{"image", "image/png", []byte("\x89PNG\r\n\x1a\n"), true, "image/png"},
		{"json that is not UTF-8", "application/json", []byte{'"', 0xff, '"'}, true, "application/json"},
		{"sniffed binary", "-", []byte{0, 1, 2, 0xff}, true, "application/octet-stream"},
		{"sniffed text", "-", []byte("plain words"), false, "text/plain; charset=utf-8"},
		{"empty", "-", nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType != "-" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.Write(tt.body)
			})
			ev := events.APIGatewayV2HTTPRequest{RawPath: "/x"}
			res, _ := lambdaadapter.HTTPHandler(h)(context.Background(), ev)
			if res.IsBase64Encoded != tt.wantBase64 || res.Headers["Content-Type"] != tt.wantType || res.StatusCode != 200 {
				t.Fatalf("got %d base64 %t type %q; want base64 %t type %q", res.StatusCode, res.IsBase64Encoded, res.Headers["Content-Type"], tt.wantBase64, tt.wantType)
			}
			got := []byte(res.Body)
			if res.IsBase64Encoded {
				got, _ = base64.StdEncoding.DecodeString(res.Body)
			}
			if !bytes.Equal(got, tt.body) {
				t.Errorf("body %q; want %q", got, tt.body)
			}
		})
	}
}

func TestResponseHeaders(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "a=1; Path=/; HttpOnly")
		w.Header().Add("Set-Cookie", "b=2; Max-Age=60")
		w.Header().Add("Vary", "Accept")
		w.Header().Add("Vary", "Origin")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Header().Set("X-Too-Late", "1") // after WriteHeader: not sent, as with net/http
		w.Write([]byte(`{}`))
	})
	res, _ := lambdaadapter.HTTPHandler(h)(context.Background(), events.APIGatewayV2HTTPRequest{RawPath: "/x"})
	if res.StatusCode != 201 {
		t.Errorf("status %d; want 201", res.StatusCode)
	}
	if !slices.Equal(res.Cookies, []string{"a=1; Path=/; HttpOnly", "b=2; Max-Age=60"}) {
		t.Errorf("Cookies = %q", res.Cookies)
	}
	if _, ok := res.Headers["Set-Cookie"]; ok {
		t.Errorf("Set-Cookie in Headers: %q", res.Headers)
	}
	if res.Headers["Vary"] != "Accept, Origin" || res.Headers["X-Too-Late"] != "" {
		t.Errorf("Headers = %q", res.Headers)
	}
	golden(t, "response-httpapi.json", res)
}

func TestResponseStatus(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		h        http.HandlerFunc
		want     int
		wantBody string
	}{
		{"nothing written", "GET", func(w http.ResponseWriter, r *http.Request) {}, 200, ""},
		{"no content", "DELETE", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204); w.Write([]byte("x")) }, 204, ""},
		{"informational first", "GET", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(103); w.WriteHeader(202) }, 202, ""},
		{"second WriteHeader ignored", "GET", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404); w.WriteHeader(200) }, 404, ""},
		{"flush commits", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			w.WriteHeader(500)
			w.Write([]byte("a"))
		}, 200, "a"},
		{"head drops the body", "HEAD", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("body")) }, 200, ""},
		{"aborted upstream", "POST", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.Write([]byte("part"))
			panic(http.ErrAbortHandler)
		}, 502, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := events.LambdaFunctionURLRequest{RawPath: "/x"}
			ev.RequestContext.HTTP.Method = tt.method
			res, err := lambdaadapter.FunctionURLHandler(tt.h)(context.Background(), ev)
			if err != nil || res.StatusCode != tt.want {
				t.Fatalf("got %d, %v; want %d", res.StatusCode, err, tt.want)
			}
			if tt.want == 502 {
				if !strings.Contains(res.Body, `"BadGateway"`) || strings.Contains(res.Body, "part") {
					t.Errorf("body %q; want only the JSON error", res.Body)
				}
				return
			}
			if res.Body != tt.wantBody {
				t.Errorf("body %q; want %q", res.Body, tt.wantBody)
			}
		})
	}
}

// TestFunctionURLResponseSample serves the response of AWS's sample from
// a handler and compares the JSON the adapter answers with the sample.
func TestFunctionURLResponseSample(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("My-Custom-Header", "Custom Value")
		w.Header().Add("Set-Cookie", "Cookie_1=Value1; Expires=21 Oct 2021 07:48 GMT")
		w.Header().Add("Set-Cookie", "Cookie_2=Value2; Max-Age=78000")
		w.WriteHeader(201)
		w.Write([]byte(`{ "message": "Hello, world!" }`))
	})
	ev := load[events.LambdaFunctionURLRequest](t, "function-url-request.json")
	res, err := lambdaadapter.FunctionURLHandler(h)(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(res)
	want, err := os.ReadFile(filepath.Join("testdata", "function-url-response.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, got, want) {
		t.Errorf("response\n%s\nwant the sample\n%s", got, want)
	}
}

// TestApp serves the real app's functions through both adapters.
func TestApp(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	url := lambdaadapter.FunctionURLHandler(e.handler)
	api := lambdaadapter.HTTPHandler(e.handler)
	fu := func(method, path, cred string) events.LambdaFunctionURLResponse {
		ev := events.LambdaFunctionURLRequest{RawPath: path, Headers: map[string]string{"host": "abc.lambda-url.eu-west-1.on.aws"}}
		if cred != "" {
			ev.Headers["authorization"] = bearerOf(cred)
		}
		ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.SourceIP = method, "203.0.113.9"
		res, err := url(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// get_keys, as the administrator.
	res := fu("GET", "/services/iris/keys", e.admin)
	var keys keyring.Keys
	if res.StatusCode != 200 || res.IsBase64Encoded || json.Unmarshal([]byte(res.Body), &keys) != nil ||
		keys.PrimaryKey != e.iris.PrimaryKey || keys.SecondaryKey != e.iris.SecondaryKey {
		t.Fatalf("get_keys = %d %s", res.StatusCode, res.Body)
	}
	if res.Headers["Cache-Control"] != "no-store" {
		t.Errorf("get_keys headers %q; want Cache-Control no-store", res.Headers)
	}
	if res = fu("GET", "/services/iris/keys", e.iris.PrimaryKey); res.StatusCode != 401 && res.StatusCode != 403 {
		t.Errorf("get_keys with a service key = %d; want refused", res.StatusCode)
	}

	// validate: 200 with the identity headers, or 401 with a challenge.
	res = fu("GET", "/services/iris/validate/some/path", e.iris.PrimaryKey)
	if res.StatusCode != 200 || res.Headers["X-Modelauth-Service"] != "iris" || res.Headers["X-Modelauth-Key-Type"] != "Primary" {
		t.Errorf("validate = %d %q %s", res.StatusCode, res.Headers, res.Body)
	}
	res = fu("GET", "/services/iris/validate", e.other.PrimaryKey)
	if res.StatusCode != 401 || !strings.HasPrefix(res.Headers["Www-Authenticate"], "Bearer") {
		t.Errorf("validate with other's key = %d %q", res.StatusCode, res.Headers)
	}

	// jwks, through an HTTP API stage.
	ev := events.APIGatewayV2HTTPRequest{RawPath: "/prod/.well-known/jwks.json"}
	ev.RequestContext.Stage, ev.RequestContext.HTTP.Method = "prod", "GET"
	r2, _ := api(ctx, ev)
	if r2.StatusCode != 200 || !strings.Contains(r2.Body, `"keys"`) || r2.IsBase64Encoded {
		t.Errorf("jwks = %d %s", r2.StatusCode, r2.Body)
	}

	// The timer functions' envelope endpoints are not reachable.
	if res = fu("POST", "/rotatekeys", e.admin); res.StatusCode != 404 {
		t.Errorf("POST /rotatekeys = %d; want 404", res.StatusCode)
	}
	if res = fu("GET", "/", ""); res.StatusCode != 404 {
		t.Errorf("GET / = %d; want 404", res.StatusCode)
	}
}
