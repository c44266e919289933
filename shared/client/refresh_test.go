package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelauth/modelauth/shared/client"
	"github.com/modelauth/modelauth/shared/logtest"
)

var errIssuerDown = errors.New("issuer: 503 service unavailable")

// issuer is a fake token issuer: tokens live lifetime and are due for
// refresh after refreshAfter (zero: no RefreshAfter), each answer takes
// latency, and it fails while down says so. It records every attempt.
type issuer struct {
	lifetime, refreshAfter, latency time.Duration

	mu       sync.Mutex
	down     func(now time.Time) bool
	gate     chan struct{} // if set, each fetch waits for it to close
	attempts []time.Time   // when each fetch began
	issued   []issuedToken
	failures []time.Time
	ctxErrs  []error // each fetch context's error when the fetch ended
	noDL     int     // fetches whose context had no deadline
}

type issuedToken struct {
	began time.Time
	tok   client.Token
}

func newIssuer() *issuer {
	return &issuer{lifetime: time.Hour, refreshAfter: 30 * time.Minute, latency: time.Second}
}

func (i *issuer) Token(ctx context.Context) (*client.Token, error) {
	began := time.Now()
	i.mu.Lock()
	i.attempts = append(i.attempts, began)
	gate := i.gate
	if _, ok := ctx.Deadline(); !ok {
		i.noDL++
	}
	i.mu.Unlock()
	if gate != nil {
		<-gate
	}
	time.Sleep(i.latency)
	now := time.Now()
	i.mu.Lock()
	defer i.mu.Unlock()
	i.ctxErrs = append(i.ctxErrs, ctx.Err())
	if i.down != nil && (i.down(began) || i.down(now)) {
		i.failures = append(i.failures, began)
		return nil, errIssuerDown
	}
	tok := client.Token{AccessToken: fmt.Sprintf("eyJ.token-%d.sig", len(i.issued)+1), TokenType: "Bearer", ExpiresOn: now.Add(i.lifetime)}
	if i.refreshAfter > 0 {
		tok.RefreshAfter = now.Add(i.refreshAfter)
	}
	i.issued = append(i.issued, issuedToken{began, tok})
	return &tok, nil
}

func (i *issuer) calls() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.attempts)
}

func (i *issuer) setDown(down func(time.Time) bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.down = down
}

// settle lets every fetch in flight end: the bubble's clock stops when its
// root goroutine returns, so a fetch still sleeping then would never end.
func settle() {
	time.Sleep(time.Hour)
	synctest.Wait()
}

// TestTimeline: a consumer polls the source for a simulated day. It
// always holds a valid token, each refresh starts within one polling
// interval after RefreshAfter, and through an issuer outage from one
// token's RefreshAfter until 2 minutes before its expiry it keeps a valid
// token, the tries are at least MinRetry apart, and a new token arrives
// once the issuer is back.
func TestTimeline(t *testing.T) {
	for _, poll := range []time.Duration{7 * time.Second, 3 * time.Minute} {
		t.Run("poll="+poll.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { timeline(t, poll) })
		})
	}
}

