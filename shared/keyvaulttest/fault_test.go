package keyvaulttest_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/modelauth/modelauth/shared/keyvaulttest"
)

// faultServer is a server with one secret and a client (retries off) that
// has already authenticated, so that faults meet the next request.
func faultServer(t *testing.T) (*keyvaulttest.Server, *azsecrets.Client, string) {
	t.Helper()
	kv := keyvaulttest.NewServer(t, nil)
	client := newClient(t, kv, newCredential(t, kv, -1), nil)
	r, err := client.SetSecret(ctxTimeout(t, 10*time.Second), "faulty", azsecrets.SetSecretParameters{Value: ptr("v")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kv, client, r.ID.Version()
}

func TestFaultThrottled(t *testing.T) {
	t.Parallel()
	kv, client, _ := faultServer(t)
	ctx := ctxTimeout(t, 10*time.Second)
	kv.InjectFault(keyvaulttest.OpGet, keyvaulttest.Fault{Times: 2, Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	for i := range 2 {
		_, err := client.GetSecret(ctx, "faulty", "", nil)
		re := responseError(t, err)
		if re.StatusCode != http.StatusTooManyRequests || re.ErrorCode != "Throttled" {
			t.Errorf("get %d: %d %s; want 429 Throttled", i, re.StatusCode, re.ErrorCode)
		}
		if ra := re.RawResponse.Header.Get("Retry-After"); ra != "1" {
			t.Errorf("get %d: Retry-After %q; want 1", i, ra)
		}
	}
	if _, err := client.GetSecret(ctx, "faulty", "", nil); err != nil {
		t.Errorf("third get: %v; want the fault used up", err)
	}
	if st := kv.Stats(); st.Get != 3 {
		t.Errorf("stats %s; want 3 gets", describe(st))
	}
}

// TestFaultThrottledRetried: with retries on, the client honours
// Retry-After and succeeds.
func TestFaultThrottledRetried(t *testing.T) {
	t.Parallel()
	kv, _, _ := faultServer(t)
	client := newClient(t, kv, newCredential(t, kv, -1), &policy.RetryOptions{MaxRetries: 2, RetryDelay: 10 * time.Millisecond})
	kv.InjectFault(keyvaulttest.OpGet, keyvaulttest.Fault{Times: 1, Status: http.StatusTooManyRequests, RetryAfter: 500 * time.Millisecond})
	start := time.Now()
	if _, err := client.GetSecret(ctxTimeout(t, 10*time.Second), "faulty", "", nil); err != nil {
		t.Fatalf("get: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("the get took %v; want the client to wait Retry-After (rounded up to 1s)", d)
	}
}

func TestFaultServerError(t *testing.T) {
	t.Parallel()
	kv, client, _ := faultServer(t)
	ctx := ctxTimeout(t, 10*time.Second)
	kv.InjectFault(keyvaulttest.OpList, keyvaulttest.Fault{Times: 1, Status: http.StatusInternalServerError})
	_, err := client.NewListSecretPropertiesVersionsPager("faulty", nil).NextPage(ctx)
	if re := responseError(t, err); re.StatusCode != http.StatusInternalServerError {
		t.Errorf("list: %d; want 500", re.StatusCode)
	}
	page, err := client.NewListSecretPropertiesVersionsPager("faulty", nil).NextPage(ctx)
	if err != nil || len(page.Value) != 1 {
		t.Errorf("second list: %v, %d items; want the fault used up", err, len(page.Value))
	}
}

// TestFaultQueue: faults of an operation apply in the order queued.
func TestFaultQueue(t *testing.T) {
	t.Parallel()
	kv, client, ver := faultServer(t)
	ctx := ctxTimeout(t, 10*time.Second)
	kv.InjectFault(keyvaulttest.OpUpdate, keyvaulttest.Fault{Times: 1, Status: http.StatusServiceUnavailable})
	kv.InjectFault(keyvaulttest.OpUpdate, keyvaulttest.Fault{Times: 1, Status: http.StatusBadGateway})
	upd := azsecrets.UpdateSecretPropertiesParameters{ContentType: ptr("x")}
	for _, want := range []int{http.StatusServiceUnavailable, http.StatusBadGateway} {
		_, err := client.UpdateSecretProperties(ctx, "faulty", ver, upd, nil)
		if re := responseError(t, err); re.StatusCode != want {
			t.Errorf("update: %d; want %d", re.StatusCode, want)
		}
	}
	if _, err := client.UpdateSecretProperties(ctx, "faulty", ver, upd, nil); err != nil {
		t.Errorf("third update: %v", err)
	}
	// Other operations are not affected, and ClearFaults empties the queue.
	kv.InjectFault(keyvaulttest.OpUpdate, keyvaulttest.Fault{Status: http.StatusInternalServerError})
	if _, err := client.GetSecret(ctx, "faulty", "", nil); err != nil {
		t.Errorf("get during an update fault: %v", err)
	}
	kv.ClearFaults()
	if _, err := client.UpdateSecretProperties(ctx, "faulty", ver, upd, nil); err != nil {
		t.Errorf("update after ClearFaults: %v", err)
	}
}

func TestFaultDelay(t *testing.T) {
	t.Parallel()
	kv, client, _ := faultServer(t)
	ctx := ctxTimeout(t, 10*time.Second)
	const delay = 300 * time.Millisecond
	kv.InjectFault(keyvaulttest.OpSet, keyvaulttest.Fault{Delay: delay})
	for i := range 2 {
		start := time.Now()
		if _, err := client.SetSecret(ctx, "faulty", azsecrets.SetSecretParameters{Value: ptr("slow")}, nil); err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
		if d := time.Since(start); d < delay {
			t.Errorf("set %d took %v; want at least %v", i, d, delay)
		}
	}
	start := time.Now()
	if _, err := client.GetSecret(ctx, "faulty", "", nil); err != nil || time.Since(start) >= delay {
		t.Errorf("get: %v after %v; want an undelayed success", err, time.Since(start))
	}
}

func TestFaultReset(t *testing.T) {
	t.Parallel()
	kv, client, _ := faultServer(t)
	ctx := ctxTimeout(t, 10*time.Second)
	// Every get: Go's transport resends a GET once after a reset.
	kv.InjectFault(keyvaulttest.OpGet, keyvaulttest.Fault{Reset: true})
	before := kv.Stats().Get
	_, err := client.GetSecret(ctx, "faulty", "", nil)
	if err == nil || isResponseError(err) {
		t.Fatalf("get with reset connections: %v; want a transport error", err)
	}
	if n := kv.Stats().Get - before; n < 1 {
		t.Errorf("%d get requests reached the server", n)
	}
	kv.ClearFaults()
	if _, err := client.GetSecret(ctx, "faulty", "", nil); err != nil {
		t.Errorf("get after ClearFaults: %v", err)
	}
	// A PUT is not resent: one reset fails it.
	kv.InjectFault(keyvaulttest.OpSet, keyvaulttest.Fault{Times: 1, Reset: true})
	if _, err := client.SetSecret(ctx, "faulty", azsecrets.SetSecretParameters{Value: ptr("x")}, nil); err == nil || isResponseError(err) {
		t.Errorf("set with a reset connection: %v; want a transport error", err)
	}
}

func TestFaultHang(t *testing.T) {
	t.Parallel()
	kv, client, ver := faultServer(t)
	kv.InjectFault(keyvaulttest.OpUpdate, keyvaulttest.Fault{Times: 1, Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client.UpdateSecretProperties(ctx, "faulty", ver, azsecrets.UpdateSecretPropertiesParameters{ContentType: ptr("x")}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("update: %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the hang lasted %v after the deadline", d)
	}
	if _, err := client.UpdateSecretProperties(ctxTimeout(t, 10*time.Second), "faulty", ver, azsecrets.UpdateSecretPropertiesParameters{ContentType: ptr("x")}, nil); err != nil {
		t.Errorf("update after the hang: %v", err)
	}
}

// TestCloseEndsHang: Close returns while a request hangs, and the client
// sees an error.
func TestCloseEndsHang(t *testing.T) {
	t.Parallel()
	kv, client, _ := faultServer(t)
	kv.InjectFault(keyvaulttest.OpGet, keyvaulttest.Fault{Hang: true})
	errc := make(chan error, 1)
	go func() {
		_, err := client.GetSecret(ctxTimeout(t, 20*time.Second), "faulty", "", nil)
		errc <- err
	}()
	for kv.Stats().Get == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { kv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a request hung")
	}
	if err := <-errc; err == nil {
		t.Error("the hung get succeeded after Close")
	}
}

func TestFaultToken(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	cred := newCredential(t, kv, -1)
	kv.InjectFault(keyvaulttest.OpToken, keyvaulttest.Fault{Times: 1, Status: http.StatusServiceUnavailable})
	ctx := ctxTimeout(t, 10*time.Second)
	tro := policy.TokenRequestOptions{Scopes: []string{kv.Resource + "/.default"}, TenantID: kv.TenantID}
	_, err := cred.GetToken(ctx, tro)
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) || afe.RawResponse == nil || afe.RawResponse.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GetToken: %v; want an AuthenticationFailedError with status 503", err)
	}
	kv.InjectFault(keyvaulttest.OpToken, keyvaulttest.Fault{Times: 1, Delay: 200 * time.Millisecond})
	start := time.Now()
	if _, err := cred.GetToken(ctx, tro); err != nil {
		t.Fatalf("GetToken after the fault: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("GetToken took %v; want the token request delayed", d)
	}
	if st := kv.Stats(); st.TokenRequests != 2 || st.TokensIssued != 1 {
		t.Errorf("stats %s; want 2 token requests, 1 issued", describe(st))
	}
}

// TestFaultsNeedAuthentication: the challenge is answered before a fault
// applies, so the client authenticates and the fault meets its retry.
func TestFaultsNeedAuthentication(t *testing.T) {
	t.Parallel()
	kv := keyvaulttest.NewServer(t, nil)
	kv.InjectFault(keyvaulttest.OpSet, keyvaulttest.Fault{Times: 1, Status: http.StatusInternalServerError})
	client := newClient(t, kv, newCredential(t, kv, -1), nil)
	_, err := client.SetSecret(ctxTimeout(t, 10*time.Second), "a", azsecrets.SetSecretParameters{Value: ptr("v")}, nil)
	if re := responseError(t, err); re.StatusCode != http.StatusInternalServerError {
		t.Errorf("set: %d; want 500", re.StatusCode)
	}
	if st := kv.Stats(); st.Challenges != 1 || st.TokensIssued != 1 || st.Set != 1 {
		t.Errorf("stats %s; want 1 challenge, 1 token, 1 set", describe(st))
	}
}
