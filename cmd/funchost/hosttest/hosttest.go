// Package hosttest serves a staged copy of the function app with the local
// host (cmd/funchost) on a free port, for end-to-end tests: what a user
// gets from `make run`, with a test's own services and settings. It can
// also serve an existing app folder, such as an unpacked deployment zip.
package hosttest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/logtest"
)

// Options describe the app to serve.
type Options struct {
	// Services is the modelauth.json document.
	Services string
	// Settings override local.settings.example.json's values (after
	// MODELAUTH_DATA_DIR, a temporary folder, and LOG_LEVEL=debug).
	Settings map[string]string
	// Env is added to the host's environment, which wins over the local
	// settings as with Core Tools; KEYVAULT_URL and AZURE_* there also
	// select the store the administrator key is read from.
	Env []string
	// AppDir, if set, is an existing app folder (host.json, the function
	// folders, the handler, modelauth.json) to serve as it is instead of
	// a copy staged with `make stage`: nothing is written into it, so
	// Services must be empty (the folder's modelauth.json serves), and
	// the settings above (the example's values, MODELAUTH_DATA_DIR,
	// LOG_LEVEL=debug, then Settings) are given to the host as
	// environment variables, as app settings are in Azure, before Env
	// (a local.settings.json in the folder applies as with Core Tools:
	// only to names the environment leaves empty).
	AppDir string
	// NoAdminKey leaves App.AdminKey empty instead of reading it at
	// start, for a store that cannot be reached yet; [App.ReadAdminKey]
	// reads it later.
	NoAdminKey bool
}

// App is a served app.
type App struct {
	// URL is the host's base URL, without /api.
	URL     string
	AppDir  string
	DataDir string
	// Logs is everything the host and the handler wrote.
	Logs *logtest.Buffer
	// AdminKey is the administrator key, read from the app's store.
	AdminKey string

	env []string
}

// RepoRoot returns the repository's root, found from the test's folder.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "host.json")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("hosttest: the repository root (with host.json) is not above the test's folder")
		}
		dir = parent
	}
}

// Run runs a command in dir, failing the test with its output if it fails.
func Run(t testing.TB, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Build builds the command pkg (such as ./cmd/modelauth) into a temporary
// folder and returns the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	Run(t, RepoRoot(t), nil, "go", "build", "-o", bin, pkg)
	return bin
}

// Start stages the app with `make stage` (or takes opts.AppDir), starts
// the local host on it and returns once the host listens; the host is
// stopped when the test ends (its output logged if the test failed).
func Start(t testing.TB, opts Options) *App {
	t.Helper()
	root := RepoRoot(t)
	tmp := t.TempDir()
	a := &App{AppDir: filepath.Join(tmp, "app"), DataDir: filepath.Join(tmp, "data"), Logs: &logtest.Buffer{}, env: opts.Env}
	var settingsEnv []string
	if opts.AppDir != "" {
		if opts.Services != "" {
			t.Fatal("hosttest: Options.Services would be written into Options.AppDir, which is served as it is")
		}
		a.AppDir = opts.AppDir
		settingsEnv = envList(settingsValues(t, root, a, opts.Settings))
	} else {
		Run(t, root, nil, "make", "--no-print-directory", "stage", "APP="+a.AppDir,
			"HANDLER_GOOS="+runtime.GOOS, "HANDLER_GOARCH="+runtime.GOARCH)
		if err := os.WriteFile(filepath.Join(a.AppDir, "modelauth.json"), []byte(opts.Services), 0o600); err != nil {
			t.Fatal(err)
		}
		writeSettings(t, a, settingsValues(t, root, a, opts.Settings))
	}
	host := Build(t, "./cmd/funchost")

	pr, pw := io.Pipe()
	cmd := exec.Command(host, "--app", a.AppDir, "--port", "0")
	cmd.Env = append(append(os.Environ(), settingsEnv...), opts.Env...)
	cmd.Stdout = io.MultiWriter(a.Logs, pw)
	cmd.Stderr = a.Logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`modelauth local host listening on (http://127\.0\.0\.1:\d+)`)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		pw.Close()
		if t.Failed() {
			t.Logf("local host output:\n%s", a.Logs.String())
		}
	})
	select {
	case a.URL = <-urlc:
	case <-exited:
		t.Fatalf("the local host ended:\n%s", a.Logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the local host printed no URL:\n%s", a.Logs.String())
	}
	if !opts.NoAdminKey {
		a.AdminKey = a.ReadAdminKey(t, 30*time.Second)
	}
	return a
}

// ReadAdminKey reads the administrator key from the app's store, as
// `make admin-key` (cmd/secretctl) does, trying again until timeout while
// the store cannot be read or holds none yet (the handler writes it at
// start, in the background while the store cannot be reached).
func (a *App) ReadAdminKey(t testing.TB, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		key, err := adminKey(t, a.DataDir, a.env)
		if err == nil {
			return key
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading the administrator key from the store: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settingsValues returns the app's settings: every value of the example
// (so that every timer's %SETTING% resolves), then this app's.
func settingsValues(t testing.TB, root string, a *App, extra map[string]string) map[string]string {
	t.Helper()
	var file struct{ Values map[string]string }
	example, err := os.ReadFile(filepath.Join(root, "local.settings.example.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(example, &file); err != nil {
		t.Fatal(err)
	}
	values := file.Values
	values["FUNCTIONS_WORKER_RUNTIME"] = "custom"
	values["MODELAUTH_DATA_DIR"] = a.DataDir
	values["LOG_LEVEL"] = "debug"
	for k, v := range extra {
		values[k] = v
	}
	return values
}

// envList returns values as NAME=value, sorted.
func envList(values map[string]string) []string {
	env := make([]string, 0, len(values))
	for k, v := range values {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// writeSettings writes values as the app's local.settings.json.
func writeSettings(t testing.TB, a *App, values map[string]string) {
	t.Helper()
	ls, _ := json.Marshal(map[string]any{"IsEncrypted": false, "Values": values})
	if err := os.WriteFile(filepath.Join(a.AppDir, "local.settings.json"), ls, 0o600); err != nil {
		t.Fatal(err)
	}
}

// adminKey reads the administrator key from the app's store once.
func adminKey(t testing.TB, dataDir string, env []string) (string, error) {
	t.Helper()
	settings := config.DefaultSettings()
	settings.DataDir = dataDir
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if tt, ok := t.(interface{ Setenv(k, v string) }); ok {
			tt.Setenv(k, v) // for azidentity, in this process
		}
		switch k {
		case "KEYVAULT_URL":
			settings.KeyVaultURL = v
		case "AZURE_AUTHORITY_HOST":
			settings.AuthorityHost = v
		}
	}
	store, err := functions.OpenStore(settings)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sec, err := store.GetSecret(ctx, "admin-key", "")
	if err != nil {
		return "", err
	}
	return sec.Value, nil
}
