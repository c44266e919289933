package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/keyvaulttest"
	"github.com/modelauth/modelauth/shared/secretstore"
)

// TestRotationCrash crashes the handler (SIGKILL) at each step of a key
// rotation, end to end through the local host and the Key Vault test
// server, and checks that the next run, in the handler the host restarted,
// finishes that same rotation with the value staged before the crash
// (docs/design.md section 5): one new key takes effect, the key active before
// the rotation keeps working, and no key reaches the logs.
func TestRotationCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	for _, tc := range []struct {
		name string
		// arm queues the faults that hold the rotation at the crash point,
		// before the rotation starts.
		arm func(kv *keyvaulttest.Server)
		// reached reports whether the rotation is held at the crash point,
		// given the vault's request counts before it started.
		reached func(before, now keyvaulttest.Stats) bool
		// activated: the crash comes after the finish tag update landed.
		activated bool
	}{
		{
			// Killed at once on rotation_staged: during the wait of one
			// key-cache TTL (2 s) between staging and testing.
			name: "staged",
		},
		{
			// The finish tag update is held in the vault: killed while it
			// is in flight, so it never lands.
			name: "finish_tags",
			arm: func(kv *keyvaulttest.Server) {
				kv.InjectFault(keyvaulttest.OpUpdate, keyvaulttest.Fault{Times: 1, Delay: time.Minute, Secret: "svc-"})
			},
			reached: func(before, now keyvaulttest.Stats) bool { return now.Update > before.Update },
		},
		{
			// The first write is the staging write, served normally; the
			// second, the active copy write, is held: the key is activated
			// (tags) but the copy clients read still holds the old key.
			name: "active_copy",
			arm: func(kv *keyvaulttest.Server) {
				// (The change journal's records are writes too: the
				// faults are for the service's secrets alone.)
				kv.InjectFault(keyvaulttest.OpSet, keyvaulttest.Fault{Times: 1, Secret: "svc-"})
				kv.InjectFault(keyvaulttest.OpSet, keyvaulttest.Fault{Times: 1, Delay: time.Minute, Secret: "svc-"})
			},
			reached: func(before, now keyvaulttest.Stats) bool {
				return now.Set-now.JournalSet >= before.Set-before.JournalSet+2
			},
			activated: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			kv := keyvaulttest.NewServer(t, nil)
			a := startApp(t, `{"services":[
				{"name":"iris","authMode":"key","rotationPeriod":"4s","refreshInterval":"2s"}
			]}`, append(kv.Env(), "KEY_CACHE_TTL=2s"))
			store := crashOpenStore(t, a, kv)
			ctx := context.Background()
			admin := "Bearer " + a.adminKey
			started := time.Now()

			// The keys before the rotation (created by this first read).
			var before keysBody
			if r := a.do(t, "GET", "/api/services/iris/keys", admin, ""); r.status != 200 {
				t.Fatalf("get_keys = %d %s", r.status, r.body)
			} else {
				r.json(t, &before)
			}
			if before.ActiveKeyType != "Primary" {
				t.Fatalf("active key before the rotation = %q; want Primary", before.ActiveKeyType)
			}
			pid, _ := crashWaitEvent(t, a, 0, 10*time.Second, "the first handler_started", func(e crashEvent) bool {
				return e.msg() == "handler_started"
			})
			oldPID := pid.int("pid")

			// Start a forced rotation; its response is lost in the crash.
			stats0 := kv.Stats()
			if tc.arm != nil {
				tc.arm(kv)
			}
			mark := len(a.logs.String())
			posted := make(chan string, 1)
			go func() {
				req, _ := http.NewRequest("POST", a.url+"/api/services/iris/keys/rotate", nil)
				req.Header.Set("Authorization", admin)
				resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
				if err != nil {
					posted <- err.Error()
					return
				}
				resp.Body.Close()
				posted <- resp.Status
			}()
			ev, _ := crashWaitEvent(t, a, mark, 10*time.Second, "rotation_staged", func(e crashEvent) bool {
				return e.msg() == "rotation_staged" && e.str("service") == "iris"
			})
			id := ev.str("rotation")
			if id == "" || ev.str("keyType") != "Secondary" || ev.int("pid") != 0 && ev.int("pid") != oldPID {
				t.Fatalf("rotation_staged event %v; want a rotation of the Secondary", ev)
			}
			// The staged value, read from the store right away.
			stagedVersion, stagedValue := crashNewest(t, store, "svc-iris-secondary", id, keysecret.StateStaged)
			stagedAt := time.Since(started)

			if tc.reached != nil {
				deadline := time.Now().Add(10 * time.Second)
				for !tc.reached(stats0, kv.Stats()) {
					if time.Now().After(deadline) {
						t.Fatalf("the rotation never reached the crash point; vault stats before %+v, now %+v", stats0, kv.Stats())
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
				t.Fatalf("killing the handler %d: %v", oldPID, err)
			}
			killedAt := time.Since(started)
			afterKill := len(a.logs.String())

			// Where the crash left the rotation: staged (or activated), the
			// active copy still the old key.
			logs := a.logs.String()[mark:afterKill]
			if tc.reached == nil && strings.Contains(logs, `"msg":"rotation_tested"`) {
				t.Fatalf("the rotation was tested before the kill (slow machine?): the crash was not during the TTL wait")
			}
			if strings.Contains(logs, `"msg":"rotation_completed"`) || strings.Contains(logs, `"msg":"rotation_failed"`) {
				t.Fatalf("the rotation ended before the kill:\n%s", logs)
			}
			wantState := keysecret.StateStaged
			if tc.activated {
				wantState = keysecret.StateCurrent
			}
			if v, _ := crashNewest(t, store, "svc-iris-secondary", id, wantState); v != stagedVersion {
				t.Fatalf("newest Secondary version after the kill = %s; want the staged %s", v, stagedVersion)
			}
			if cp, err := store.GetSecret(ctx, keysecret.ActiveSecret("iris"), ""); err != nil {
				t.Fatal(err)
			} else if cp.Value != before.PrimaryKey {
				t.Fatalf("the active copy changed before the kill")
			}

			// The host restarts the handler; the timer function's run then
			// finishes the rotation.
			ev, _ = crashWaitEvent(t, a, afterKill, 15*time.Second, "a restarted handler", func(e crashEvent) bool {
				return e.msg() == "handler_started" && e.int("pid") != oldPID
			})
			newPID := ev.int("pid")
			restartedAt := time.Since(started)
			mark2 := len(a.logs.String())
			if r := a.do(t, "POST", "/admin/functions/rotatekeys", "", `{"input":""}`); r.status != 202 {
				t.Fatalf("POST /admin/functions/rotatekeys = %d %s", r.status, r.body)
			}
			done, _ := crashWaitEvent(t, a, mark2, 15*time.Second, "rotation_completed", func(e crashEvent) bool {
				if e.msg() == "rotation_failed" && e.str("service") == "iris" {
					t.Fatalf("the recovery run failed: %v", e)
				}
				return e.msg() == "rotation_completed" && e.str("service") == "iris"
			})
			completedAt := time.Since(started)
			if got := done.str("rotation"); got != id {
				t.Errorf("rotation_completed for rotation %q; want the one staged before the crash, %q", got, id)
			}
			if done.str("keyType") != "Secondary" {
				t.Errorf("rotation_completed %v; want the Secondary", done)
			}
			if done.int("pid") != 0 && done.int("pid") != newPID {
				t.Errorf("rotation_completed by pid %d; want the restarted handler %d", done.int("pid"), newPID)
			}
			recovery := crashEvents(a.logs.String()[mark2:])
			if tc.activated {
				// Only the copy was missing: repaired, and so completed.
				if !done.bool("resumed") || !crashHas(recovery, "rotation_active_copy_repaired", "") {
					t.Errorf("recovery after the activation: want rotation_active_copy_repaired and rotation_completed resumed=true; got %v", done)
				}
			} else if !crashHas(recovery, "rotation_started", id, func(e crashEvent) bool { return e.bool("resumed") }) {
				t.Errorf("the recovery run did not resume rotation %s (rotation_started resumed=true)", id)
			}

			// The store: the staged version is current, and the copy holds it.
			if v, val := crashNewest(t, store, "svc-iris-secondary", id, keysecret.StateCurrent); v != stagedVersion || val != stagedValue {
				t.Errorf("newest Secondary version after the recovery = %s; want the staged %s with the staged value", v, stagedVersion)
			}
			cp, err := store.GetSecret(ctx, keysecret.ActiveSecret("iris"), "")
			if err != nil {
				t.Fatal(err)
			}
			if cp.Value != stagedValue {
				t.Errorf("the active copy does not hold the value staged before the crash")
			}
			if cp.Tags[keysecret.TagSlot] != "secondary" || cp.Tags[keysecret.TagRotation] != id {
				t.Errorf("active copy tags %v; want slot secondary, rotation %s", cp.Tags, id)
			}

			// What clients see.
			var after keysBody
			a.do(t, "GET", "/api/services/iris/keys", admin, "").json(t, &after)
			if after.ActiveKeyType != "Secondary" || after.SecondaryKey != stagedValue || after.PrimaryKey != before.PrimaryKey {
				t.Errorf("get_keys after the recovery: active %s, Secondary is the staged value: %v, Primary unchanged: %v",
					after.ActiveKeyType, after.SecondaryKey == stagedValue, after.PrimaryKey == before.PrimaryKey)
			}
			for _, k := range []struct {
				name, key string
				status    int
				keyType   string
			}{
				{"the key active before the rotation", before.PrimaryKey, 200, "Primary"},
				{"the new key", stagedValue, 200, "Secondary"},
				{"the retired Secondary", before.SecondaryKey, 401, ""},
			} {
				r := a.do(t, "GET", "/api/services/iris/validate", "Bearer "+k.key, "")
				if r.status != k.status || r.header.Get("X-ModelAuth-Key-Type") != k.keyType {
					t.Errorf("validate with %s = %d %q; want %d %q", k.name, r.status, r.header.Get("X-ModelAuth-Key-Type"), k.status, k.keyType)
				}
			}

			// One rotation, one new key: every staging and completion in the
			// logs is this rotation's.
			all := crashEvents(a.logs.String())
			completed := 0
			for _, e := range all {
				switch e.msg() {
				case "rotation_staged", "rotation_started", "rotation_tested", "rotation_completed", "rotation_superseded":
					if e.str("rotation") != id {
						t.Errorf("another rotation in the logs: %v", e)
					}
				}
				if e.msg() == "rotation_completed" {
					completed++
				}
			}
			if completed != 1 {
				t.Errorf("rotation_completed %d times; want 1", completed)
			}
			logs = a.logs.String()
			for name, k := range map[string]string{"old Primary": before.PrimaryKey, "old Secondary": before.SecondaryKey,
				"staged": stagedValue, "admin": a.adminKey, "client secret": kv.ClientSecret} {
				if strings.Contains(logs, k) {
					t.Errorf("the %s key appears in the logs", name)
				}
			}

			select {
			case s := <-posted:
				t.Logf("the interrupted rotate request ended with: %s", s)
			case <-time.After(15 * time.Second):
				t.Errorf("the interrupted rotate request did not end")
			}
			// How long the run waited between staging and testing, from the
			// events' own times (informational: the wait counts from the
			// staged version's Created, which Key Vault keeps in seconds).
			wait := "-"
			if st, te := crashTime(all, "rotation_staged", id), crashTime(all, "rotation_tested", id); !st.IsZero() && !te.IsZero() {
				wait = te.Sub(st).Round(time.Millisecond).String()
			}
			t.Logf("timings from the first get_keys: staged %v, killed %v, restarted %v, completed %v; staged→tested %s; case total %v (vault stats %+v)",
				stagedAt.Round(time.Millisecond), killedAt.Round(time.Millisecond), restartedAt.Round(time.Millisecond),
				completedAt.Round(time.Millisecond), wait, time.Since(start).Round(time.Millisecond), kv.Stats())
		})
	}
}

