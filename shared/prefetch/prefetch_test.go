package prefetch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/client"
	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/logtest"
	"github.com/modelauth/modelauth/shared/prefetch"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/filestore"
)

var errDown = errors.New("issuer down")

// issuer is a fake token source: tokens live an hour and should be
// replaced after 30 minutes; it can be down.
type issuer struct {
	now   func() time.Time
	calls atomic.Int32
	down  atomic.Bool
	n     atomic.Int32
}

func (i *issuer) Token(context.Context) (*client.Token, error) {
	i.calls.Add(1)
	if i.down.Load() {
		return nil, errDown
	}
	now := i.now().Truncate(time.Second)
	return &client.Token{
		AccessToken:  fmt.Sprintf("eyJ.token-%d.sig", i.n.Add(1)),
		TokenType:    "Bearer",
		ExpiresOn:    now.Add(time.Hour),
		RefreshAfter: now.Add(30 * time.Minute),
	}, nil
}

type env struct {
	clk   *fakeclock.Clock
	store *secretstore.Store
	iss   *issuer
	p     *prefetch.Prefetcher
	log   *logtest.Buffer
}

const lead, period = 10 * time.Minute, 5 * time.Minute

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := fakeclock.New(time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC))
	st, err := filestore.Open(t.TempDir(), &filestore.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log, buf := logtest.New()
	iss := &issuer{now: clk.Now}
	p := prefetch.New(st, []prefetch.Consumer{{Name: "batch", Service: "iris", Source: iss}},
		&prefetch.Options{Lead: lead, Period: period, Now: clk.Now, Logger: log, FetchTimeout: prefetch.DefaultFetchTimeout})
	return &env{clk: clk, store: st, iss: iss, p: p, log: buf}
}

func (e *env) stored(t *testing.T) secretstore.Secret {
	t.Helper()
	sec, err := e.store.GetSecret(context.Background(), client.TokenSecret("batch"), "")
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func TestFirstRunWritesTheToken(t *testing.T) {
	e := newEnv(t)
	res, err := e.p.Run(context.Background())
	if err != nil || len(res) != 1 || res[0].Outcome != prefetch.Fetched {
		t.Fatalf("Run = %+v, %v; want fetched", res, err)
	}
	sec := e.stored(t)
	now := e.clk.Now()
	if sec.Value != "eyJ.token-1.sig" || sec.ContentType != "application/jwt" || sec.Expires == nil || !sec.Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("stored %q %q exp %v", sec.Value, sec.ContentType, sec.Expires)
	}
	wantTags := map[string]string{
		"managed-by": "modelauth", "kind": "token", "service": "iris",
		client.TagRefreshAfter: strconv.FormatInt(now.Add(30*time.Minute).Unix(), 10),
		client.TagExpiryOn:     strconv.FormatInt(now.Add(time.Hour).Unix(), 10),
	}
	for k, v := range wantTags {
		if sec.Tags[k] != v {
			t.Errorf("tag %s = %q; want %q", k, sec.Tags[k], v)
		}
	}
	if strings.Contains(e.log.String(), sec.Value) {
		t.Error("the log holds the token")
	}
}

func TestDueAtTheLeadBeforeRefreshAfter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.p.Run(ctx)
	jitter := prefetch.Jitter("batch", 4*period)
	dueIn := 30*time.Minute - lead - jitter
	e.clk.Advance(dueIn - time.Second)
	if res, _ := e.p.Run(ctx); res[0].Outcome != prefetch.Fresh || e.iss.calls.Load() != 1 {
		t.Fatalf("a second before due: %+v, %d fetches", res, e.iss.calls.Load())
	}
	e.clk.Advance(time.Second)
	if res, _ := e.p.Run(ctx); res[0].Outcome != prefetch.Fetched || e.iss.calls.Load() != 2 {
		t.Fatalf("when due: %+v, %d fetches", res, e.iss.calls.Load())
	}
}

