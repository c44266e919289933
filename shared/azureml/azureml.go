// Package azureml gets tokens for Azure Machine Learning managed online
// endpoints whose auth mode is aml_token: a [client.TokenSource] over the
// management operation "Online Endpoints - Get Token",
//
//	POST {management}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}/onlineEndpoints/{name}/token?api-version=2024-04-01
//
// authenticated with a Microsoft Entra token for {management}/.default
// from an azcore.TokenCredential (an azidentity credential), and answered
// with {"accessToken","tokenType","expiryTimeUtc","refreshAfterTimeUtc"},
// times in Unix seconds. The caller's identity needs an Azure role on the
// endpoint that allows this operation; without one, ARM answers 403
// AuthorizationFailed.
//
// A [TokenSource] fetches a new token on every call; keep it fresh ahead of
// refreshAfter by wrapping it (the prefetch timer, or client's refreshing
// source), not by calling it per request.
//
// Requests go through azcore's pipeline: its retry policy (429, 5xx and
// transport errors, honouring Retry-After), its bearer-token policy (which
// caches the Entra token until shortly before it expires and refuses to
// send it over anything but https) and its logging, which redacts the
// Authorization header.
//
// # Configuration
//
// The endpoint and the credential are arguments; [Options] tunes the rest:
// the management URL and token audience (public Azure by default, or the
// cloud in ClientOptions.Cloud), the api-version, azcore's client options
// (transport, retries, logging) and the clock.
//
// # Errors
//
// An answer other than 2xx is an *[Error] with the HTTP status and Azure
// Resource Manager's error code and message (AuthorizationFailed,
// ResourceNotFound, ...). A 2xx answer that is not a usable token wraps
// [ErrBadResponse]. Credential and transport failures are returned as
// azidentity and azcore report them, wrapped with the endpoint's name. No
// error contains a token, neither the Entra token nor the endpoint's.
package azureml

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/modelauth/modelauth/shared/client"
)

// Defaults of [Options].
const (
	// DefaultManagementURL is Azure Resource Manager in public Azure.
	DefaultManagementURL = "https://management.azure.com"
	// DefaultAPIVersion is the api-version of the Get Token operation
	// used: the default of the Azure SDKs' machine learning clients.
	DefaultAPIVersion = "2024-04-01"
)

// maxResponse caps every response body read (success and error): a token
// answer is a few kilobytes.
const maxResponse = 1 << 20

// ErrBadResponse: Azure Resource Manager answered 2xx with a body that is
// not a usable token: not JSON, too large, without accessToken or
// expiryTimeUtc, or already expired.
var ErrBadResponse = errors.New("azureml: unexpected response")

// Error is an answer of Azure Resource Manager other than 2xx.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code and Message are ARM's error.code and error.message (Code falls
	// back on the x-ms-error-code header); empty when the body has none.
	Code    string
	Message string
	// CorrelationID is x-ms-correlation-request-id, for Azure support.
	CorrelationID string
}