func timeline(t *testing.T, poll time.Duration) {
	const minRetry = client.DefaultMinRetry
	iss := newIssuer()
	log, buf := logtest.New()
	src := client.NewRefreshingSource(iss, client.RefreshOptionsWith(func(o *client.RefreshOptions) { o.Logger = log }))
	ctx := context.Background()
	start := time.Now()

	var (
		mu                  sync.Mutex
		downFrom, downUntil time.Time
		outageToken         *client.Token
	)
	iss.setDown(func(now time.Time) bool {
		mu.Lock()
		defer mu.Unlock()
		return outageToken != nil && !now.Before(downFrom) && now.Before(downUntil)
	})
	minLeft := 24 * time.Hour
	var errorsSeen int
	for now := time.Now(); now.Before(start.Add(24 * time.Hour)); now = time.Now() {
		tok, err := src.Token(ctx)
		if err != nil {
			errorsSeen++
			t.Errorf("at %v: Token() error %v", now.Sub(start), err)
		} else if !tok.Valid(now) {
			t.Fatalf("at %v: Token() returned a token that expired at %v", now.Sub(start), tok.ExpiresOn.Sub(start))
		} else {
			minLeft = min(minLeft, tok.ExpiresOn.Sub(now))
		}
		// From the first poll after 10 h, the issuer goes down at the
		// held token's RefreshAfter until 2 minutes before its expiry.
		if outageToken == nil && now.Sub(start) >= 10*time.Hour && err == nil && now.Before(tok.RefreshAfter) {
			mu.Lock()
			outageToken, downFrom, downUntil = tok, tok.RefreshAfter, tok.ExpiresOn.Add(-2*time.Minute)
			mu.Unlock()
		}
		time.Sleep(poll)
	}
	settle()

	iss.mu.Lock()
	defer iss.mu.Unlock()
	// Every try after the first (the only one made without a valid token)
	// starts at least MinRetry after the one before.
	for k := 2; k < len(iss.attempts); k++ {
		if gap := iss.attempts[k].Sub(iss.attempts[k-1]); gap < minRetry {
			t.Errorf("tries %d and %d are %v apart; want at least %v", k-1, k, gap, minRetry)
		}
	}
	// Each refresh outside the outage starts when the previous token is
	// due, and within one polling interval after its RefreshAfter.
	var maxLate time.Duration
	var afterOutage issuedToken
	var lastBefore issuedToken
	for k := 1; k < len(iss.issued); k++ {
		prev, cur := iss.issued[k-1], iss.issued[k]
		if prev.tok.AccessToken == outageToken.AccessToken {
			afterOutage, lastBefore = cur, prev
			continue
		}
		late := cur.began.Sub(prev.tok.RefreshAfter)
		if late < 0 || late > poll {
			t.Errorf("refresh %d began %v after RefreshAfter; want within [0, %v]", k, late, poll)
		}
		maxLate = max(maxLate, late)
	}
	var outageTries int
	for _, f := range iss.failures {
		if f.Before(downFrom) || !f.Before(downUntil) {
			t.Errorf("a failure at %v, outside the outage %v..%v", f.Sub(start), downFrom.Sub(start), downUntil.Sub(start))
		}
		outageTries++
	}
	switch {
	case outageTries == 0:
		t.Fatal("no fetch failed: the outage did not bite")
	case afterOutage.began.Before(downUntil):
		t.Fatalf("the first token after the outage was fetched at %v, before the issuer was back at %v", afterOutage.began.Sub(start), downUntil.Sub(start))
	case afterOutage.began.Sub(downUntil) > minRetry+poll:
		t.Errorf("the new token came %v after the issuer was back; want at most MinRetry+poll = %v", afterOutage.began.Sub(downUntil), minRetry+poll)
	}
	if errorsSeen > 0 {
		t.Errorf("%d calls failed", errorsSeen)
	}
	if n := strings.Count(buf.String(), "token_refresh_failed"); n != outageTries {
		t.Errorf("%d token_refresh_failed events; want one per failed try (%d)", n, outageTries)
	}
	if strings.Contains(buf.String(), "eyJ.") {
		t.Error("the log holds a token")
	}
	t.Logf("poll %v: %d fetches in 24h (1 cold start), refreshes began at most %v after RefreshAfter", poll, len(iss.issued), maxLate)
	t.Logf("outage %v..%v (RefreshAfter of the token fetched at %v, until 2m before its expiry at %v): %d tries, every one at least %v apart, 0 errors seen by the consumer",
		downFrom.Sub(start), downUntil.Sub(start), lastBefore.began.Sub(start), outageToken.ExpiresOn.Sub(start), outageTries, minRetry)
	t.Logf("last successful fetch before the outage at %v; first after it began at %v (%v after the issuer was back, %v before the old token's expiry); least validity left on a token the consumer got: %v",
		lastBefore.began.Sub(start), afterOutage.began.Sub(start), afterOutage.began.Sub(downUntil), outageToken.ExpiresOn.Sub(afterOutage.began), minLeft)
}

