package azureml_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/modelauth/modelauth/shared/azureml"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// TestMain trusts the keyvaulttest CA (SSL_CERT_FILE), for the Entra
// token endpoint the credentials use.
func TestMain(m *testing.M) { os.Exit(keyvaulttest.RunTests(m)) }

// now is the tests' clock.
var now = time.Unix(1_900_000_000, 0).UTC()

const wantPath = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws-prod/onlineEndpoints/llm-chat/token"

// armRequest is what the fake ARM saw of one request.
type armRequest struct {
	Method, Path, APIVersion, Bearer string
	ContentLength                    int64
}

// fakeARM is an httptest TLS server imitating Azure Resource Manager's
// Online Endpoints - Get Token operation. Like ARM it answers 401
// InvalidAuthenticationToken to a request whose bearer token is not one the
// Entra endpoint of kv issued for kv's resource (it asks kv's vault), then
// hands the request to answer.
type fakeARM struct {
	*httptest.Server
	kv *keyvaulttest.Server

	mu     sync.Mutex
	got    []armRequest
	answer func(w http.ResponseWriter, n int) // n: 0 for the first request
}

func newFakeARM(t *testing.T, kv *keyvaulttest.Server, answer func(w http.ResponseWriter, n int)) *fakeARM {
	t.Helper()
	a := &fakeARM{kv: kv, answer: answer}
	a.Server = httptest.NewTLSServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func (a *fakeARM) serve(w http.ResponseWriter, r *http.Request) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		tok = ""
	}
	a.mu.Lock()
	n := len(a.got)
	a.got = append(a.got, armRequest{Method: r.Method, Path: r.URL.Path, APIVersion: r.URL.Query().Get("api-version"), Bearer: tok, ContentLength: r.ContentLength})
	a.mu.Unlock()
	w.Header().Set("x-ms-correlation-request-id", fmt.Sprintf("corr-%d", n))
	if !a.kvIssued(r.Context(), tok) {
		w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", error_description="The access token is invalid."`)
		writeJSON(w, http.StatusUnauthorized, armErr("InvalidAuthenticationToken", "The access token is invalid."))
		return
	}
	a.answer(w, n)
}

// kvIssued reports whether tok is a live token that kv's Entra endpoint
// issued for kv.Resource: kv's vault accepts it (an unknown secret is 404,
// where a token it did not issue would be 401).
func (a *fakeARM) kvIssued(ctx context.Context, tok string) bool {
	if tok == "" {
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.kv.VaultURL+"/secrets/probe?api-version=7.5", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req) // trusts kv through SSL_CERT_FILE
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNotFound
}

func (a *fakeARM) requests() []armRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]armRequest(nil), a.got...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func armErr(code, msg string) map[string]any {
	return map[string]any{"error": map[string]any{"code": code, "message": msg}}
}

// tokenAnswer answers the Azure ML shape.
func tokenAnswer(v map[string]any) func(http.ResponseWriter, int) {
	return func(w http.ResponseWriter, _ int) { writeJSON(w, http.StatusOK, v) }
}

func rawAnswer(status int, body string) func(http.ResponseWriter, int) {
	return func(w http.ResponseWriter, _ int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// scopeRecorder records the scopes its credential is asked for.
type scopeRecorder struct {
	azcore.TokenCredential
	mu     sync.Mutex
	scopes [][]string
}

func (r *scopeRecorder) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	r.mu.Lock()
	r.scopes = append(r.scopes, o.Scopes)
	r.mu.Unlock()
	return r.TokenCredential.GetToken(ctx, o)
}

func (r *scopeRecorder) recorded() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.scopes...)
}