func (e *Error) Error() string {
	if e.Code == "" && e.Message == "" {
		return fmt.Sprintf("azureml: HTTP %d", e.StatusCode)
	}
	return fmt.Sprintf("azureml: HTTP %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// Options tune a [TokenSource]; nil means the defaults. Every field is
// optional.
type Options struct {
	// ManagementURL is Azure Resource Manager's URL; it must be https.
	// Default: ClientOptions.Cloud's resource manager endpoint if set, else
	// [DefaultManagementURL].
	ManagementURL string
	// Audience is the resource the Entra token is requested for (scope
	// Audience + "/.default"). Default: ClientOptions.Cloud's resource
	// manager audience if set, else ManagementURL.
	Audience string
	// APIVersion is the operation's api-version. Default:
	// ClientOptions.APIVersion if set, else [DefaultAPIVersion].
	APIVersion string
	// ClientOptions configure azcore's pipeline: Transport, Retry, Logging,
	// Cloud and so on, as for any Azure SDK client.
	ClientOptions azcore.ClientOptions
	// Now is the clock that judges the answer (a token already expired is
	// refused) and places a missing refreshAfter. Default time.Now.
	Now func() time.Time
}

// TokenSource gets new tokens for one online endpoint. It is safe for
// concurrent use.
type TokenSource struct {
	ep  Endpoint
	url string
	pl  runtime.Pipeline
	now func() time.Time
}

var _ client.TokenSource = (*TokenSource)(nil)

// NewTokenSource returns a TokenSource for ep that authenticates to Azure
// Resource Manager with cred. An invalid endpoint is an error wrapping
// [ErrInvalidEndpoint]; a management URL that is not https is refused.
func NewTokenSource(ep Endpoint, cred azcore.TokenCredential, opts *Options) (*TokenSource, error) {
	c, err := newConn(ep, cred, opts)
	if err != nil {
		return nil, err
	}
	return &TokenSource{ep: ep, url: c.url("/token"), pl: c.pl, now: c.now}, nil
}

// conn is what every operation on one endpoint shares: its URL and
// api-version, azcore's pipeline and the clock.
type conn struct {
	ep         Endpoint
	base       string // the management URL and the endpoint's resource path
	apiVersion string
	pl         runtime.Pipeline
	now        func() time.Time
}

func newConn(ep Endpoint, cred azcore.TokenCredential, opts *Options) (*conn, error) {
	if err := ep.validate(); err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, errors.New("azureml: nil credential")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	rm := o.ClientOptions.Cloud.Services[cloud.ResourceManager]
	if o.ManagementURL == "" {
		o.ManagementURL = rm.Endpoint
	}
	if o.ManagementURL == "" {
		o.ManagementURL = DefaultManagementURL
	}
	base, err := url.Parse(o.ManagementURL)
	if err != nil || base.Scheme != "https" || base.Host == "" || base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("azureml: management URL %q: want https://host[/path]", o.ManagementURL)
	}
	if o.Audience == "" {
		o.Audience = rm.Audience
	}
	if o.Audience == "" {
		o.Audience = o.ManagementURL
	}
	if o.APIVersion == "" {
		o.APIVersion = o.ClientOptions.APIVersion
	}
	if o.APIVersion == "" {
		o.APIVersion = DefaultAPIVersion
	}
	o.ClientOptions.APIVersion = "" // set on the URL below
	if o.Now == nil {
		o.Now = time.Now
	}
	next := o.ClientOptions.Transport
	if next == nil {
		next = defaultTransport
	}
	o.ClientOptions.Transport = limitTransport{next: next, max: maxResponse}

	scope := strings.TrimSuffix(o.Audience, "/") + "/.default"
	pl := runtime.NewPipeline("modelauth-azureml", "v1.0.0", runtime.PipelineOptions{
		PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(cred, []string{scope}, nil)},
	}, &o.ClientOptions)
	return &conn{ep: ep, base: strings.TrimSuffix(o.ManagementURL, "/") + ep.path(), apiVersion: o.APIVersion, pl: pl, now: o.Now}, nil
}

// url returns the URL of the endpoint's operation op ("" for the endpoint
// itself, "/listKeys" and so on), with the api-version.
func (c *conn) url(op string) string {
	return c.base + op + "?" + url.Values{"api-version": {c.apiVersion}}.Encode()
}

// Endpoint returns the endpoint the source gets tokens for.
func (s *TokenSource) Endpoint() Endpoint { return s.ep }

// wireToken is the Get Token answer (EndpointAuthToken). The times are
// Unix seconds, which the Python SDK types as float.
type wireToken struct {
	AccessToken         string   `json:"accessToken"`
	TokenType           string   `json:"tokenType"`
	ExpiryTimeUTC       *float64 `json:"expiryTimeUtc"`
	RefreshAfterTimeUTC *float64 `json:"refreshAfterTimeUtc"`
}

// armError is Azure Resource Manager's error body.
type armError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Token gets a new token for the endpoint. Its RefreshAfter is the
// answer's refreshAfterTimeUtc, or halfway between now and ExpiresOn when
// that is missing or not before the expiry; TokenType defaults to Bearer.
//
// An answer other than 2xx is an *[Error]; a 2xx answer without an
// accessToken or expiryTimeUtc, or whose token has already expired, wraps
// [ErrBadResponse].
func (s *TokenSource) Token(ctx context.Context) (*client.Token, error) {
	req, err := runtime.NewRequest(ctx, http.MethodPost, s.url)
	if err != nil {
		return nil, fmt.Errorf("azureml: online endpoint %s: %w", s.ep.Name, err)
	}
	req.Raw().Header.Set("Accept", "application/json")
	runtime.SkipBodyDownload(req) // read below, capped; error bodies are downloaded (capped) by azcore
	resp, err := s.pl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("azureml: online endpoint %s: %w", s.ep.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, responseError(resp)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("azureml: online endpoint %s: HTTP %d: reading the answer: %w", s.ep.Name, resp.StatusCode, err)
	}
	return s.parse(body)
}