// TestConcurrentCallersDuringRefresh: 1,000 callers arrive over a second
// while the refresh is due and the fetch hangs: one fetch, and every caller
// gets the cached, valid token at once.
func TestConcurrentCallersDuringRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := newIssuer()
		// MinRetry 1ns: only the one-fetch-at-a-time rule holds the
		// callers back.
		src := client.NewRefreshingSource(iss, client.RefreshOptionsWith(func(o *client.RefreshOptions) { o.MinRetry = time.Nanosecond }))
		ctx := context.Background()
		first, err := src.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(31 * time.Minute) // past RefreshAfter
		release := make(chan struct{})
		iss.mu.Lock()
		iss.gate = release
		iss.mu.Unlock()

		const n = 1000
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				time.Sleep(time.Duration(i) * time.Millisecond) // spread over 1 s
				tok, err := src.Token(ctx)
				switch {
				case err != nil:
					errs <- err
				case !tok.Valid(time.Now()):
					errs <- errors.New("an expired token")
				case tok.AccessToken != first.AccessToken:
					errs <- fmt.Errorf("token %q; want the cached one", tok.AccessToken)
				}
			})
		}
		wg.Wait() // the fetch is still held at the gate: nobody waited for it
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := iss.calls(); got != 2 {
			t.Errorf("%d fetches; want 2 (the first, and one refresh)", got)
		}
		close(release)
		time.Sleep(2 * iss.latency) // the fetch ends
		tok, err := src.Token(ctx)
		if err != nil || tok.AccessToken == first.AccessToken || iss.calls() != 2 {
			t.Errorf("after the refresh: %v, %v, %d fetches; want the new token", tok, err, iss.calls())
		}
	})
}

// TestConcurrentCallersColdStart: 1,000 callers with no token yet all wait
// for one fetch and get its token.
func TestConcurrentCallersColdStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := newIssuer()
		release := make(chan struct{})
		iss.gate = release
		src := client.NewRefreshingSource(iss, nil)
		const n = 1000
		var wg sync.WaitGroup
		toks := make(chan string, n)
		for range n {
			wg.Go(func() {
				tok, err := src.Token(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				toks <- tok.AccessToken
			})
		}
		synctest.Wait()
		if got := iss.calls(); got != 1 {
			t.Errorf("%d fetches while %d callers wait; want 1", got, n)
		}
		close(release)
		wg.Wait()
		close(toks)
		count := 0
		for tok := range toks {
			count++
			if tok != "eyJ.token-1.sig" {
				t.Errorf("a caller got %q", tok)
			}
		}
		if count != n || iss.calls() != 1 {
			t.Errorf("%d callers served by %d fetches; want %d by 1", count, iss.calls(), n)
		}
	})
}

// TestExpiredAndIssuerDown: once the cached token has expired, a down
// issuer gives an error wrapping ErrNoValidToken and the cause, never the
// expired token; before that the valid token is served.
func TestExpiredAndIssuerDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := newIssuer()
		src := client.NewRefreshingSource(iss, nil)
		ctx := context.Background()
		first, err := src.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		iss.setDown(func(time.Time) bool { return true })
		time.Sleep(59 * time.Minute)
		if tok, err := src.Token(ctx); err != nil || tok.AccessToken != first.AccessToken {
			t.Fatalf("a minute before expiry with the issuer down: %v, %v; want the cached token", tok, err)
		}
		time.Sleep(2 * iss.latency) // the refresh fails
		if err := src.LastError(); !errors.Is(err, errIssuerDown) {
			t.Errorf("LastError() = %v; want the issuer's error", err)
		}
		time.Sleep(time.Minute - 2*iss.latency)
		for range 3 {
			tok, err := src.Token(ctx)
			if tok != nil || !errors.Is(err, client.ErrNoValidToken) || !errors.Is(err, errIssuerDown) {
				t.Fatalf("after expiry with the issuer down: %v, %v; want no token and ErrNoValidToken wrapping the cause", tok, err)
			}
			if strings.Contains(err.Error(), "eyJ.") {
				t.Errorf("the error holds a token: %v", err)
			}
		}
		// Within the leeway before expiry counts as expired too.
		iss.setDown(nil)
		if tok, err := src.Token(ctx); err != nil || !tok.Valid(time.Now()) {
			t.Fatalf("with the issuer back: %v, %v", tok, err)
		}
		settle()
	})
}