// setup starts kv and a fake ARM and returns a TokenSource for the
// validEndpoint pointed at them, with kv's credential (wrapped in a
// scopeRecorder) and no retries.
func setup(t *testing.T, answer func(http.ResponseWriter, int), tune func(*azureml.Options)) (*azureml.TokenSource, *fakeARM, *scopeRecorder) {
	t.Helper()
	kv := keyvaulttest.NewServer(t, nil)
	arm := newFakeARM(t, kv, answer)
	cred := &scopeRecorder{TokenCredential: kv.Credential(t)}
	opts := &azureml.Options{
		ManagementURL: arm.URL,
		Audience:      kv.Resource, // the one resource kv's Entra endpoint issues tokens for
		ClientOptions: azcore.ClientOptions{
			Transport: arm.Client(), // trusts the httptest certificate
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		Now: func() time.Time { return now },
	}
	if tune != nil {
		tune(opts)
	}
	ts, err := azureml.NewTokenSource(validEndpoint, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return ts, arm, cred
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestToken(t *testing.T) {
	t.Parallel()
	ts, arm, cred := setup(t, tokenAnswer(map[string]any{
		"accessToken":         "aml-token-1",
		"tokenType":           "Bearer",
		"expiryTimeUtc":       now.Unix() + 3600,
		"refreshAfterTimeUtc": now.Unix() + 1800,
	}), nil)
	ctx := ctxTimeout(t)
	for i := range 2 {
		tok, err := ts.Token(ctx)
		if err != nil {
			t.Fatalf("Token #%d: %v", i+1, err)
		}
		if tok.AccessToken != "aml-token-1" || tok.TokenType != "Bearer" {
			t.Errorf("Token = %q %q; want aml-token-1 Bearer", tok.AccessToken, tok.TokenType)
		}
		if want := now.Add(time.Hour); !tok.ExpiresOn.Equal(want) {
			t.Errorf("ExpiresOn = %v; want %v", tok.ExpiresOn, want)
		}
		if want := now.Add(30 * time.Minute); !tok.RefreshAfter.Equal(want) {
			t.Errorf("RefreshAfter = %v; want %v", tok.RefreshAfter, want)
		}
		if !tok.Valid(now) {
			t.Errorf("token not Valid at now")
		}
	}

	got := arm.requests()
	if len(got) != 2 {
		t.Fatalf("ARM got %d requests; want 2", len(got))
	}
	for _, r := range got {
		if r.Method != http.MethodPost || r.Path != wantPath || r.APIVersion != azureml.DefaultAPIVersion {
			t.Errorf("request %s %s api-version=%s; want POST %s api-version=%s", r.Method, r.Path, r.APIVersion, wantPath, azureml.DefaultAPIVersion)
		}
		if r.ContentLength > 0 {
			t.Errorf("request body of %d bytes; want none", r.ContentLength)
		}
	}
	if got[0].Bearer == "" || got[1].Bearer != got[0].Bearer {
		t.Errorf("bearer tokens %q, %q; want one cached Entra token", got[0].Bearer, got[1].Bearer)
	}
	// One Entra token, for the audience's .default scope, reused.
	if st := arm.kv.Stats(); st.TokensIssued != 1 || st.TokenRequests != 1 {
		t.Errorf("kv issued %d tokens in %d requests; want 1 in 1", st.TokensIssued, st.TokenRequests)
	}
	scopes := cred.recorded()
	if len(scopes) != 1 || len(scopes[0]) != 1 || scopes[0][0] != arm.kv.Resource+"/.default" {
		t.Errorf("credential asked for scopes %v; want [[%s/.default]]", scopes, arm.kv.Resource)
	}
}

// TestTokenRefreshAfter: Unix seconds (fractions too) and the halfway
// default.
func TestTokenRefreshAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		answer            map[string]any
		wantExp, wantRefr time.Time
		wantType          string
	}{
		{
			name:     "missing refreshAfterTimeUtc",
			answer:   map[string]any{"accessToken": "t", "tokenType": "Bearer", "expiryTimeUtc": now.Unix() + 3600},
			wantExp:  now.Add(time.Hour),
			wantRefr: now.Add(30 * time.Minute),
			wantType: "Bearer",
		},
		{
			name:     "null refreshAfterTimeUtc and no tokenType",
			answer:   map[string]any{"accessToken": "t", "expiryTimeUtc": now.Unix() + 600, "refreshAfterTimeUtc": nil},
			wantExp:  now.Add(10 * time.Minute),
			wantRefr: now.Add(5 * time.Minute),
			wantType: "Bearer",
		},
		{
			name:     "refreshAfterTimeUtc after the expiry",
			answer:   map[string]any{"accessToken": "t", "tokenType": "Bearer", "expiryTimeUtc": now.Unix() + 3600, "refreshAfterTimeUtc": now.Unix() + 7200},
			wantExp:  now.Add(time.Hour),
			wantRefr: now.Add(30 * time.Minute),
			wantType: "Bearer",
		},
		{
			name:     "fractional seconds",
			answer:   map[string]any{"accessToken": "t", "tokenType": "bearer", "expiryTimeUtc": float64(now.Unix()) + 3600.5, "refreshAfterTimeUtc": float64(now.Unix()) + 1800.25},
			wantExp:  now.Add(time.Hour + 500*time.Millisecond),
			wantRefr: now.Add(30*time.Minute + 250*time.Millisecond),
			wantType: "bearer",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts, _, _ := setup(t, tokenAnswer(tt.answer), nil)
			tok, err := ts.Token(ctxTimeout(t))
			if err != nil {
				t.Fatal(err)
			}
			if !tok.ExpiresOn.Equal(tt.wantExp) || !tok.RefreshAfter.Equal(tt.wantRefr) || tok.TokenType != tt.wantType {
				t.Errorf("Token = exp %v refresh %v type %q; want %v, %v, %q", tok.ExpiresOn, tok.RefreshAfter, tok.TokenType, tt.wantExp, tt.wantRefr, tt.wantType)
			}
		})
	}
}

