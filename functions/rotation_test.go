package functions

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/fakeclock"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/logtest"
	"github.com/modelauth/modelauth/shared/rotation"

	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/jwtauth"
	"github.com/modelauth/modelauth/shared/keyring"
	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// rotEnv is an app whose rotations wait no TTL and whose due-check runs at
// a clock the test moves.
type rotEnv struct {
	t     *testing.T
	a     *App
	h     http.Handler
	admin string
	log   *logtest.Buffer
	clock *fakeclock.Clock
}

func newRotEnv(t *testing.T, services string) *rotEnv {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "modelauth.json")
	os.WriteFile(cfgPath, []byte(services), 0o600)
	s := config.DefaultSettings()
	s.ConfigPath, s.DataDir = cfgPath, filepath.Join(dir, "data")
	s.KeyCacheTTL, s.KeyRefreshMinInterval = time.Nanosecond, 0 // every validation reads the store
	log, buf := logtest.New()
	e := &rotEnv{t: t, log: buf, clock: fakeclock.New(time.Now())}
	a, err := NewApp(context.Background(), s, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	a.Rotator.Target = &rotation.ValidatorTarget{Validator: a.Keys, Now: e.clock.Now}
	a.Rotator.Now = e.clock.Now
	// The signing keys and tokens follow the test's clock too.
	a.SigningKeys = signingkey.New(a.Store, signingKeyPolicy(a.Settings, a.Config, a.Journal), &signingkey.Options{Bounds: a.Settings.KeyCache(), Journal: a.Journal, Now: e.clock.Now})
	tokOpts := a.tokenOptions()
	tokOpts.Now = e.clock.Now
	if a.Tokens, err = jwtauth.New(a.SigningKeys, a.Settings.Issuer, a.Settings.TokenSigningAlg, tokOpts); err != nil {
		t.Fatal(err)
	}
	e.a, e.h = a, a.Handler()
	adm, err := a.Store.GetSecret(context.Background(), keysecret.AdminKeySecret, "")
	if err != nil {
		t.Fatal(err)
	}
	e.admin = adm.Value
	return e
}

func (e *rotEnv) do(method, path, auth, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func (e *rotEnv) keys(service string) keyring.Keys {
	e.t.Helper()
	rec := e.do("GET", "/api/services/"+service+"/keys", e.admin, "")
	var k keyring.Keys
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &k) != nil {
		e.t.Fatalf("get_keys %s = %d %s", service, rec.Code, rec.Body)
	}
	return k
}

// keyType validates key for service: its key type, or "" if refused.
func (e *rotEnv) keyType(service, key string) string {
	rec := e.do("GET", "/api/services/"+service+"/validate", key, "")
	if rec.Code != 200 {
		return ""
	}
	return rec.Header().Get("X-Modelauth-Key-Type")
}

// invoke posts an invocation envelope for a non-HTTP function and returns
// its Logs and whether the invocation failed.
func (e *rotEnv) invoke(function, binding string, value any) (logs []string, failed bool) {
	e.t.Helper()
	raw, _ := json.Marshal(value)
	env, _ := json.Marshal(map[string]any{
		"Data":     map[string]json.RawMessage{binding: raw},
		"Metadata": map[string]any{"sys": map[string]any{"MethodName": function}},
	})
	rec := e.do("POST", "/"+function, "", string(env))
	var resp struct{ Logs []string }
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &resp) != nil {
		e.t.Fatalf("POST /%s = %d %s", function, rec.Code, rec.Body)
	}
	for _, l := range resp.Logs {
		if strings.HasPrefix(l, "invocation failed") {
			failed = true
		}
	}
	return resp.Logs, failed
}

func (e *rotEnv) noKeysLogged(ks ...keyring.Keys) {
	e.t.Helper()
	log := e.log.String()
	for _, k := range ks {
		for _, v := range []string{k.PrimaryKey, k.SecondaryKey} {
			if v != "" && strings.Contains(log, v) {
				e.t.Errorf("the log contains a key")
			}
		}
	}
}