func TestDue(t *testing.T) {
	now := time.Unix(1e9, 0)
	tok := &client.Token{AccessToken: "x", ExpiresOn: now.Add(time.Hour), RefreshAfter: now.Add(30 * time.Minute)}
	tests := []struct {
		name   string
		tok    *client.Token
		at     time.Time
		jitter time.Duration
		want   bool
	}{
		{"missing", nil, now, 0, true},
		{"fresh", tok, now, 0, false},
		{"within the lead", tok, now.Add(20 * time.Minute), 0, true},
		{"just before the lead", tok, now.Add(20*time.Minute - time.Second), 0, false},
		{"jitter makes it earlier", tok, now.Add(20*time.Minute - time.Second), 2 * time.Second, true},
		{"expired", tok, now.Add(time.Hour), 0, true},
	}
	for _, tt := range tests {
		if got := prefetch.Due(tt.tok, tt.at, lead, tt.jitter); got != tt.want {
			t.Errorf("%s: Due = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestJitterSpreadsConsumers(t *testing.T) {
	span := 4 * period // what a Prefetcher with these options uses
	ticks := map[time.Duration]bool{}
	for i := range 100 {
		name := fmt.Sprint("consumer-", i)
		j := prefetch.Jitter(name, span)
		if j < 0 || j >= span {
			t.Fatalf("Jitter(%s) = %v; want within [0, %v)", name, j, span)
		}
		if j != prefetch.Jitter(name, span) {
			t.Fatal("Jitter is not stable")
		}
		ticks[j/period] = true // the run it moves the consumer ahead by
	}
	if len(ticks) < 4 {
		t.Fatalf("100 consumers written on one run come due on %d distinct runs; want 4", len(ticks))
	}
}

func TestFailureKeepsTheTokenAndWarns(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.p.Run(ctx)
	first := e.stored(t)
	e.iss.down.Store(true)
	e.clk.Advance(25 * time.Minute) // due; 35 min left
	_, err := e.p.Run(ctx)
	if !errors.Is(err, prefetch.ErrFailed) || !strings.Contains(err.Error(), "batch") {
		t.Fatalf("Run with the issuer down = %v; want ErrFailed naming the consumer", err)
	}
	if got := e.stored(t); got.Version != first.Version {
		t.Fatal("a failed run replaced the stored token")
	}
	log := e.log.String()
	if !strings.Contains(log, `"msg":"prefetch_failed"`) || !strings.Contains(log, `"expiresIn":"35m0s"`) {
		t.Fatalf("no prefetch_failed with the time left: %s", log)
	}
	if strings.Contains(log, "token_expiring") {
		t.Fatal("token_expiring with 35 minutes left and runs every 5")
	}
	e.clk.Advance(31 * time.Minute) // 4 min left: expired by the next run
	e.p.Run(ctx)
	if log := e.log.String(); !strings.Contains(log, `"level":"ERROR","msg":"token_expiring"`) || !strings.Contains(log, `"expiresIn":"4m0s"`) {
		t.Fatalf("no error-level token_expiring with 4 minutes left: %s", log)
	}
	e.iss.down.Store(false)
	e.clk.Advance(period)
	if res, err := e.p.Run(ctx); err != nil || res[0].Outcome != prefetch.Fetched {
		t.Fatalf("after the issuer came back: %+v, %v", res, err)
	}
	if strings.Contains(e.log.String(), first.Value) {
		t.Error("the log holds a token")
	}
}

func TestStoreFailureIsReported(t *testing.T) {
	e := newEnv(t)
	e.store.Close() // every store call now fails
	_, err := e.p.Run(context.Background())
	if !errors.Is(err, prefetch.ErrFailed) || e.iss.calls.Load() != 0 {
		t.Fatalf("Run with the store closed = %v (%d fetches); want ErrFailed before any fetch", err, e.iss.calls.Load())
	}
}

// TestRemoteModelauth prefetches from another modelauth app's get_token,
// served here in modelauth's shape.
func TestRemoteModelauth(t *testing.T) {
	e := newEnv(t)
	var auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		if r.Method != "POST" || r.URL.Path != "/api/services/iris/token" {
			http.Error(w, "wrong route", 404)
			return
		}
		now := e.clk.Now().Unix()
		json.NewEncoder(w).Encode(map[string]any{"accessToken": "eyJ.remote.sig", "tokenType": "Bearer", "expiryOn": now + 3600, "refreshAfter": now + 1800})
	}))
	defer srv.Close()
	c := &client.Client{BaseURL: srv.URL + "/api", Credential: client.Static("remote-admin-key")}
	p := prefetch.New(e.store, []prefetch.Consumer{{Name: "batch", Service: "iris", Source: c.TokenSource("iris")}},
		&prefetch.Options{Lead: lead, Now: e.clk.Now, Period: prefetch.DefaultPeriod, FetchTimeout: prefetch.DefaultFetchTimeout})
	if _, err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := auth.Load(); got != "Bearer remote-admin-key" {
		t.Fatalf("Authorization sent = %q", got)
	}
	sec := e.stored(t)
	if sec.Value != "eyJ.remote.sig" || sec.Tags[client.TagRefreshAfter] != strconv.FormatInt(e.clk.Now().Unix()+1800, 10) {
		t.Fatalf("stored %q tags %v", sec.Value, sec.Tags)
	}
}

