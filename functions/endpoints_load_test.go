package functions

import (
	"context"
	"flag"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/amltest"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keysecret"
)

var endpointLoad = flag.Duration("endpoint-load", 0, "run TestEndpointRotationUnderLoad this long (make bench runs it for 20s)")

// TestEndpointRotationUnderLoad is issue 15's load run: an Azure ML
// endpoint (the management test server, whose scoring plane learns a key
// 200ms after its operation succeeded) rotates every 2.5s, driven by
// due-checks every 250ms as the timer would; clients score continuously
// and re-read the active copy from Key Vault once per refresh interval
// (1s). It reports scoring requests and 401s (target 0) and runs only with
// -endpoint-load (make bench).
func TestEndpointRotationUnderLoad(t *testing.T) {
	if *endpointLoad <= 0 {
		t.Skip("run with -endpoint-load=20s (make bench)")
	}
	const (
		refresh   = time.Second
		lag       = 200 * time.Millisecond // the scoring plane's
		settle    = 400 * time.Millisecond // ENDPOINT_SETTLE_DELAY: more than the lag
		dueChecks = 250 * time.Millisecond
		clients   = 8
	)
	cfg := `{"endpoints":[{"name":"churn","id":"` + amlID + `churn","rotationPeriod":"2500ms","refreshInterval":"1s",
		"cloud":{"resourceManager":"ARM","audience":"AUDIENCE"},"probe":{"body":{"data":[1]}}}]}`
	e := newEndpointEnv(t, cfg, amltest.Options{ScoringLag: lag}, func(s *config.Settings) { s.EndpointSettleDelay = settle })
	e.addEndpoint("churn", "Key")
	ctx, cancel := context.WithTimeout(context.Background(), *endpointLoad)
	defer cancel()
	if _, err := e.app.Endpoints.RotateIfDue(ctx, "churn"); err != nil { // adopts the keys
		t.Fatal(err)
	}

	var scored, refused, rotations, failures atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(dueChecks)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			res, err := e.app.Endpoints.RotateIfDue(ctx, "churn")
			switch {
			case err != nil && ctx.Err() == nil:
				failures.Add(1)
				t.Logf("due-check: %v", err)
			case err == nil && res.Outcome == "completed":
				rotations.Add(1)
			}
		}
	})
	hc := &http.Client{Timeout: 10 * time.Second}
	for range clients {
		wg.Go(func() {
			var key string
			var read time.Time
			for ctx.Err() == nil {
				if time.Since(read) >= refresh {
					sec, err := e.app.Store.GetSecret(ctx, keysecret.Endpoints.Active("churn"), "")
					if err != nil {
						continue
					}
					key, read = sec.Value, time.Now()
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.scoring["churn"], strings.NewReader(`{"data":[1]}`))
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := hc.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					scored.Add(1)
				case http.StatusUnauthorized:
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("endpoint load run: %v, %d clients re-reading every %v: %d scoring requests, %d 401s; %d rotations completed, %d due-checks failed",
		*endpointLoad, clients, refresh, scored.Load()+refused.Load(), refused.Load(), rotations.Load(), failures.Load())
	if refused.Load() != 0 {
		t.Errorf("%d scoring requests were refused: want 0", refused.Load())
	}
	if min := int64(*endpointLoad/(2500*time.Millisecond)) - 2; rotations.Load() < min {
		t.Errorf("%d rotations completed in %v; want at least %d", rotations.Load(), *endpointLoad, min)
	}
	e.noKeyInLogs()
}
