package infra_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelauth/modelauth/cmd/funchost/hosttest"
)

// TestMakeRunStopsOnTERM: a TERM to make while `make run` serves stops
// make, its recipe's shell, the demo model, the local host and the
// handler within a few seconds, as Ctrl-C does. The run uses its own
// port, store, app and bin folders and demo address, so that it keeps
// clear of a `make run` already serving.
func TestMakeRunStopsOnTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds and serves the app with make")
	}
	if runtime.GOOS != "linux" {
		t.Skipf("finds make's processes in /proc; this machine is %s", runtime.GOOS)
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make on PATH")
	}
	root := hosttest.RepoRoot(t)
	tmp := t.TempDir()
	args := []string{"--no-print-directory", "run",
		"PORT=" + strconv.Itoa(freePort(t)),
		"DEMO_ADDR=127.0.0.1:" + strconv.Itoa(freePort(t)),
		"DATA_DIR=" + filepath.Join(tmp, "data"),
		"APP=" + filepath.Join(tmp, "app"),
		"BIN=" + filepath.Join(tmp, "bin"),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", args...)
	cmd.Dir = root
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var log lockedLog
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		signalled := false
		for sc.Scan() {
			log.add(sc.Text())
			if !signalled && strings.HasPrefix(sc.Text(), "modelauth local host listening on ") {
				signalled = true
				close(ready)
			}
		}
		io.Copy(io.Discard, out)
		exited <- cmd.Wait()
	}()

	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("make %s ended before serving: %v\n%s", strings.Join(args, " "), err, log.String())
	case <-ctx.Done():
		t.Fatalf("make %s: not serving after 5 minutes\n%s", strings.Join(args, " "), log.String())
	}
	procs := descendants(t, cmd.Process.Pid)
	names := make([]string, 0, len(procs))
	for _, p := range procs {
		names = append(names, procName(p))
	}
	// make, its shell, the demo model, funchost and the handler.
	if len(procs) < 5 {
		t.Errorf("make run's processes: %v; want make, the shell, demomodel, funchost and the handler", names)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	const bound = 5 * time.Second
	for {
		var alive []string
		for _, p := range procs {
			if running(p) {
				alive = append(alive, procName(p))
			}
		}
		if len(alive) == 0 {
			break
		}
		if time.Since(start) > bound {
			for _, p := range procs {
				syscall.Kill(p, syscall.SIGKILL)
			}
			t.Fatalf("%v after a TERM to make, still running: %v\n%s", bound, alive, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("a TERM to make stopped %v in %v", names, time.Since(start).Round(time.Millisecond))
	select {
	case <-exited:
	case <-time.After(bound):
		t.Error("make's output is still open after every process stopped")
	}
}

// lockedLog collects lines from one goroutine for another.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(line + "\n")
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// descendants returns pid and every process below it, from /proc.
func descendants(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := parentOf(p); ok {
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// stat returns the fields of /proc/<pid>/stat after the command name.
func stat(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return nil, errors.New("malformed stat")
	}
	return strings.Fields(string(data[i+1:])), nil
}

func parentOf(pid int) (int, bool) {
	f, err := stat(pid)
	if err != nil || len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

// running reports whether pid exists and is not a zombie (a zombie has
// stopped; only its parent's wait is missing).
func running(pid int) bool {
	f, err := stat(pid)
	return err == nil && len(f) > 0 && f[0] != "Z"
}

func procName(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return strconv.Itoa(pid)
	}
	return fmt.Sprintf("%s (%d)", strings.TrimSpace(string(data)), pid)
}