// TestTokenARMError: ARM's error answers become an *Error with the status,
// code and message, and never contain the Entra token.
func TestTokenARMError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		answer   func(http.ResponseWriter, int)
		wantCode string
		wantMsg  string
		status   int
	}{
		{
			name: "401 expired token",
			answer: func(w http.ResponseWriter, _ int) {
				w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", error_description="The token expired."`)
				writeJSON(w, http.StatusUnauthorized, armErr("ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time."))
			},
			status: 401, wantCode: "ExpiredAuthenticationToken", wantMsg: "The access token expiry UTC time is earlier than current UTC time.",
		},
		{
			name: "403 authorization failed",
			answer: func(w http.ResponseWriter, _ int) {
				writeJSON(w, http.StatusForbidden, armErr("AuthorizationFailed", "The client 'x' does not have authorization to perform action 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/token/action'."))
			},
			status: 403, wantCode: "AuthorizationFailed", wantMsg: "The client 'x' does not have authorization to perform action 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/token/action'.",
		},
		{
			name: "404 endpoint not found",
			answer: func(w http.ResponseWriter, _ int) {
				writeJSON(w, http.StatusNotFound, armErr("ResourceNotFound", "The Resource 'Microsoft.MachineLearningServices/workspaces/ws-prod/onlineEndpoints/llm-chat' under resource group 'rg-ml' was not found."))
			},
			status: 404, wantCode: "ResourceNotFound", wantMsg: "The Resource 'Microsoft.MachineLearningServices/workspaces/ws-prod/onlineEndpoints/llm-chat' under resource group 'rg-ml' was not found.",
		},
		{
			name: "400 key auth mode, code in header only",
			answer: func(w http.ResponseWriter, _ int) {
				w.Header().Set("x-ms-error-code", "BadRequest")
				writeJSON(w, http.StatusBadRequest, map[string]any{"message": "not an ARM error body"})
			},
			status: 400, wantCode: "BadRequest",
		},
		{
			name:   "502 without a body",
			answer: rawAnswer(http.StatusBadGateway, ""),
			status: 502,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts, arm, _ := setup(t, tt.answer, nil)
			tok, err := ts.Token(ctxTimeout(t))
			if tok != nil {
				t.Errorf("Token returned a token with the error")
			}
			var e *azureml.Error
			if !errors.As(err, &e) {
				t.Fatalf("Token error = %v (%T); want an *azureml.Error", err, err)
			}
			if e.StatusCode != tt.status || e.Code != tt.wantCode || e.Message != tt.wantMsg {
				t.Errorf("Error = %d %q %q; want %d %q %q", e.StatusCode, e.Code, e.Message, tt.status, tt.wantCode, tt.wantMsg)
			}
			if e.CorrelationID != "corr-0" {
				t.Errorf("CorrelationID = %q; want corr-0", e.CorrelationID)
			}
			got := arm.requests()
			if len(got) != 1 || got[0].Bearer == "" {
				t.Fatalf("ARM got %+v; want one request with a bearer token", got)
			}
			if msg := err.Error(); strings.Contains(msg, got[0].Bearer) {
				t.Errorf("error %q contains the Entra token", msg)
			}
			if msg := err.Error(); !strings.Contains(msg, fmt.Sprint(tt.status)) || !strings.Contains(msg, tt.wantCode) {
				t.Errorf("error %q lacks the status or code", msg)
			}
		})
	}
}