// crashOpenStore opens the app's store from this process, as startApp
// does to read the administrator key, and warms up its token.
func crashOpenStore(t *testing.T, a *app, kv *keyvaulttest.Server) *secretstore.Store {
	t.Helper()
	s := config.DefaultSettings()
	s.DataDir = a.dataDir
	s.KeyVaultURL = kv.VaultURL
	s.AuthorityHost = kv.AuthorityHost
	store, err := functions.OpenStore(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, err := store.GetSecret(context.Background(), keysecret.AdminKeySecret, ""); err != nil {
		t.Fatal(err)
	}
	return store
}

// crashNewest returns the newest version of secret and its value, failing
// unless it belongs to rotation id and is in state. The newest is what a
// read without a version returns: a listing has no promised order.
func crashNewest(t *testing.T, store *secretstore.Store, secret, id, state string) (version, value string) {
	t.Helper()
	sec, err := store.GetSecret(context.Background(), secret, "")
	if err != nil {
		t.Fatal(err)
	}
	if sec.Tags[keysecret.TagRotation] != id || sec.Tags[keysecret.TagState] != state {
		t.Fatalf("newest version of %s has tags %v; want rotation %s, state %s", secret, sec.Tags, id, state)
	}
	return sec.Version, sec.Value
}

// crashEvent is one JSON log line of the handler.
type crashEvent map[string]any

func (e crashEvent) msg() string { return e.str("msg") }

func (e crashEvent) str(k string) string {
	s, _ := e[k].(string)
	return s
}

func (e crashEvent) int(k string) int {
	f, _ := e[k].(float64)
	return int(f)
}

func (e crashEvent) bool(k string) bool {
	b, _ := e[k].(bool)
	return b
}

// crashEvents parses the JSON lines of the host's output; the text lines
// of the host itself are skipped, as is a last line not yet complete.
func crashEvents(logs string) []crashEvent {
	var out []crashEvent
	for line := range strings.Lines(logs) {
		if !strings.HasSuffix(line, "\n") || !strings.HasPrefix(line, "{") {
			continue
		}
		var e crashEvent
		if json.Unmarshal([]byte(line), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// crashHas reports whether events hold one named msg, of rotation id (any
// if ""), that passes every check.
func crashHas(events []crashEvent, msg, id string, checks ...func(crashEvent) bool) bool {
next:
	for _, e := range events {
		if e.msg() != msg || id != "" && e.str("rotation") != id {
			continue
		}
		for _, c := range checks {
			if !c(e) {
				continue next
			}
		}
		return true
	}
	return false
}

// crashTime is the time of the first event named msg of rotation id.
func crashTime(events []crashEvent, msg, id string) time.Time {
	for _, e := range events {
		if e.msg() == msg && e.str("rotation") == id {
			t, _ := time.Parse(time.RFC3339Nano, e.str("time"))
			return t
		}
	}
	return time.Time{}
}

// crashWaitEvent waits for an event the host's output holds after offset
// from, and returns it with the offset just past its line.
func crashWaitEvent(t *testing.T, a *app, from int, timeout time.Duration, what string, match func(crashEvent) bool) (crashEvent, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		logs := a.logs.String()
		off := from
		for line := range strings.Lines(logs[from:]) {
			off += len(line)
			if evs := crashEvents(line); len(evs) == 1 && match(evs[0]) {
				return evs[0], off
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in the logs after %v", what, timeout)
			return nil, 0
		}
		time.Sleep(10 * time.Millisecond)
	}
}
