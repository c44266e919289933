package functions

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/cache"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/memstore"
)

// hookedStore is a memstore that counts calls, answers 429 while throttle
// holds a Retry-After, and holds calls while block is set.
type hookedStore struct {
	calls    atomic.Int64
	throttle atomic.Int64
	block    atomic.Pointer[chan struct{}]
}

func (h *hookedStore) open() *secretstore.Store {
	return memstore.Open(&memstore.Options{BeforeFn: func(ctx context.Context, op, name string) error {
		h.calls.Add(1)
		if b := h.block.Load(); b != nil {
			<-*b
		}
		if ra := time.Duration(h.throttle.Load()); ra > 0 {
			return &memstore.Error{Code: secretstore.Throttled, RetryAfter: ra}
		}
		return nil
	}})
}

func validateRec(a *App, service, cred string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "/api/services/"+service+"/validate", nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, req)
	return rec
}

// TestThrottleBacksOffTheInstance: as the app wires it, one 429 on one
// service's read stops every read of the instance (the other services',
// the signing keys') for its Retry-After; with no staleness allowed, the
// answers meanwhile are 503 with the time left as Retry-After, and after
// it the store is read again.
func TestThrottleBacksOffTheInstance(t *testing.T) {
	h := &hookedStore{}
	s := startupSettings(t, `{"services":[{"name":"a"},{"name":"b"},{"name":"tok","authMode":"token"}]}`)
	s.KeyCacheTTL, s.KeyRefreshMinInterval, s.KeyCacheMaxStale = 2*time.Second, 0, 0 // the hold is capped at the TTL
	a, err := NewAppWithStore(context.Background(), s, h.open(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	<-a.StoreReady()
	ctx := context.Background()
	keys := map[string]string{}
	for _, svc := range []string{"a", "b"} {
		k, err := a.Keys.Get(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		keys[svc] = k.PrimaryKey
	}
	time.Sleep(2100 * time.Millisecond) // past the TTL

	h.throttle.Store(int64(time.Hour))
	rec := validateRec(a, "a", keys["a"])
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("throttled: %d, Retry-After %q; want 503, 2", rec.Code, rec.Header().Get("Retry-After"))
	}
	h.throttle.Store(0) // recovered: the instance still leaves it alone
	start := h.calls.Load()
	rec = validateRec(a, "b", keys["b"])
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("another service within the hold: %d, Retry-After %q; want 503, 2", rec.Code, rec.Header().Get("Retry-After"))
	}
	var held *cache.HeldError
	if _, err := a.SigningKeys.Published(ctx); !errors.As(err, &held) {
		t.Fatalf("the signing keys within the hold: %v; want a HeldError", err)
	}
	if n := h.calls.Load() - start; n != 0 {
		t.Fatalf("%d store calls within the hold; want 0", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for validateRec(a, "b", keys["b"]).Code != 200 {
		if time.Now().After(deadline) {
			t.Fatal("no 200 after the hold")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSlowStoreDoesNotHoldAWrongKey: with KEY_READ_TIMEOUT, a wrong key
// on a slow store is answered (401, from the cached keys) before the
// store answers.
func TestSlowStoreDoesNotHoldAWrongKey(t *testing.T) {
	h := &hookedStore{}
	s := startupSettings(t, `{"services":[{"name":"a"}]}`)
	s.KeyReadTimeout = 50 * time.Millisecond
	a, err := NewAppWithStore(context.Background(), s, h.open(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	<-a.StoreReady()
	k, err := a.Keys.Get(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	h.block.Store(&release)
	defer close(release)
	if rec := validateRec(a, "a", k.PrimaryKey+"x"); rec.Code != 401 {
		t.Fatalf("a wrong key on a slow store: %d; want 401", rec.Code)
	}
	if rec := validateRec(a, "a", k.SecondaryKey); rec.Code != 200 {
		t.Fatalf("a cached key on a slow store: %d; want 200", rec.Code)
	}
}