// TestTokenBadResponse: 2xx answers that are not a usable token wrap
// ErrBadResponse and never quote the token.
func TestTokenBadResponse(t *testing.T) {
	t.Parallel()
	const secret = "secret-aml-token"
	huge := `{"accessToken":"` + secret + strings.Repeat("x", 2<<20) + `","expiryTimeUtc":1900003600}`
	tests := []struct {
		name   string
		answer func(http.ResponseWriter, int)
	}{
		{"malformed JSON", rawAnswer(200, `{"accessToken":"`+secret+`", expiryTimeUtc: 1900003600}`)},
		{"truncated JSON", rawAnswer(200, `{"accessToken":"`+secret+`","expiryTimeUtc":19`)},
		{"empty body", rawAnswer(200, ``)},
		{"HTML", rawAnswer(200, `<html>`+secret+`</html>`)},
		{"array", rawAnswer(200, `["`+secret+`"]`)},
		{"missing accessToken", tokenAnswer(map[string]any{"tokenType": "Bearer", "expiryTimeUtc": now.Unix() + 3600})},
		{"empty accessToken", tokenAnswer(map[string]any{"accessToken": "", "expiryTimeUtc": now.Unix() + 3600})},
		{"missing expiryTimeUtc", tokenAnswer(map[string]any{"accessToken": secret, "tokenType": "Bearer", "refreshAfterTimeUtc": now.Unix() + 1800})},
		{"zero expiryTimeUtc", tokenAnswer(map[string]any{"accessToken": secret, "expiryTimeUtc": 0})},
		{"string expiryTimeUtc", tokenAnswer(map[string]any{"accessToken": secret, "expiryTimeUtc": "2030-03-17T17:46:40Z"})},
		{"ISO time in expiryTimeUtc", tokenAnswer(map[string]any{"accessToken": secret, "expiryTimeUtc": secret})},
		{"milliseconds", tokenAnswer(map[string]any{"accessToken": secret, "expiryTimeUtc": now.UnixMilli() + 3600_000})},
		{"already expired", tokenAnswer(map[string]any{"accessToken": secret, "expiryTimeUtc": now.Unix()})},
		{"body over the cap", rawAnswer(200, huge)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts, _, _ := setup(t, tt.answer, nil)
			tok, err := ts.Token(ctxTimeout(t))
			if !errors.Is(err, azureml.ErrBadResponse) {
				t.Fatalf("Token = %v, %v; want an error wrapping ErrBadResponse", tok, err)
			}
			if tok != nil {
				t.Errorf("Token returned a token with the error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

// TestTokenErrorBodyCapped: an error body over the cap is not read whole.
func TestTokenErrorBodyCapped(t *testing.T) {
	t.Parallel()
	ts, _, _ := setup(t, func(w http.ResponseWriter, _ int) {
		writeJSON(w, http.StatusForbidden, armErr("AuthorizationFailed", strings.Repeat("m", 2<<20)))
	}, nil)
	_, err := ts.Token(ctxTimeout(t))
	if !errors.Is(err, azureml.ErrBadResponse) {
		t.Fatalf("Token error = %v; want one wrapping ErrBadResponse", err)
	}
	if len(err.Error()) > 2048 {
		t.Errorf("error of %d bytes", len(err.Error()))
	}
}

// TestTokenRetried: azcore's retry policy retries a 503 (and the Entra
// token is not fetched again).
func TestTokenRetried(t *testing.T) {
	t.Parallel()
	ts, arm, _ := setup(t, func(w http.ResponseWriter, n int) {
		if n == 0 {
			w.Header().Set("Retry-After", "0")
			writeJSON(w, http.StatusServiceUnavailable, armErr("ServiceUnavailable", "try again"))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"accessToken": "t", "tokenType": "Bearer", "expiryTimeUtc": now.Unix() + 3600})
	}, func(o *azureml.Options) {
		o.ClientOptions.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond}
	})
	if _, err := ts.Token(ctxTimeout(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(arm.requests()); n != 2 {
		t.Errorf("ARM got %d requests; want 2", n)
	}
	if st := arm.kv.Stats(); st.TokensIssued != 1 {
		t.Errorf("kv issued %d tokens; want 1", st.TokensIssued)
	}
}

// TestTokenWrongAudience: an Entra token for another resource is refused
// by ARM (the fake checks tokens with kv).
func TestTokenWrongAudience(t *testing.T) {
	t.Parallel()
	ts, _, _ := setup(t, tokenAnswer(map[string]any{"accessToken": "t", "expiryTimeUtc": now.Unix() + 3600}), func(o *azureml.Options) {
		o.Audience = "" // the management URL: kv issues no token for it
	})
	_, err := ts.Token(ctxTimeout(t))
	if err == nil || !strings.Contains(err.Error(), "invalid_scope") {
		t.Fatalf("Token error = %v; want Entra's invalid_scope", err)
	}
}

// TestTokenConcurrent: concurrent callers share one Entra token and each
// get a token.
func TestTokenConcurrent(t *testing.T) {
	t.Parallel()
	ts, arm, _ := setup(t, tokenAnswer(map[string]any{"accessToken": "t", "expiryTimeUtc": now.Unix() + 3600}), nil)
	ctx := ctxTimeout(t)
	const callers = 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			if _, err := ts.Token(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(arm.requests()); n != callers {
		t.Errorf("ARM got %d requests; want %d", n, callers)
	}
	if st := arm.kv.Stats(); st.TokensIssued != 1 {
		t.Errorf("kv issued %d tokens; want 1", st.TokensIssued)
	}
}

// fakeCredential is a TokenCredential whose GetToken is a field.
type fakeCredential struct {
	GetTokenFn func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error)
}

func (f fakeCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return f.GetTokenFn(ctx, o)
}

type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// TestOptions: the URL and scope for the defaults, a cloud configuration
// and explicit options, with fakes in place of Entra and ARM.
func TestOptions(t *testing.T) {
	t.Parallel()
	const query = "?api-version="
	tests := []struct {
		name      string
		opts      *azureml.Options
		wantURL   string
		wantScope string
	}{
		{
			name:      "defaults",
			wantURL:   azureml.DefaultManagementURL + wantPath + query + azureml.DefaultAPIVersion,
			wantScope: "https://management.azure.com/.default",
		},
		{
			name: "cloud configuration",
			opts: &azureml.Options{ClientOptions: azcore.ClientOptions{Cloud: cloud.Configuration{
				Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
					cloud.ResourceManager: {Audience: "https://management.core.chinacloudapi.cn/", Endpoint: "https://management.chinacloudapi.cn"},
				},
			}}},
			wantURL:   "https://management.chinacloudapi.cn" + wantPath + query + azureml.DefaultAPIVersion,
			wantScope: "https://management.core.chinacloudapi.cn/.default",
		},
		{
			name:      "explicit",
			opts:      &azureml.Options{ManagementURL: "https://arm.example/", Audience: "api://arm", APIVersion: "2025-06-01"},
			wantURL:   "https://arm.example" + wantPath + query + "2025-06-01",
			wantScope: "api://arm/.default",
		},
		{
			name:      "ClientOptions.APIVersion",
			opts:      &azureml.Options{ClientOptions: azcore.ClientOptions{APIVersion: "2024-10-01"}},
			wantURL:   azureml.DefaultManagementURL + wantPath + query + "2024-10-01",
			wantScope: "https://management.azure.com/.default",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var gotScopes []string
			var gotURL, gotAuth string
			cred := fakeCredential{GetTokenFn: func(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
				gotScopes = o.Scopes
				return azcore.AccessToken{Token: "entra-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
			}}
			var o azureml.Options
			if tt.opts != nil {
				o = *tt.opts
			}
			o.Now = func() time.Time { return now }
			o.ClientOptions.Transport = transportFunc(func(r *http.Request) (*http.Response, error) {
				gotURL, gotAuth = r.URL.String(), r.Header.Get("Authorization")
				body := fmt.Sprintf(`{"accessToken":"t","tokenType":"Bearer","expiryTimeUtc":%d}`, now.Unix()+60)
				return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
			})
			ts, err := azureml.NewTokenSource(validEndpoint, cred, &o)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ts.Token(context.Background()); err != nil {
				t.Fatal(err)
			}
			if gotURL != tt.wantURL {
				t.Errorf("URL = %s; want %s", gotURL, tt.wantURL)
			}
			if len(gotScopes) != 1 || gotScopes[0] != tt.wantScope {
				t.Errorf("scopes = %v; want [%s]", gotScopes, tt.wantScope)
			}
			if gotAuth != "Bearer entra-token" {
				t.Errorf("Authorization = %q; want Bearer entra-token", gotAuth)
			}
		})
	}
}

func TestNewTokenSourceInvalid(t *testing.T) {
	t.Parallel()
	cred := fakeCredential{GetTokenFn: func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
		t.Error("credential called")
		return azcore.AccessToken{}, errors.New("no")
	}}
	tests := []struct {
		name    string
		ep      azureml.Endpoint
		cred    azcore.TokenCredential
		opts    *azureml.Options
		wantErr error
	}{
		{"empty endpoint", azureml.Endpoint{}, cred, nil, azureml.ErrInvalidEndpoint},
		{"no workspace", azureml.Endpoint{SubscriptionID: "s", ResourceGroup: "rg", Name: "e"}, cred, nil, azureml.ErrInvalidEndpoint},
		{"slash in a name", azureml.Endpoint{SubscriptionID: "s", ResourceGroup: "rg", Workspace: "w/x", Name: "e"}, cred, nil, azureml.ErrInvalidEndpoint},
		{"nil credential", validEndpoint, nil, nil, nil},
		{"http management URL", validEndpoint, cred, &azureml.Options{ManagementURL: "http://management.azure.com"}, nil},
		{"relative management URL", validEndpoint, cred, &azureml.Options{ManagementURL: "management.azure.com"}, nil},
		{"management URL with a query", validEndpoint, cred, &azureml.Options{ManagementURL: "https://management.azure.com/?x=1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, err := azureml.NewTokenSource(tt.ep, tt.cred, tt.opts)
			if err == nil {
				t.Fatalf("NewTokenSource = %v; want an error", ts)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("NewTokenSource error = %v; want %v", err, tt.wantErr)
			}
		})
	}
}

// TestTokenNotFromEntra: the fake ARM refuses a bearer token that kv's
// Entra endpoint did not issue, so the other tests' successes show the
// token came from it.
func TestTokenNotFromEntra(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	arm := newFakeARM(t, kv, tokenAnswer(map[string]any{"accessToken": "t", "expiryTimeUtc": now.Unix() + 3600}))
	forged := fakeCredential{GetTokenFn: func(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
		return azcore.AccessToken{Token: "kvt.forged", ExpiresOn: time.Now().Add(time.Hour)}, nil
	}}
	ts, err := azureml.NewTokenSource(validEndpoint, forged, &azureml.Options{
		ManagementURL: arm.URL,
		ClientOptions: azcore.ClientOptions{Transport: arm.Client(), Retry: policy.RetryOptions{MaxRetries: -1}},
		Now:           func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ts.Token(ctxTimeout(t))
	var e *azureml.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusUnauthorized || e.Code != "InvalidAuthenticationToken" {
		t.Fatalf("Token error = %v; want 401 InvalidAuthenticationToken", err)
	}
	if strings.Contains(err.Error(), "kvt.forged") {
		t.Errorf("error %q contains the bearer token", err)
	}
}

// TestDefaultTransport: with no Transport the source uses its own (system
// roots, so SSL_CERT_FILE): pointed at kv, which has no such path, it gets
// kv's 404.
func TestDefaultTransport(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	ts, err := azureml.NewTokenSource(validEndpoint, kv.Credential(t), &azureml.Options{
		ManagementURL: kv.VaultURL,
		Audience:      kv.Resource,
		ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ts.Token(ctxTimeout(t))
	var e *azureml.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusNotFound || e.Code != "NotFound" {
		t.Fatalf("Token error = %v; want kv's 404 NotFound", err)
	}
}
