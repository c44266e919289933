package rotation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/azurekeyvault"
	"github.com/modelauth/modelauth/shared/secretstore/filestore"
)

// TestMain trusts the Key Vault test server's CA, and runs the child mode
// of TestTwoProcesses.
func TestMain(m *testing.M) {
	if os.Getenv("ROTATION_CHILD") != "" {
		os.Exit(child()) // trusts the parent's CA, inherited in SSL_CERT_FILE
	}
	os.Exit(keyvaulttest.RunTests(m))
}

// Fast timings for real-time tests: keys are due 2 s after creation, the
// key-cache TTL is 1 s.
var fastPolicy = rotation.Policy{Period: 2 * time.Second, RefreshInterval: time.Second}

const fastTTL = time.Second

// openNamed opens the store a child is told about: a file store folder, or
// the Key Vault test server from the environment.
func openNamed(kind string) (*secretstore.Store, error) {
	if kind == "file" {
		return filestore.Open(os.Getenv("ROTATION_DIR"), nil)
	}
	cred, err := azurekeyvault.NewCredential(os.Getenv("AZURE_AUTHORITY_HOST"))
	if err != nil {
		return nil, err
	}
	return azurekeyvault.Open(os.Getenv("KEYVAULT_URL"), cred, nil)
}

func fastRotator(store *secretstore.Store) *rotation.Rotator {
	_, rot := wiring{ringTTL: fastTTL, refreshMinInterval: 10 * time.Millisecond, ttl: fastTTL, policy: fastPolicy}.wire(store)
	return rot
}

// child runs one rotation, starting at ROTATION_START (Unix ms), and prints
// its result as JSON.
func child() int {
	store, err := openNamed(os.Getenv("ROTATION_CHILD"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var start int64
	fmt.Sscan(os.Getenv("ROTATION_START"), &start)
	time.Sleep(time.Until(time.UnixMilli(start)))
	res, err := fastRotator(store).RotateIfDue(context.Background(), service)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func activeKey(t *testing.T, store *secretstore.Store) string {
	t.Helper()
	sec, err := store.GetSecret(context.Background(), keysecret.ActiveSecret(service), "")
	if err != nil {
		t.Fatal(err)
	}
	return sec.Value
}

// TestTwoProcesses: two processes rotate one due service at the same
// moment, on each store: exactly one new key takes effect, and the key told
// before still works.
func TestTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("real time")
	}
	for _, kind := range []string{"file", "keyvault"} {
		t.Run(kind, func(t *testing.T) {
			env := []string{"ROTATION_CHILD=" + kind}
			if kind == "file" {
				env = append(env, "ROTATION_DIR="+t.TempDir())
			} else {
				env = append(env, keyvaulttest.NewServer(t, nil).Env()...)
			}
			for _, kv := range env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			store, err := openNamed(kind)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := fastRotator(store).Provision(ctx, service); err != nil {
				t.Fatal(err)
			}
			before := activeKey(t, store)
			start := time.Now().Add(fastPolicy.Period + 500*time.Millisecond) // due by then
			outs := make([][]byte, 2)
			var wg sync.WaitGroup
			for i := range outs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cmd := exec.Command(os.Args[0], "-test.run=^$")
					cmd.Env = append(os.Environ(), fmt.Sprintf("ROTATION_START=%d", start.UnixMilli()))
					out, err := cmd.CombinedOutput()
					if err != nil {
						t.Errorf("child %d: %v\n%s", i, err, out)
					}
					outs[i] = out
				}()
			}
			wg.Wait()
			completed := map[string]bool{}
			for _, out := range outs {
				var res rotation.Result
				if json.Unmarshal(out, &res) == nil && res.Outcome == rotation.Completed {
					completed[res.Rotation] = true
				}
			}
			after := activeKey(t, store)
			if len(completed) != 1 || after == before {
				t.Fatalf("completed rotations %v (outputs %q); active key changed: %v; want exactly one", completed, outs, after != before)
			}
			v := keyring.New(store, []string{service}, nil)
			for _, k := range []string{before, after} {
				if _, err := v.Validate(ctx, service, k); err != nil {
					t.Errorf("a key told to clients fails after the rotations: %v", err)
				}
			}
		})
	}
}

// TestStoreFaultsAtEachStep injects a fault into each kind of vault call a
// rotation makes: the rotation fails cleanly or completes, the next run
// finishes it, and the active key is accepted throughout.
func TestStoreFaultsAtEachStep(t *testing.T) {
	if testing.Short() {
		t.Skip("real time")
	}
	faults := []keyvaulttest.Fault{
		{Times: 3, Status: 500},
		{Times: 1, Status: 429, RetryAfter: 30 * time.Second},
		{Times: 2, Reset: true},
		{Times: 3, Hang: true},
	}
	for _, op := range []keyvaulttest.Op{keyvaulttest.OpList, keyvaulttest.OpGet, keyvaulttest.OpSet, keyvaulttest.OpUpdate} {
		for _, f := range faults {
			t.Run(fmt.Sprintf("%s %+v", op, f), func(t *testing.T) {
				t.Parallel()
				kv := keyvaulttest.NewServer(t, nil)
				store, err := azurekeyvault.Open(kv.VaultURL, kv.Credential(t), &azurekeyvault.Options{MaxRetries: azurekeyvault.DefaultMaxRetries, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: azurekeyvault.DefaultMaxRetryDelay, TryTimeout: 300 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				ring, r := wiring{ringTTL: fastTTL, refreshMinInterval: 10 * time.Millisecond, ttl: 10 * time.Millisecond, policy: fastPolicy}.wire(store)
				if _, err := ring.Get(ctx, service); err != nil {
					t.Fatal(err)
				}
				told := activeKey(t, store)
				kv.InjectFault(op, f)
				first, err1 := r.RotateNow(ctx, service)
				kv.ClearFaults()
				// The key told before works whatever happened.
				if _, err := keyring.New(store, []string{service}, nil).Validate(ctx, service, told); err != nil {
					t.Fatalf("the active key fails after a faulty rotation (%v, %v): %v", first.Outcome, err1, err)
				}
				// The retry (a timer's, or the operator's again): it resumes
				// a staged rotation before anything else.
				rotate := r.RotateIfDue
				if first.Outcome != rotation.Completed {
					rotate = r.RotateNow
				}
				second, err2 := rotate(ctx, service)
				if err2 != nil {
					t.Fatalf("the next run: %v", err2)
				}
				if first.Outcome != rotation.Completed && second.Outcome != rotation.Completed {
					t.Fatalf("neither run completed: %v (%v), then %v", first.Outcome, err1, second.Outcome)
				}
				if activeKey(t, store) == told {
					t.Fatal("no new active key")
				}
			})
		}
	}
}