const rotServices = `{"services":[{"name":"svc"},{"name":"open","authMode":"none"},{"name":"tok","authMode":"token"}]}`

func TestRotateAction(t *testing.T) {
	e := newRotEnv(t, rotServices)
	k0 := e.keys("svc")
	if k0.ActiveKeyType != keysecret.Primary {
		t.Fatalf("new keys: active %s", k0.ActiveKeyType)
	}
	const path = "/api/services/svc/keys/rotate"

	// Administrators only; POST only; key mode only.
	for _, tt := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"no credentials", "POST", path, "", 401},
		{"a service key", "POST", path, k0.PrimaryKey, 401},
		{"GET", "GET", path, e.admin, 405},
		{"mode none", "POST", "/api/services/open/keys/rotate", e.admin, 409},
		{"mode token", "POST", "/api/services/tok/keys/rotate", e.admin, 409},
		{"unknown service", "POST", "/api/services/nope/keys/rotate", e.admin, 404},
	} {
		if rec := e.do(tt.method, tt.path, tt.auth, ""); rec.Code != tt.want || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("%s: %s %s = %d %s; want %d", tt.name, tt.method, tt.path, rec.Code, rec.Body, tt.want)
		}
	}
	if k := e.keys("svc"); k != k0 {
		t.Fatalf("a refused rotate changed the keys")
	}

	type answer struct {
		keyring.Keys
		Rotation struct{ Outcome, ID, KeyType string }
	}
	rotate := func() answer {
		t.Helper()
		rec := e.do("POST", path, e.admin, "")
		var a answer
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &a) != nil {
			t.Fatalf("rotate = %d %s", rec.Code, rec.Body)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
		return a
	}

	// Not due (the keys are new): rotate forces it. The inactive key is
	// replaced and becomes active; the old active key still works.
	r1 := rotate()
	if r1.ActiveKeyType != keysecret.Secondary || r1.Rotation.Outcome != "completed" || r1.Rotation.ID == "" || r1.Rotation.KeyType != "Secondary" {
		t.Fatalf("first rotate = %+v", r1)
	}
	if r1.PrimaryKey != k0.PrimaryKey || r1.SecondaryKey == k0.SecondaryKey {
		t.Errorf("first rotate replaced the wrong key")
	}
	if k := e.keys("svc"); k != r1.Keys {
		t.Errorf("get_keys after rotate = %+v; want the rotate's answer", k)
	}
	if got := e.keyType("svc", k0.PrimaryKey); got != "Primary" {
		t.Errorf("the old active key validates as %q; want Primary", got)
	}
	if got := e.keyType("svc", r1.SecondaryKey); got != "Secondary" {
		t.Errorf("the new key validates as %q; want Secondary", got)
	}
	if got := e.keyType("svc", k0.SecondaryKey); got != "" {
		t.Errorf("the replaced inactive key still validates (%s)", got)
	}

	// Again: back to the Primary; the Secondary (active until now) works.
	r2 := rotate()
	if r2.ActiveKeyType != keysecret.Primary || r2.Rotation.KeyType != "Primary" || r2.Rotation.ID == r1.Rotation.ID {
		t.Fatalf("second rotate = %+v", r2)
	}
	if r2.SecondaryKey != r1.SecondaryKey || r2.PrimaryKey == k0.PrimaryKey {
		t.Errorf("second rotate replaced the wrong key")
	}
	if got := e.keyType("svc", r1.SecondaryKey); got != "Secondary" {
		t.Errorf("the previously active key validates as %q", got)
	}
	if got := e.keyType("svc", k0.PrimaryKey); got != "" {
		t.Errorf("the key replaced twice ago still validates")
	}
	active, err := e.a.Store.GetSecret(context.Background(), keysecret.ActiveSecret("svc"), "")
	if err != nil || active.Value != r2.PrimaryKey {
		t.Errorf("svc-svc-active does not hold the active key: %v", err)
	}

	log := e.log.String()
	if n := strings.Count(log, `"event":"rotate"`); n != 2 {
		t.Errorf("%d rotate audit events; want 2", n)
	}
	if n := strings.Count(log, `"msg":"rotation_completed"`); n != 2 {
		t.Errorf("%d rotation_completed events; want 2", n)
	}
	e.noKeysLogged(k0, r1.Keys, r2.Keys)
}

