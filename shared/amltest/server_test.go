package amltest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/modelauth/modelauth/shared/amltest"
)

var pollFast = &runtime.PollUntilDoneOptions{Frequency: fastPoll}

func TestGetEndpoint(t *testing.T) {
	e := newEnv(t, nil, nil)
	uri := e.aml.AddEndpoint(endpointID, amltest.AuthKey)
	var got struct {
		ID, Name, Type, Location string
		Properties               struct{ AuthMode, ScoringURI, ProvisioningState string }
	}
	if err := json.Unmarshal(e.call(t, http.MethodGet, endpointID, nil, http.StatusOK), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != endpointID || got.Name != "llm-chat" || got.Type != "Microsoft.MachineLearningServices/workspaces/onlineEndpoints" ||
		got.Properties.AuthMode != "Key" || got.Properties.ScoringURI != uri || got.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("GET = %+v", got)
	}
	// Resource ids are case-insensitive.
	e.call(t, http.MethodGet, strings.ToLower(endpointID), nil, http.StatusOK)
	if st := e.aml.Stats(); st.Get != 2 {
		t.Errorf("Stats.Get = %d; want 2", st.Get)
	}
}

// TestRegenerate runs regenerateKeys to success through azcore's poller,
// with the Azure-AsyncOperation header (azcore's async poller) and with
// Location only (its loc poller).
func TestRegenerate(t *testing.T) {
	for _, locOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("LocationOnly=%v", locOnly), func(t *testing.T) {
			e := newEnv(t, &amltest.Options{Polls: 2, LocationOnly: locOnly}, nil)
			e.aml.AddEndpoint(endpointID, amltest.AuthKey)
			p0, s0 := e.listKeys(t, endpointID)

			ctx := ctxTimeout(t, 10*time.Second)
			resp, err := e.send(t, ctx, http.MethodPost, endpointID+"/regenerateKeys", map[string]string{"keyType": "Primary"})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") == "" ||
				(resp.Header.Get("Azure-AsyncOperation") == "") != locOnly || resp.Header.Get("Retry-After") != "" {
				t.Fatalf("regenerateKeys: status %d, headers %v", resp.StatusCode, resp.Header)
			}
			poller, err := runtime.NewPoller[struct{}](resp, e.pl, &runtime.NewPollerOptions[struct{}]{FinalStateVia: runtime.FinalStateViaLocation})
			if err != nil {
				t.Fatal(err)
			}
			// In progress: the keys have not changed.
			if _, err := poller.Poll(ctx); err != nil || poller.Done() {
				t.Fatalf("first poll: done %v, err %v; want in progress", poller.Done(), err)
			}
			if p, s := e.listKeys(t, endpointID); p != p0 || s != s0 {
				t.Error("the keys changed before the operation ended")
			}
			if _, err := poller.PollUntilDone(ctx, pollFast); err != nil {
				t.Fatalf("PollUntilDone: %v", err)
			}
			p1, s1 := e.listKeys(t, endpointID)
			if p1 == p0 || s1 != s0 || p1 == "" {
				t.Errorf("after the regeneration: primary changed %v, secondary changed %v; want only the primary", p1 != p0, s1 != s0)
			}
			if p, s := e.aml.Keys(endpointID); p != p1 || s != s1 {
				t.Error("Keys disagrees with listKeys")
			}
			st := e.aml.Stats()
			if st.OperationsStarted != 1 || st.OperationsSucceeded != 1 || st.OperationsFailed != 0 || st.RegenerateKeys != 1 {
				t.Errorf("Stats = %+v", st)
			}
			if st.Poll < 3 {
				t.Errorf("Stats.Poll = %d; want at least 3 (2 in progress, 1 ended)", st.Poll)
			}
		})
	}
}

