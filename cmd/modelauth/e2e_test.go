package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelauth/modelauth/cmd/funchost/hosttest"
)

// This end-to-end test stages the app with `make stage` (a key-mode
// service, a token-mode service with one-second refreshes, a temporary
// data folder, KEY_CACHE_TTL=1s), serves it with the local host
// (cmd/funchost) on a free port, and runs the command against it: in
// process through run, and as a built binary for the exit statuses and
// Ctrl-C.

const e2eServices = `{"services":[
	{"name":"iris","authMode":"key"},
	{"name":"iris2","authMode":"key"},
	{"name":"tok","authMode":"token","tokenLifetime":"1m","tokenRefreshAfter":"1s"}
]}`

// e2e is the running app and what the test saw.
type e2e struct {
	url      string // with /api
	adminKey string
	bin      string // the modelauth binary

	mu      sync.Mutex
	secrets []string // keys and tokens issued
	stderrs []string // every stderr the command wrote
}

func (e *e2e) secret(s ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, s...)
}

func (e *e2e) sawStderr(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stderrs = append(e.stderrs, s)
}

type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command in process with env (MODELAUTH_URL and
// MODELAUTH_KEY are the app's unless env sets them, to "" to unset).
func (e *e2e) cli(t *testing.T, ctx context.Context, env map[string]string, args ...string) result {
	t.Helper()
	vars := map[string]string{envURL: e.url, envKey: e.adminKey}
	for k, v := range env {
		vars[k] = v
	}
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, func(k string) string { return vars[k] }, &stdout, &stderr)
	e.sawStderr(stderr.String())
	return result{code, stdout.String(), stderr.String()}
}