// TestConsumerThroughAnOutage: the timer runs every 5 minutes; the issuer
// is down from the stored token's refreshAfter until a minute before its
// exp; a consumer reading the store every minute holds a valid token the
// whole time, and the new one as soon as the issuer is back.
func TestConsumerThroughAnOutage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.p.Run(ctx)
	first := e.stored(t)
	refreshAfter, _ := strconv.ParseInt(first.Tags[client.TagRefreshAfter], 10, 64)
	downFrom, downUntil := time.Unix(refreshAfter, 0).Add(-lead-prefetch.Jitter("batch", 4*period)), first.Expires.Add(-time.Minute)
	var minLeft time.Duration = time.Hour
	start := e.clk.Now()
	var failures int
	var backAt time.Time
	for e.clk.Now().Sub(start) < 3*time.Hour {
		e.clk.Advance(time.Minute)
		now := e.clk.Now()
		e.iss.down.Store(!now.Before(downFrom) && now.Before(downUntil))
		if now.Sub(start)%period == 0 {
			if _, err := e.p.Run(ctx); err != nil {
				failures++
			} else if backAt.IsZero() && !now.Before(downUntil) {
				backAt = now
			}
		}
		tok, err := client.StoredToken(e.stored(t))
		if err != nil || !tok.Valid(now) {
			t.Fatalf("at %v the consumer reads no valid token: %v", now.Sub(start), err)
		}
		minLeft = min(minLeft, tok.ExpiresOn.Sub(now))
	}
	if failures == 0 || backAt.IsZero() {
		t.Fatalf("the outage did not bite: %d failed runs, back at %v", failures, backAt)
	}
	t.Logf("outage %v..%v: %d failed runs, least validity left %v, new token at %v after the outage",
		downFrom.Sub(start), downUntil.Sub(start), failures, minLeft, backAt.Sub(downUntil))
}

func TestRunsConsumersConcurrently(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var inFlight, most int
	release := make(chan struct{})
	slow := client.TokenSourceFunc(func(ctx context.Context) (*client.Token, error) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
		return e.iss.Token(ctx)
	})
	var cs []prefetch.Consumer
	for i := range 3 {
		cs = append(cs, prefetch.Consumer{Name: fmt.Sprint("c", i), Source: slow})
	}
	p := prefetch.New(e.store, cs, &prefetch.Options{Lead: prefetch.LeadFor(prefetch.DefaultPeriod), Period: prefetch.DefaultPeriod, FetchTimeout: prefetch.DefaultFetchTimeout, Now: e.clk.Now})
	done := make(chan error)
	go func() { _, err := p.Run(context.Background()); done <- err }()
	for {
		mu.Lock()
		n := inFlight
		mu.Unlock()
		if n == 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil || most != 3 {
		t.Fatalf("Run = %v, at most %d fetches at once; want 3", err, most)
	}
}

// TestRemoteWithoutRefreshAfter: an answer without refreshAfter gets one at
// half the token's life, and the consumer can read what was stored.
func TestRemoteWithoutRefreshAfter(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"accessToken": "eyJ.remote.sig", "tokenType": "Bearer", "expiryOn": e.clk.Now().Unix() + 3600})
	}))
	defer srv.Close()
	c := &client.Client{BaseURL: srv.URL + "/api", Credential: client.Static("k")}
	p := prefetch.New(e.store, []prefetch.Consumer{{Name: "batch", Service: "iris", Source: c.TokenSource("iris")}},
		&prefetch.Options{Lead: lead, Now: e.clk.Now, Period: prefetch.DefaultPeriod, FetchTimeout: prefetch.DefaultFetchTimeout})
	if _, err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok, err := client.StoredToken(e.stored(t))
	if err != nil || !tok.RefreshAfter.Equal(e.clk.Now().Add(30*time.Minute)) {
		t.Fatalf("stored token %+v, %v; want refreshAfter at half its life", tok, err)
	}
	if res, _ := p.Run(context.Background()); res[0].Outcome != prefetch.Fresh {
		t.Fatalf("second run = %+v; want fresh", res)
	}
}