func TestRegenerateKeyValue(t *testing.T) {
	e := newEnv(t, &amltest.Options{Polls: -1}, nil)
	e.aml.AddEndpoint(endpointID, amltest.AuthKey)
	p0, _ := e.listKeys(t, endpointID)
	ctx := ctxTimeout(t, 10*time.Second)
	poller, err := e.regenerate(t, ctx, endpointID, map[string]string{"keyType": "Secondary", "keyValue": "chosen-secondary-key"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatal(err)
	}
	if p, s := e.listKeys(t, endpointID); p != p0 || s != "chosen-secondary-key" {
		t.Errorf("keys after setting the secondary: primary kept %v, secondary %q", p == p0, s)
	}
}

func TestRegenerateFails(t *testing.T) {
	for _, locOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("LocationOnly=%v", locOnly), func(t *testing.T) {
			e := newEnv(t, &amltest.Options{LocationOnly: locOnly}, nil)
			e.aml.AddEndpoint(endpointID, amltest.AuthKey)
			p0, s0 := e.listKeys(t, endpointID)
			e.aml.FailOperations(1, "InternalServerError", "The key could not be regenerated.")
			ctx := ctxTimeout(t, 10*time.Second)
			poller, err := e.regenerate(t, ctx, endpointID, map[string]string{"keyType": "Primary"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = poller.PollUntilDone(ctx, pollFast)
			if err == nil {
				t.Fatal("PollUntilDone of a failed operation: nil error")
			}
			if re := responseError(t, err); re.ErrorCode != "InternalServerError" {
				t.Errorf("ErrorCode = %q; want InternalServerError (%v)", re.ErrorCode, err)
			}
			if p, s := e.listKeys(t, endpointID); p != p0 || s != s0 {
				t.Error("a failed operation changed the keys")
			}
			// The next one succeeds.
			poller, err = e.regenerate(t, ctx, endpointID, map[string]string{"keyType": "Primary"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := poller.PollUntilDone(ctx, pollFast); err != nil {
				t.Fatal(err)
			}
			if st := e.aml.Stats(); st.OperationsFailed != 1 || st.OperationsSucceeded != 1 {
				t.Errorf("Stats = %+v", st)
			}
		})
	}
}

func TestNeverEnd(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.aml.AddEndpoint(endpointID, amltest.AuthKey)
	p0, _ := e.listKeys(t, endpointID)
	e.aml.NeverEnd(1)
	poller, err := e.regenerate(t, ctxTimeout(t, 10*time.Second), endpointID, map[string]string{"keyType": "Primary"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = poller.PollUntilDone(ctxTimeout(t, 300*time.Millisecond), pollFast)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PollUntilDone = %v; want the context's deadline", err)
	}
	if p, _ := e.listKeys(t, endpointID); p != p0 {
		t.Error("a never-ending operation changed the key")
	}
	if st := e.aml.Stats(); st.Poll < 3 || st.OperationsSucceeded != 0 {
		t.Errorf("Stats = %+v; want several polls and no success", st)
	}
}

// TestRetryAfter checks that azcore waits Retry-After after the 202 and
// after each poll in progress, rather than its Frequency.
func TestRetryAfter(t *testing.T) {
	e := newEnv(t, &amltest.Options{RetryAfter: 1, Polls: 1}, nil)
	e.aml.AddEndpoint(endpointID, amltest.AuthKey)
	ctx := ctxTimeout(t, 20*time.Second)
	resp, err := e.send(t, ctx, http.MethodPost, endpointID+"/regenerateKeys", map[string]string{"keyType": "Primary"})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After = %q; want 1", got)
	}
	poller, err := runtime.NewPoller[struct{}](resp, e.pl, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := poller.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatal(err)
	}
	// 1s after the 202, 1s after the poll in progress.
	if d := time.Since(start); d < 1900*time.Millisecond {
		t.Errorf("PollUntilDone took %v; want at least 2s (Retry-After honoured)", d)
	}
}

func TestFaults(t *testing.T) {
	retry := &policy.RetryOptions{MaxRetries: 3, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond}
	t.Run("StatusRetried", func(t *testing.T) {
		e := newEnv(t, nil, retry)
		e.aml.AddEndpoint(endpointID, amltest.AuthKey)
		e.aml.InjectFault(amltest.OpListKeys, amltest.Fault{Status: http.StatusServiceUnavailable, Times: 2})
		e.listKeys(t, endpointID)
		if st := e.aml.Stats(); st.ListKeys != 3 {
			t.Errorf("Stats.ListKeys = %d; want 3 (2 faults, 1 answer)", st.ListKeys)
		}
	})
	t.Run("StatusCodeRetryAfter", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		e.aml.AddEndpoint(endpointID, amltest.AuthKey)
		e.aml.InjectFault(amltest.OpGet, amltest.Fault{Status: http.StatusTooManyRequests, Code: "SubscriptionRequestsThrottled", RetryAfter: 7})
		resp, err := e.send(t, ctxTimeout(t, 5*time.Second), http.MethodGet, endpointID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if re := runtime.NewResponseError(resp).(interface{ Error() string }); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" ||
			!strings.Contains(re.Error(), "SubscriptionRequestsThrottled") {
			t.Errorf("fault answer: %d %v: %v", resp.StatusCode, resp.Header, re)
		}
		e.call(t, http.MethodGet, endpointID, nil, http.StatusOK) // once (Times 0)
	})
	t.Run("EveryRequest", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		e.aml.AddEndpoint(endpointID, amltest.AuthKey)
		e.aml.InjectFault(amltest.OpToken, amltest.Fault{Status: http.StatusInternalServerError, Times: -1})
		for range 3 {
			e.call(t, http.MethodPost, endpointID+"/token", nil, http.StatusInternalServerError)
		}
		e.aml.ClearFaults()
		e.call(t, http.MethodPost, endpointID+"/token", nil, http.StatusBadRequest) // a Key endpoint
	})
	t.Run("Reset", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		e.aml.AddEndpoint(endpointID, amltest.AuthKey)
		e.aml.InjectFault(amltest.OpRegenerateKeys, amltest.Fault{Reset: true})
		_, err := e.send(t, ctxTimeout(t, 5*time.Second), http.MethodPost, endpointID+"/regenerateKeys", map[string]string{"keyType": "Primary"})
		if err == nil {
			t.Fatal("a reset connection: nil error")
		}
		if st := e.aml.Stats(); st.OperationsStarted != 0 {
			t.Errorf("a reset request started an operation: %+v", st)
		}
	})
	t.Run("Hang", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		e.aml.AddEndpoint(endpointID, amltest.AuthKey)
		e.aml.InjectFault(amltest.OpListKeys, amltest.Fault{Hang: true})
		_, err := e.send(t, ctxTimeout(t, 200*time.Millisecond), http.MethodPost, endpointID+"/listKeys", nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a hung request: %v; want the context's deadline", err)
		}
	})
	t.Run("Delay", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		e.aml.AddEndpoint(endpointID, amltest.AuthKey)
		e.aml.InjectFault(amltest.OpGet, amltest.Fault{Delay: 150 * time.Millisecond})
		start := time.Now()
		e.call(t, http.MethodGet, endpointID, nil, http.StatusOK)
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("a delayed request took %v", d)
		}
	})
	t.Run("Poll", func(t *testing.T) {
		e := newEnv(t, nil, retry)
		e.aml.AddEndpoint(endpointID, amltest.AuthKey)
		e.aml.InjectFault(amltest.OpPoll, amltest.Fault{Status: http.StatusInternalServerError, Times: 2})
		ctx := ctxTimeout(t, 10*time.Second)
		poller, err := e.regenerate(t, ctx, endpointID, map[string]string{"keyType": "Primary"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := poller.PollUntilDone(ctx, pollFast); err != nil {
			t.Fatalf("PollUntilDone through retried poll faults: %v", err)
		}
	})
	t.Run("Score", func(t *testing.T) {
		e := newEnv(t, nil, nil)
		uri := e.aml.AddEndpoint(endpointID, amltest.AuthKey)
		p, _ := e.aml.Keys(endpointID)
		e.aml.InjectFault(amltest.OpScore, amltest.Fault{Status: http.StatusServiceUnavailable})
		if got := score(t, uri, p); got != http.StatusServiceUnavailable {
			t.Errorf("scoring with a fault: %d", got)
		}
		if got := score(t, uri, p); got != http.StatusOK {
			t.Errorf("scoring after the fault: %d", got)
		}
	})
}

func TestErrors(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.aml.AddEndpoint(endpointID, amltest.AuthKey)
	amlID := strings.Replace(endpointID, "llm-chat", "aml-ep", 1)
	e.aml.AddEndpoint(amlID, amltest.AuthAMLToken)
	url := e.aml.URL + endpointID + "?api-version=" + amltest.APIVersion

	// 401: no token, a token for the vault, a token not issued.
	vaultTok := vaultToken(t, e)
	for name, tok := range map[string]string{"none": "", "vault": vaultTok, "forged": "kvt.forged"} {
		status, h, b := raw(t, http.MethodGet, url, tok, nil)
		if status != http.StatusUnauthorized || armCode(t, b) != "InvalidAuthenticationToken" ||
			!strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer authorization_uri=") {
			t.Errorf("token %s: %d %v %s", name, status, h.Get("WWW-Authenticate"), b)
		}
	}
	if st := e.aml.Stats(); st.Challenges != 3 || st.Get != 0 {
		t.Errorf("Stats after 401s = %+v", st)
	}

	// 404 for an unknown endpoint; 404 for an unknown path.
	unknown := strings.Replace(endpointID, "llm-chat", "nope", 1)
	if b := e.call(t, http.MethodGet, unknown, nil, http.StatusNotFound); armCode(t, b) != "ResourceNotFound" {
		t.Errorf("unknown endpoint: %s", b)
	}
	e.call(t, http.MethodPost, unknown+"/listKeys", nil, http.StatusNotFound)
	e.call(t, http.MethodGet, "/subscriptions/x/other", nil, http.StatusNotFound)

	// api-version.
	tok := armToken(t, e)
	status, _, b := raw(t, http.MethodGet, e.aml.URL+endpointID, tok, nil)
	if status != 400 || armCode(t, b) != "MissingApiVersionParameter" {
		t.Errorf("no api-version: %d %s", status, b)
	}
	status, _, b = raw(t, http.MethodGet, e.aml.URL+endpointID+"?api-version=2019-01-01", tok, nil)
	if status != 400 || armCode(t, b) != "InvalidApiVersionParameter" {
		t.Errorf("old api-version: %d %s", status, b)
	}
	if status, _, _ = raw(t, http.MethodGet, e.aml.URL+endpointID+"?api-version=2024-10-01", tok, nil); status != 200 {
		t.Errorf("api-version 2024-10-01: %d", status)
	}

	// 400: keyType, body.
	for _, body := range []any{map[string]string{"keyType": "primary"}, map[string]string{"keyType": "Tertiary"}, map[string]string{}} {
		if b := e.call(t, http.MethodPost, endpointID+"/regenerateKeys", body, http.StatusBadRequest); armCode(t, b) != "BadRequest" {
			t.Errorf("regenerateKeys %v: %s", body, b)
		}
	}
	status, _, b = raw(t, http.MethodPost, e.aml.URL+endpointID+"/regenerateKeys?api-version="+amltest.APIVersion, tok, []byte("{"))
	if status != 400 || armCode(t, b) != "InvalidRequestContent" {
		t.Errorf("malformed body: %d %s", status, b)
	}

	// authMode.
	e.call(t, http.MethodPost, amlID+"/listKeys", nil, http.StatusBadRequest)
	e.call(t, http.MethodPost, amlID+"/regenerateKeys", map[string]string{"keyType": "Primary"}, http.StatusBadRequest)
	e.call(t, http.MethodPost, endpointID+"/token", nil, http.StatusBadRequest)

	// 403.
	e.aml.Deny("Microsoft.MachineLearningServices/workspaces/onlineEndpoints/listKeys/action")
	b = e.call(t, http.MethodPost, endpointID+"/listKeys", nil, http.StatusForbidden)
	if armCode(t, b) != "AuthorizationFailed" || !strings.Contains(string(b), "listKeys/action") || !strings.Contains(string(b), endpointID) {
		t.Errorf("denied listKeys: %s", b)
	}
	e.call(t, http.MethodGet, endpointID, nil, http.StatusOK)
	if st := e.aml.Stats(); st.OperationsStarted != 0 {
		t.Errorf("refused requests started operations: %+v", st)
	}
}

