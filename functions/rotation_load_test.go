package functions

import (
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
)

var rotationLoad = flag.Duration("rotation-load", 0, "run TestRotationUnderLoad this long (make bench runs it for 30s)")

// TestRotationUnderLoad: two handler instances on one store; a rotation
// completes every few seconds; clients validate with the active key as fast
// as they can, alternating between the instances, and re-read the active key
// once per refresh interval as the README tells them. They must see no 401.
// It runs only with -rotation-load (make bench).
func TestRotationUnderLoad(t *testing.T) {
	if *rotationLoad <= 0 {
		t.Skip("run with -rotation-load=30s (make bench)")
	}
	const (
		ttl             = 500 * time.Millisecond // KEY_CACHE_TTL
		refreshInterval = time.Second            // clients re-read this often
		rotateEvery     = 3 * time.Second        // at least twice the refresh interval
	)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "modelauth.json")
	os.WriteFile(cfgPath, []byte(`{"services":[{"name":"iris"}]}`), 0o600)
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir, s.KeyCacheTTL, s.KeyRefreshMinInterval = cfgPath, filepath.Join(dir, "data"), ttl, 50*time.Millisecond
	var servers []*httptest.Server
	var first *App
	for i := 0; i < 2; i++ {
		a, err := NewApp(context.Background(), s, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if first == nil {
			first = a
		}
		srv := httptest.NewServer(a.Handler())
		defer srv.Close()
		servers = append(servers, srv)
	}
	adminSecret, err := first.Store.GetSecret(context.Background(), keysecret.AdminKeySecret, "")
	if err != nil {
		t.Fatal(err)
	}
	admin := "Bearer " + adminSecret.Value
	client := &http.Client{Timeout: 10 * time.Second}
	call := func(method, url, auth string) (int, []byte) {
		req, _ := http.NewRequest(method, url, nil)
		req.Header.Set("Authorization", auth)
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		var body json.RawMessage
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	readActive := func() string {
		status, body := call("GET", servers[0].URL+"/api/services/iris/keys", admin)
		var k keyring.Keys
		if status != 200 || json.Unmarshal(body, &k) != nil {
			t.Fatalf("get_keys: %d %s", status, body)
		}
		if k.ActiveKeyType == keysecret.Secondary {
			return k.SecondaryKey
		}
		return k.PrimaryKey
	}

	var active atomic.Value
	active.Store(readActive())
	deadline := time.Now().Add(*rotationLoad)
	var ok, refused, rotations atomic.Int64
	var wg sync.WaitGroup
	// The client's re-read.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Now().Before(deadline) {
			time.Sleep(refreshInterval)
			active.Store(readActive())
		}
	}()
	// The load.
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				status, _ := call("GET", servers[(g+i)%2].URL+"/api/services/iris/validate", "Bearer "+active.Load().(string))
				if status == 200 {
					ok.Add(1)
				} else {
					refused.Add(1)
				}
			}
		}()
	}
	// The rotations, forced on alternate instances.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; time.Now().Add(rotateEvery).Before(deadline); i++ {
			next := time.Now().Add(rotateEvery)
			if status, body := call("POST", servers[i%2].URL+"/api/services/iris/keys/rotate", admin); status != 200 {
				t.Errorf("rotate: %d %s", status, body)
			} else {
				rotations.Add(1)
			}
			time.Sleep(time.Until(next))
		}
	}()
	wg.Wait()
	t.Logf("%v: %d rotations, %d validations accepted, %d refused", *rotationLoad, rotations.Load(), ok.Load(), refused.Load())
	if refused.Load() != 0 {
		t.Fatalf("%d validations refused during rotations", refused.Load())
	}
	if want := int64(*rotationLoad/rotateEvery) - 1; rotations.Load() < want {
		t.Fatalf("%d rotations; want at least %d", rotations.Load(), want)
	}
}