func (r result) want(t *testing.T, code int, stderrHas string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d; want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	if stderrHas != "" && !strings.Contains(r.stderr, stderrHas) {
		t.Fatalf("stderr = %q; want it to contain %q", r.stderr, stderrHas)
	}
	if code != exitOK && r.stdout != "" {
		t.Errorf("a failure wrote to stdout: %q", r.stdout)
	}
	if code != exitOK && strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("the error is not one line: %q", r.stderr)
	}
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	e := startApp(t)
	ctx := context.Background()
	t.Cleanup(func() {
		// No key or token ever reaches stderr.
		for _, s := range e.stderrs {
			for _, sec := range e.secrets {
				if sec != "" && strings.Contains(s, sec) {
					t.Errorf("stderr holds a secret: %q", s)
				}
			}
		}
	})

	var keys struct{ PrimaryKey, SecondaryKey, ActiveKeyType string }
	t.Run("keys get json", func(t *testing.T) {
		r := e.cli(t, ctx, nil, "keys", "get", "iris", "--output", "json")
		r.want(t, exitOK, "")
		if err := json.Unmarshal([]byte(r.stdout), &keys); err != nil {
			t.Fatalf("stdout %q: %v", r.stdout, err)
		}
		e.secret(keys.PrimaryKey, keys.SecondaryKey)
		if len(keys.PrimaryKey) != 43 || len(keys.SecondaryKey) != 43 || keys.ActiveKeyType != "Primary" {
			t.Fatalf("keys = %+v", keys)
		}
		if r.stderr != "" {
			t.Errorf("stderr = %q; want nothing", r.stderr)
		}
	})
	t.Run("keys get text", func(t *testing.T) {
		// Global flags before the command, the key from the flag.
		r := e.cli(t, ctx, map[string]string{envKey: ""}, "--key", e.adminKey, "keys", "get", "iris")
		r.want(t, exitOK, "")
		want := "Primary    " + keys.PrimaryKey + "  (active)\nSecondary  " + keys.SecondaryKey + "\n"
		if r.stdout != want {
			t.Errorf("stdout = %q; want %q", r.stdout, want)
		}
		r = e.cli(t, ctx, nil, "keys", "get", "--active", "iris")
		r.want(t, exitOK, "")
		if r.stdout != keys.PrimaryKey+"\n" {
			t.Errorf("--active stdout = %q; want the Primary key", r.stdout)
		}
	})
	t.Run("validate key", func(t *testing.T) {
		r := e.cli(t, ctx, nil, "validate", "iris", "--credential", keys.SecondaryKey)
		r.want(t, exitOK, "")
		if !strings.HasPrefix(r.stdout, "valid: service=iris subject=") || !strings.HasSuffix(r.stdout, " authType=key keyType=Secondary\n") {
			t.Errorf("stdout = %q", r.stdout)
		}
		// From MODELAUTH_CREDENTIAL, as JSON.
		r = e.cli(t, ctx, map[string]string{envCredential: keys.PrimaryKey}, "validate", "iris", "--output=json")
		r.want(t, exitOK, "")
		var id struct{ Service, AuthType, KeyType string }
		if err := json.Unmarshal([]byte(r.stdout), &id); err != nil || id.Service != "iris" || id.AuthType != "key" || id.KeyType != "Primary" {
			t.Errorf("validate json = %q (%v)", r.stdout, err)
		}
	})
	t.Run("validate wrong key", func(t *testing.T) {
		r := e.cli(t, ctx, nil, "validate", "iris", "--credential", strings.Repeat("x", 43))
		r.want(t, exitFailed, "modelauth: validate iris: 401 Unauthorized")
	})
	t.Run("keys regen", func(t *testing.T) {
		r := e.cli(t, ctx, nil, "keys", "regen", "iris", "--type", "Primary", "--output", "json")
		r.want(t, exitOK, "")
		var after struct{ PrimaryKey, SecondaryKey string }
		if err := json.Unmarshal([]byte(r.stdout), &after); err != nil {
			t.Fatal(err)
		}
		e.secret(after.PrimaryKey)
		if after.PrimaryKey == keys.PrimaryKey || len(after.PrimaryKey) != 43 || after.SecondaryKey != keys.SecondaryKey {
			t.Fatalf("after regen %+v; before %+v", after, keys)
		}
		// The old Primary is refused at once, the new one passes.
		e.cli(t, ctx, map[string]string{envCredential: keys.PrimaryKey}, "validate", "iris").
			want(t, exitFailed, "401 Unauthorized")
		e.cli(t, ctx, map[string]string{envCredential: after.PrimaryKey}, "validate", "iris").want(t, exitOK, "")

		// A value of one's own, printed as text.
		own := "own-secondary-key-0123456789-abcdefghij"
		e.secret(own)
		r = e.cli(t, ctx, nil, "keys", "regen", "iris", "--type=Secondary", "--value", own)
		r.want(t, exitOK, "")
		if want := "Primary    " + after.PrimaryKey + "  (active)\nSecondary  " + own + "\n"; r.stdout != want {
			t.Errorf("stdout = %q; want %q", r.stdout, want)
		}
		e.cli(t, ctx, map[string]string{envCredential: own}, "validate", "iris").want(t, exitOK, "")
		e.cli(t, ctx, nil, "keys", "regen", "iris", "--type", "Secondary", "--value", "short").
			want(t, exitFailed, "modelauth: keys regen iris: 400 Bad Request")
	})
	t.Run("keys rotate", func(t *testing.T) {
		var before struct{ PrimaryKey, SecondaryKey, ActiveKeyType string }
		r := e.cli(t, ctx, nil, "keys", "get", "iris2", "--output", "json")
		r.want(t, exitOK, "")
		json.Unmarshal([]byte(r.stdout), &before)
		e.secret(before.PrimaryKey, before.SecondaryKey)

		start := time.Now()
		r = e.cli(t, ctx, nil, "keys", "rotate", "iris2", "--output", "json")
		r.want(t, exitOK, "")
		var rot struct {
			PrimaryKey, SecondaryKey, ActiveKeyType string
			Rotation                                struct{ Outcome, ID, KeyType string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &rot); err != nil {
			t.Fatal(err)
		}
		e.secret(rot.PrimaryKey, rot.SecondaryKey)
		t.Logf("rotate took %v: %s %s %s", time.Since(start).Round(time.Millisecond), rot.Rotation.Outcome, rot.Rotation.KeyType, rot.Rotation.ID)
		if rot.Rotation.Outcome == "" || rot.ActiveKeyType == before.ActiveKeyType ||
			(rot.PrimaryKey == before.PrimaryKey && rot.SecondaryKey == before.SecondaryKey) {
			t.Fatalf("rotate: %+v; before %+v", rot, before)
		}
		// The new active key passes.
		active := rot.PrimaryKey
		if rot.ActiveKeyType == "Secondary" {
			active = rot.SecondaryKey
		}
		e.cli(t, ctx, map[string]string{envCredential: active}, "validate", "iris2").want(t, exitOK, "")

		// Text: the outcome, then the keys.
		r = e.cli(t, ctx, nil, "keys", "rotate", "iris2")
		r.want(t, exitOK, "")
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "rotation: ") || !strings.HasPrefix(lines[1], "Primary ") || !strings.HasPrefix(lines[2], "Secondary ") {
			t.Fatalf("rotate text = %q", r.stdout)
		}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			e.secret(f[1])
		}
	})

	var token string
	t.Run("token get", func(t *testing.T) {
		r := e.cli(t, ctx, nil, "token", "get", "tok")
		r.want(t, exitOK, "modelauth: token for tok: expires ")
		token = strings.TrimSuffix(r.stdout, "\n")
		e.secret(token)
		if strings.Count(token, ".") != 2 || strings.ContainsAny(token, " \n") {
			t.Fatalf("stdout = %q; want the token alone", r.stdout)
		}
		if !strings.Contains(r.stderr, "(in 1m0s)") && !strings.Contains(r.stderr, "(in 59s)") {
			t.Errorf("stderr = %q; want the one-minute lifetime", r.stderr)
		}
		e.cli(t, ctx, map[string]string{envCredential: token}, "validate", "tok").want(t, exitOK, "")
		e.cli(t, ctx, nil, "validate", "tok", "--credential", token, "--output", "json").want(t, exitOK, "")
		// A token is not a key, and not a token of another service.
		e.cli(t, ctx, map[string]string{envCredential: token}, "validate", "iris").want(t, exitFailed, "401 Unauthorized")

		r = e.cli(t, ctx, nil, "token", "get", "tok", "--output", "json")
		r.want(t, exitOK, "")
		var w wireToken
		if err := json.Unmarshal([]byte(r.stdout), &w); err != nil {
			t.Fatal(err)
		}
		e.secret(w.AccessToken)
		if w.TokenType != "Bearer" || w.ExpiryOn-w.RefreshAfter != 59 || w.AccessToken == "" {
			t.Errorf("token json = %+v", w)
		}
		// A key-mode service has no tokens.
		e.cli(t, ctx, nil, "token", "get", "iris").want(t, exitFailed, "modelauth: token get iris: 409 Conflict")
	})
	t.Run("token watch", func(t *testing.T) {
		wctx, cancel := context.WithTimeout(ctx, 3500*time.Millisecond)
		defer cancel()
		r := e.cli(t, wctx, nil, "token", "watch", "tok")
		r.want(t, exitOK, "")
		toks := strings.Fields(r.stdout)
		e.secret(toks...)
		if len(toks) < 2 || len(toks) > 5 {
			t.Fatalf("watch printed %d tokens in 3.5 s; want 2 to 5 (one a second)\n%s", len(toks), r.stdout)
		}
		seen := map[string]bool{}
		for _, tk := range toks {
			if seen[tk] {
				t.Errorf("a token printed twice")
			}
			seen[tk] = true
			e.cli(t, ctx, map[string]string{envCredential: tk}, "validate", "tok").want(t, exitOK, "")
		}
		if n := strings.Count(r.stderr, "modelauth: token for tok: expires"); n != len(toks) {
			t.Errorf("stderr has %d descriptions for %d tokens: %q", n, len(toks), r.stderr)
		}
		t.Logf("watch printed %d tokens", len(toks))
	})
	t.Run("refusals", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			env  map[string]string
			args []string
			code int
			msg  string
		}{
			{"unknown service", nil, []string{"keys", "get", "nosuch"}, exitFailed, "modelauth: keys get nosuch: 404 Not Found: "},
			{"unknown service validate", map[string]string{envCredential: strings.Repeat("k", 43)}, []string{"validate", "nosuch"}, exitFailed, "modelauth: validate nosuch: 404 Not Found"},
			{"no credential", map[string]string{envKey: ""}, []string{"keys", "get", "iris"}, exitFailed, "modelauth: keys get iris: 401 Unauthorized: "},
			{"no credential hint", map[string]string{envKey: ""}, []string{"token", "get", "tok"}, exitFailed, "(no credential: set --key or MODELAUTH_KEY)"},
			{"wrong admin key", map[string]string{envKey: strings.Repeat("w", 43)}, []string{"keys", "get", "iris"}, exitFailed, "modelauth: keys get iris: 401 Unauthorized"},
			{"service key as admin", map[string]string{envKey: keys.SecondaryKey}, []string{"keys", "rotate", "iris"}, exitFailed, "401 Unauthorized"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				e.cli(t, ctx, tt.env, tt.args...).want(t, tt.code, tt.msg)
			})
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			env  map[string]string
			args []string
			msg  string
		}{
			{"no command", nil, nil, "modelauth: no command"},
			{"unknown command", nil, []string{"frobnicate", "iris"}, `unknown command "frobnicate"`},
			{"unknown subcommand", nil, []string{"keys", "list", "iris"}, `unknown command "keys list"`},
			{"missing subcommand", nil, []string{"token"}, "token: missing subcommand"},
			{"missing service", nil, []string{"keys", "get"}, "modelauth: keys get: missing <service>"},
			{"extra argument", nil, []string{"validate", "iris", "k" + keys.SecondaryKey}, "unexpected argument"}, // a key may begin with "-", which is another error
			{"a token for a service", nil, []string{"validate", token}, "not a service name"},
			{"unknown flag", nil, []string{"keys", "get", "iris", "--bogus"}, "unknown flag -bogus"},
			{"flag without value", nil, []string{"keys", "regen", "iris", "--type"}, "flag needs an argument: -type"},
			{"missing --type", nil, []string{"keys", "regen", "iris"}, "missing --type"},
			{"bad --type", nil, []string{"keys", "regen", "iris", "--type", "primary"}, "--type must be Primary or Secondary"},
			{"bad --output", nil, []string{"keys", "get", "iris", "--output", "yaml"}, "--output must be text or json"},
			{"bad --timeout", nil, []string{"--timeout", "soon", "keys", "get", "iris"}, "invalid value"},
			{"bad --url", nil, []string{"keys", "get", "iris", "--url", "localhost:7071"}, "--url must be an http or https URL"},
			{"url with credentials", map[string]string{envURL: "http://user:pw@localhost/api"}, []string{"keys", "get", "iris"}, "--url must not hold credentials"},
			{"validate without credential", nil, []string{"validate", "iris"}, "no credential to check"},
			{"flag of another command", nil, []string{"keys", "get", "iris", "--type", "Primary"}, "unknown flag -type"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := e.cli(t, ctx, tt.env, tt.args...)
				r.want(t, exitUsage, tt.msg)
				if !strings.HasSuffix(r.stderr, "(see modelauth help)\n") {
					t.Errorf("stderr = %q; want a pointer to help", r.stderr)
				}
			})
		}
	})
	t.Run("help", func(t *testing.T) {
		for _, args := range [][]string{{"help"}, {"-h"}, {"keys", "get", "--help"}} {
			r := e.cli(t, ctx, nil, args...)
			r.want(t, exitOK, "")
			if !strings.Contains(r.stdout, "Exit status:") || r.stderr != "" {
				t.Errorf("%v: stdout %q stderr %q", args, r.stdout, r.stderr)
			}
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		e.cli(t, ctx, map[string]string{envURL: closedURL(t)}, "keys", "get", "iris").
			want(t, exitTransport, "modelauth: keys get iris: cannot reach http://127.0.0.1:")
		e.cli(t, ctx, map[string]string{envURL: closedURL(t)}, "token", "watch", "tok").
			want(t, exitTransport, "connection refused")
	})
	t.Run("binary", func(t *testing.T) {
		environ := append(os.Environ(), envURL+"="+e.url, envKey+"="+e.adminKey)
		for _, tt := range []struct {
			name string
			env  []string
			args []string
			code int
			msg  string
		}{
			{"ok", nil, []string{"keys", "get", "iris", "--active"}, exitOK, ""},
			{"refused", []string{envCredential + "=" + strings.Repeat("x", 43)}, []string{"validate", "iris"}, exitFailed, "401 Unauthorized"},
			{"not found", nil, []string{"token", "get", "nosuch"}, exitFailed, "404 Not Found"},
			{"usage", nil, []string{"keys"}, exitUsage, "missing subcommand"},
			{"unreachable", []string{envURL + "=" + closedURL(t)}, []string{"keys", "get", "iris"}, exitTransport, "connection refused"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				cmd := exec.Command(e.bin, tt.args...)
				cmd.Env = append(environ, tt.env...)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				e.sawStderr(stderr.String())
				code := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					code = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				result{code, stdout.String(), stderr.String()}.want(t, tt.code, tt.msg)
				if tt.code == exitOK {
					if len(strings.TrimSpace(stdout.String())) != 43 {
						t.Errorf("stdout = %q; want a key", stdout.String())
					}
					e.secret(strings.TrimSpace(stdout.String()))
				}
			})
		}
		t.Run("watch until SIGINT", func(t *testing.T) { watchBinary(t, e, environ) })
	})
}