// kvEvent is a Key Vault event as Event Grid delivers it.
func kvEvent(id, eventType, name string, eventTime time.Time) map[string]any {
	return map[string]any{
		"id":        id,
		"topic":     "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/myvault",
		"subject":   name,
		"eventType": eventType,
		"eventTime": eventTime.UTC().Format(time.RFC3339Nano),
		"data": map[string]any{
			"Id":         "https://myvault.vault.azure.net/secrets/" + name + "/0123456789abcdef0123456789abcdef",
			"VaultName":  "myvault",
			"ObjectType": "Secret",
			"ObjectName": name,
			"Version":    "0123456789abcdef0123456789abcdef",
			"EXP":        eventTime.Add(30 * 24 * time.Hour).Unix(),
		},
		"dataVersion":     "1",
		"metadataVersion": "1",
	}
}

func TestKeyVaultEvents(t *testing.T) {
	e := newRotEnv(t, rotServices)
	k0 := e.keys("svc")
	send := func(ev any) []string {
		t.Helper()
		logs, failed := e.invoke("keyvaultevents", "event", ev)
		if failed {
			t.Fatalf("event %v failed: %v", ev, logs)
		}
		return logs
	}
	const near, expired = "Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired"

	// Not due: the event changes nothing.
	send(kvEvent("1", near, "svc-svc-primary", time.Now()))
	send(kvEvent("2", expired, "svc-svc-active", time.Now()))
	if k := e.keys("svc"); k != k0 {
		t.Fatalf("an event rotated keys that were not due")
	}
	if logs := send(kvEvent("2b", near, "signing-key", time.Now())); len(logs) != 1 || !strings.Contains(logs[0], "signing keys: not_due") {
		t.Errorf("event for a signing key that is not due: logs %q; want not_due", logs)
	}

	// Due from now on: events for anything but a key-mode service's key
	// secret are still ignored.
	e.clock.Advance(31 * 24 * time.Hour)
	ignored := []map[string]any{
		kvEvent("3", near, "tok-svc", time.Now()),
		kvEvent("4", near, "admin-key", time.Now()),
		kvEvent("6", near, "database-password", time.Now()),
		kvEvent("7", near, "svc-nope-primary", time.Now()),  // unknown service
		kvEvent("8", near, "svc-open-primary", time.Now()),  // mode none
		kvEvent("9", near, "svc-tok-secondary", time.Now()), // mode token
		kvEvent("10", near, "svc-svc-tertiary", time.Now()),
		kvEvent("11", "Microsoft.KeyVault.SecretNewVersionCreated", "svc-svc-primary", time.Now()),
	}
	asKey := kvEvent("12", near, "svc-svc-primary", time.Now())
	asKey["data"].(map[string]any)["ObjectType"] = "Key"
	ignored = append(ignored, asKey)
	for _, ev := range ignored {
		logs := send(ev)
		if len(logs) != 1 || !strings.Contains(logs[0], "ignored") {
			t.Errorf("event %s for %s: logs %q; want one 'ignored' line", ev["eventType"], ev["subject"], logs)
		}
	}
	if k := e.keys("svc"); k != k0 {
		t.Fatalf("an ignored event rotated the keys")
	}
	// The signing-key secret's events run the signing keys' due-check: 31
	// days on, the next key is due and written; a duplicate event finds it
	// waiting and writes nothing.
	if logs := send(kvEvent("5", expired, "signing-key", time.Now())); len(logs) != 1 || !strings.Contains(logs[0], "signing keys: rotated") {
		t.Errorf("event for signing-key: logs %q; want the signing keys' due-check, rotated", logs)
	}
	if logs := send(kvEvent("5", expired, "signing-key", time.Now())); len(logs) != 1 || !strings.Contains(logs[0], "signing keys: pending") {
		t.Errorf("duplicate event for signing-key: logs %q; want pending", logs)
	}
	if strings.Contains(e.log.String(), "rotation_started") {
		t.Fatalf("an ignored event started a rotation")
	}

	// Due: the event rotates, sent as Event Grid's JSON string form.
	due := kvEvent("13", near, "svc-svc-primary", time.Now())
	raw, _ := json.Marshal(due)
	if logs := send(string(raw)); !strings.Contains(strings.Join(logs, "\n"), "svc: completed") {
		t.Errorf("due event logs %q", logs)
	}
	k1 := e.keys("svc")
	if k1.ActiveKeyType != keysecret.Secondary || k1.PrimaryKey != k0.PrimaryKey || k1.SecondaryKey == k0.SecondaryKey {
		t.Fatalf("after the due event: %+v", k1)
	}
	if e.keyType("svc", k0.PrimaryKey) != "Primary" {
		t.Errorf("the old active key stopped working")
	}

	// The same event again, a late SecretExpired and one for the other
	// key: harmless, the rotation is no longer due.
	send(due)
	send(kvEvent("14", expired, "svc-svc-primary", time.Now().Add(-48*time.Hour)))
	send(kvEvent("15", near, "SVC-SVC-SECONDARY", time.Now()))
	if k := e.keys("svc"); k != k1 {
		t.Fatalf("a duplicate or late event rotated again")
	}
	if n := strings.Count(e.log.String(), `"msg":"rotation_completed"`); n != 1 {
		t.Errorf("%d rotations completed; want 1", n)
	}

	// A period later, the next one is due.
	e.clock.Advance(31 * 24 * time.Hour)
	send(kvEvent("16", expired, "svc-svc-active", time.Now()))
	if k := e.keys("svc"); k.ActiveKeyType != keysecret.Primary || k.SecondaryKey != k1.SecondaryKey {
		t.Fatalf("the second due event: %+v", k)
	}
	e.noKeysLogged(k0, k1)
}