// parse maps a 2xx answer. Its errors never quote the body, which may hold
// a token.
func (s *TokenSource) parse(body []byte) (*client.Token, error) {
	var w wireToken
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("%w: online endpoint %s: the answer is not the token JSON (%s)", ErrBadResponse, s.ep.Name, describeJSONError(err))
	}
	if w.AccessToken == "" {
		return nil, fmt.Errorf("%w: online endpoint %s: the answer has no accessToken", ErrBadResponse, s.ep.Name)
	}
	exp, ok := unixTime(w.ExpiryTimeUTC)
	if !ok {
		return nil, fmt.Errorf("%w: online endpoint %s: the answer has no valid expiryTimeUtc", ErrBadResponse, s.ep.Name)
	}
	now := s.now()
	if !now.Before(exp) {
		return nil, fmt.Errorf("%w: online endpoint %s: the token expired at %s, at or before now (%s)", ErrBadResponse, s.ep.Name,
			exp.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	refresh, ok := unixTime(w.RefreshAfterTimeUTC)
	if !ok || !refresh.Before(exp) {
		refresh = now.Add(exp.Sub(now) / 2).UTC()
	}
	typ := w.TokenType
	if typ == "" {
		typ = "Bearer"
	}
	return &client.Token{AccessToken: w.AccessToken, TokenType: typ, ExpiresOn: exp, RefreshAfter: refresh}, nil
}

// unixTime converts Unix seconds (possibly fractional) to a UTC time; a
// missing, non-positive or out-of-range value is not ok.
func unixTime(v *float64) (time.Time, bool) {
	if v == nil || !(*v > 0) || *v > 1e12 || math.IsInf(*v, 0) {
		return time.Time{}, false
	}
	sec, frac := math.Modf(*v)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), true
}

// describeJSONError says what is wrong with a body without quoting it.
func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %s is a JSON %s, want %s", te.Field, te.Value, te.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	}
	return "invalid"
}

// maxMessage caps the ARM message kept in an [Error].
const maxMessage = 1024

// responseError maps a non-2xx answer, whose body azcore has already read
// (within maxResponse).
func responseError(resp *http.Response) error {
	e := &Error{
		StatusCode:    resp.StatusCode,
		Code:          resp.Header.Get("x-ms-error-code"),
		CorrelationID: resp.Header.Get("x-ms-correlation-request-id"),
	}
	if body, err := runtime.Payload(resp); err == nil {
		var ae armError
		if json.Unmarshal(body, &ae) == nil {
			if ae.Error.Code != "" {
				e.Code = ae.Error.Code
			}
			e.Message = ae.Error.Message
		}
	}
	if len(e.Message) > maxMessage {
		e.Message = strings.ToValidUTF8(e.Message[:maxMessage], "") + "…"
	}
	return e
}

// defaultTransport sends requests when ClientOptions.Transport is nil: a
// clone of net/http's default transport (proxy from the environment,
// timeouts, HTTP/2) with TLS 1.2 at least, as azcore's default.
var defaultTransport policy.Transporter = func() *http.Client {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return &http.Client{}
	}
	t = t.Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t}
}()

// errTooLarge is the read error of a response body over maxResponse.
var errTooLarge = fmt.Errorf("%w: a response body over %d bytes", ErrBadResponse, maxResponse)

// limitTransport caps the body of every response: azcore reads error
// bodies whole before this package sees them.
type limitTransport struct {
	next policy.Transporter
	max  int64
}

func (t limitTransport) Do(req *http.Request) (*http.Response, error) {
	resp, err := t.next.Do(req)
	if err != nil || resp == nil || resp.Body == nil {
		return resp, err
	}
	resp.Body = &limitedBody{rc: resp.Body, n: t.max}
	return resp, nil
}

// limitedBody reads at most n bytes and fails past them, as
// http.MaxBytesReader does.
type limitedBody struct {
	rc  io.ReadCloser
	n   int64
	err error
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p))-1 > b.n {
		p = p[:b.n+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) <= b.n {
		b.n -= int64(n)
		b.err = err
		return n, err
	}
	n = int(b.n)
	b.n = 0
	b.err = errTooLarge
	return n, b.err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