// watchBinary runs `modelauth token watch tok`, reads two tokens and stops
// it with SIGINT: exit status 0.
func watchBinary(t *testing.T, e *e2e, environ []string) {
	cmd := exec.Command(e.bin, "token", "watch", "tok", "--output", "json")
	cmd.Env = environ
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(20 * time.Second)
	for n := 0; n < 2; n++ {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("watch ended early: %s", stderr.String())
			}
			var w wireToken
			if err := json.Unmarshal([]byte(l), &w); err != nil || w.AccessToken == "" {
				t.Fatalf("line %q: %v", l, err)
			}
			e.secret(w.AccessToken)
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no two tokens within 20 s: %s", stderr.String())
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	go func() {
		for range lines {
		}
	}()
	err = cmd.Wait()
	e.sawStderr(stderr.String())
	if err != nil {
		t.Fatalf("watch after SIGINT: %v; want exit status 0\n%s", err, stderr.String())
	}
}

// closedURL returns the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/api"
}

// startApp serves the app with the local host (KEY_CACHE_TTL 1s, so that
// rotate is quick) and builds this command.
func startApp(t *testing.T) *e2e {
	t.Helper()
	h := hosttest.Start(t, hosttest.Options{
		Services: e2eServices,
		Settings: map[string]string{"KEY_CACHE_TTL": "1s"},
		Env:      []string{"KEY_CACHE_TTL=1s"},
	})
	e := &e2e{url: h.URL + "/api", adminKey: h.AdminKey, bin: hosttest.Build(t, "./cmd/modelauth")}
	e.secret(e.adminKey)
	return e
}