func TestRotateKeysTimer(t *testing.T) {
	e := newRotEnv(t, `{"services":[{"name":"a"},{"name":"b","rotationPeriod":"240h","refreshInterval":"1h"},{"name":"open","authMode":"none"}]}`)
	timer := map[string]any{"Schedule": map[string]any{"AdjustForDST": true}, "IsPastDue": false}

	// Keys never read are created by the first run, and are not due.
	logs, failed := e.invoke("rotatekeys", "timer", timer)
	slices.Sort(logs) // services rotate concurrently
	if failed || strings.Join(logs, "\n") != "rotatekeys: a: not_due\nrotatekeys: b: not_due" {
		t.Fatalf("first run: failed %v, logs %q", failed, logs)
	}
	a0, b0 := e.keys("a"), e.keys("b")

	// 11 days on: b (period 10 days) is due, a (30 days) is not.
	e.clock.Advance(11 * 24 * time.Hour)
	if logs, failed := e.invoke("rotatekeys", "timer", timer); failed {
		t.Fatalf("second run failed: %q", logs)
	}
	if a := e.keys("a"); a != a0 {
		t.Errorf("a rotated before it was due")
	}
	b1 := e.keys("b")
	if b1.ActiveKeyType != keysecret.Secondary || b1.PrimaryKey != b0.PrimaryKey {
		t.Errorf("b did not rotate: %+v", b1)
	}

	// 31 days on, a's Primary is disabled in the store: a fails, b still
	// rotates, and the invocation fails naming a.
	e.clock.Advance(20 * 24 * time.Hour)
	off := false
	if _, err := e.a.Store.UpdateProperties(context.Background(), "svc-a-primary", "", secretstore.Update{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	logs, failed = e.invoke("rotatekeys", "timer", timer)
	if !failed || !strings.Contains(strings.Join(logs, "\n"), "rotatekeys: a: failed") {
		t.Errorf("run with a broken: failed %v, logs %q", failed, logs)
	}
	if b2 := e.keys("b"); b2.ActiveKeyType != keysecret.Primary || b2.SecondaryKey != b1.SecondaryKey {
		t.Errorf("b did not rotate after a failed: %+v", b2)
	}
	if !strings.Contains(e.log.String(), `"msg":"rotation_failed","service":"a"`) {
		t.Errorf("no rotation_failed event for a")
	}
	if rec := e.do("GET", "/rotatekeys", "", ""); rec.Code != 405 {
		t.Errorf("GET /rotatekeys = %d; want 405", rec.Code)
	}
	e.noKeysLogged(a0, b0, b1)
}

// TestRotateKeysTimerSigningKeys: the timer writes the next signing key
// when the current one's period is nearly over, and the next key takes over
// later without refusing tokens of the old one before their exp.
func TestRotateKeysTimerSigningKeys(t *testing.T) {
	e := newRotEnv(t, `{"services":[{"name":"tok","authMode":"token"}]}`)
	timer := map[string]any{"Schedule": map[string]any{"AdjustForDST": true}, "IsPastDue": false}
	token := func() string {
		rec := e.do("POST", "/api/services/tok/token", e.admin, "")
		var tok jwtauth.Token
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &tok) != nil {
			t.Fatalf("get_token = %d %s", rec.Code, rec.Body)
		}
		return tok.AccessToken
	}
	validate := func(tok string) int { return e.do("GET", "/api/services/tok/validate", tok, "").Code }
	if logs, _ := e.invoke("rotatekeys", "timer", timer); !slices.Contains(logs, "rotatekeys: signing keys: not_due") {
		t.Fatalf("first run logs %q; want the signing keys not due", logs)
	}
	old := token()
	// 30 days on, minus what publishing ahead takes: due.
	ahead := signingkey.JWKSMaxAge + e.a.Settings.KeyCacheTTL + e.a.Settings.TokenLeeway
	e.clock.Advance(30*24*time.Hour - ahead)
	fresh := token() // still the old key
	if logs, _ := e.invoke("rotatekeys", "timer", timer); !slices.Contains(logs, "rotatekeys: signing keys: rotated") {
		t.Fatalf("run when due: logs %q; want rotated", logs)
	}
	if logs, _ := e.invoke("rotatekeys", "timer", timer); !slices.Contains(logs, "rotatekeys: signing keys: pending") {
		t.Fatalf("run with a key waiting: logs %q; want pending", logs)
	}
	if kidOfRaw(t, token()) != kidOfRaw(t, fresh) {
		t.Fatal("the next key signs before its activation")
	}
	e.clock.Advance(ahead - time.Second)
	last := token() // the old key's last token, a second before the switch
	if kidOfRaw(t, last) != kidOfRaw(t, fresh) {
		t.Fatal("the next key signs before its activation")
	}
	e.clock.Advance(time.Second)
	next := token()
	if kidOfRaw(t, next) == kidOfRaw(t, fresh) {
		t.Fatal("the next key does not sign after its activation")
	}
	if validate(last) != 200 || validate(next) != 200 {
		t.Fatalf("after the switch: old-key token %d, new-key token %d; want both 200", validate(last), validate(next))
	}
	if validate(old) != 401 {
		t.Fatalf("a token past its exp = %d; want 401", validate(old))
	}
}

func kidOfRaw(t *testing.T, raw string) string { return kidOf(t, raw) }
