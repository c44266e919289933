//go:build unix

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelauth/modelauth/shared/logtest"
)

// The binaries are built once per test run, outside the source tree.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds funchost and the fixture handler with go build.
func binaries(t *testing.T) (funchost, handler string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "funchost-test-")
		if buildErr != nil {
			return
		}
		for pkg, out := range map[string]string{".": "funchost", "./testdata/fixturehandler": "handler"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, out), pkg)
			if output, err := cmd.CombinedOutput(); err != nil {
				buildErr = &buildError{pkg, err, output}
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "funchost"), filepath.Join(binDir, "handler")
}

type buildError struct {
	pkg    string
	err    error
	output []byte
}

func (e *buildError) Error() string {
	return "go build " + e.pkg + ": " + e.err.Error() + "\n" + string(e.output)
}

// fixtureApp copies testdata/fixtureapp to a temporary folder, puts the
// fixture handler in it, and applies edit (path: new content).
func fixtureApp(t *testing.T, edit map[string]string) string {
	t.Helper()
	_, handler := binaries(t)
	dir := filepath.Join(t.TempDir(), "app")
	if err := os.CopyFS(dir, os.DirFS("testdata/fixtureapp")); err != nil {
		t.Fatal(err)
	}
	exe, err := os.ReadFile(handler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "handler"), exe, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range edit {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// hostProcess is funchost running as a subprocess.
type hostProcess struct {
	cmd    *exec.Cmd
	url    string
	record string // the fixture handler's record file

	stdout  logtest.Buffer
	stderr  logtest.Buffer
	done    chan struct{}
	exitErr error
}

// launchHost starts funchost --app dir --port 0 with extra environment.
func launchHost(t *testing.T, dir string, env ...string) *hostProcess {
	t.Helper()
	funchost, _ := binaries(t)
	p := &hostProcess{record: filepath.Join(t.TempDir(), "record.jsonl"), done: make(chan struct{})}
	p.cmd = exec.Command(funchost, "--app", dir, "--port", "0")
	p.cmd.Env = append(append(os.Environ(), "FIXTURE_RECORD="+p.record), env...)
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.stdout.Write([]byte(line + "\n"))
			if u, ok := strings.CutPrefix(line, listenPrefix); ok {
				select {
				case urls <- u:
				default:
				}
			}
		}
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case p.url = <-urls:
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("funchost printed no URL in 20s:\n%s", p.output())
	}
	return p
}

// startHost is launchHost that requires the host to become ready.
func startHost(t *testing.T, dir string, env ...string) *hostProcess {
	t.Helper()
	p := launchHost(t, dir, env...)
	if p.url == "" {
		t.Fatalf("funchost exited before it was ready (%v):\n%s", p.exitErr, p.output())
	}
	return p
}

func (p *hostProcess) output() string {
	return "stdout:\n" + p.stdout.String() + "stderr:\n" + p.stderr.String()
}

func (p *hostProcess) stdoutText() string { return p.stdout.String() }

// wait waits for the process to exit and returns its exit code.
func (p *hostProcess) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("funchost still runs after %v:\n%s", d, p.output())
	}
	return p.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM and waits.
func (p *hostProcess) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("funchost did not stop on SIGTERM:\n%s", p.output())
	}
}

// fixtureRecord is a line of the fixture handler's record file.
type fixtureRecord struct {
	Kind             string            `json:"kind"`
	PID              int               `json:"pid"`
	Args             []string          `json:"args"`
	Env              map[string]string `json:"env"`
	Dir              string            `json:"dir"`
	Method           string            `json:"method"`
	Path             string            `json:"path"`
	RawQuery         string            `json:"rawQuery"`
	Host             string            `json:"host"`
	Header           http.Header       `json:"header"`
	Body             string            `json:"body"`
	ContentLength    int64             `json:"contentLength"`
	TransferEncoding []string          `json:"transferEncoding"`
}

func (p *hostProcess) records(t *testing.T) []fixtureRecord {
	t.Helper()
	data, err := os.ReadFile(p.record)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var recs []fixtureRecord
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r fixtureRecord
		if err := json.Unmarshal(line, &r); err != nil {
			continue // a line being written
		}
		recs = append(recs, r)
	}
	return recs
}

// waitRecords polls the record file until at least n records match.
func (p *hostProcess) waitRecords(t *testing.T, n int, match func(fixtureRecord) bool) []fixtureRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []fixtureRecord
		for _, r := range p.records(t) {
			if match(r) {
				got = append(got, r)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d matching records after 10s; want %d:\n%s", len(got), n, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isPath(path string) func(fixtureRecord) bool {
	return func(r fixtureRecord) bool { return r.Kind == "request" && r.Path == path }
}

func isStart(r fixtureRecord) bool { return r.Kind == "start" }

// waitStdout waits until funchost's stdout contains s.
func (p *hostProcess) waitStdout(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stdoutText(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("stdout lacks %q after 10s:\n%s", s, p.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