// TestExpiryLeeway: a token with less than the leeway left is not served.
func TestExpiryLeeway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := newIssuer()
		src := client.NewRefreshingSource(iss, client.RefreshOptionsWith(func(o *client.RefreshOptions) { o.ExpiryLeeway = 5 * time.Minute }))
		ctx := context.Background()
		if _, err := src.Token(ctx); err != nil {
			t.Fatal(err)
		}
		iss.setDown(func(time.Time) bool { return true })
		time.Sleep(54 * time.Minute)
		if _, err := src.Token(ctx); err != nil {
			t.Fatalf("6 minutes before expiry: %v", err)
		}
		time.Sleep(2 * time.Minute)
		if tok, err := src.Token(ctx); !errors.Is(err, client.ErrNoValidToken) {
			t.Fatalf("4 minutes before expiry, leeway 5m: %v, %v; want ErrNoValidToken", tok, err)
		}
		settle()
	})
}

// TestRefreshTime: when the refresh begins, from RefreshAfter or, without
// one, from the lifetime's fraction.
func TestRefreshTime(t *testing.T) {
	tests := []struct {
		name         string
		refreshAfter time.Duration // 0: none
		fraction     float64
		want         time.Duration // after the token was issued
	}{
		{"refreshAfter", 30 * time.Minute, client.DefaultRefreshFraction, 30 * time.Minute},
		{"refreshAfter early", 10 * time.Minute, 0.9, 10 * time.Minute},
		{"no refreshAfter: half", 0, client.DefaultRefreshFraction, 30 * time.Minute},
		{"no refreshAfter, fraction 0: at expiry", 0, 0, time.Hour - client.DefaultExpiryLeeway},
		{"no refreshAfter: 80%", 0, 0.8, 48 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				iss := newIssuer()
				iss.refreshAfter, iss.latency = tt.refreshAfter, 0
				src := client.NewRefreshingSource(iss, client.RefreshOptionsWith(func(o *client.RefreshOptions) { o.RefreshFraction = tt.fraction }))
				ctx := context.Background()
				src.Token(ctx)
				time.Sleep(tt.want - time.Second)
				src.Token(ctx)
				synctest.Wait()
				if got := iss.calls(); got != 1 {
					t.Fatalf("a second before %v: %d fetches; want 1", tt.want, got)
				}
				time.Sleep(time.Second)
				src.Token(ctx)
				synctest.Wait()
				if got := iss.calls(); got != 2 {
					t.Fatalf("at %v: %d fetches; want 2", tt.want, got)
				}
			})
		})
	}
}

// TestJitter: with Jitter, refreshes begin within [RefreshAfter-Jitter,
// RefreshAfter].
func TestJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := newIssuer()
		iss.latency = 0
		src := client.NewRefreshingSource(iss, client.RefreshOptionsWith(func(o *client.RefreshOptions) { o.Jitter = 10 * time.Minute }))
		ctx := context.Background()
		start := time.Now()
		for time.Since(start) < 12*time.Hour {
			src.Token(ctx)
			time.Sleep(time.Second)
		}
		settle()
		iss.mu.Lock()
		defer iss.mu.Unlock()
		early := map[bool]int{}
		for k := 1; k < len(iss.issued); k++ {
			d := iss.issued[k-1].tok.RefreshAfter.Sub(iss.issued[k].began)
			if d <= -time.Second || d > 10*time.Minute {
				t.Errorf("refresh %d began %v before RefreshAfter; want within (-1s, 10m] (1s: the polling interval)", k, d)
			}
			early[d > time.Second]++
		}
		if early[true] == 0 {
			t.Error("no refresh was moved earlier")
		}
	})
}

