package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelauth/modelauth/shared/client"
)

// fakeIssuer issues tokens living life, due for refresh after refresh,
// and fails while down.
type fakeIssuer struct {
	life, refresh time.Duration

	mu      sync.Mutex
	down    bool
	n       int
	fetches []time.Duration // since start
	start   time.Time
}

func (f *fakeIssuer) Token(context.Context) (*client.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	f.fetches = append(f.fetches, now.Sub(f.start))
	if f.down {
		return nil, &client.Error{Status: 503, Code: "ServiceUnavailable", Message: "down"}
	}
	f.n++
	return &client.Token{AccessToken: fmt.Sprintf("tok-%d", f.n), TokenType: "Bearer",
		ExpiresOn: now.Add(f.life), RefreshAfter: now.Add(f.refresh)}, nil
}

func (f *fakeIssuer) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

type watchLog struct {
	mu     sync.Mutex
	start  time.Time
	tokens []string
	at     []time.Duration
	warns  []time.Duration
}

func (l *watchLog) emit(t *client.Token) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens = append(l.tokens, t.AccessToken)
	l.at = append(l.at, time.Since(l.start))
	return nil
}

func (l *watchLog) warn(err error, retry time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.warns = append(l.warns, time.Since(l.start))
}

func TestWatchRefreshesAtRefreshAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := &fakeIssuer{life: 10 * time.Minute, refresh: 5 * time.Minute, start: time.Now()}
		log := &watchLog{start: time.Now()}
		ctx, cancel := context.WithTimeout(t.Context(), 16*time.Minute)
		defer cancel()
		if err := watch(ctx, iss, time.Minute, log.emit, log.warn); err != nil {
			t.Fatalf("watch = %v; want nil when ctx ends", err)
		}
		// A token at 0, 5, 10 and 15 minutes, each refreshed at its
		// refreshAfter (within one poll).
		if len(log.tokens) != 4 {
			t.Fatalf("tokens %v at %v; want 4", log.tokens, log.at)
		}
		for i, at := range log.at {
			if want := time.Duration(i) * 5 * time.Minute; at < want || at > want+watchPoll {
				t.Errorf("token %d at %v; want %v", i, at, want)
			}
		}
		if len(iss.fetches) != 4 || len(log.warns) != 0 {
			t.Errorf("fetches %v, warnings %v; want 4 fetches, no warning", iss.fetches, log.warns)
		}
	})
}

func TestWatchBacksOffWhileTheIssuerIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := &fakeIssuer{life: 10 * time.Minute, refresh: 5 * time.Minute, start: time.Now()}
		log := &watchLog{start: time.Now()}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- watch(ctx, iss, time.Minute, log.emit, log.warn) }()

		// Down from 4 minutes to 7 minutes: the refresh at 5 fails, so do
		// the tries at 5:30, 6:00 and 6:30; the one at 7:00 gets a token.
		time.Sleep(4 * time.Minute)
		iss.setDown(true)
		time.Sleep(3 * time.Minute)
		iss.setDown(false)
		time.Sleep(time.Minute)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("watch = %v", err)
		}
		if len(log.tokens) != 2 || log.at[1] < 7*time.Minute || log.at[1] > 7*time.Minute+time.Second {
			t.Errorf("tokens %v at %v; want the second one at 7m", log.tokens, log.at)
		}
		if len(log.warns) != 4 {
			t.Errorf("warnings at %v; want 4 (5m, 5m30s, 6m, 6m30s)", log.warns)
		}
		for i := 1; i < len(iss.fetches); i++ {
			if gap := iss.fetches[i] - iss.fetches[i-1]; gap < watchRetry && i > 1 {
				t.Errorf("fetches %v: a retry within %v of the last", iss.fetches, watchRetry)
			}
		}
	})
}

func TestWatchFirstFetchFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		iss := &fakeIssuer{life: 10 * time.Minute, refresh: 5 * time.Minute, start: time.Now(), down: true}
		log := &watchLog{start: time.Now()}
		err := watch(t.Context(), iss, time.Minute, log.emit, log.warn)
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Status != 503 {
			t.Fatalf("watch = %v; want the 503", err)
		}
		if len(log.tokens) != 0 {
			t.Errorf("tokens %v; want none", log.tokens)
		}
	})
}

func TestWatchExpiredAndDown(t *testing.T) {
	// The issuer stays down past the token's expiry: watch keeps trying
	// every watchRetry, never faster, and resumes when it is back.
	synctest.Test(t, func(t *testing.T) {
		iss := &fakeIssuer{life: 2 * time.Minute, refresh: time.Minute, start: time.Now()}
		log := &watchLog{start: time.Now()}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- watch(ctx, iss, time.Minute, log.emit, log.warn) }()
		time.Sleep(30 * time.Second)
		iss.setDown(true)
		time.Sleep(5 * time.Minute)
		iss.setDown(false)
		time.Sleep(time.Minute)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("watch = %v", err)
		}
		if len(log.tokens) < 2 {
			t.Fatalf("tokens %v; want a new one after the outage", log.tokens)
		}
		for i := 2; i < len(iss.fetches); i++ {
			if iss.fetches[i] > 5*time.Minute+30*time.Second {
				break // back up
			}
			if gap := iss.fetches[i] - iss.fetches[i-1]; gap < watchRetry {
				t.Errorf("fetches %v: a retry %v after the last; want at least %v", iss.fetches, gap, watchRetry)
			}
		}
		t.Logf("fetches at %v; tokens at %v", iss.fetches, log.at)
	})
}
