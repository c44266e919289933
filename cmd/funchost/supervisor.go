package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// errHandlerExited means the handler exited with code 0 and, as in the
	// Functions host, was not restarted.
	errHandlerExited = errors.New("the custom handler exited with code 0 and is not restarted")
	// errHandlerStopped means the host is stopping or stopped the handler.
	errHandlerStopped = errors.New("the custom handler is stopped")
	// errHandlerFailed is wrapped by the error that stops the host after
	// too many handler errors.
	errHandlerFailed = errors.New("the custom handler failed too often")
	// errInitTimeout is the host's "Initializing HttpWorker timed out."
	errInitTimeout = errors.New("initializing the custom handler timed out")
	errExited      = errors.New("exited")
)

// Exit codes with a meaning to the host.
const (
	exitIntentionalRestart = 200
	stderrTailLines        = 10
)

type handlerState int

const (
	stateStarting handlerState = iota
	stateReady
	stateExited  // exit code 0: not restarted
	stateStopped // host shutdown or too many errors
)

// supervisor runs the custom handler process as the Functions host does:
// one process, a fresh loopback port and worker id per start, readiness by
// polling GET /, restarts after errors within the host's limits. It is
// safe for concurrent use.
type supervisor struct {
	exe         string
	args        []string // before %VAR% expansion
	dir         string
	appRoot     string
	baseEnv     []string
	env         *appEnv
	initTimeout time.Duration
	poll        time.Duration // readiness polling interval
	stopGrace   time.Duration // SIGTERM to SIGKILL at shutdown
	now         func() time.Time
	newID       func() string
	freePort    func() (int, error)
	log         *slog.Logger
	stdout      io.Writer // handler stdout lines are copied here
	policy      *restartPolicy

	firstReady     chan struct{}
	firstReadyOnce sync.Once

	mu      sync.Mutex
	state   handlerState
	cur     *worker
	changed chan struct{} // closed and replaced on every state change
}

// worker is one handler process.
type worker struct {
	id, url string
	port    int
	cmd     *exec.Cmd
	exited  chan struct{} // closed after Wait returned
	waitErr error
	restart atomic.Bool // a restart was requested: the exit is not an error

	tailMu sync.Mutex
	tail   []string // last stderr lines
}

func (w *worker) addTail(line string) {
	w.tailMu.Lock()
	defer w.tailMu.Unlock()
	w.tail = append(w.tail, line)
	if len(w.tail) > stderrTailLines {
		w.tail = w.tail[1:]
	}
}

func (w *worker) stderrTail() string {
	w.tailMu.Lock()
	defer w.tailMu.Unlock()
	return strings.Join(w.tail, "\n")
}

// exitCode is the process's exit code, -1 if a signal ended it.
func (w *worker) exitCode() int {
	if w.waitErr == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(w.waitErr, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// describeExit says how the process ended.
func (w *worker) describeExit() string {
	if code := w.exitCode(); code >= 0 {
		return fmt.Sprintf("the custom handler exited with code %d", code)
	}
	return fmt.Sprintf("the custom handler ended: %v", w.waitErr)
}

func (s *supervisor) init() {
	s.firstReady = make(chan struct{})
	s.changed = make(chan struct{})
}

func (s *supervisor) setState(st handlerState, w *worker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state, s.cur = st, w
	close(s.changed)
	s.changed = make(chan struct{})
}

// Endpoint returns the base URL of the ready handler and its worker id,
// waiting while it starts or restarts. It returns errHandlerExited or
// errHandlerStopped when no handler will come, and ctx's error when ctx
// ends first.
func (s *supervisor) Endpoint(ctx context.Context) (string, error) {
	for {
		s.mu.Lock()
		st, w, ch := s.state, s.cur, s.changed
		s.mu.Unlock()
		switch st {
		case stateReady:
			return w.url, nil
		case stateExited:
			return "", errHandlerExited
		case stateStopped:
			return "", errHandlerStopped
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the custom handler to start: %w", ctx.Err())
		}
	}
}

// Restart kills the handler serving url, if it still runs, and starts a
// new one; the exit does not count as an error. The host does this after a
// function timeout.
func (s *supervisor) Restart(url, reason string) {
	s.mu.Lock()
	w := s.cur
	s.mu.Unlock()
	if w == nil || w.url != url || !w.restart.CompareAndSwap(false, true) {
		return
	}
	s.log.Warn("restarting the custom handler", "reason", reason, "worker", w.id)
	_ = kill(w.cmd)
}

// Run starts the handler and keeps it running until ctx ends (then it
// stops the handler and returns nil) or the handler fails too often (then
// it returns an error wrapping errHandlerFailed).
func (s *supervisor) Run(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			s.setState(stateStopped, nil)
			return nil
		}
		w, err := s.start()
		if err != nil {
			s.setState(stateStopped, nil)
			return err
		}
		var reason string
		switch err := s.waitReady(ctx, w); {
		case ctx.Err() != nil:
			s.shutdown(w)
			return nil
		case errors.Is(err, errInitTimeout):
			reason = fmt.Sprintf("%v after %v (the handler must listen on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT)", err, s.initTimeout)
			_ = kill(w.cmd)
			<-w.exited
		case errors.Is(err, errExited) && w.exitCode() == exitIntentionalRestart:
			s.log.Info("the custom handler exited with code 200 (intentional restart); restarting it", "worker", w.id)
			continue
		case errors.Is(err, errExited):
			reason = w.describeExit() + " before it was ready"
		default:
			s.log.Info("custom handler ready", "worker", w.id, "port", w.port)
			s.setState(stateReady, w)
			s.firstReadyOnce.Do(func() { close(s.firstReady) })
			select {
			case <-ctx.Done():
				s.shutdown(w)
				return nil
			case <-w.exited:
			}
			if ctx.Err() != nil {
				s.setState(stateStopped, nil)
				return nil
			}
			code := w.exitCode()
			switch {
			case w.restart.Load():
				s.setState(stateStarting, nil)
				continue
			case code == 0:
				s.log.Error("the custom handler exited with code 0; as the Functions host does, it is not restarted and invocations now fail", "worker", w.id)
				s.setState(stateExited, nil)
				<-ctx.Done()
				return nil
			case code == exitIntentionalRestart:
				s.log.Info("the custom handler exited with code 200 (intentional restart); restarting it", "worker", w.id)
				s.setState(stateStarting, nil)
				continue
			}
			reason = w.describeExit()
		}
		s.setState(stateStarting, nil)
		if t := w.stderrTail(); t != "" {
			reason += "; last stderr lines:\n" + t
		}
		s.log.Error(reason, "worker", w.id)
		if !s.policy.recordError(s.now()) {
			s.setState(stateStopped, nil)
			return fmt.Errorf("%w: %d errors less than %v apart, the last: %s; stopping the host as the Functions host does", errHandlerFailed, s.policy.count(), s.policy.window, reason)
		}
		s.log.Warn("restarting the custom handler", "errors", s.policy.count(), "limit", s.policy.threshold)
	}
}

