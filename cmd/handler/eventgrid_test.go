package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// kvEvent is a Key Vault event in the Event Grid schema, as the vault's
// system topic sends it.
func kvEvent(id, eventType, secret, version string) map[string]any {
	return map[string]any{
		"id":          id,
		"topic":       "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
		"subject":     secret,
		"eventType":   eventType,
		"eventTime":   time.Now().UTC().Format(time.RFC3339Nano),
		"dataVersion": "1", "metadataVersion": "1",
		"data": map[string]any{
			"Id":        "https://kv.vault.azure.net/secrets/" + secret + "/" + version,
			"VaultName": "kv", "ObjectType": "Secret", "ObjectName": secret, "Version": version,
			"NBF": time.Now().Unix(), "EXP": time.Now().Add(time.Hour).Unix(),
		},
	}
}

const (
	nearExpiry = "Microsoft.KeyVault.SecretNearExpiry"
	expired    = "Microsoft.KeyVault.SecretExpired"
)

// TestKeyVaultEventsThroughTheWebhook delivers Key Vault events through the
// local host's Event Grid webhook, and straight to the handler in each of
// the three payload shapes the host may use: an event rotates only when the
// rotation is due, whatever else arrives.
func TestKeyVaultEventsThroughTheWebhook(t *testing.T) {
	a := startApp(t, `{"services":[{"name":"iris","authMode":"key","rotationPeriod":"4s","refreshInterval":"2s"}]}`,
		[]string{"KEY_CACHE_TTL=1s"})
	admin := "Bearer " + a.adminKey
	var k0 keysBody
	a.do(t, "GET", "/api/services/iris/keys", admin, "").json(t, &k0)
	created := time.Now()

	deliver := func(body any) {
		t.Helper()
		data, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", a.url+"/runtime/webhooks/EventGrid?functionName=keyvaultevents", bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("aeg-event-type", "Notification")
		resp, err := a.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("webhook answered %d", resp.StatusCode)
		}
	}
	keys := func() keysBody {
		var k keysBody
		a.do(t, "GET", "/api/services/iris/keys", admin, "").json(t, &k)
		return k
	}
	completions := func() int { return strings.Count(a.logs.String(), `"msg":"rotation_completed"`) }
	// awaitCompletions waits for the nth rotation_completed line: the
	// handler's output reaches a.logs through a pipe, so a line can still be
	// on its way when the answer that follows it has arrived.
	awaitCompletions := func(n int) int {
		for deadline := time.Now().Add(10 * time.Second); completions() < n && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		return completions()
	}

	// Not due yet, and secrets that are not ours: nothing happens.
	deliver(kvEvent("1", nearExpiry, "svc-iris-primary", "v0"))
	deliver([]any{
		kvEvent("2", nearExpiry, "some-other-secret", "v"),
		kvEvent("3", expired, "tok-consumer", "v"),
		kvEvent("4", nearExpiry, "admin-key", "v"),
		kvEvent("5", nearExpiry, "svc-nosuch-primary", "v"),
		kvEvent("6", "Microsoft.KeyVault.SecretNewVersionCreated", "svc-iris-primary", "v"),
	})
	if k := keys(); k != k0 || completions() != 0 {
		t.Fatalf("events before the rotation was due changed the keys: %+v", k)
	}

	// Due: the event rotates, once, however often it is delivered.
	time.Sleep(time.Until(created.Add(4500 * time.Millisecond)))
	ev := kvEvent("7", nearExpiry, "svc-iris-primary", "v0")
	deliver(ev)
	deliver(ev)                                                                // a duplicate
	deliver([]any{ev, kvEvent("8", expired, "svc-iris-secondary", "stale-v")}) // late and stale
	k1 := keys()
	if awaitCompletions(1) != 1 || k1.ActiveKeyType != "Secondary" || k1.SecondaryKey == k0.SecondaryKey || k1.PrimaryKey != k0.PrimaryKey {
		t.Fatalf("after due events: %d rotations, keys %+v (before %+v)", completions(), k1, k0)
	}
	for _, k := range []string{k0.PrimaryKey, k1.SecondaryKey} {
		if r := a.do(t, "GET", "/api/services/iris/validate", "Bearer "+k, ""); r.status != 200 {
			t.Errorf("a key told to clients fails after the rotation: %d", r.status)
		}
	}

	// The three payload shapes, straight to the handler: not due again yet.
	m := regexp.MustCompile(`"msg":"handler_started","address":"([^"]+)"`).FindAllStringSubmatch(a.logs.String(), -1)
	if m == nil {
		t.Fatal("no handler address in the logs")
	}
	handler := "http://" + m[len(m)-1][1] + "/keyvaultevents"
	ev2, _ := json.Marshal(kvEvent("9", nearExpiry, "svc-iris-secondary", "v1"))
	once, _ := json.Marshal(string(ev2))
	twice, _ := json.Marshal(string(once))
	for i, shape := range []json.RawMessage{ev2, once, twice} {
		body := fmt.Sprintf(`{"Data":{"event":%s},"Metadata":{"sys":{"MethodName":"keyvaultevents"}}}`, shape)
		resp, err := http.Post(handler, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ Logs []string }
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("shape %d: %d %q", i, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		for _, l := range out.Logs {
			if strings.Contains(l, "fail") || strings.Contains(l, "decod") {
				t.Errorf("shape %d: %q", i, l)
			}
		}
	}
	if k := keys(); k != k1 || completions() != 1 {
		t.Fatalf("events while not due rotated: %+v", k)
	}
	// Due again: the direct delivery (a double-encoded string) rotates.
	time.Sleep(4500 * time.Millisecond)
	resp, err := http.Post(handler, "application/json", strings.NewReader(
		fmt.Sprintf(`{"Data":{"event":%s},"Metadata":{}}`, twice)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if k := keys(); awaitCompletions(2) != 2 || k.ActiveKeyType != "Primary" || k.SecondaryKey != k1.SecondaryKey {
		t.Fatalf("a due event in the double-encoded shape: %d rotations, keys %+v", completions(), k)
	}
	for _, k := range []string{k0.PrimaryKey, k1.SecondaryKey} {
		if strings.Contains(a.logs.String(), k) {
			t.Error("a key appears in the logs")
		}
	}
}