// TestMinRetryOption: failures are retried no sooner than MinRetry.
func TestMinRetryOption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := newIssuer()
		src := client.NewRefreshingSource(iss, client.RefreshOptionsWith(func(o *client.RefreshOptions) { o.MinRetry = 2 * time.Minute }))
		ctx := context.Background()
		src.Token(ctx)
		iss.setDown(func(time.Time) bool { return true })
		time.Sleep(30 * time.Minute)
		for range 600 { // 10 minutes, a call a second
			if _, err := src.Token(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
		}
		settle()
		iss.mu.Lock()
		defer iss.mu.Unlock()
		if len(iss.failures) != 5 {
			t.Errorf("%d tries in 10 minutes, MinRetry 2m; want 5", len(iss.failures))
		}
		for k := 1; k < len(iss.failures); k++ {
			if gap := iss.failures[k].Sub(iss.failures[k-1]); gap < 2*time.Minute {
				t.Errorf("tries %v apart", gap)
			}
		}
	})
}

// TestFetchOutlivesCaller: the fetch does not end with the context of the
// caller that started it, and it has a deadline.
func TestFetchOutlivesCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := newIssuer()
		release := make(chan struct{})
		iss.gate = release
		src := client.NewRefreshingSource(iss, client.RefreshOptionsWith(func(o *client.RefreshOptions) { o.FetchTimeout = time.Hour }))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := src.Token(ctx)
			done <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, client.ErrNoValidToken) || !errors.Is(err, context.Canceled) {
			t.Fatalf("a caller giving up: %v; want ErrNoValidToken and context.Canceled", err)
		}
		close(release)
		synctest.Wait()
		tok, err := src.Token(context.Background())
		if err != nil || tok.AccessToken != "eyJ.token-1.sig" || iss.calls() != 1 {
			t.Fatalf("after the fetch ended: %v, %v, %d fetches; want its token from 1 fetch", tok, err, iss.calls())
		}
		iss.mu.Lock()
		defer iss.mu.Unlock()
		if iss.ctxErrs[0] != nil || iss.noDL != 0 {
			t.Errorf("the fetch's context: error %v, %d without deadline; want live, with a deadline", iss.ctxErrs[0], iss.noDL)
		}
	})
}

// TestBadFetch: a source answering an expired or empty token is a failure.
func TestBadFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tok := range []*client.Token{
			{AccessToken: "eyJ.x.sig", ExpiresOn: time.Now().Add(-time.Second)},
			{AccessToken: "", ExpiresOn: time.Now().Add(time.Hour)},
		} {
			src := client.NewRefreshingSource(client.TokenSourceFunc(func(context.Context) (*client.Token, error) { return tok, nil }), nil)
			if got, err := src.Token(context.Background()); got != nil || !errors.Is(err, client.ErrNoValidToken) {
				t.Errorf("source answering %+v: %v, %v; want ErrNoValidToken", tok.ExpiresOn, got, err)
			}
		}
	})
}

// TestReturnsCopies: a caller changing its token changes nobody else's.
func TestReturnsCopies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := client.NewRefreshingSource(newIssuer(), nil)
		a, _ := src.Token(context.Background())
		a.AccessToken = "changed"
		if b, _ := src.Token(context.Background()); b.AccessToken == "changed" {
			t.Error("the cached token was changed through a returned one")
		}
	})
}