// start launches a handler process on a new port.
func (s *supervisor) start() (*worker, error) {
	port, err := s.freePort()
	if err != nil {
		return nil, fmt.Errorf("choosing a port for the custom handler: %w", err)
	}
	w := &worker{id: s.newID(), port: port, exited: make(chan struct{})}
	w.url = "http://127.0.0.1:" + strconv.Itoa(port)
	p := strconv.Itoa(port)
	extra := map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT":      p,
		"FUNCTIONS_CUSTOMHANDLER_WORKER_ID": w.id,
		"FUNCTIONS_HTTPWORKER_PORT":         p,
		"FUNCTIONS_HTTPWORKER_ID":           w.id,
		"FUNCTIONS_APP_ROOT_PATH":           s.appRoot,
		"FUNCTIONS_CORETOOLS_ENVIRONMENT":   "True",
	}
	lookup := func(name string) (string, bool) {
		if v, ok := extra[name]; ok {
			return v, true
		}
		return s.env.lookup(name)
	}
	args := make([]string, len(s.args))
	for i, a := range s.args {
		args[i] = expandArg(a, lookup)
	}
	cmd := exec.Command(s.exe, args...)
	cmd.Dir = s.dir
	cmd.Env = s.env.childEnv(s.baseEnv, extra)
	out := &lineWriter{emit: func(line string) { _, _ = io.WriteString(s.stdout, line+"\n") }}
	errw := &lineWriter{emit: func(line string) {
		w.addTail(line)
		level := slog.LevelError
		if strings.Contains(strings.ToLower(line), "warn") {
			level = slog.LevelWarn
		}
		s.log.Log(context.Background(), level, line, "stream", "stderr", "worker", w.id)
	}}
	cmd.Stdout, cmd.Stderr = out, errw
	cmd.WaitDelay = time.Second
	isolate(cmd)
	w.cmd = cmd
	s.log.Info("starting the custom handler", "exe", s.exe, "args", args, "dir", s.dir, "port", port, "worker", w.id)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the custom handler %s: %w", s.exe, err)
	}
	go func() {
		w.waitErr = cmd.Wait()
		out.Flush()
		errw.Flush()
		close(w.exited)
	}()
	return w, nil
}

// waitReady polls GET / until any HTTP response, as the host does. It
// returns nil when ready, errInitTimeout, errExited, or ctx's error.
func (s *supervisor) waitReady(ctx context.Context, w *worker) error {
	ctx, cancel := context.WithTimeoutCause(ctx, s.initTimeout, errInitTimeout)
	defer cancel()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	for {
		if probe(ctx, client, w.url+"/") {
			return nil
		}
		select {
		case <-w.exited:
			return errExited
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
}

// probe reports whether GET url got any HTTP response, or failed in a way
// other than a network error (which the host also counts as ready).
func probe(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		return true
	}
	var opErr *net.OpError
	if ctx.Err() != nil || errors.As(err, &opErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return false
	}
	return true
}

// shutdown stops the handler at host shutdown: SIGTERM, then SIGKILL after
// the grace period.
func (s *supervisor) shutdown(w *worker) {
	s.setState(stateStopped, nil)
	s.log.Info("stopping the custom handler", "worker", w.id)
	if err := terminate(w.cmd); err != nil {
		_ = kill(w.cmd)
	}
	select {
	case <-w.exited:
	case <-time.After(s.stopGrace):
		s.log.Warn("the custom handler did not stop in time; killing it", "worker", w.id, "grace", s.stopGrace)
		_ = kill(w.cmd)
		<-w.exited
	}
}

// freeLoopbackPort returns a TCP port that was free on 127.0.0.1, as the
// host's GetUnusedTcpPort does.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