// TestAMLToken checks the token operation and scoring with its token.
func TestAMLToken(t *testing.T) {
	e := newEnv(t, nil, nil)
	uri := e.aml.AddEndpoint(endpointID, amltest.AuthAMLToken)
	var tok struct {
		AccessToken, TokenType             string
		ExpiryTimeUtc, RefreshAfterTimeUtc int64
	}
	if err := json.Unmarshal(e.call(t, http.MethodPost, endpointID+"/token", nil, http.StatusOK), &tok); err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiryTimeUtc <= tok.RefreshAfterTimeUtc || tok.RefreshAfterTimeUtc <= time.Now().Unix() {
		t.Errorf("token = %+v", tok)
	}
	if got := score(t, uri, tok.AccessToken); got != http.StatusOK {
		t.Errorf("scoring with the AML token: %d", got)
	}
	if got := score(t, uri, "amlt.other"); got != http.StatusUnauthorized {
		t.Errorf("scoring with another token: %d", got)
	}
}

func TestScoring(t *testing.T) {
	e := newEnv(t, nil, nil)
	uri := e.aml.AddEndpoint(endpointID, amltest.AuthKey)
	p0, s0 := e.aml.Keys(endpointID)
	for key, want := range map[string]int{p0: 200, s0: 200, "": 401, "wrong": 401, p0 + "x": 401, p0[:len(p0)-1]: 401} {
		if got := score(t, uri, key); got != want {
			t.Errorf("score with %q: %d; want %d", key, got, want)
		}
	}
	if got := score(t, e.aml.URL+"/endpoints/none/score", p0); got != http.StatusNotFound {
		t.Errorf("score an unknown endpoint: %d", got)
	}

	// A regeneration: the old primary is refused once it has succeeded.
	ctx := ctxTimeout(t, 10*time.Second)
	poller, err := e.regenerate(t, ctx, endpointID, map[string]string{"keyType": "Primary"})
	if err != nil {
		t.Fatal(err)
	}
	if got := score(t, uri, p0); got != 200 {
		t.Errorf("old primary during the operation: %d", got)
	}
	if _, err := poller.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatal(err)
	}
	p1, _ := e.aml.Keys(endpointID)
	if score(t, uri, p0) != 401 || score(t, uri, p1) != 200 || score(t, uri, s0) != 200 {
		t.Error("after the regeneration: want the old primary refused, the new one and the secondary accepted")
	}

	// SetKey: at once.
	e.aml.SetKey(endpointID, "Secondary", "portal-key")
	if score(t, uri, s0) != 401 || score(t, uri, "portal-key") != 200 {
		t.Error("after SetKey: want the old secondary refused, the new one accepted")
	}
	if _, s := e.listKeys(t, endpointID); s != "portal-key" {
		t.Errorf("listKeys after SetKey: secondary %q", s)
	}
	if st := e.aml.Stats(); st.Scored == 0 || st.ScoreRejected == 0 {
		t.Errorf("Stats = %+v", st)
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestScoringLag(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, &amltest.Options{Now: clock.Now, ScoringLag: time.Minute}, nil)
	uri := e.aml.AddEndpoint(endpointID, amltest.AuthKey)
	p0, _ := e.aml.Keys(endpointID)
	ctx := ctxTimeout(t, 10*time.Second)
	poller, err := e.regenerate(t, ctx, endpointID, map[string]string{"keyType": "Primary", "keyValue": "new-primary"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatal(err)
	}
	if p, _ := e.listKeys(t, endpointID); p != "new-primary" {
		t.Fatalf("listKeys: %q", p)
	}
	if score(t, uri, p0) != 200 || score(t, uri, "new-primary") != 401 {
		t.Error("within the lag: want the old key accepted, the new one refused")
	}
	clock.Add(59 * time.Second)
	if score(t, uri, p0) != 200 {
		t.Error("just before the lag ends: want the old key accepted")
	}
	clock.Add(time.Second)
	if score(t, uri, p0) != 401 || score(t, uri, "new-primary") != 200 {
		t.Error("after the lag: want the old key refused, the new one accepted")
	}
}

// TestNoSecretsLogged checks that no key or token reaches the log.
func TestNoSecretsLogged(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, &amltest.Options{Logger: logger, Polls: -1}, nil)
	uri := e.aml.AddEndpoint(endpointID, amltest.AuthKey)
	ctx := ctxTimeout(t, 10*time.Second)
	poller, err := e.regenerate(t, ctx, endpointID, map[string]string{"keyType": "Primary", "keyValue": "secret-value-123"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatal(err)
	}
	p, s := e.listKeys(t, endpointID)
	score(t, uri, p)
	tok := armToken(t, e)
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "amltest_request") {
		t.Fatalf("no request log: %s", out)
	}
	for _, secret := range []string{p, s, "secret-value-123", tok} {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains a secret")
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestConcurrent runs regenerations and scoring at once (for -race).
func TestConcurrent(t *testing.T) {
	e := newEnv(t, &amltest.Options{Polls: 2}, nil)
	uri := e.aml.AddEndpoint(endpointID, amltest.AuthKey)
	ctx := ctxTimeout(t, 20*time.Second)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			poller, err := e.regenerate(t, ctx, endpointID, map[string]string{"keyType": []string{"Primary", "Secondary"}[i%2]})
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := poller.PollUntilDone(ctx, pollFast); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			p, _ := e.aml.Keys(endpointID)
			score(t, uri, p)
		})
	}
	wg.Wait()
	p, s := e.aml.Keys(endpointID)
	if score(t, uri, p) != 200 || score(t, uri, s) != 200 {
		t.Error("the final keys are not accepted")
	}
	if st := e.aml.Stats(); st.OperationsSucceeded != 4 {
		t.Errorf("Stats = %+v", st)
	}
}

// armToken is a token for the server's audience, from kv's token endpoint.
func armToken(t testing.TB, e *env) string {
	t.Helper()
	tk, err := newCredential(t, e.kv, e.aml).GetToken(ctxTimeout(t, 5*time.Second),
		policy.TokenRequestOptions{Scopes: []string{e.aml.Audience + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	return tk.Token
}

// vaultToken is a token kv issues for its vault, not for the server.
func vaultToken(t testing.TB, e *env) string {
	t.Helper()
	tk, err := newCredential(t, e.kv, e.aml).GetToken(ctxTimeout(t, 5*time.Second),
		policy.TokenRequestOptions{Scopes: []string{e.kv.Resource + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	return tk.Token
}
